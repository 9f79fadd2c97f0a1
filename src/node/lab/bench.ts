/**
 * `storvm bench`: boots one guest with a raw disk (/dev/vda), an ext4 disk (/dev/vdb), the bench
 * 9p share (tag "bench"), three virtio-fs devices over the same host folder (tags vfs-none,
 * vfs-auto, vfs-always: one per FUSE cache mode) and a read-only control share (tag "lab": the
 * script, labio, the tarball), runs every workload of plan.ts on every variant, samples the stores when the guest
 * asks (elasticity, visibility), and reports.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { MemoryDisk } from '../../backends/block/memory-disk.js';
import { VirtioBlk } from '../../devices/blk/device.js';
import { VirtioFs } from '../../devices/fs/device.js';
import { Virtio9p } from '../../devices/p9/device.js';
import { DEFAULT_CPU, Machine } from '../../machine/machine.js';
import { HostFs } from '../host-fs.js';
import { nodeHost } from '../host.js';
import { UsageError } from '../options.js';
import { tuneV8ForTranslator } from '../v8-tuning.js';
import { VARIANTS, VIRTIOFS_VARIANTS } from '../../lab/plan.js';
import { type BenchReport, formatTable, toCsv, toJson } from '../../lab/report.js';
import { duBytes, fileContains, LAB_IMAGES, LabCollector, prepareLab, visibleMarkers } from './session.js';
import { unpackSparse } from './sparse-image.js';
import { blkTracer, fuseTracer, p9Tracer, TraceTally } from './trace.js';

type Stream = { write(chunk: string | Uint8Array): unknown };

export interface BenchArgs {
  sizeMiB: number;
  files: number;
  json?: string;
  csv?: string;
  trace?: '9p' | 'fuse' | 'blk';
  /** Only these variants (for tests; --variants a,b). */
  variants?: string[];
  /** How guest code runs (--cpu); the machine's default when absent. */
  cpu?: 'interp' | 'wasm';
}

export const BENCH_USAGE = `  bench [options]             measure 9p, virtio-fs and virtio-blk inside one guest (see docs/lab.md)
    --size MiB                  sequential data per run (default 16, at most 256)
    --files N                   small files to create, stat and unlink (default 200)
    --json FILE, --csv FILE     also write the results there
    --cpu interp|wasm           how guest code runs (default ${DEFAULT_CPU})
    --trace 9p|fuse|blk         print every 9P message, FUSE request or block request with its device time
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
        if (t !== '9p' && t !== 'fuse' && t !== 'blk') throw new UsageError(`--trace ${t}: give 9p, fuse or blk`);
        a.trace = t;
        break;
      }
      case '--cpu': {
        const c = value(i++, o);
        if (c !== 'interp' && c !== 'wasm') throw new UsageError(`--cpu ${c}: give interp or wasm`);
        a.cpu = c;
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

/** Runs the bench; writes progress to `err` (a rewritten line on a TTY), trace lines and the table to `out`. */
export async function runBench(args: BenchArgs, out: Stream, err: Stream, errIsTTY = false): Promise<BenchReport> {
  const t0 = performance.now();
  const work = mkdtempSync(join(tmpdir(), 'storvm-bench-'));
  const labDir = join(work, 'lab');
  const shareDir = join(work, 'share');
  mkdirSync(labDir);
  mkdirSync(shareDir);
  try {
    // The control share: the script, labio and the source tarball (storvm's own sources).
    const setup = prepareLab({ sizeMiB: args.sizeMiB, files: args.files, ...(args.variants !== undefined ? { variants: args.variants } : {}) }, labDir);
    const { markers } = setup;

    // The disks: sparse in memory, so host bytes used are exact and discard gives them back.
    const raw = new MemoryDisk(setup.rawBytes);
    const ext4 = unpackSparse(readFileSync(LAB_IMAGES.ext4Sparse));
    const now = () => performance.now();
    const tally = new TraceTally();
    const writeOut = (s: string) => out.write(s);
    const blkTrace = args.trace === 'blk';
    const p9Trace = args.trace === '9p';
    const fuseTrace = args.trace === 'fuse';
    const devices = [
      new VirtioBlk(raw, { serial: 'storvm-lab-raw', ...(blkTrace ? { trace: blkTracer('vda', now, writeOut, tally) } : {}) }),
      new VirtioBlk(ext4, { serial: 'storvm-lab-ext4', ...(blkTrace ? { trace: blkTracer('vdb', now, writeOut, tally) } : {}) }),
      new Virtio9p(new HostFs(shareDir), { tag: 'bench', ...(p9Trace ? { trace: p9Tracer(now, writeOut, tally) } : {}) }),
      ...VIRTIOFS_VARIANTS.map(
        (v) => new VirtioFs(new HostFs(shareDir), { tag: v.id, cache: v.fuseCache!, ...(fuseTrace ? { trace: fuseTracer(v.id, now, writeOut, tally) } : {}) }),
      ),
      new Virtio9p(new HostFs(labDir, { readOnly: true }), { tag: 'lab' }),
    ];
    const kernel = gunzipSync(readFileSync(LAB_IMAGES.kernelGz));
    const initrd = readFileSync(LAB_IMAGES.initrd);

    let step = 0;
    let current = '';
    let totalSteps = 0;
    const progress = (what: string) => {
      step++;
      const secs = ((performance.now() - t0) / 1000).toFixed(0);
      const line = `storvm bench [${String(step).padStart(String(totalSteps).length)}/${totalSteps}] ${secs}s ${what}`;
      err.write(errIsTTY ? `\r\x1b[K${line}` : `${line}\n`);
    };
    const endTrace = () => {
      if (args.trace !== undefined && current !== '') writeOut(tally.line(current, args.trace === 'blk' ? 'requests' : 'messages'));
      tally.reset();
    };
    let machine: Machine | undefined = undefined;
    const lab: LabCollector = new LabCollector(setup, {
      begin: (what) => {
        endTrace();
        current = what;
        if (args.trace !== undefined) writeOut(`# ---- ${current}\n`);
        progress(what);
      },
      done: () => {
        endTrace();
        current = '';
      },
      probe: (name) => {
        lab.sample(name, {
          raw: raw.allocatedBytes,
          ext4: ext4.allocatedBytes,
          share: duBytes(shareDir),
          vis: visibleMarkers(markers, (file, marker) => fileContains(join(shareDir, file), marker), (marker) => diskContains(ext4, Buffer.from(marker))) as Record<string, boolean>,
        });
        machine?.input(new TextEncoder().encode('\n'));
      },
    });
    totalSteps = lab.cells.size + 2;
    const cpu = args.cpu ?? DEFAULT_CPU;
    if (cpu === 'wasm') tuneV8ForTranslator();
    machine = new Machine({ memoryMiB: setup.memoryMiB, kernel, initrd, bootargs: setup.bootargs, devices, onConsole: (bytes) => lab.feed(bytes), host: nodeHost, cpu });
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
    const guestError = result.reason !== 'poweroff' || result.exitCode !== 0
      ? `the guest ${result.reason === 'stopped' ? 'was stopped' : result.reason === 'reset' ? 'rebooted' : `exited with status ${result.exitCode}`}`
      : undefined;
    const report = lab.finish(guestError, (performance.now() - t0) / 1000);
    if (args.json !== undefined) writeFileSync(args.json, toJson(report));
    if (args.csv !== undefined) writeFileSync(args.csv, toCsv(report));
    out.write(formatTable(report));
    return report;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
