/**
 * The parts of a storage-lab run that do not depend on which machine runs the guest, shared by
 * `storvm bench` (bench.ts) and the QEMU comparison (bench/lab-qemu.ts):
 *
 * - prepareLab: the control share (run.sh, labio, the source tarball), the markers, the sizes,
 *   the guest memory and the kernel command line;
 * - LabCollector: reads the guest's console, turns its `@@lab` lines into a BenchReport, and
 *   calls back when the guest asks the host to sample the stores (a probe) and waits for an answer;
 * - host-side measuring helpers (du of a directory, a marker in a file).
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROBES, VARIANTS, type Variant, VIS_STORES, VIS_VIRTIOFS_STORES, WORKLOADS, guestScript } from './plan.js';
import { type BenchReport, type Cell, rateOf, type StoreBytes } from './report.js';
import { tarDirectory } from './tar.js';
import { ERRNO } from './trace.js';
import { storvmVersion } from '../version.js';

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
}

const root = new URL('../../../', import.meta.url);

/** The guest images the lab boots, and the blank ext4 disk (storvm's sparse format). */
export const LAB_IMAGES = {
  kernelGz: new URL('guest-images/Image.gz', root).pathname,
  initrd: new URL('guest-images/initramfs.cpio.gz', root).pathname,
  ext4Sparse: new URL('guest-images/lab-ext4.sparse.gz', root).pathname,
};

/**
 * Fills `labDir` (the read-only control share, tag "lab") with the guest script, labio and the
 * tarball of storvm's own sources, and returns what the run uses.
 */
export function prepareLab(o: { sizeMiB: number; files: number; variants?: string[]; noVirtiofs?: string }, labDir: string): LabSetup {
  const S = o.sizeMiB;
  const ops = Math.max(64, Math.min(4096, S * 64));
  const srcDir = new URL('../../', import.meta.url).pathname; // src/ (or dist/ when built)
  const tar = tarDirectory(srcDir, 'src');
  writeFileSync(join(labDir, 'src.tar'), tar.bytes);
  const labio = new URL('guest/labio', import.meta.url).pathname;
  const labioSrc = existsSync(labio) ? labio : new URL('../../../src/node/lab/guest/labio', import.meta.url).pathname;
  copyFileSync(labioSrc, join(labDir, 'labio'));
  const tag = randomBytes(6).toString('hex');
  const markers: Markers = {};
  for (const st of [...VIS_STORES, ...(o.noVirtiofs === undefined ? VIS_VIRTIOFS_STORES : [])]) markers[st] = `storvm-vis-${st}-${tag}`;
  const variants = VARIANTS.filter((v) => o.variants === undefined || o.variants.includes(v.id));
  const script = guestScript({
    sizeMiB: S,
    files: o.files,
    ops,
    tarEntries: tar.entries,
    markers,
    ...(o.variants !== undefined ? { variants: o.variants } : {}),
    ...(o.noVirtiofs !== undefined ? { noVirtiofs: o.noVirtiofs } : {}),
  });
  writeFileSync(join(labDir, 'run.sh'), script);
  const bootargs = ['console=ttyS0', 'quiet loglevel=1', 'storvm.share=lab:/mnt/lab:ro', `storvm.cmd=${Buffer.from('/bin/sh /mnt/lab/run.sh').toString('base64')}`].join(' ');
  return {
    sizeMiB: S,
    files: o.files,
    ops,
    tarEntries: tar.entries,
    tarBytes: tar.bytes.length,
    markers,
    variants: [...variants],
    memoryMiB: Math.min(2048, 256 + 2 * S),
    rawBytes: (S + 1) * 1048576,
    bootargs,
    ...(o.noVirtiofs !== undefined ? { noVirtiofs: o.noVirtiofs } : {}),
  };
}

/** Host bytes a directory tree takes (allocated blocks, as du counts them). */
export function duBytes(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    n += st.blocks * 512;
    if (st.isDirectory()) n += duBytes(p);
  }
  return n;
}

export function fileContains(path: string, needle: string): boolean {
  try {
    return readFileSync(path, 'utf8').includes(needle);
  } catch {
    return false;
  }
}

/** What the host measured at one probe: bytes used by each store, and which markers it sees. */
export interface StoreSample {
  raw: number;
  ext4: number;
  share: number;
  vis: Record<string, boolean>;
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
      storvm: storvmVersion(),
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
