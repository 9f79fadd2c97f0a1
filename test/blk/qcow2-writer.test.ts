/**
 * The qcow2 writer: what it writes reads back through storvm's own Qcow2Disk exactly as the disk
 * it came from, leaves zero clusters out, and (when qemu-img is installed) passes `qemu-img check`
 * and converts back to the same raw bytes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { Qcow2Disk } from '../../src/backends/block/qcow2.js';
import { qcow2Image } from '../../src/backends/block/qcow2-writer.js';
import { diffBytes, pattern } from '../../src/testing/index.js';

const hasQemuImg = spawnSync('qemu-img', ['--version']).status === 0;
if (!hasQemuImg) console.warn('qcow2 writer: qemu-img not installed (Debian qemu-utils): the qemu-img check is skipped');

async function image(disk: MemoryDisk, clusterBits?: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of qcow2Image(disk, clusterBits ? { clusterBits } : {})) parts.push(p);
  return Buffer.concat(parts);
}

function sample(size: number): Uint8Array {
  const b = new Uint8Array(size);
  b.set(pattern(70_000, 1), 0); // crosses a cluster boundary
  b.set(pattern(4096, 2), size - 4096); // the last, partial cluster
  b.set(pattern(512, 3), 300 * 65536 + 512);
  return b;
}

describe('qcow2 writer', () => {
  for (const [size, bits] of [[(1 << 30) + 12_288, undefined], [40 << 20, 12]] as const) {
    it(`writes a ${size}-byte disk with ${bits ?? 16}-bit clusters that reads back exactly, zeros left out`, async () => {
      const bytes = sample(size);
      const img = await image(new MemoryDisk(bytes.slice()), bits);
      const q = await Qcow2Disk.open(new MemoryDisk(img, { readOnly: true }));
      expect(q.size).toBe(size);
      const back = new Uint8Array(size);
      await q.read(0, back);
      expect(diffBytes(back, bytes)).toBe('equal');
      expect(img.length).toBeLessThan(size / 50); // sparse: a few data clusters and tables
    }, 120_000);
  }

  it.skipIf(!hasQemuImg)('passes qemu-img check and converts back to the same raw bytes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-qcow2w-'));
    try {
      const bytes = sample(24 << 20);
      writeFileSync(join(dir, 'a.qcow2'), await image(new MemoryDisk(bytes.slice())));
      execFileSync('qemu-img', ['check', join(dir, 'a.qcow2')]);
      execFileSync('qemu-img', ['convert', '-O', 'raw', join(dir, 'a.qcow2'), join(dir, 'a.raw')]);
      expect(diffBytes(new Uint8Array(readFileSync(join(dir, 'a.raw'))), bytes)).toBe('equal');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
