/**
 * virtio-fs against 9p inside one guest, same host folder, same HostFs backend: runs the storage
 * lab (`storvm bench`) with the 9p msize-512000 columns and the three virtio-fs columns N times,
 * each run starting at the next column, and prints, per workload, the median rate of each column and the ratio of each virtio-fs column
 * to its 9p counterpart (cache=none to cache=none, auto and always to loose; and the defaults,
 * virtiofsd's auto to 9p's none), medians over medians.
 *
 *   npx tsx bench/virtiofs.ts [--size MiB] [--files N] [--runs N]
 */
import { runBench } from '../src/node/lab/bench.js';
import type { BenchReport } from '../src/lab/report.js';
import { WORKLOADS } from '../src/lab/plan.js';

const args = process.argv.slice(2);
const opt = (name: string, def: number): number => {
  const i = args.indexOf(name);
  if (i < 0) return def;
  const n = Number(args[i + 1]);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`virtiofs bench: ${name} needs a whole number\n`);
    process.exit(2);
  }
  return n;
};
const sizeMiB = opt('--size', 16);
const files = opt('--files', 200);
const runs = opt('--runs', 3);
const variants = ['9p-512k-none', '9p-512k-loose', 'vfs-none', 'vfs-auto', 'vfs-always'];
// Like for like (none to none, the caching modes to loose), then each protocol's default mount:
// Linux 9p defaults to cache=none, virtiofsd to cache=auto.
const pairs: Array<[string, string]> = [['vfs-none', '9p-512k-none'], ['vfs-auto', '9p-512k-loose'], ['vfs-always', '9p-512k-loose'], ['vfs-auto', '9p-512k-none']];

const reports: BenchReport[] = [];
const sink = { write: () => true };
for (let i = 0; i < runs; i++) {
  process.stderr.write(`virtiofs bench: run ${i + 1}/${runs}\n`);
  // Each run starts at another column, so no column always runs first (on a host whose load
  // changes during a run, the last ones would otherwise always see the most of it).
  const order = variants.map((_, k) => variants[(k + i) % variants.length]!);
  const r = await runBench({ sizeMiB, files, variants: order }, sink, sink);
  if (r.errors.length > 0) process.stderr.write(`run ${i + 1} errors: ${r.errors.join('; ')}\n`);
  reports.push(r);
}

const median = (xs: number[]): number | undefined => {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1]! + s[m]!) / 2;
};
const rate = (v: string, w: string): number | undefined =>
  median(reports.map((r) => r.results.find((c) => c.variant === v && c.workload === w)).filter((c) => c?.status === 'ok').map((c) => c!.rate!));
const fmt = (x: number | undefined, unit: string): string => (x === undefined ? 'failed' : `${x >= 100 ? x.toFixed(0) : x.toFixed(1)}${unit}`);

const head = ['workload', ...variants, ...pairs.map(([a, b]) => `${a} / ${b}`)];
const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
for (const w of WORKLOADS) {
  const unit = w.unit === 'bytes' ? ' MB/s' : '/s';
  const cells = variants.map((v) => fmt(rate(v, w.id), unit));
  const ratios = pairs.map(([a, b]) => {
    const x = rate(a, w.id);
    const y = rate(b, w.id);
    return x === undefined || y === undefined ? '—' : `${(x / y).toFixed(2)}×`;
  });
  lines.push(`| ${w.id} | ${[...cells, ...ratios].join(' | ')} |`);
}
process.stdout.write(`storvm bench, ${sizeMiB} MiB, ${files} files, median of ${runs} runs, ${new Date().toISOString().slice(0, 10)}\n\n${lines.join('\n')}\n`);
