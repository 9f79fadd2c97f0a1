/** The storage lab's results: the record, the side-by-side table, JSON and CSV. */
import { VARIANTS, WORKLOADS, type Variant, type Workload } from './plan.js';

export interface Cell {
  variant: string;
  workload: string;
  status: 'ok' | 'failed' | 'n/a' | 'missing';
  /** Guest-measured seconds. */
  seconds?: number;
  /** Bytes or operations done. */
  amount?: number;
  unit: 'bytes' | 'ops';
  /** MB/s (10^6 bytes) for bytes, operations per second for ops. */
  rate?: number;
  /** Why it failed or does not apply. */
  message?: string;
}

export interface StoreBytes {
  /** Host bytes used by the store at each probe: base, written, deleted, trimmed. */
  base: number;
  written: number;
  deleted: number;
  trimmed: number;
}

export interface Visibility {
  store: string;
  /** The file's contents were on the host right after the guest wrote it (no sync, no unmount). */
  afterWrite: boolean;
  /** ... after the guest unmounted the filesystem. */
  afterUnmount: boolean;
}

export interface BenchReport {
  date: string;
  storvm: string;
  options: { sizeMiB: number; files: number; ops: number; tarEntries: number; tarBytes: number; memoryMiB: number };
  clock: { source: string; hz: number; resolutionNs: number; timingOverheadNs: number };
  variants: Variant[];
  workloads: Workload[];
  results: Cell[];
  elasticity: Record<string, StoreBytes>;
  visibility: Visibility[];
  errors: string[];
  hostSeconds: number;
}

export function rateOf(unit: 'bytes' | 'ops', amount: number, seconds: number): number {
  return unit === 'bytes' ? amount / 1e6 / seconds : amount / seconds;
}

function fmtRate(c: Cell): string {
  if (c.status === 'ok') {
    const r = c.rate!;
    const s = r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
    return c.unit === 'bytes' ? `${s} MB/s` : `${s}/s`;
  }
  return c.status === 'failed' ? 'FAILED' : c.status;
}

function fmtTime(c: Cell): string {
  if (c.status !== 'ok') return '';
  const s = c.seconds!;
  return s >= 10 ? `${s.toFixed(1)} s` : s >= 0.1 ? `${s.toFixed(2)} s` : `${(s * 1000).toFixed(1)} ms`;
}

function fmtBytes(n: number): string {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(0)} KiB` : `${n} B`;
}

/** The side-by-side table: rows = workloads (rate, then time), columns = variants. */
export function formatTable(r: BenchReport): string {
  const vs = r.variants.map((v) => v.id);
  const cell = (w: string, v: string) => r.results.find((c) => c.workload === w && c.variant === v);
  const rows: string[][] = [['', ...vs]];
  for (const w of r.workloads) {
    rows.push([w.id, ...vs.map((v) => fmtRate(cell(w.id, v)!))]);
    rows.push(['  time', ...vs.map((v) => fmtTime(cell(w.id, v)!))]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((s, i) => (i === 0 ? s.padEnd(widths[i]!) : s.padStart(widths[i]!))).join('  ').trimEnd();
  const out: string[] = [];
  out.push(`storvm bench: ${r.options.sizeMiB} MiB sequential, ${r.options.ops} random 4 KiB ops, ${r.options.files} files, a tarball of ${r.options.tarEntries} entries (${fmtBytes(r.options.tarBytes)})`);
  out.push(`guest clock: ${r.clock.source} at ${r.clock.hz} Hz (resolution ${r.clock.resolutionNs} ns); timing an empty command costs ${(r.clock.timingOverheadNs / 1e6).toFixed(1)} ms, included in every time`);
  out.push('');
  out.push(line(rows[0]!));
  for (const row of rows.slice(1)) out.push(line(row));
  const failures = r.results.filter((c) => c.status === 'failed' || c.status === 'missing');
  if (failures.length > 0) {
    out.push('');
    out.push('failed:');
    for (const c of failures) out.push(`  ${c.workload} on ${c.variant}: ${c.message ?? 'no result'}`);
  }
  out.push('');
  out.push('elasticity (host bytes used by each store):');
  const er: string[][] = [['store', 'start', 'written', 'deleted', 'trimmed']];
  for (const [store, b] of Object.entries(r.elasticity)) er.push([store, fmtBytes(b.base), fmtBytes(b.written), fmtBytes(b.deleted), fmtBytes(b.trimmed)]);
  const ew = er[0]!.map((_, i) => Math.max(...er.map((row) => row[i]!.length)));
  for (const row of er) out.push('  ' + row.map((s, i) => (i === 0 ? s.padEnd(ew[i]!) : s.padStart(ew[i]!))).join('  '));
  out.push('');
  out.push('visibility (is a file the guest wrote on the host?):');
  for (const v of r.visibility) out.push(`  ${v.store.padEnd(12)} right after writing: ${v.afterWrite ? 'yes' : 'no '}   after unmount: ${v.afterUnmount ? 'yes' : 'no'}`);
  if (r.errors.length > 0) {
    out.push('');
    out.push('errors:');
    for (const e of r.errors) out.push(`  ${e}`);
  }
  return out.join('\n') + '\n';
}

/** A lab report that could not be read: not JSON, or not what `storvm bench --json` writes. */
export class BenchReportError extends Error {
  override name = 'BenchReportError';
  constructor(
    message: string,
    /** What was read: a file name or URL. */
    readonly subject: string,
  ) {
    super(message);
  }
}

const STATUSES = new Set(['ok', 'failed', 'n/a', 'missing']);

/**
 * Reads a report as `storvm bench --json` (or the page's lab) writes it, checking every field the
 * table and the chart use; anything else is a BenchReportError naming the first thing wrong.
 */
export function parseBenchReport(text: string, subject: string): BenchReport {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new BenchReportError(`${subject}: not JSON (${e instanceof Error ? e.message : String(e)})`, subject);
  }
  const bad = (what: string): never => {
    throw new BenchReportError(`${subject}: not a storvm bench report (${what}); write one with storvm bench --json FILE`, subject);
  };
  const o = v as Partial<BenchReport> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return bad('not a JSON object');
  if (!Array.isArray(o.results)) return bad('no results list');
  if (!Array.isArray(o.variants) || o.variants.some((x) => typeof x?.id !== 'string')) return bad('no variants list');
  if (!Array.isArray(o.workloads) || o.workloads.some((x) => typeof x?.id !== 'string' || (x.unit !== 'bytes' && x.unit !== 'ops'))) return bad('no workloads list');
  const opts = o.options;
  if (typeof opts !== 'object' || opts === null || !Number.isFinite(opts.sizeMiB) || !Number.isFinite(opts.files) || !Number.isFinite(opts.ops)) return bad('no options');
  for (const [i, c] of o.results.entries()) {
    if (typeof c !== 'object' || c === null || typeof c.variant !== 'string' || typeof c.workload !== 'string' || !STATUSES.has(c.status)) return bad(`result ${i} is malformed`);
    if (c.status === 'ok' && !(typeof c.rate === 'number' && c.rate >= 0 && Number.isFinite(c.rate) && typeof c.seconds === 'number')) return bad(`result ${i} (${c.workload} on ${c.variant}) has no rate`);
  }
  return {
    ...o,
    date: typeof o.date === 'string' ? o.date : '',
    storvm: typeof o.storvm === 'string' ? o.storvm : '',
    clock: o.clock ?? { source: 'unknown', hz: 0, resolutionNs: 0, timingOverheadNs: 0 },
    elasticity: o.elasticity ?? {},
    visibility: Array.isArray(o.visibility) ? o.visibility : [],
    errors: Array.isArray(o.errors) ? o.errors : [],
    hostSeconds: typeof o.hostSeconds === 'number' ? o.hostSeconds : 0,
  } as BenchReport;
}

/** One report in a comparison, with the name its rows carry ("page", "node"). */
export interface LabSide {
  label: string;
  report: BenchReport;
}

/**
 * Reports side by side: rows = workloads, then one row of rates per report; columns = every
 * variant any of them ran, in the first report's order. A variant a report did not run shows "—".
 */
export function formatComparison(sides: readonly LabSide[]): string {
  const vs: string[] = [];
  for (const s of sides) for (const v of s.report.variants) if (!vs.includes(v.id)) vs.push(v.id);
  const ws: Workload[] = [];
  for (const s of sides) for (const w of s.report.workloads) if (!ws.some((x) => x.id === w.id)) ws.push(w);
  const rows: string[][] = [['', ...vs]];
  for (const w of ws) {
    rows.push([w.id, ...vs.map(() => '')]);
    for (const s of sides) {
      rows.push([`  ${s.label}`, ...vs.map((v) => {
        const c = s.report.results.find((x) => x.workload === w.id && x.variant === v);
        return c === undefined ? '—' : fmtRate(c);
      })]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ').trimEnd();
  const out: string[] = [];
  for (const s of sides) {
    const r = s.report;
    out.push(`${s.label}: storvm ${r.storvm || '?'}, ${r.date || 'undated'}, ${r.options.sizeMiB} MiB sequential, ${r.options.ops} random 4 KiB ops, ${r.options.files} files`);
  }
  const [a, ...rest] = sides;
  for (const b of rest) {
    if (a !== undefined && (a.report.options.sizeMiB !== b.report.options.sizeMiB || a.report.options.files !== b.report.options.files)) {
      out.push(`note: ${a.label} and ${b.label} ran different sizes, so their rates compare only roughly`);
    }
  }
  out.push('');
  for (const row of rows) out.push(line(row));
  return out.join('\n') + '\n';
}

export function toJson(r: BenchReport): string {
  return JSON.stringify(r, null, 2) + '\n';
}

function csvField(s: string | number | undefined): string {
  if (s === undefined) return '';
  const t = String(s);
  return /[",\n]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
}

/** One line per (workload, variant). */
export function toCsv(r: BenchReport): string {
  const head = ['workload', 'variant', 'status', 'seconds', 'amount', 'unit', 'rate', 'rate_unit', 'message'];
  const lines = [head.join(',')];
  for (const c of r.results) {
    lines.push(
      [c.workload, c.variant, c.status, c.seconds, c.amount, c.unit, c.rate, c.unit === 'bytes' ? 'MB/s' : 'ops/s', c.message].map(csvField).join(','),
    );
  }
  return lines.join('\n') + '\n';
}

export { VARIANTS, WORKLOADS };
