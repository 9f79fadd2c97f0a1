/**
 * `storvm bench` end to end with tiny sizes: one boot runs every workload on every variant; the
 * JSON must have every row, the properties must come out as the storage stack dictates.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/node/cli.js';
import { VARIANTS, WORKLOADS } from '../../src/lab/plan.js';
import type { BenchReport } from '../../src/lab/report.js';

async function storvm(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { write: (s) => (out += String(s)) }, { write: (s) => (err += String(s)) });
  return { code, out, err };
}

describe('storvm bench (boots Linux)', () => {
  it('measures every workload on every variant and reports table, JSON, CSV, elasticity and visibility', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-bench-test-'));
    const json = join(dir, 'r.json');
    const csv = join(dir, 'r.csv');
    const r = await storvm('bench', '--size', '1', '--files', '5', '--json', json, '--csv', csv);
    const rep = JSON.parse(readFileSync(json, 'utf8')) as BenchReport;
    expect(rep.errors).toEqual([]);
    expect(r.code).toBe(0);
    expect(rep.results).toHaveLength(VARIANTS.length * WORKLOADS.length);
    const cell = (v: string, w: string) => rep.results.find((c) => c.variant === v && c.workload === w)!;
    for (const v of VARIANTS) {
      for (const w of WORKLOADS) {
        const c = cell(v.id, w.id);
        expect(c, `${w.id} on ${v.id}`).toBeDefined();
        const expected = v.id === 'blk-raw' && ['create', 'stat', 'unlink', 'untar'].includes(w.id) ? 'n/a'
          : w.id === 'mmap-write' && (v.cache === 'none' || v.fuseCache === 'none') ? 'failed' : 'ok';
        expect(c.status, `${w.id} on ${v.id}: ${c.message}`).toBe(expected);
        if (expected === 'ok') {
          expect(c.seconds).toBeGreaterThan(0);
          expect(c.rate).toBeCloseTo(c.unit === 'bytes' ? c.amount! / 1e6 / c.seconds! : c.amount! / c.seconds!, 6);
        }
      }
    }
    expect(cell('9p-8k-none', 'mmap-write').message).toMatch(/mmap: errno 22 \(EINVAL\)/);
    expect(cell('vfs-none', 'mmap-write').message).toMatch(/mmap: errno 19 \(ENODEV\) \(cache=none opens files DIRECT_IO/);
    expect(cell('vfs-auto', 'untar').amount).toBe(cell('9p-512k-none', 'untar').amount);
    expect(cell('tmpfs', 'seq-write').amount).toBe(1 << 20);
    expect(cell('blk-ext4', 'create').amount).toBe(5);
    expect(rep.clock.hz).toBe(10_000_000);
    expect(rep.clock.resolutionNs).toBe(100);
    expect(rep.clock.timingOverheadNs).toBeGreaterThan(0);
    // Elasticity: the 9p share gives space back at rm; a sparse disk only at discard.
    const e = rep.elasticity;
    expect(e['9p']!.written - e['9p']!.base).toBeGreaterThanOrEqual(1 << 20);
    expect(e['9p']!.deleted).toBe(e['9p']!.base);
    expect(e['blk-raw']!.written).toBeGreaterThanOrEqual(1 << 20);
    expect(e['blk-raw']!.deleted).toBe(e['blk-raw']!.written);
    expect(e['blk-raw']!.trimmed).toBe(0);
    expect(e['blk-ext4']!.deleted).toBeGreaterThanOrEqual(e['blk-ext4']!.written);
    expect(e['blk-ext4']!.written - e['blk-ext4']!.trimmed).toBeGreaterThanOrEqual(0.75 * (1 << 20)); // 64 KiB chunks at the edges may stay
    // Visibility: 9p at once, ext4 on a block device only once unmounted.
    const vis = Object.fromEntries(rep.visibility.map((v) => [v.store, v]));
    expect(vis['9p-none']).toMatchObject({ afterWrite: true, afterUnmount: true });
    expect(vis['blk-ext4']).toMatchObject({ afterWrite: false, afterUnmount: true });
    // virtio-fs writes through at close even with the writeback cache (FUSE flushes on close).
    expect(vis['vfs-auto']).toMatchObject({ afterWrite: true, afterUnmount: true });
    expect(vis['vfs-always']).toMatchObject({ afterWrite: true, afterUnmount: true });
    // The table, the CSV and the progress line.
    for (const v of VARIANTS) expect(r.out).toContain(v.id);
    for (const w of WORKLOADS) expect(r.out).toMatch(new RegExp(`^${w.id} `, 'm'));
    expect(r.out).toContain('mmap-write on 9p-8k-none: labio: mmap: errno 22 (EINVAL)');
    expect(readFileSync(csv, 'utf8').trim().split('\n')).toHaveLength(1 + VARIANTS.length * WORKLOADS.length);
    expect(r.err).toMatch(/storvm bench \[ *\d+\/101\] \d+s vfs-always untar/);
    expect(r.err).toContain('storvm bench: mmap-write on 9p-512k-none failed');
  }, 240_000); // eleven columns in one boot: about a minute on a quiet 2-core host

  it('--trace blk prints each block request with its device time', async () => {
    const r = await storvm('bench', '--size', '1', '--files', '2', '--trace', 'blk', '--variants', 'blk-raw');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^blk vda WRITE +sector +\d+ +\d+ B {2}OK {2}\d+\.\d{3} ms$/m);
    expect(r.out).toMatch(/^blk vdb DISCARD /m); // fstrim on the ext4 disk
    // 1 MiB to vda, plus any 4 KiB metadata reads of the lab's own ext4 disk (vdb) that fall in the cell.
    expect(r.out).toMatch(/^# blk-raw seq-write: \d+ requests, 1\.0\d MiB of data, \d+\.\d{3} ms mean device time$/m);
    expect(r.out).not.toMatch(/^9p /m);
  });

  it('rejects bad options before booting', async () => {
    const r = await storvm('bench', '--trace', 'scsi');
    expect(r.code).toBe(2);
    expect(r.err).toBe("storvm: --trace scsi: give 9p, fuse or blk\n");
  });
});
