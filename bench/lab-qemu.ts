/**
 * bench/lab-qemu.ts — the storage lab (`storvm bench`) beside the same workloads under QEMU.
 *
 * In one run:
 *   1. `storvm bench` in-process (runBench), default sizes unless given;
 *   2. the same guest script, workloads and variants under `qemu-system-riscv64 -M virt` (OpenSBI
 *      firmware), same kernel, initramfs, kernel command line and guest RAM, with the same device
 *      layout: /dev/vda a raw disk (a sparse host file of the same size), /dev/vdb the same blank
 *      ext4 image (unpacked into a sparse host file), the 9p share "bench" (a host directory) and
 *      the read-only control share "lab" prepared exactly as storvm bench prepares it. The
 *      guest's probes (elasticity, visibility) are answered over QEMU's stdio serial;
 *   3. a ratio table: storvm rate / QEMU rate for every cell.
 *
 *   npx tsx bench/lab-qemu.ts [--size MiB] [--files N] [--runs N] [--json FILE] [--md FILE] [--variants A,B]
 *
 * --runs N (default 3) rounds, each storvm then QEMU, so both see the same machine load; every
 * cell is the median of its N rates (a cell that failed in any round is reported failed), the
 * ratios are median / median. Elasticity and visibility come from the first round.
 *
 * How the host bytes are counted under QEMU: the disks are sparse files with discard=unmap (a
 * guest DISCARD punches a hole, as storvm's sparse in-memory disks free their chunks); their
 * allocated bytes are `stat` blocks × 512, in the file system's 4 KiB blocks, where storvm counts
 * 64 KiB chunks. The disk files live in /dev/shm when it is there (memory, like storvm's in-memory
 * disks, so a guest flush costs no host disk write); the 9p share is a temporary directory, as in
 * storvm bench. Without qemu-system-riscv64 only the storvm table is printed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { runBench } from '../src/node/lab/bench.js';
import { VARIANTS } from '../src/lab/plan.js';
import { type BenchReport, type Cell, formatTable } from '../src/lab/report.js';
import { duBytes, fileContains, LAB_IMAGES, LabCollector, prepareLab, visibleMarkers } from '../src/node/lab/session.js';
import { unpackSparseToFile } from '../src/node/lab/sparse-image.js';

const QEMU = 'qemu-system-riscv64';
const QEMU_TIMEOUT_MS = 60 * 60 * 1000;

interface Args {
  sizeMiB: number;
  files: number;
  /** Rounds; each runs storvm, then QEMU. Every cell is the median of its rounds. */
  runs: number;
  json?: string;
  md?: string;
  variants?: string[];
}

function usage(msg: string): never {
  process.stderr.write(`lab-qemu: ${msg}\nusage: npx tsx bench/lab-qemu.ts [--size MiB] [--files N] [--runs N] [--json FILE] [--md FILE] [--variants A,B]\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Args {
  const a: Args = { sizeMiB: 16, files: 200, runs: 3 };
  const value = (i: number, name: string): string => argv[i + 1] ?? usage(`${name} needs a value`);
  const int = (s: string, name: string, lo: number, hi: number): number => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < lo || n > hi) usage(`${name} ${s}: give a whole number from ${lo} to ${hi}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const o = argv[i]!;
    if (o === '--size') a.sizeMiB = int(value(i++, o), o, 1, 256);
    else if (o === '--files') a.files = int(value(i++, o), o, 1, 100000);
    else if (o === '--runs') {
      a.runs = int(value(i++, o), o, 1, 25);
      if (a.runs % 2 === 0) usage(`--runs ${a.runs}: give an odd number, so that a median is one round's figure`);
    }
    else if (o === '--json') a.json = value(i++, o);
    else if (o === '--md') a.md = value(i++, o);
    else if (o === '--variants') {
      const vs = value(i++, o).split(',');
      for (const v of vs) if (!VARIANTS.some((x) => x.id === v)) usage(`--variants: unknown variant '${v}'`);
      a.variants = vs;
    } else usage(`unknown option '${o}'`);
  }
  return a;
}

/** Whether `needle` occurs anywhere in the file (read in 1 MiB pieces; holes read as zeros). */
function fileHas(path: string, needle: Buffer): boolean {
  const piece = 1 << 20;
  const buf = Buffer.alloc(piece + needle.length);
  const fd = openSync(path, 'r');
  try {
    for (let at = 0; ; at += piece) {
      const n = readSync(fd, buf, 0, buf.length, at);
      if (n <= 0) return false;
      if (buf.subarray(0, n).indexOf(needle) >= 0) return true;
      if (n < buf.length) return false;
    }
  } finally {
    closeSync(fd);
  }
}

const allocated = (path: string) => statSync(path).blocks * 512;

function writableDir(d: string): boolean {
  try {
    accessSync(d, constants.W_OK);
    return statSync(d).isDirectory();
  } catch {
    return false;
  }
}

/** Runs the lab's guest under QEMU; returns its report and the command line used. */
async function runQemu(a: Args): Promise<{ report: BenchReport; command: string[]; diskDir: string }> {
  const t0 = performance.now();
  const work = mkdtempSync(join(tmpdir(), 'storvm-lab-qemu-'));
  const diskDir = writableDir('/dev/shm') ? mkdtempSync('/dev/shm/storvm-lab-qemu-') : work;
  const labDir = join(work, 'lab');
  const shareDir = join(work, 'share');
  mkdirSync(labDir);
  mkdirSync(shareDir);
  try {
    // QEMU serves virtio-fs only through a separate virtiofsd daemon over vhost-user, which is not
    // part of qemu-system-misc: the virtio-fs columns say so instead of showing a figure.
    const noVirtiofs = 'QEMU has no in-process virtio-fs: it needs the separate virtiofsd daemon (vhost-user), not used here';
    const setup = prepareLab({ sizeMiB: a.sizeMiB, files: a.files, noVirtiofs, ...(a.variants !== undefined ? { variants: a.variants } : {}) }, labDir);
    const { markers } = setup;
    const rawPath = join(diskDir, 'raw.img');
    const ext4Path = join(diskDir, 'ext4.img');
    const fd = openSync(rawPath, 'w'); // a sparse file of the raw disk's size
    ftruncateSync(fd, setup.rawBytes);
    closeSync(fd);
    unpackSparseToFile(readFileSync(LAB_IMAGES.ext4Sparse), ext4Path);
    const image = join(work, 'Image'); // QEMU takes an uncompressed Image
    writeFileSync(image, gunzipSync(readFileSync(LAB_IMAGES.kernelGz)));

    const command = [
      '-M', 'virt', '-m', String(setup.memoryMiB), '-smp', '1', '-nographic', '-bios', 'default',
      '-kernel', image, '-initrd', LAB_IMAGES.initrd, '-append', setup.bootargs,
      '-global', 'virtio-mmio.force-legacy=false',
      // The order of the -device options gives vda, vdb (checked in the guest by their serials).
      '-drive', `file=${rawPath},format=raw,if=none,id=d0,discard=unmap`, '-device', 'virtio-blk-device,drive=d0,serial=storvm-lab-raw',
      '-drive', `file=${ext4Path},format=raw,if=none,id=d1,discard=unmap`, '-device', 'virtio-blk-device,drive=d1,serial=storvm-lab-ext4',
      '-fsdev', `local,id=f1,path=${shareDir},security_model=none`, '-device', 'virtio-9p-device,fsdev=f1,mount_tag=bench',
      '-fsdev', `local,id=f2,path=${labDir},security_model=none,readonly=on`, '-device', 'virtio-9p-device,fsdev=f2,mount_tag=lab',
    ];

    let step = 0;
    let totalSteps = 0;
    const progress = (what: string) => {
      step++;
      process.stderr.write(`qemu bench [${step}/${totalSteps}] ${((performance.now() - t0) / 1000).toFixed(0)}s ${what}\n`);
    };
    const child = spawn(QEMU, command, { stdio: ['pipe', 'pipe', 'pipe'] });
    const lab: LabCollector = new LabCollector(setup, {
      begin: (what) => progress(what),
      probe: (name) => {
        const vis: Record<string, boolean> = name.startsWith('vis-')
          ? (visibleMarkers(markers, (file, marker) => fileContains(join(shareDir, file), marker), (marker) => fileHas(ext4Path, Buffer.from(marker))) as Record<string, boolean>)
          : {};
        lab.sample(name, { raw: allocated(rawPath), ext4: allocated(ext4Path), share: duBytes(shareDir), vis });
        child.stdin.write('\n');
      },
    });
    totalSteps = lab.cells.size + 2;
    progress('booting');
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => lab.feed(b));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), QEMU_TIMEOUT_MS);
    const onSigint = () => child.kill('SIGTERM');
    process.once('SIGINT', onSigint);
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
      child.on('error', (error) => resolve({ code: null, signal: null, error }));
      child.on('close', (code, signal) => resolve({ code, signal }));
    });
    clearTimeout(timer);
    process.off('SIGINT', onSigint);
    const guestError = exit.error !== undefined ? `QEMU did not start: ${exit.error.message}`
      : exit.code !== 0 ? `QEMU ${exit.signal !== null ? `was killed by ${exit.signal}` : `exited with status ${exit.code}`}${stderr.trim() !== '' ? ` (stderr: ${stderr.trim().slice(-300)})` : ''}`
      : undefined;
    return { report: lab.finish(guestError, (performance.now() - t0) / 1000), command: [QEMU, ...command], diskDir };
  } finally {
    rmSync(work, { recursive: true, force: true });
    if (diskDir !== work) rmSync(diskDir, { recursive: true, force: true });
  }
}

interface Ratio {
  workload: string;
  variant: string;
  storvm?: number;
  qemu?: number;
  /** storvm rate / QEMU rate. */
  ratio?: number;
  note?: string;
}

function ratios(s: BenchReport, q: BenchReport): Ratio[] {
  const out: Ratio[] = [];
  const find = (r: BenchReport, w: string, v: string) => r.results.find((c) => c.workload === w && c.variant === v);
  for (const w of s.workloads) {
    for (const v of s.variants) {
      const a = find(s, w.id, v.id);
      const b = find(q, w.id, v.id);
      const r: Ratio = { workload: w.id, variant: v.id };
      if (a?.status === 'ok') r.storvm = a.rate!;
      if (b?.status === 'ok') r.qemu = b.rate!;
      if (r.storvm !== undefined && r.qemu !== undefined) r.ratio = r.storvm / r.qemu;
      else if (a?.status === 'n/a' || b?.status === 'n/a') r.note = 'n/a';
      else if (a?.status !== 'ok' && b?.status !== 'ok') r.note = 'both failed';
      else r.note = a?.status !== 'ok' ? 'storvm failed' : 'QEMU failed';
      out.push(r);
    }
  }
  return out;
}

const fmtRatio = (x: number) => `${x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toPrecision(2)}×`;

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

function ratioRows(s: BenchReport, rs: Ratio[]): string[][] {
  const rows: string[][] = [['', ...s.variants.map((v) => v.id)]];
  for (const w of s.workloads) rows.push([w.id, ...s.variants.map((v) => {
    const r = rs.find((x) => x.workload === w.id && x.variant === v.id)!;
    return r.ratio !== undefined ? fmtRatio(r.ratio) : r.note!;
  })]);
  return rows;
}

function rateText(c: Cell | undefined): string {
  if (c === undefined) return '—';
  if (c.status !== 'ok') return c.status === 'failed' ? 'FAILED' : c.status;
  const r = c.rate!;
  const n = r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
  return c.unit === 'bytes' ? `${n} MB/s` : `${n}/s`;
}

function markdown(rows: string[][]): string {
  return [`| ${rows[0]!.join(' | ')} |`, `|${rows[0]!.map(() => '---').join('|')}|`, ...rows.slice(1).map((r) => `| ${r.join(' | ')} |`)].join('\n') + '\n';
}

function rateRows(r: BenchReport): string[][] {
  const rows: string[][] = [['', ...r.variants.map((v) => v.id)]];
  for (const w of r.workloads) rows.push([w.id, ...r.variants.map((v) => rateText(r.results.find((c) => c.workload === w.id && c.variant === v.id)))]);
  return rows;
}

const args = parseArgs(process.argv.slice(2));
const date = new Date().toISOString();
const qemuVersion = (() => {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0]!.trim() : undefined;
})();

/** Per-cell medians of an odd number of runs of the same lab: the middle run's cell itself. */
function medianReport(runs: BenchReport[]): BenchReport {
  const first = runs[0]!;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const results = first.results.map((c0) => {
    const all = runs.map((r) => r.results.find((c) => c.workload === c0.workload && c.variant === c0.variant));
    const bad = all.find((c) => c?.status !== 'ok');
    if (bad !== undefined) return bad ?? { ...c0, status: 'missing' as const, message: 'missing in a round' };
    return [...(all as Cell[])].sort((a, b) => a.rate! - b.rate!)[Math.floor(all.length / 2)]!;
  });
  return {
    ...first,
    clock: { ...first.clock, timingOverheadNs: median(runs.map((r) => r.clock.timingOverheadNs)) },
    results,
    errors: runs.flatMap((r, i) => r.errors.map((e) => (runs.length > 1 ? `round ${i + 1}: ${e}` : e))),
    hostSeconds: median(runs.map((r) => r.hostSeconds)),
  };
}

process.stderr.write(`lab-qemu: ${args.sizeMiB} MiB, ${args.files} files, ${args.runs} round(s) of storvm then ${qemuVersion ?? 'no QEMU (not installed)'}\n`);
const storvmRuns: BenchReport[] = [];
const qemuRuns: Array<{ report: BenchReport; command: string[]; diskDir: string }> = [];
for (let round = 1; round <= args.runs; round++) {
  process.stderr.write(`lab-qemu: round ${round}/${args.runs}: storvm\n`);
  storvmRuns.push(await runBench(
    { sizeMiB: args.sizeMiB, files: args.files, ...(args.variants !== undefined ? { variants: args.variants } : {}) },
    { write: () => undefined }, // the table of the medians is printed at the end
    process.stderr,
  ));
  if (qemuVersion !== undefined) {
    process.stderr.write(`lab-qemu: round ${round}/${args.runs}: QEMU\n`);
    qemuRuns.push(await runQemu(args));
  }
}
const storvm = medianReport(storvmRuns);
const med = args.runs > 1 ? `median of ${args.runs} rounds` : 'one round';
const out: string[] = [];
out.push(`storvm storage lab beside QEMU — ${date.slice(0, 10)}, Node ${process.version}, ${qemuVersion ?? 'QEMU not installed'}; every rate the ${med}`);
out.push('');
out.push(`== storvm (${storvm.hostSeconds.toFixed(0)} s a round) ==`);
out.push(formatTable(storvm));

let qemu: { report: BenchReport; command: string[]; diskDir: string } | undefined;
let rs: Ratio[] | undefined;
if (qemuVersion !== undefined) {
  qemu = { ...qemuRuns[0]!, report: medianReport(qemuRuns.map((q) => q.report)) };
  out.push(`== QEMU: ${qemuVersion}, -M virt -smp 1 -m ${qemu.report.options.memoryMiB}, disks sparse files in ${qemu.diskDir.startsWith('/dev/shm') ? '/dev/shm' : 'a temporary directory'} (discard=unmap), host bytes in 4 KiB blocks (${qemu.report.hostSeconds.toFixed(0)} s a round) ==`);
  out.push(formatTable(qemu.report));
  rs = ratios(storvm, qemu.report);
  out.push(`== storvm rate / QEMU rate (1× = as fast as QEMU, 0.10× = a tenth of its speed; ${med}) ==`);
  out.push('');
  out.push(table(ratioRows(storvm, rs)));
} else {
  out.push(`${QEMU} is not installed (Debian: qemu-system-misc): no QEMU table, no ratios.`);
}
process.stdout.write(out.join('\n') + '\n');

if (args.json !== undefined) {
  writeFileSync(args.json, JSON.stringify({
    date, node: process.version, qemuVersion: qemuVersion ?? null, runs: args.runs,
    storvm, qemu: qemu?.report ?? null, qemuCommand: qemu?.command ?? null, ratios: rs ?? null,
    rounds: { storvm: storvmRuns, qemu: qemuRuns.map((q) => q.report) },
  }, null, 2) + '\n');
}
if (args.md !== undefined) {
  const md: string[] = [`Measured ${date.slice(0, 10)}, Node ${process.version}, ${qemuVersion ?? 'no QEMU'}; ${args.sizeMiB} MiB, ${storvm.options.ops} random ops, ${args.files} files, ${storvm.options.tarEntries} tar entries; ${med}.`, ''];
  md.push('storvm:', '', markdown(rateRows(storvm)));
  if (qemu !== undefined && rs !== undefined) {
    md.push('QEMU:', '', markdown(rateRows(qemu.report)));
    md.push('storvm / QEMU:', '', markdown(ratioRows(storvm, rs)));
  }
  writeFileSync(args.md, md.join('\n'));
}
const failed = [...storvm.errors, ...(qemu?.report.errors ?? [])];
process.exit(failed.length > 0 ? 1 : 0);
