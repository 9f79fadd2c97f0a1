import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BlockError, ImageFormatError, ReadOnlyError, UnsupportedFeatureError } from '../../src/backends/block/backend.js';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { OverlayDisk } from '../../src/backends/block/overlay-disk.js';
import { Qcow2Disk } from '../../src/backends/block/qcow2.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { diffBytes, pattern, read, S_OK, write } from '../../src/testing/index.js';
import { TestDriver } from '../../src/testing/index.js';

const dir = new URL('../fixtures/qcow2/', import.meta.url);
const fixture = (name: string): MemoryDisk => new MemoryDisk(new Uint8Array(readFileSync(new URL(name, dir))), { readOnly: true });

/** The raw image the fixtures were made from (see test/fixtures/qcow2/make-images.sh). */
function expected(): Uint8Array {
  const layout = JSON.parse(readFileSync(new URL('layout.json', dir), 'utf8')) as {
    size: number;
    regions: Array<{ offset: number; length: number; seed: number }>;
  };
  const img = new Uint8Array(layout.size);
  for (const r of layout.regions) {
    for (let i = 0; i < r.length; i++) img[r.offset + i] = (i * 7 + r.seed * 31 + (i >> 9)) & 0xff;
  }
  return img;
}

async function contents(d: Qcow2Disk | OverlayDisk): Promise<Uint8Array> {
  const out = new Uint8Array(d.size).fill(0xcc); // so bytes a read leaves alone show
  // In odd pieces, so reads start and end inside clusters.
  for (let at = 0; at < out.length; at += 12_800) await d.read(at, out.subarray(at, Math.min(out.length, at + 12_800)));
  return out;
}

const openBacking = (name: string) => Qcow2Disk.open(fixture(name));

describe('Qcow2Disk', () => {
  for (const name of ['plain-v3.qcow2', 'plain-v2.qcow2', 'compressed.qcow2', 'compressed-64k.qcow2']) {
    it(`reads ${name} exactly as the raw image it was made from`, async () => {
      const disk = await Qcow2Disk.open(fixture(name));
      expect(disk.size).toBe(4 * 1024 * 1024);
      expect(disk.version).toBe(name.includes('v2') ? 2 : 3);
      expect(diffBytes(await contents(disk), expected())).toBe('equal');
      const whole = new Uint8Array(disk.size).fill(0xcc); // one read: contiguous clusters merged
      await disk.read(0, whole);
      expect(diffBytes(whole, expected())).toBe('equal');
      const kinds = new Set<string>();
      for (let c = 0; c < disk.size / disk.clusterSize; c++) kinds.add(await disk.clusterKind(c));
      expect(kinds.has(name.startsWith('compressed') ? 'compressed' : 'data')).toBe(true);
      expect(kinds.has('unallocated')).toBe(true);
    });
  }

  it('reads clusters that are contiguous in the file with one file read', async () => {
    const file = fixture('plain-v3.qcow2');
    let reads = 0;
    const counting = { size: file.size, readOnly: true, read: (o: number, d: Uint8Array) => (reads++, file.read(o, d)), write() {}, flush() {} };
    const disk = await Qcow2Disk.open(counting);
    const buf = new Uint8Array(65536);
    await disk.read(0, buf); // 16 data clusters of 4 KiB, written in order by qemu-img convert
    expect(diffBytes(buf, expected().subarray(0, 65536))).toBe('equal');
    reads = 0;
    await disk.read(0, buf);
    expect(reads).toBe(1); // L2 table cached, one read for the run
  });

  it('reads unallocated clusters from the backing image and honours zero clusters over it', async () => {
    const names: string[] = [];
    const disk = await Qcow2Disk.open(fixture('child.qcow2'), {
      openBacking: (n, f) => {
        names.push(`${n}:${f}`);
        return openBacking(n);
      },
    });
    expect(names).toEqual(['plain-v3.qcow2:qcow2']);
    expect(disk.backingFile).toBe('plain-v3.qcow2');
    expect(await disk.clusterKind(0)).toBe('zero');
    const want = expected();
    want.fill(0, 0, 4096);
    want.fill(0xab, 512 * 1024, 520 * 1024);
    expect(diffBytes(await contents(disk), want)).toBe('equal');
  });

  it('refuses an image with a backing file when no openBacking is given', async () => {
    await expect(Qcow2Disk.open(fixture('child.qcow2'))).rejects.toThrow(/backing file "plain-v3.qcow2"/);
    await expect(Qcow2Disk.open(fixture('child.qcow2'))).rejects.toBeInstanceOf(BlockError);
  });

  const refused: Array<[string, RegExp]> = [
    ['encrypted.qcow2', /unsupported feature: encryption \(LUKS\)/],
    ['external-data.qcow2', /unsupported feature: external data file/],
    ['ext-l2.qcow2', /unsupported feature: extended L2 entries/],
    ['zstd.qcow2', /unsupported feature: zstd compression/],
  ];
  for (const [name, message] of refused) {
    it(`refuses ${name} on open, naming the feature`, async () => {
      const err = await Qcow2Disk.open(fixture(name)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsupportedFeatureError);
      expect((err as Error).message).toMatch(message);
    });
  }

  it('refuses malformed headers with ImageFormatError', async () => {
    const good = new Uint8Array(readFileSync(new URL('plain-v3.qcow2', dir)));
    const patched = (at: number, bytes: number[]): MemoryDisk => {
      const b = good.slice();
      b.set(bytes, at);
      return new MemoryDisk(b);
    };
    await expect(Qcow2Disk.open(patched(0, [0, 0, 0, 0]))).rejects.toThrow(/bad magic/);
    await expect(Qcow2Disk.open(patched(4, [0, 0, 0, 4]))).rejects.toThrow(/version 4/);
    await expect(Qcow2Disk.open(patched(20, [0, 0, 0, 30]))).rejects.toThrow(/cluster_bits/);
    await expect(Qcow2Disk.open(patched(36, [0, 0, 0, 0]))).rejects.toThrow(/L1 table/); // l1_size 0
    await expect(Qcow2Disk.open(patched(36, [0x10, 0, 0, 0]))).rejects.toThrow(/L1 table/); // huge
    await expect(Qcow2Disk.open(patched(76, [0, 0, 0, 2]))).rejects.toThrow(/corrupt/);
    await expect(Qcow2Disk.open(patched(76, [0, 0, 0, 0x20]))).rejects.toThrow(/unknown incompatible feature/);
    await expect(Qcow2Disk.open(new MemoryDisk(good.subarray(0, 50)))).rejects.toBeInstanceOf(ImageFormatError);
  });

  it('turns a damaged L2 entry into an I/O error for the guest, not a crash', async () => {
    const b = new Uint8Array(readFileSync(new URL('plain-v3.qcow2', dir)));
    const disk = await Qcow2Disk.open(new MemoryDisk(b.slice()));
    // Point guest cluster 0 far past the end of the file.
    const l1 = new DataView(b.buffer, b.byteOffset).getUint32(44);
    const l2 = new DataView(b.buffer, b.byteOffset).getUint32(l1 + 4) & ~0x1ff;
    new DataView(b.buffer, b.byteOffset).setUint32(l2 + 4, 0x7000_0000);
    const broken = await Qcow2Disk.open(new MemoryDisk(b));
    const drv = new TestDriver(new VirtioBlk(broken)).init();
    expect((await read(drv.queues[0]!, 0, 4096)).status).toBe(1);
    expect((await read(drv.queues[0]!, 2048, 4096)).status).toBe(S_OK);
    expect(() => disk.write()).toThrow(ReadOnlyError);
  });

  it('is writable behind an OverlayDisk, through the device', async () => {
    const q2 = await Qcow2Disk.open(fixture('compressed.qcow2'));
    const drv = new TestDriver(new VirtioBlk(new OverlayDisk(q2))).init();
    const q = drv.queues[0]!;
    expect((await write(q, 10, pattern(2048, 9))).status).toBe(S_OK);
    const r = await read(q, 0, 65536);
    const want = expected().subarray(0, 65536).slice();
    want.set(pattern(2048, 9), 5120);
    expect(r.data).toEqual(want);
  });
});
