/** The lab's browser columns in the guest script, reading a report back, comparing two, and the visibility probe. */
import { describe, expect, it } from 'vitest';
import { LabCollector, visibleMarkers } from '../../src/lab/collector.js';
import { BROWSER_VARIANTS, guestScript, labVariants, VARIANTS, VIS_FILES, WORKLOADS } from '../../src/lab/plan.js';
import { BenchReportError, formatComparison, parseBenchReport, toJson, type BenchReport } from '../../src/lab/report.js';
import { labSetup } from '../../src/lab/setup.js';

const markers = { '9p-none': 'A', '9p-loose': 'B', 'blk-ext4': 'C' };

/** A report as the collector builds it from `@@lab` lines. */
function report(variants: string[], rates: Record<string, number>, sizeMiB = 4): BenchReport {
  const { setup } = labSetup({ sizeMiB, files: 5, variants, browser: true, tar: { entries: 1, bytes: 512 }, tag: 'x', version: 't' });
  const lab = new LabCollector(setup, { probe: () => {} });
  for (const [k, rate] of Object.entries(rates)) {
    const [v, w] = k.split(' ');
    lab.line(`@@lab result ${v} ${w} 1000000000 ${rate * 1e6}`);
  }
  return lab.finish(undefined, 1);
}

describe("the browser's raw disks in the guest script", () => {
  it('finds each by serial, reads an image before writing it, and leaves them out of storvm bench', () => {
    const s = guestScript({ sizeMiB: 2, files: 3, ops: 64, tarEntries: 9, markers, browser: true });
    for (const v of BROWSER_VARIANTS) expect(s).toContain(`D=$(devof ${v.serial}); if [ -b "$D" ]; then rawloads ${v.id} $D${v.image ? ' image' : ''};`);
    expect(s).toContain('rawloads blk-raw /dev/vda\n');
    // rawloads: an image's seq-write comes after both reads, a blank disk's before them.
    const body = s.slice(s.indexOf('rawloads() {'), s.indexOf('}\n', s.indexOf('rawloads() {')));
    const lines = body.split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    expect(at(/!= image.*seq-write/)).toBeLessThan(at(/seq-read/));
    expect(at(/"\$3" = image.*seq-write/)).toBeGreaterThan(at(/rand-read/));
    const node = guestScript({ sizeMiB: 2, files: 3, ops: 64, tarEntries: 9, markers });
    for (const v of BROWSER_VARIANTS) expect(node).not.toContain(`# ${v.id}:`);
    expect(labVariants(false)).toBe(VARIANTS);
    expect(labVariants(true).map((v) => v.id)).toEqual([...VARIANTS, ...BROWSER_VARIANTS].map((v) => v.id));
  });

  it('reports a variant that cannot run here as n/a with its reason, quotes and $ taken out', () => {
    const s = guestScript({ sizeMiB: 1, files: 1, ops: 64, tarEntries: 1, markers, browser: true, variants: ['blk-http'], unavailable: { 'blk-http': 'no "image" $HOME `here`' } });
    expect(s).toContain('do say na blk-http $w "no image HOME here"; done');
    expect(s).not.toContain('rawloads blk-http');
  });

  it('names the visibility files the script writes', () => {
    const s = guestScript({ sizeMiB: 1, files: 1, ops: 64, tarEntries: 1, markers: { ...markers, 'vfs-auto': 'D', 'vfs-always': 'E' } });
    for (const f of Object.values(VIS_FILES)) expect(s).toContain(`/${f}`);
  });
});

describe('visibleMarkers', () => {
  it('asks the share for each share store in its file and the ext4 disk for its marker, at once or later', async () => {
    const asked: string[] = [];
    const now = visibleMarkers(markers, (f, m) => (asked.push(`${f}=${m}`), f === 'visible-none.txt'), (m) => m === 'C');
    expect(now).toEqual({ '9p-none': true, '9p-loose': false, 'blk-ext4': true });
    expect(asked).toEqual(['visible-none.txt=A', 'visible-loose.txt=B']);
    const later = visibleMarkers({ ...markers, 'vfs-auto': 'D' }, async (f) => f === 'visible-vfs-auto.txt', () => false);
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toEqual({ '9p-none': false, '9p-loose': false, 'blk-ext4': false, 'vfs-auto': true });
  });
});

describe('parseBenchReport', () => {
  it('reads back what toJson writes', () => {
    const r = report(['tmpfs', 'blk-http'], { 'tmpfs seq-write': 50 });
    const back = parseBenchReport(toJson(r), 'r.json');
    expect(back.results).toEqual(r.results);
    expect(back.variants.map((v) => v.id)).toEqual(['tmpfs', 'blk-http']);
  });

  it('refuses what is not a lab report with a message naming the file and what is wrong', () => {
    const good = JSON.parse(toJson(report(['tmpfs'], { 'tmpfs seq-read': 9 })));
    const cases: Array<[string, RegExp]> = [
      ['{"results": [', /^x\.json: not JSON/],
      ['[1,2]', /not a JSON object/],
      ['{"format":"storvm-chunks"}', /no results list/],
      [JSON.stringify({ ...good, variants: 'tmpfs' }), /no variants list/],
      [JSON.stringify({ ...good, workloads: [{ id: 'seq-read', unit: 'furlongs' }] }), /no workloads list/],
      [JSON.stringify({ ...good, options: {} }), /no options/],
      [JSON.stringify({ ...good, results: [{ variant: 'tmpfs', workload: 'seq-read', status: 'great' }] }), /result 0 is malformed/],
      [JSON.stringify({ ...good, results: [{ variant: 'tmpfs', workload: 'seq-read', status: 'ok', rate: 'fast' }] }), /result 0 \(seq-read on tmpfs\) has no rate/],
    ];
    for (const [text, re] of cases) {
      let err: unknown;
      try {
        parseBenchReport(text, 'x.json');
      } catch (e) {
        err = e;
      }
      expect(err, text).toBeInstanceOf(BenchReportError);
      expect((err as Error).message, text).toMatch(re);
      expect((err as BenchReportError).subject).toBe('x.json');
    }
  });
});

describe('formatComparison', () => {
  it("puts each report's rates under every variant either ran, with — where one did not", () => {
    const page = report(['tmpfs', 'blk-http'], { 'tmpfs seq-write': 50, 'blk-http seq-read': 12.5 }, 1);
    const node = report(['tmpfs', '9p-8k-none'], { 'tmpfs seq-write': 400, '9p-8k-none seq-write': 30 });
    const t = formatComparison([
      { label: 'page', report: page },
      { label: 'node', report: node },
    ]);
    const lines = t.split('\n');
    expect(lines[0]).toMatch(/^page: storvm t, .*1 MiB sequential/);
    expect(lines[1]).toMatch(/^node: storvm t, .*4 MiB sequential/);
    expect(t).toContain('note: page and node ran different sizes');
    const head = lines.find((l) => l.trim().startsWith('tmpfs'))!;
    expect(head.trim().split(/\s+/)).toEqual(['tmpfs', 'blk-http', '9p-8k-none']);
    const i = lines.findIndex((l) => l === 'seq-write');
    expect(lines[i + 1]!.trim().split(/\s{2,}/)).toEqual(['page', '50.0 MB/s', 'missing', '—']);
    expect(lines[i + 2]!.trim().split(/\s{2,}/)).toEqual(['node', '400 MB/s', '—', '30.0 MB/s']);
    expect(lines.filter((l) => /^\s+page/.test(l))).toHaveLength(WORKLOADS.length);
  });
});
