import { describe, expect, it } from 'vitest';
import { type BlockBackend, ImageFormatError, ReadOnlyError } from '../../src/backends/block/backend.js';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { OverlayDisk } from '../../src/backends/block/overlay-disk.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { diffBytes, pattern, read, S_OK, write } from '../../src/testing/index.js';
import { TestDriver } from '../../src/testing/index.js';

const MiB = 1 << 20;

/** A base that answers every read a tick later. */
function asyncBase(disk: MemoryDisk): BlockBackend {
  return {
    size: disk.size,
    readOnly: disk.readOnly,
    read: (o, d) => new Promise((r) => setTimeout(() => r(disk.read(o, d)), 1)),
    write: (o, s) => Promise.resolve().then(() => disk.write(o, s)),
    flush: () => Promise.resolve(),
  };
}

async function contents(d: BlockBackend): Promise<Uint8Array> {
  const out = new Uint8Array(d.size);
  await d.read(0, out);
  return out;
}

describe('OverlayDisk', () => {
  for (const asyncMode of [false, true]) {
    it(`copies on write over a read-only base, block-unaligned writes included (${asyncMode ? 'async' : 'sync'} base)`, async () => {
      const baseBytes = pattern(MiB + 1000, 1); // size not a multiple of the block size
      const baseDisk = new MemoryDisk(baseBytes.slice(), { readOnly: true });
      const base = asyncMode ? asyncBase(baseDisk) : baseDisk;
      const ov = new OverlayDisk(base);
      const want = baseBytes.slice();
      const edits: Array<[number, number]> = [
        [0, 100],
        [4090, 20],
        [8192, 4096],
        [20000, 70000],
        [MiB + 900, 100],
      ];
      for (const [at, len] of edits) {
        const data = pattern(len, at);
        await ov.write(at, data);
        want.set(data, at);
      }
      expect(diffBytes(await contents(ov), want)).toBe('equal');
      expect(diffBytes(await contents(baseDisk), baseBytes)).toBe('equal');
      expect(ov.isWritten(0) && ov.isWritten(1) && ov.isWritten(2) && !ov.isWritten(3)).toBe(true);
      await ov.writeZeroes(100 * 1024, 10 * 1024);
      want.fill(0, 100 * 1024, 110 * 1024);
      await ov.discard(500_000, 5000);
      want.fill(0, 500_000, 505_000);
      expect(diffBytes(await contents(ov), want)).toBe('equal');
    });
  }

  it('keeps both of two concurrent partial writes into one block over an async base', async () => {
    const baseDisk = new MemoryDisk(pattern(64 * 1024, 2), { readOnly: true });
    const ov = new OverlayDisk(asyncBase(baseDisk));
    await Promise.all([ov.write(10, pattern(10, 3)), ov.write(1000, pattern(10, 4))]);
    const want = pattern(64 * 1024, 2);
    want.set(pattern(10, 3), 10);
    want.set(pattern(10, 4), 1000);
    expect(diffBytes(await contents(ov), want)).toBe('equal');
  });

  it('makes a read-only base writable behind the device', async () => {
    const base = new MemoryDisk(pattern(4 * MiB, 5), { readOnly: true });
    const drv = new TestDriver(new VirtioBlk(new OverlayDisk(base))).init();
    const q = drv.queues[0]!;
    expect((await write(q, 3, pattern(1024, 6))).status).toBe(S_OK);
    const r = await read(q, 0, 4096);
    const want = pattern(4096, 5);
    want.set(pattern(1024, 6), 1536);
    expect(r.data).toEqual(want);
  });

  it('commits into a writable base and then reads as the base; refuses a read-only base', async () => {
    const base = new MemoryDisk(pattern(MiB, 7));
    const ov = new OverlayDisk(base, { blockSize: 512 });
    await ov.write(777, pattern(3000, 8));
    const merged = await contents(ov);
    await ov.commit();
    expect(ov.writtenBlocks).toBe(0);
    expect(diffBytes(await contents(base), merged)).toBe('equal');
    const ro = new OverlayDisk(new MemoryDisk(MiB, { readOnly: true }));
    await ro.write(0, pattern(10, 1));
    await expect(ro.commit()).rejects.toBeInstanceOf(ReadOnlyError);
  });

  it('drops every change on reset', async () => {
    const baseBytes = pattern(MiB, 9);
    const ov = new OverlayDisk(new MemoryDisk(baseBytes.slice(), { readOnly: true }));
    await ov.write(5000, pattern(9000, 1));
    expect(ov.writtenBlocks).toBe(3); // blocks 1..3 of 4 KiB
    ov.reset();
    expect(ov.writtenBlocks).toBe(0);
    expect(diffBytes(await contents(ov), baseBytes)).toBe('equal');
  });

  it('saves to bytes and loads back on the same base; refuses a mismatched or damaged save', async () => {
    const base = new MemoryDisk(pattern(MiB + 512, 10), { readOnly: true });
    const ov = new OverlayDisk(base);
    await ov.write(123, pattern(5000, 11));
    await ov.write(MiB, pattern(512, 12)); // the short last block
    const saved = ov.save();
    expect(saved.length).toBe(32 + Math.ceil(Math.ceil((MiB + 512) / 4096) / 8) + 3 * 4096);
    const back = OverlayDisk.load(base, saved);
    expect(back.writtenBlocks).toBe(3);
    expect(diffBytes(await contents(back), await contents(ov))).toBe('equal');
    expect(() => OverlayDisk.load(new MemoryDisk(MiB), saved)).toThrow(ImageFormatError);
    const badMagic = saved.slice();
    badMagic[0] = 0;
    expect(() => OverlayDisk.load(base, badMagic)).toThrow(/magic/);
    expect(() => OverlayDisk.load(base, saved.subarray(0, saved.length - 1))).toThrow(/truncated/);
    const badCount = saved.slice();
    badCount[28] = 2;
    expect(() => OverlayDisk.load(base, badCount)).toThrow(ImageFormatError);
  });
});
