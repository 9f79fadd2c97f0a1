import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BlockError, ImageFormatError } from '../../src/backends/block/backend.js';
import { type GzipProgress, loadGzipImage } from '../../src/backends/block/gzip.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { diffBytes, pattern, read, S_OK } from '../../src/testing/index.js';
import { TestDriver } from '../../src/testing/index.js';

const MiB = 1 << 20;

/** 4 MiB: data, a 2 MiB hole of zeros, data. */
function image(): Uint8Array {
  const img = new Uint8Array(4 * MiB);
  img.set(pattern(MiB, 1), 0);
  img.set(pattern(MiB - 100, 2), 3 * MiB);
  return img;
}

async function* pieces(b: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < b.length; at += size) yield b.subarray(at, at + size);
}

describe('gzip image loader', () => {
  it('streams an image into a sparse MemoryDisk, reporting progress', async () => {
    const img = image();
    const gz = new Uint8Array(gzipSync(img));
    const seen: GzipProgress[] = [];
    const disk = await loadGzipImage(pieces(gz, 10_000), { onProgress: (p) => seen.push(p), totalCompressed: gz.length });
    expect(disk.size).toBe(img.length);
    const back = new Uint8Array(img.length);
    disk.read(0, back);
    expect(diffBytes(back, img)).toBe('equal');
    expect(disk.allocatedBytes).toBe(2 * MiB); // the hole and the zero tail stay unallocated
    expect(seen.length).toBeGreaterThan(5);
    expect(seen.at(-1)).toEqual({ compressedBytes: gz.length, totalCompressed: gz.length, bytes: img.length, done: true });
    for (let i = 1; i < seen.length; i++) {
      expect(seen[i]!.compressedBytes).toBeGreaterThanOrEqual(seen[i - 1]!.compressedBytes);
      expect(seen[i]!.bytes).toBeGreaterThanOrEqual(seen[i - 1]!.bytes);
    }
  });

  it('loads from one buffer, rounds the size up to a sector, and serves it through the device', async () => {
    const img = pattern(MiB + 300, 3);
    const disk = await loadGzipImage(new Uint8Array(gzipSync(img)));
    expect(disk.size).toBe(MiB + 512);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const r = await read(drv.queues[0]!, 2048, 512);
    expect(r.status).toBe(S_OK);
    const want = new Uint8Array(512);
    want.set(img.subarray(MiB));
    expect(r.data).toEqual(want);
  });

  it('reads a WHATWG ReadableStream (a fetch body)', async () => {
    const img = image();
    const gz = new Uint8Array(gzipSync(img));
    const body = new Response(gz).body!;
    const disk = await loadGzipImage(body);
    const back = new Uint8Array(img.length);
    disk.read(0, back);
    expect(diffBytes(back, img)).toBe('equal');
  });

  it('refuses data that is not gzip, corrupt or truncated with ImageFormatError', async () => {
    const gz = new Uint8Array(gzipSync(pattern(200_000, 4)));
    await expect(loadGzipImage(pattern(1000, 5))).rejects.toBeInstanceOf(ImageFormatError);
    await expect(loadGzipImage(gz.subarray(0, gz.length - 5000))).rejects.toBeInstanceOf(ImageFormatError);
    await expect(loadGzipImage(pieces(gz.subarray(0, 1000), 100))).rejects.toBeInstanceOf(ImageFormatError);
    const corrupt = gz.slice();
    for (let i = 100; i < 200; i++) corrupt[i] = 0xff;
    await expect(loadGzipImage(corrupt)).rejects.toBeInstanceOf(ImageFormatError);
    await expect(loadGzipImage(new Uint8Array(0))).rejects.toBeInstanceOf(ImageFormatError);
  });

  it('refuses an image cut inside its 8-byte trailer, whole or streamed in small pieces', async () => {
    const gz = new Uint8Array(gzipSync(pattern(200_000, 6)));
    for (const cut of [1, 4, 7, 8]) {
      await expect(loadGzipImage(gz.subarray(0, gz.length - cut))).rejects.toThrow(/truncated or corrupt/);
      await expect(loadGzipImage(pieces(gz.subarray(0, gz.length - cut), 3))).rejects.toThrow(/truncated or corrupt/);
    }
    const wrongSize = gz.slice();
    wrongSize[wrongSize.length - 1]! ^= 1;
    await expect(loadGzipImage(wrongSize)).rejects.toBeInstanceOf(ImageFormatError);
    expect((await loadGzipImage(pieces(gz, 3))).size).toBe(Math.ceil(200_000 / 512) * 512);
  });

  it('stops at maxSize', async () => {
    const gz = new Uint8Array(gzipSync(new Uint8Array(8 * MiB)));
    await expect(loadGzipImage(gz, { maxSize: MiB })).rejects.toBeInstanceOf(BlockError);
  });
});
