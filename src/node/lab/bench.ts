/**
 * `storvm bench`: boots one guest with a raw disk (/dev/vda), an ext4 disk (/dev/vdb), the bench
 * 9p share (tag "bench") and a read-only control share (tag "lab": the script, labio, the
 * tarball), runs every workload of plan.ts on every variant, samples the stores when the guest
 * asks (elasticity, visibility), and reports.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { MemoryDisk } from '../../backends/block/memory-disk.js';
import { VirtioBlk } from '../../devices/blk/device.js';
import { Virtio9p } from '../../devices/p9/device.js';
import { Machine } from '../../machine/machine.js';
import { HostFs } from '../host-fs.js';
import { nodeHost } from '../host.js';
import { UsageError } from '../options.js';
import { PROBES, VARIANTS, WORKLOADS, guestScript } from './plan.js';
import { type BenchReport, type Cell, formatTable, rateOf, type StoreBytes, toCsv, toJson } from './report.js';
import { unpackSparse } from './sparse-image.js';
import { tarDirectory } from './tar.js';
import { blkTracer, ERRNO, p9Tracer, TraceTally } from './trace.js';

type Stream = { write(chunk: string | Uint8Array): unknown };

export interface BenchArgs {
  sizeMiB: number;
  files: number;
  json?: string;
  csv?: string;
  trace?: '9p' | 'blk';
  /** Only these variants (for tests; --variants a,b). */
  variants?: string[];
}

export const BENCH_USAGE = `  bench [options]             measure 9p against virtio-blk inside one guest (see docs/lab.md)
    --size MiB                  sequential data per run (default 16, at most 256)
    --files N                   small files to create, stat and unlink (default 200)
    --json FILE, --csv FILE     also write the results there
    --trace 9p|blk              print every 9P message or block request with its device time
    --variants A,B…             run only these columns (${VARIANTS.map((v) => v.id).join(', ')})`;

export function parseBenchArgs(argv: string[]): BenchArgs {
  const a: BenchArgs = { sizeMiB: 16, files: 200 };
  const value = (i: number, name: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new UsageError(`${name} needs a value`);
    return v;
  };
  const int = (s: string, name: string, lo: number, hi: number): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new UsageError(`${name} ${s}: give a whole number from ${lo} to ${hi}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const o = argv[i]!;
    switch (o) {
      case '--size':
        a.sizeMiB = int(value(i++, o), o, 1, 256);
        break;
      case '--files':
        a.files = int(value(i++, o), o, 1, 100000);
        break;
      case '--json':
        a.json = value(i++, o);
        break;
      case '--csv':
        a.csv = value(i++, o);
        break;
      case '--trace': {
        const t = value(i++, o);
        if (t !== '9p' && t !== 'blk') throw new UsageError(`--trace ${t}: give 9p or blk`);
        a.trace = t;
        break;
      }
      case '--variants': {
        const vs = value(i++, o).split(',');
        for (const v of vs) if (!VARIANTS.some((x) => x.id === v)) throw new UsageError(`--variants: unknown variant '${v}' (${VARIANTS.map((x) => x.id).join(', ')})`);
        a.variants = vs;
        break;
      }
      default:
        throw new UsageError(o.startsWith('-') ? `unknown option '${o}'` : `unexpected argument '${o}'`);
    }
  }
  return a;
}

/** Host bytes a directory tree takes (allocated blocks, as du counts them). */
function duBytes(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    n += st.blocks * 512;
    if (st.isDirectory()) n += duBytes(p);
  }
  return n;
}

/** Whether `needle` occurs anywhere on the disk. */
function diskContains(disk: MemoryDisk, needle: Uint8Array): boolean {
  const piece = 1 << 20;
  const buf = Buffer.alloc(piece + needle.length);
  for (let at = 0; at < disk.size; at += piece) {
    const n = Math.min(buf.length, disk.size - at);
    disk.read(at, buf.subarray(0, n));
    if (buf.subarray(0, n).indexOf(needle) >= 0) return true;
  }
  return false;
}

function fileContains(path: string, needle: string): boolean {
  try {
    return readFileSync(path, 'utf8').includes(needle);
  } catch {
    return false;
  }
}

const root = new URL('../../../', import.meta.url);

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Runs the bench; writes progress to `err` (a rewritten line on a TTY), trace lines and the table to `out`. */
export async function runBench(args: BenchArgs, out: Stream, err: Stream, errIsTTY = false): Promise<BenchReport> {
  const t0 = performance.now();
  const S = args.sizeMiB;
  const ops = Math.max(64, Math.min(4096, S * 64));
  const work = mkdtempSync(join(tmpdir(), 'storvm-bench-'));
  const labDir = join(work, 'lab');
  const shareDir = join(work, 'share');
  mkdirSync(labDir);
  mkdirSync(shareDir);
  try {
    // The control share: the script, labio and the source tarball (storvm's own sources).
    const srcDir = new URL('../../', import.meta.url).pathname; // src/ (or dist/ when built)
    const tar = tarDirectory(srcDir, 'src');
    writeFileSync(join(labDir, 'src.tar'), tar.bytes);
    const labio = new URL('guest/labio', import.meta.url).pathname;
    const labioSrc = existsSync(labio) ? labio : new URL('../../../src/node/lab/guest/labio', import.meta.url).pathname;
    copyFileSync(labioSrc, join(labDir, 'labio'));
    const tag = randomBytes(6).toString('hex');
    const markers = { '9p-none': `storvm-vis-9p-none-${tag}`, '9p-loose': `storvm-vis-9p-loose-${tag}`, 'blk-ext4': `storvm-vis-blk-ext4-${tag}` };
    const variants = VARIANTS.filter((v) => args.variants === undefined || args.variants.includes(v.id));
    const script = guestScript({ sizeMiB: S, files: args.files, ops, tarEntries: tar.entries, markers, variants: args.variants });
    writeFileSync(join(labDir, 'run.sh'), script);

    // The disks: sparse in memory, so host bytes used are exact and discard gives them back.
    const raw = new MemoryDisk((S + 1) * 1048576);
    const ext4 = unpackSparse(readFileSync(new URL('guest-images/lab-ext4.sparse.gz', root)));
    const now = () => performance.now();
    const tally = new TraceTally();
    const writeOut = (s: string) => out.write(s);
    const blkTrace = args.trace === 'blk';
    const p9Trace = args.trace === '9p';
    const devices = [
      new VirtioBlk(raw, { serial: 'storvm-lab-raw', ...(blkTrace ? { trace: blkTracer('vda', now, writeOut, tally) } : {}) }),
      new VirtioBlk(ext4, { serial: 'storvm-lab-ext4', ...(blkTrace ? { trace: blkTracer('vdb', now, writeOut, tally) } : {}) }),
      new Virtio9p(new HostFs(shareDir), { tag: 'bench', ...(p9Trace ? { trace: p9Tracer(now, writeOut, tally) } : {}) }),
      new Virtio9p(new HostFs(labDir, { readOnly: true }), { tag: 'lab' }),
    ];
    const memoryMiB = Math.min(2048, 256 + 2 * S);
    const kernel = gunzipSync(readFileSync(new URL('guest-images/Image.gz', root)));
    const initrd = readFileSync(new URL('guest-images/initramfs.cpio.gz', root));
    const bootargs = ['console=ttyS0', 'quiet loglevel=1', 'storvm.share=lab:/mnt/lab:ro', `storvm.cmd=${Buffer.from('/bin/sh /mnt/lab/run.sh').toString('base64')}`].join(' ');

    const report: BenchReport = {
      date: new Date().toISOString(),
      storvm: version(),
      options: { sizeMiB: S, files: args.files, ops, tarEntries: tar.entries, tarBytes: tar.bytes.length, memoryMiB },
      clock: { source: 'unknown', hz: 0, resolutionNs: 0, timingOverheadNs: 0 },
      variants: [...variants],
      workloads: [...WORKLOADS],
      results: [],
      elasticity: {},
      visibility: [],
      errors: [],
      hostSeconds: 0,
    };
    const cells = new Map<string, Cell>();
    for (const w of WORKLOADS) for (const v of variants) cells.set(`${v.id} ${w.id}`, { variant: v.id, workload: w.id, status: 'missing', unit: w.unit });
    const samples = new Map<string, { raw: number; ext4: number; share: number; vis: Record<string, boolean> }>();
    const totalSteps = cells.size + 3; // booting, the two property steps, then every cell
    let step = 0;
    let current = '';
    const progress = (what: string) => {
      step++;
      const secs = ((performance.now() - t0) / 1000).toFixed(0);
      const line = `storvm bench [${String(step).padStart(String(totalSteps).length)}/${totalSteps}] ${secs}s ${what}`;
      err.write(errIsTTY ? `\r\x1b[K${line}` : `${line}\n`);
    };
    const endTrace = () => {
      if (args.trace !== undefined && current !== '') writeOut(tally.line(current, args.trace === '9p' ? 'messages' : 'requests'));
      tally.reset();
    };
    const tail: string[] = [];
    let pending = '';
    let machine: Machine | undefined = undefined;
    const onLine = (line: string) => {
      if (!line.startsWith('@@lab ')) {
        tail.push(line);
        if (tail.length > 20) tail.shift();
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
          endTrace();
          current = `${a} ${b}`;
          if (args.trace !== undefined) writeOut(`# ---- ${current}\n`);
          progress(`${a} ${b}`);
          break;
        case 'result':
        case 'fail':
        case 'na': {
          const c = cells.get(`${a} ${b}`);
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
            if (b === 'mmap-write' && v?.cache === 'none' && /mmap: errno 22/.test(c.message)) {
              c.message += ' (Linux 9p without a writeback cache allows only read-only shared mappings)';
            }
          }
          break;
        }
        case 'probe': {
          samples.set(a, {
            raw: raw.allocatedBytes,
            ext4: ext4.allocatedBytes,
            share: duBytes(shareDir),
            vis: {
              '9p-none': fileContains(join(shareDir, 'visible-none.txt'), markers['9p-none']),
              '9p-loose': fileContains(join(shareDir, 'visible-loose.txt'), markers['9p-loose']),
              'blk-ext4': diskContains(ext4, Buffer.from(markers['blk-ext4'])),
            },
          });
          machine?.input(new TextEncoder().encode('\n'));
          break;
        }
        case 'error':
          report.errors.push([a, b, ...rest].join(' ').trim());
          break;
        case 'done':
          endTrace();
          current = '';
          break;
        default:
          report.errors.push(`the guest said: ${line}`);
      }
    };
    const decoder = new TextDecoder();
    const onConsole = (bytes: Uint8Array) => {
      pending += decoder.decode(bytes, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl).replace(/\r$/, '');
        pending = pending.slice(nl + 1);
        onLine(line);
      }
    };
    machine = new Machine({ memoryMiB, kernel, initrd, bootargs, devices, onConsole, host: nodeHost });
    progress('booting');
    const onSigint = () => machine?.stop();
    process.once('SIGINT', onSigint);
    let result;
    try {
      result = await machine.run();
    } finally {
      process.off('SIGINT', onSigint);
    }
    if (errIsTTY) err.write('\r\x1b[K');
    if (result.reason !== 'poweroff' || result.exitCode !== 0) {
      report.errors.push(`the guest ${result.reason === 'stopped' ? 'was stopped' : result.reason === 'reset' ? 'rebooted' : `exited with status ${result.exitCode}`}; its last lines: ${tail.slice(-5).join(' | ')}`);
    }
    for (const c of cells.values()) {
      if (c.status === 'missing') c.message = 'the guest never reported this step';
      report.results.push(c);
    }
    const s = (name: string) => samples.get(name);
    if (PROBES.slice(0, 4).every((p) => s(p) !== undefined)) {
      for (const [store, key] of [['blk-raw', 'raw'], ['blk-ext4', 'ext4'], ['9p', 'share']] as const) {
        const b: StoreBytes = { base: s('base')![key], written: s('written')![key], deleted: s('deleted')![key], trimmed: s('trimmed')![key] };
        report.elasticity[store] = b;
      }
    } else report.errors.push('the elasticity probes did not all arrive');
    for (const store of ['9p-none', '9p-loose', 'blk-ext4'] as const) {
      const w = s(`vis-${store}-written`);
      const u = s(`vis-${store}-unmounted`);
      if (w === undefined || u === undefined) report.errors.push(`the visibility probes for ${store} did not arrive`);
      else report.visibility.push({ store, afterWrite: w.vis[store]!, afterUnmount: u.vis[store]! });
    }
    report.hostSeconds = (performance.now() - t0) / 1000;
    if (args.json !== undefined) writeFileSync(args.json, toJson(report));
    if (args.csv !== undefined) writeFileSync(args.csv, toCsv(report));
    out.write(formatTable(report));
    return report;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
