import { describe, expect, it } from 'vitest';
import { BlockError, BlockRangeError, ReadOnlyError } from '../../src/backends/block/backend.js';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { diffBytes, pattern } from '../../src/testing/index.js';

const KiB = 1024;

describe('MemoryDisk', () => {
  it('reads and writes across chunk boundaries, holes reading as zeros', () => {
    const d = new MemoryDisk(1 << 20, { chunkSize: 4096 });
    const model = new Uint8Array(1 << 20);
    const edits: Array<[number, number]> = [
      [100, 10],
      [4090, 20],
      [8192, 4096],
      [20_000, 50_000],
      [(1 << 20) - 7, 7],
    ];
    for (const [at, len] of edits) {
      const p = pattern(len, at);
      d.write(at, p);
      model.set(p, at);
    }
    const out = new Uint8Array(1 << 20).fill(0xcc);
    d.read(0, out);
    expect(diffBytes(out, model)).toBe('equal');
    expect(d.allocatedBytes).toBe(4096 * d.allocatedChunks().length);
    expect(d.allocatedChunks()).toContain(0);
    expect(d.allocatedChunks()).not.toContain(100);
  });

  it('zeroes partial chunks and releases whole ones', () => {
    const d = new MemoryDisk(256 * KiB, { chunkSize: 4096 });
    d.write(0, pattern(256 * KiB, 1));
    d.writeZeroes(1000, 20_000, false); // chunks 0 and 5 partly, 1..4 wholly
    expect(d.allocatedChunks().length).toBe(64 - 4);
    const want = pattern(256 * KiB, 1);
    want.fill(0, 1000, 21_000);
    d.discard(250 * KiB, 6 * KiB); // the tail
    want.fill(0, 250 * KiB);
    const out = new Uint8Array(256 * KiB);
    d.read(0, out);
    expect(diffBytes(out, want)).toBe('equal');
    // A range far larger than what is allocated costs only what is allocated.
    const big = new MemoryDisk(2 ** 40);
    big.write(2 ** 39, pattern(10, 1));
    big.writeZeroes(0, 2 ** 40, true);
    expect(big.allocatedBytes).toBe(0);
  });

  it('uses given bytes in place and copies only a short last chunk', () => {
    const bytes = pattern(64 * KiB + 100, 2);
    const d = new MemoryDisk(bytes);
    expect(d.size).toBe(64 * KiB + 100);
    d.write(10, new Uint8Array([1, 2, 3]));
    expect([...bytes.subarray(10, 13)]).toEqual([1, 2, 3]);
    const tail = new Uint8Array(100);
    d.read(64 * KiB, tail);
    expect(tail).toEqual(pattern(64 * KiB + 100, 2).subarray(64 * KiB));
  });

  it('refuses misuse with typed errors', () => {
    const d = new MemoryDisk(8192);
    expect(() => d.read(8000, new Uint8Array(200))).toThrow(BlockRangeError);
    expect(() => d.write(-1, new Uint8Array(1))).toThrow(BlockRangeError);
    expect(() => d.writeZeroes(0.5, 1)).toThrow(BlockRangeError);
    expect(() => new MemoryDisk(8192, { readOnly: true }).write(0, new Uint8Array(1))).toThrow(ReadOnlyError);
    expect(() => new MemoryDisk(8192, { readOnly: true }).discard(0, 512)).toThrow(ReadOnlyError);
    expect(() => new MemoryDisk(-5)).toThrow(BlockError);
    expect(() => new MemoryDisk(100, { chunkSize: 3000 })).toThrow(/chunkSize/);
    expect(() => MemoryDisk.fromChunks(8192, new Map([[5, new Uint8Array(64 * KiB)]]))).toThrow(BlockError);
  });
});
