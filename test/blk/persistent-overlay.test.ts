/**
 * PersistentOverlayDisk against a reference MemoryDisk under random operations and reopenings,
 * and under simulated crashes: files that keep only what was flushed, plus a random part of what
 * was written after (whole writes, torn writes, any order). After every crash the disk must read
 * exactly as it did at the last completed flush, or at the flush that was under way.
 */
import { describe, expect, it } from 'vitest';
import { BlockIoError, ImageFormatError, ReadOnlyError } from '../../src/backends/block/backend.js';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { PersistentOverlayDisk, ReadOnlyView, type PersistentOverlayFiles, type SyncFile } from '../../src/backends/block/persistent-overlay.js';
import { mulberry32 as prng } from '../support/prng.js';
import { diffBytes, pattern } from '../../src/testing/index.js';

/** A SyncFile in memory that models a disk cache: writes become durable only at flush(). */
class CrashFile implements SyncFile {
  durable: Uint8Array = new Uint8Array(0);
  /** The file as the program sees it. */
  live: Uint8Array = new Uint8Array(0);
  pending: Array<{ at: number; bytes: Uint8Array } | { truncate: number }> = [];
  /** Bytes a write may add before it throws (a quota). */
  quota = Infinity;
  flushes = 0;
  failFlush = false;

  private static resize(b: Uint8Array, n: number): Uint8Array {
    if (n === b.length) return b;
    const out = new Uint8Array(n);
    out.set(b.subarray(0, Math.min(n, b.length)));
    return out;
  }
  read(dst: Uint8Array, at: number): number {
    const n = Math.max(0, Math.min(dst.length, this.live.length - at));
    dst.set(this.live.subarray(at, at + n));
    return n;
  }
  write(src: Uint8Array, at: number): number {
    if (at + src.length > this.live.length && at + src.length > this.quota) throw new Error('QuotaExceededError');
    if (at + src.length > this.live.length) this.live = CrashFile.resize(this.live, at + src.length);
    this.live.set(src, at);
    this.pending.push({ at, bytes: src.slice() });
    return src.length;
  }
  truncate(size: number): void {
    this.live = CrashFile.resize(this.live, size);
    this.pending.push({ truncate: size });
  }
  getSize(): number {
    return this.live.length;
  }
  flush(): void {
    if (this.failFlush) throw new Error('EIO');
    this.durable = this.live.slice();
    this.pending = [];
    this.flushes++;
  }
  /** What survives a crash: the durable bytes plus a random subset of the pending operations, some torn. */
  crash(rand: () => number): void {
    let f: Uint8Array = this.durable.slice();
    for (const op of this.pending) {
      const r = rand();
      if (r < 0.4) continue; // lost
      if ('truncate' in op) {
        f = CrashFile.resize(f, op.truncate);
        continue;
      }
      const n = r < 0.6 ? Math.floor(rand() * op.bytes.length) : op.bytes.length; // torn or whole
      if (op.at + n > f.length) f = CrashFile.resize(f, op.at + n);
      f.set(op.bytes.subarray(0, n), op.at);
    }
    this.durable = f;
    this.live = f.slice();
    this.pending = [];
  }
}

const newFiles = () => ({ data: new CrashFile(), mapA: new CrashFile(), mapB: new CrashFile() });
const all = (f: ReturnType<typeof newFiles>) => [f.data, f.mapA, f.mapB];

async function contents(d: { size: number; read(o: number, b: Uint8Array): void | Promise<void> }): Promise<Uint8Array> {
  const b = new Uint8Array(d.size);
  await d.read(0, b);
  return b;
}

describe('PersistentOverlayDisk', () => {
  it('matches a MemoryDisk under random writes, reads, zeroes, flushes and reopenings, with and without a base', async () => {
    for (const withBase of [false, true]) {
      const rand = prng(withBase ? 11 : 12);
      const size = 256 * 1024 + 1536; // not a multiple of the block size
      const baseBytes = pattern(size, 9);
      const base = withBase ? new MemoryDisk(baseBytes.slice(), { readOnly: true }) : undefined;
      const ref = new MemoryDisk(withBase ? baseBytes.slice() : size);
      const files = newFiles();
      let disk = PersistentOverlayDisk.open(files, { ...(base ? { base } : { size }), baseId: 'test' });
      for (let step = 0; step < 3000; step++) {
        const r = rand();
        const off = Math.floor(rand() * (size / 512)) * 512;
        const len = Math.min(size - off, 512 * (1 + Math.floor(rand() * 24)));
        if (r < 0.45) {
          const data = pattern(len, step);
          await disk.write(off, data);
          ref.write(off, data);
        } else if (r < 0.55) {
          await disk.writeZeroes(off, len);
          ref.writeZeroes(off, len);
        } else if (r < 0.85) {
          const a = new Uint8Array(len);
          await disk.read(off, a);
          const b = new Uint8Array(len);
          ref.read(off, b);
          expect(diffBytes(a, b), `step ${step}`).toBe('equal');
        } else if (r < 0.97) {
          await disk.flush();
        } else {
          await disk.flush();
          disk = PersistentOverlayDisk.open(files, { ...(base ? { base } : { size }), baseId: 'test' });
        }
      }
      expect(diffBytes(await contents(disk), await contents(ref))).toBe('equal');
      if (base) expect(diffBytes(await contents(base), baseBytes)).toBe('equal'); // the base is never written
    }
  });

  it('after a crash at any point reads exactly as at the last completed flush (or the one under way)', async () => {
    const rand = prng(77);
    const size = 128 * 1024;
    for (let round = 0; round < 300; round++) {
      const files = newFiles();
      const base = new MemoryDisk(pattern(size, round), { readOnly: true });
      let disk = PersistentOverlayDisk.open(files, { base, baseId: 'b' });
      let flushed = await contents(disk);
      const steps = 1 + Math.floor(rand() * 60);
      let inFlight: Uint8Array | undefined;
      for (let s = 0; s < steps; s++) {
        const r = rand();
        const off = Math.floor(rand() * (size / 512)) * 512;
        const len = Math.min(size - off, 512 * (1 + Math.floor(rand() * 20)));
        if (r < 0.6) await disk.write(off, pattern(len, round * 1000 + s));
        else if (r < 0.7) await disk.discard(off, len);
        else {
          const now = await contents(disk);
          // Crash in the middle of a flush: after the data file is durable, with the map half written.
          if (rand() < 0.15) {
            files.data.flush();
            inFlight = now;
            break;
          }
          await disk.flush();
          flushed = now;
        }
      }
      for (const f of all(files)) f.crash(rand);
      disk = PersistentOverlayDisk.open(files, { base, baseId: 'b' });
      const got = await contents(disk);
      const ok = diffBytes(got, flushed) === 'equal' || (inFlight !== undefined && diffBytes(got, inFlight) === 'equal');
      expect(ok, `round ${round}`).toBe(true);
      // And it goes on working after the crash.
      await disk.write(0, pattern(4096, 5));
      await disk.flush();
      expect(diffBytes((await contents(PersistentOverlayDisk.open(files, { base, baseId: 'b' }))).subarray(0, 4096), pattern(4096, 5))).toBe('equal');
    }
  });

  it('gives space back: discarded blocks are reused and the data file shrinks after a flush', async () => {
    const files = newFiles();
    const disk = PersistentOverlayDisk.open(files, { size: 8 << 20 });
    await disk.write(0, pattern(4 << 20, 1));
    await disk.flush();
    expect(disk.dataBytes).toBe(4 << 20);
    await disk.discard(0, 8 << 20);
    await disk.flush();
    expect(disk.dataBytes).toBe(0);
    expect(disk.mappedBlocks).toBe(0);
    expect((await contents(disk)).every((x) => x === 0)).toBe(true);
    // Overwriting in place does not grow the file past one generation of garbage.
    for (let i = 0; i < 10; i++) {
      await disk.write(0, pattern(1 << 20, i));
      await disk.flush();
    }
    expect(disk.dataBytes).toBeLessThanOrEqual(2 << 20);
  });

  it('holds disks above 4 GiB and past 2^32 bytes of offset', async () => {
    const files = newFiles();
    const size = 6 * 2 ** 30;
    const disk = PersistentOverlayDisk.open(files, { size });
    await disk.write(size - 4096, pattern(4096, 3));
    await disk.write(2 ** 32 + 512, pattern(1024, 4));
    await disk.flush();
    const again = PersistentOverlayDisk.open(files, { size });
    const a = new Uint8Array(4096);
    await again.read(size - 4096, a);
    expect(diffBytes(a, pattern(4096, 3))).toBe('equal');
    const b = new Uint8Array(1024);
    await again.read(2 ** 32 + 512, b);
    expect(diffBytes(b, pattern(1024, 4))).toBe('equal');
    expect(files.data.getSize()).toBe(8192); // two slots, not 6 GiB
  });

  it('reports a full quota as an I/O error for that write and loses nothing already stored', async () => {
    const files = newFiles();
    const disk = PersistentOverlayDisk.open(files, { size: 1 << 20 });
    await disk.write(0, pattern(8192, 1));
    await disk.flush();
    files.data.quota = 8192;
    await expect(Promise.resolve().then(() => disk.write(65536, pattern(4096, 2)))).rejects.toBeInstanceOf(BlockIoError);
    const back = new Uint8Array(65536 + 4096);
    await disk.read(0, back);
    expect(diffBytes(back.subarray(0, 8192), pattern(8192, 1))).toBe('equal');
    expect(back.subarray(65536).every((x) => x === 0)).toBe(true); // the failed write left nothing
    files.data.quota = Infinity;
    await disk.write(65536, pattern(4096, 2));
    await disk.flush();
    files.mapA.failFlush = files.mapB.failFlush = true;
    await disk.write(0, pattern(4096, 7));
    await expect(Promise.resolve().then(() => disk.flush())).rejects.toThrow(/writing the map failed/);
    files.mapA.failFlush = files.mapB.failFlush = false;
    await disk.flush();
    const reopened = await contents(PersistentOverlayDisk.open(files, { size: 1 << 20 }));
    expect(diffBytes(reopened.subarray(0, 4096), pattern(4096, 7))).toBe('equal');
  });

  it('refuses files made for another base, size or block size, and corrupt maps', async () => {
    const files = newFiles();
    const base = new MemoryDisk(1 << 20, { readOnly: true });
    const disk = PersistentOverlayDisk.open(files, { base, baseId: 'image-a' });
    await disk.write(0, pattern(512, 1));
    await disk.flush();
    expect(() => PersistentOverlayDisk.open(files, { base, baseId: 'image-b' })).toThrow(ImageFormatError);
    expect(() => PersistentOverlayDisk.open(files, { size: 2 << 20, baseId: 'image-a' })).toThrow(/1048576 bytes/);
    expect(() => PersistentOverlayDisk.open(files, { base, baseId: 'image-a', blockSize: 8192 })).toThrow(/4096-byte blocks/);
    for (const f of [files.mapA, files.mapB]) f.live[20] = (f.live[20] ?? 0) ^ 0xff;
    expect(() => PersistentOverlayDisk.open(files, { base, baseId: 'image-a' })).toThrow(/corrupt/);
  });

  it('waits for an asynchronous base, keeping operations in order, and resets to the base', async () => {
    const baseBytes = pattern(64 * 1024, 2);
    const mem = new MemoryDisk(baseBytes.slice(), { readOnly: true });
    const slowBase = { size: mem.size, readOnly: true, read: (o: number, d: Uint8Array) => new Promise<void>((r) => setTimeout(() => (mem.read(o, d), r()), 2)), write() {}, flush() {} };
    const disk = PersistentOverlayDisk.open(newFiles(), { base: slowBase });
    // Two partial writes into one block, issued together: both land.
    const a = disk.write(512, new Uint8Array(512).fill(1));
    const b = disk.write(1024, new Uint8Array(512).fill(2));
    await Promise.all([a, b]);
    const got = await contents(disk);
    const want = baseBytes.slice();
    want.fill(1, 512, 1024);
    want.fill(2, 1024, 1536);
    expect(diffBytes(got, want)).toBe('equal');
    await disk.reset();
    expect(diffBytes(await contents(disk), baseBytes)).toBe('equal');
    const ro = new ReadOnlyView(disk);
    expect(() => ro.write()).toThrow(ReadOnlyError);
  });
});
