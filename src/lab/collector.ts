/**
 * The storage lab's collector, shared by every machine that runs the lab's guest (storvm bench in
 * Node, bench/lab-qemu.ts, the demo page's lab in a browser worker): it reads the guest's console,
 * turns its `@@lab` lines (src/lab/plan.ts) into a BenchReport (src/lab/report.ts), and calls back
 * when the guest asks the host to sample the stores (a probe) and waits for an answer.
 * Environment-free.
 */
import { PROBES, VARIANTS, type Variant, VIS_FILES, VIS_STORES, VIS_VIRTIOFS_STORES, WORKLOADS } from './plan.js';
import { type BenchReport, type Cell, rateOf, type StoreBytes } from './report.js';

/** Linux errno names the lab's reports use. */
export const ERRNO: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 5: 'EIO', 9: 'EBADF', 12: 'ENOMEM', 13: 'EACCES', 16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV',
  20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL', 27: 'EFBIG', 28: 'ENOSPC', 30: 'EROFS', 36: 'ENAMETOOLONG', 38: 'ENOSYS',
  39: 'ENOTEMPTY', 61: 'ENODATA', 71: 'EPROTO', 90: 'EMSGSIZE', 95: 'EOPNOTSUPP',
};

/** Marker strings by visibility store ('9p-none', '9p-loose', 'blk-ext4', and 'vfs-auto', 'vfs-always' where virtio-fs runs). */
export type Markers = Record<string, string>;

/** What one lab run uses: the sizes, the guest and the control share's contents. */
export interface LabSetup {
  sizeMiB: number;
  files: number;
  /** 4 KiB random operations per run. */
  ops: number;
  tarEntries: number;
  tarBytes: number;
  markers: Markers;
  variants: Variant[];
  /** The guest's RAM. */
  memoryMiB: number;
  /** The raw disk's size (/dev/vda). */
  rawBytes: number;
  /** The kernel command line: console, the control share "lab" mounted at /mnt/lab, storvm.cmd. */
  bootargs: string;
  /** Why virtio-fs does not run here (see PlanOptions.noVirtiofs); undefined where it does. */
  noVirtiofs?: string;
  /** The storvm version the report names. */
  version: string;
}

/** What the host measured at one probe: bytes used by each store, and which markers it sees. */
export interface StoreSample {
  raw: number;
  ext4: number;
  share: number;
  vis: Record<string, boolean>;
}

/**
 * Which visibility markers the host sees now: each share store's in its file in the share
 * (`inShare(file, marker)`), ext4's anywhere on the ext4 disk (`onExt4(marker)`). Answers at once
 * when both do.
 */
export function visibleMarkers(
  markers: Markers,
  inShare: (file: string, marker: string) => boolean | Promise<boolean>,
  onExt4: (marker: string) => boolean,
): Record<string, boolean> | Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  const waits: Promise<void>[] = [];
  for (const [store, marker] of Object.entries(markers)) {
    if (store === 'blk-ext4') out[store] = onExt4(marker);
    else {
      const file = VIS_FILES[store];
      if (file === undefined) continue;
      const r = inShare(file, marker);
      if (r instanceof Promise) waits.push(r.then((v) => void (out[store] = v)));
      else out[store] = r;
    }
  }
  return waits.length > 0 ? Promise.all(waits).then(() => out) : out;
}

export interface LabHooks {
  /** A step starts (`@@lab begin VARIANT WORKLOAD`). */
  begin?(step: string): void;
  /** The guest finished every step (`@@lab done`). */
  done?(): void;
  /** The guest asks for a probe: sample the stores now, then answer it (one line on the console). */
  probe(name: string): void;
}

/** Reads the guest's console and builds the report from its `@@lab` lines. */
export class LabCollector {
  readonly report: BenchReport;
  readonly cells = new Map<string, Cell>();
  readonly samples = new Map<string, StoreSample>();
  /** The last console lines that were not `@@lab` lines, for error messages. */
  readonly tail: string[] = [];
  private pending = '';
  private readonly decoder = new TextDecoder();

  private readonly visStores: readonly string[];

  constructor(setup: LabSetup, private readonly hooks: LabHooks) {
    this.visStores = [...VIS_STORES, ...(setup.noVirtiofs === undefined ? VIS_VIRTIOFS_STORES : [])];
    this.report = {
      date: new Date().toISOString(),
      storvm: setup.version,
      options: { sizeMiB: setup.sizeMiB, files: setup.files, ops: setup.ops, tarEntries: setup.tarEntries, tarBytes: setup.tarBytes, memoryMiB: setup.memoryMiB },
      clock: { source: 'unknown', hz: 0, resolutionNs: 0, timingOverheadNs: 0 },
      variants: [...setup.variants],
      workloads: [...WORKLOADS],
      results: [],
      elasticity: {},
      visibility: [],
      errors: [],
      hostSeconds: 0,
    };
    for (const w of WORKLOADS) for (const v of setup.variants) this.cells.set(`${v.id} ${w.id}`, { variant: v.id, workload: w.id, status: 'missing', unit: w.unit });
  }

  /** Console bytes from the guest. */
  feed(bytes: Uint8Array): void {
    this.pending += this.decoder.decode(bytes, { stream: true });
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, nl).replace(/\r$/, '');
      this.pending = this.pending.slice(nl + 1);
      this.line(line);
    }
  }

  /** Records what the host measured at probe `name`. */
  sample(name: string, s: StoreSample): void {
    this.samples.set(name, s);
  }

  line(line: string): void {
    const report = this.report;
    if (!line.startsWith('@@lab ')) {
      this.tail.push(line);
      if (this.tail.length > 20) this.tail.shift();
      return;
    }
    const [, kind, a = '', b = '', ...rest] = line.split(' ');
    switch (kind) {
      case 'clock': {
        const over = rest.slice(1).map(Number).filter((n) => Number.isFinite(n)).sort((x, y) => x - y);
        const hz = Number(b);
        report.clock = { source: a, hz, resolutionNs: hz > 0 ? 1e9 / hz : 0, timingOverheadNs: over[Math.floor(over.length / 2)] ?? 0 };
        break;
      }
      case 'begin':
        this.hooks.begin?.(`${a} ${b}`);
        break;
      case 'result':
      case 'fail':
      case 'na': {
        const c = this.cells.get(`${a} ${b}`);
        if (c === undefined) {
          report.errors.push(`the guest reported an unknown step: ${line}`);
          break;
        }
        if (kind === 'result') {
          const ns = Number(rest[0]);
          const amount = Number(rest[1]);
          if (!Number.isFinite(ns) || ns <= 0 || !Number.isFinite(amount)) {
            c.status = 'failed';
            c.message = `unreadable result: ${rest.join(' ')}`;
          } else {
            c.status = 'ok';
            c.seconds = ns / 1e9;
            c.amount = amount;
            c.rate = rateOf(c.unit, amount, c.seconds);
          }
        } else {
          c.status = kind === 'fail' ? 'failed' : 'n/a';
          c.message = rest.join(' ').replace(/errno (\d+)/g, (m, n: string) => `${m} (${ERRNO[Number(n)] ?? '?'})`);
          const v = VARIANTS.find((x) => x.id === a);
          if (b === 'mmap-write' && v?.kind === '9p' && v.cache === 'none' && /mmap: errno 22/.test(c.message)) {
            c.message += ' (Linux 9p without a writeback cache allows only read-only shared mappings)';
          }
          if (b === 'mmap-write' && v?.kind === 'virtiofs' && v.fuseCache === 'none' && /mmap: errno 19/.test(c.message)) {
            c.message += ' (cache=none opens files DIRECT_IO, which Linux FUSE does not map shared)';
          }
        }
        break;
      }
      case 'probe':
        this.hooks.probe(a);
        break;
      case 'error':
        report.errors.push([a, b, ...rest].join(' ').trim());
        break;
      case 'done':
        this.hooks.done?.();
        break;
      default:
        report.errors.push(`the guest said: ${line}`);
    }
  }

  /**
   * Completes the report once the guest is gone: `guestError` says how it ended when that was
   * not a clean poweroff with status 0 (its last console lines are added).
   */
  finish(guestError: string | undefined, hostSeconds: number): BenchReport {
    const report = this.report;
    if (guestError !== undefined) report.errors.push(`${guestError}; its last lines: ${this.tail.slice(-5).join(' | ')}`);
    for (const c of this.cells.values()) {
      if (c.status === 'missing') c.message = 'the guest never reported this step';
      report.results.push(c);
    }
    const s = (name: string) => this.samples.get(name);
    if (PROBES.slice(0, 4).every((p) => s(p) !== undefined)) {
      for (const [store, key] of [['blk-raw', 'raw'], ['blk-ext4', 'ext4'], ['9p', 'share']] as const) {
        const b: StoreBytes = { base: s('base')![key], written: s('written')![key], deleted: s('deleted')![key], trimmed: s('trimmed')![key] };
        report.elasticity[store] = b;
      }
    } else report.errors.push('the elasticity probes did not all arrive');
    for (const store of this.visStores) {
      const w = s(`vis-${store}-written`);
      const u = s(`vis-${store}-unmounted`);
      if (w === undefined || u === undefined) report.errors.push(`the visibility probes for ${store} did not arrive`);
      else report.visibility.push({ store, afterWrite: w.vis[store]!, afterUnmount: u.vis[store]! });
    }
    report.hostSeconds = hostSeconds;
    return report;
  }
}
