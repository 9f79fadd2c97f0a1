import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OverlayDisk } from '../../src/backends/block/overlay-disk.js';
import { Qcow2Disk } from '../../src/backends/block/qcow2.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { detectImageFormat, openDiskImage } from '../../src/node/image-disk.js';
import { FileDisk } from '../../src/node/file-disk.js';
import { pattern, read, S_OK, write } from '../../src/testing/index.js';
import { TestDriver } from '../../src/testing/index.js';

const fixtures = fileURLToPath(new URL('../fixtures/qcow2/', import.meta.url));
let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'storvm-images-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('openDiskImage (Node)', () => {
  it('detects raw, gzip and qcow2 by their first bytes', async () => {
    await writeFile(join(dir, 'r.img'), pattern(4096, 1));
    await writeFile(join(dir, 'g.img.gz'), gzipSync(pattern(4096, 1)));
    expect(await detectImageFormat(join(dir, 'r.img'))).toBe('raw');
    expect(await detectImageFormat(join(dir, 'g.img.gz'))).toBe('gzip');
    expect(await detectImageFormat(join(fixtures, 'child.qcow2'))).toBe('qcow2');
  });

  it('opens a qcow2 child with its backing file resolved next to it, writable through an overlay', async () => {
    const img = await openDiskImage(join(fixtures, 'child.qcow2'));
    expect(img.format).toBe('qcow2');
    expect(img.disk).toBeInstanceOf(OverlayDisk);
    const drv = new TestDriver(new VirtioBlk(img.disk)).init();
    const q = drv.queues[0]!;
    expect((await read(q, 1024, 8192)).data).toEqual(new Uint8Array(8192).fill(0xab));
    expect((await write(q, 0, pattern(512, 2))).status).toBe(S_OK);
    expect((await read(q, 0, 512)).data).toEqual(pattern(512, 2));
    await img.close();
    const ro = await openDiskImage(join(fixtures, 'child.qcow2'), { readOnly: true });
    expect(ro.disk).toBeInstanceOf(Qcow2Disk);
    const buf = new Uint8Array(512);
    await ro.disk.read(0, buf);
    expect(buf).toEqual(new Uint8Array(512)); // the zero cluster; the overlay write is gone
    await ro.close();
  });

  it('streams a gzip image with progress, and opens a raw file in place', async () => {
    const data = pattern(3 << 20, 3);
    await writeFile(join(dir, 'disk.img.gz'), gzipSync(data));
    let last = 0;
    const img = await openDiskImage(join(dir, 'disk.img.gz'), { onProgress: (p) => (last = p.bytes) });
    expect(img.format).toBe('gzip');
    expect(last).toBe(data.length);
    const buf = new Uint8Array(4096);
    await img.disk.read(1 << 20, buf);
    expect(buf).toEqual(data.subarray(1 << 20, (1 << 20) + 4096));
    await writeFile(join(dir, 'raw.img'), data);
    const raw = await openDiskImage(join(dir, 'raw.img'));
    expect(raw.disk).toBeInstanceOf(FileDisk);
    await raw.close();
  });

  it('fails cleanly when a backing file is missing', async () => {
    const { readFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'orphan.qcow2'), await readFile(join(fixtures, 'child.qcow2')));
    await expect(openDiskImage(join(dir, 'orphan.qcow2'))).rejects.toThrow(/ENOENT/);
  });
});
