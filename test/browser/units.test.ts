/**
 * The pieces of storvm/browser that need no browser, run in Node (which has Blob, File, fetch,
 * ReadableStream and MessageChannel): BlobDisk under a real VirtioBlk, image loading from every
 * kind of source and every kind of bad image, the share operations, the typed errors' trip across
 * the worker boundary, and the host's yield.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockRangeError, ReadOnlyError } from '../../src/backends/block/backend.js';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { OverlayDisk } from '../../src/backends/block/overlay-disk.js';
import { MemFs } from '../../src/backends/fs/mem-fs.js';
import { BlobDisk } from '../../src/browser/blob-disk.js';
import { fromWire, ImageError, ShareError, toWire, VmError } from '../../src/browser/errors.js';
import { browserHost, messageChannelYield } from '../../src/browser/host.js';
import { loadDisk, loadInitrd, loadKernel } from '../../src/browser/images.js';
import type { ProgressInfo, WireDisk } from '../../src/browser/protocol.js';
import { listShare, putFile, readFile, removeFile } from '../../src/browser/share.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { diffBytes, pattern, read, S_IOERR, S_OK, write } from '../../src/testing/index.js';
import { TestDriver } from '../../src/testing/index.js';

const MiB = 1 << 20;
const GI = new URL('../../guest-images/', import.meta.url);
const none = () => {};

async function caught(p: Promise<unknown>): Promise<ImageError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ImageError) return e;
    throw e;
  }
  throw new Error('expected an ImageError');
}

const disk = (source: NonNullable<WireDisk["source"]>, more: Partial<WireDisk> = {}): WireDisk & { source: NonNullable<WireDisk["source"]> } => ({ source, name: more.name ?? 'test.img', readOnly: false, ...more });

describe('BlobDisk', () => {
  it('serves a VirtioBlk from a Blob, reading only what the guest asks, read-only', async () => {
    const bytes = pattern(2 * MiB, 3);
    let sliced = 0;
    class CountingBlob extends Blob {
      override slice(start?: number, end?: number): Blob {
        sliced += (end ?? this.size) - (start ?? 0);
        return super.slice(start, end);
      }
    }
    const d = new BlobDisk(new CountingBlob([bytes as Uint8Array<ArrayBuffer>]));
    expect(d.size).toBe(2 * MiB);
    expect(() => d.write()).toThrow(ReadOnlyError);
    await expect(d.read(2 * MiB - 100, new Uint8Array(200))).rejects.toBeInstanceOf(BlockRangeError);
    const drv = new TestDriver(new VirtioBlk(d));
    drv.init();
    const r = await read(drv.queues[0]!, 100, 8192);
    expect(r.status).toBe(S_OK);
    expect(diffBytes(r.data, bytes.subarray(100 * 512, 100 * 512 + 8192))).toBe('equal');
    expect(sliced).toBe(8192);
    expect((await write(drv.queues[0]!, 0, new Uint8Array(512))).status).toBe(S_IOERR);
  });

  it('turns a Blob that can no longer be read into IOERR for that request', async () => {
    class GoneBlob extends Blob {
      override slice(): Blob {
        return { arrayBuffer: () => Promise.reject(new Error('NotReadableError: the file changed')) } as unknown as Blob;
      }
    }
    const drv = new TestDriver(new VirtioBlk(new BlobDisk(new GoneBlob([new Uint8Array(MiB)]))));
    drv.init();
    expect((await read(drv.queues[0]!, 0, 4096)).status).toBe(S_IOERR);
  });
});

describe('loading images in the worker', () => {
  let server: ReturnType<typeof createServer>;
  let base = '';
  const routes = new Map<string, { status?: number; body?: Uint8Array; length?: number }>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      const r = routes.get(req.url ?? '') ?? { status: 404 };
      res.writeHead(r.status ?? 200, r.length !== undefined ? { 'content-length': r.length } : {});
      if (r.length !== undefined && r.body === undefined) res.write(new Uint8Array(10)); // and never finish
      else res.end(r.body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('loads the committed kernel (gunzipped, with the RISC-V Image magic) and initramfs, with progress', async () => {
    const seen: ProgressInfo[] = [];
    const kernel = await loadKernel(new Blob([readFileSync(new URL('Image.gz', GI))]), 64 * MiB, 256 * MiB, (p) => seen.push(p));
    expect(new TextDecoder().decode(kernel.subarray(56, 60))).toBe('RSC\x05');
    expect(seen.some((p) => p.phase === 'unpack')).toBe(true);
    expect(seen.at(-1)).toMatchObject({ what: 'kernel', phase: 'ready', bytes: kernel.length });
    const initrd = await loadInitrd(readFileSync(new URL('initramfs.cpio.gz', GI)), 64 * MiB, 256 * MiB, none);
    expect(initrd[0]).toBe(0x1f); // passed on compressed; the kernel unpacks it
  });

  it('refuses a truncated or empty kernel or initramfs, naming it', async () => {
    const gz = readFileSync(new URL('Image.gz', GI));
    const e = await caught(loadKernel(gz.subarray(0, gz.length - 100), 64 * MiB, 256 * MiB, none));
    expect(e.code).toBe('format');
    expect(e.message).toMatch(/kernel: corrupt or truncated gzip/);
    expect((await caught(loadInitrd(new Uint8Array(0), MiB, MiB, none))).code).toBe('format');
    const ird = readFileSync(new URL('initramfs.cpio.gz', GI));
    expect((await caught(loadInitrd(ird.subarray(0, ird.length - 3), 64 * MiB, 256 * MiB, none))).code).toBe('format');
    // A kernel that unpacks to more than guest RAM can't boot: refused before it is held whole.
    expect((await caught(loadKernel(gz, 64 * MiB, MiB, none))).code).toBe('too-large');
  });

  it('opens raw disks from bytes (written in place) and from Blobs (lazily, with a copy-on-write overlay)', async () => {
    const bytes = pattern(MiB, 5);
    const a = await loadDisk(disk(bytes), 'disk 0', 64 * MiB, none);
    expect(a.format).toBe('raw');
    expect(a.disk).toBeInstanceOf(MemoryDisk);
    const blob = new Blob([bytes as Uint8Array<ArrayBuffer>]);
    const b = await loadDisk(disk(blob), 'disk 1', 64 * MiB, none);
    expect(b.disk).toBeInstanceOf(OverlayDisk);
    await b.disk.write(512, new Uint8Array(512).fill(9));
    const back = new Uint8Array(1024);
    await b.disk.read(0, back);
    expect(back.subarray(512).every((x) => x === 9)).toBe(true);
    expect(new Uint8Array(await blob.arrayBuffer())[512]).toBe(bytes[512]); // the file is untouched
    const ro = await loadDisk(disk(blob, { readOnly: true }), 'disk 2', 64 * MiB, none);
    expect(ro.disk).toBeInstanceOf(BlobDisk);
    // A Blob larger than the in-memory limit is fine: it is never held whole.
    expect((await loadDisk(disk(blob), 'disk 3', 1024, none)).disk.size).toBe(MiB);
  });

  it('streams .gz disks (from a Blob, a stream or a URL) with progress, and opens qcow2', async () => {
    const bytes = pattern(3 * MiB, 7);
    const gz = gzipSync(bytes);
    const seen: ProgressInfo[] = [];
    routes.set('/d.img.gz', { body: gz });
    for (const src of [new Blob([gz]), new Blob([gz]).stream(), `${base}/d.img.gz`]) {
      const d = await loadDisk(disk(src as NonNullable<WireDisk['source']>), 'disk 0', 64 * MiB, (p) => seen.push(p));
      expect(d.format).toBe('gzip');
      const back = new Uint8Array(d.disk.size);
      await d.disk.read(0, back);
      expect(diffBytes(back, bytes)).toBe('equal');
    }
    expect(seen.some((p) => p.phase === 'unpack')).toBe(true);
    const q = await loadDisk(disk(new Blob([readFileSync(new URL('../fixtures/qcow2/plain-v3.qcow2', import.meta.url))])), 'disk 0', 64 * MiB, none);
    expect(q.format).toBe('qcow2');
    expect(q.disk.size).toBe(4 * MiB);
    expect(q.disk).toBeInstanceOf(OverlayDisk);
  });

  it('gives each bad disk a typed error: HTTP status, network, truncated gzip, bad qcow2, empty, too large', async () => {
    routes.set('/gone', { status: 404 });
    routes.set('/oops', { status: 500 });
    const gz = gzipSync(pattern(MiB, 1));
    routes.set('/cut.gz', { body: gz.subarray(0, gz.length - 2) });
    routes.set('/huge', { length: 512 * MiB });
    routes.set('/empty', { body: new Uint8Array(0) });
    const cases: Array<[NonNullable<WireDisk['source']>, string, RegExp]> = [
      [`${base}/gone`, 'http', /HTTP 404/],
      [`${base}/oops`, 'http', /HTTP 500/],
      ['http://127.0.0.1:1/nothing-listens', 'network', /could not fetch/],
      [`${base}/cut.gz`, 'format', /truncated or corrupt/],
      [new Blob([gz.subarray(0, 100)]), 'format', /unexpected EOF|truncated/],
      [new Uint8Array([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 9]), 'format', /qcow2/],
      [`${base}/empty`, 'format', /empty/],
      [new Blob([]), 'format', /empty/],
      [`${base}/huge`, 'too-large', /512 MiB is more than this page may hold in memory \(64 MiB\)/],
      [new Uint8Array(65 * MiB), 'too-large', /more than this page may hold/],
    ];
    for (const [src, code, msg] of cases) {
      const e = await caught(loadDisk(disk(src, { name: 'the-disk' }), 'disk 0', 64 * MiB, none));
      expect(e.code, String(src)).toBe(code);
      expect(e.message).toMatch(/^the-disk: /);
      expect(e.message).toMatch(msg);
      expect(e.subject).toBe('the-disk');
    }
  });
});

describe('share operations on a MemFs', () => {
  it('puts files in (making directories), replaces, lists, reads back and removes', async () => {
    const fs = new MemFs();
    await putFile(fs, 'a/b/c.txt', new TextEncoder().encode('one'));
    await putFile(fs, '/top.bin', pattern(70_000, 2));
    await putFile(fs, 'a/b/c.txt', new TextEncoder().encode('replaced'));
    expect(new TextDecoder().decode(await readFile(fs, 'a/b/c.txt'))).toBe('replaced');
    expect(diffBytes(await readFile(fs, 'top.bin'), pattern(70_000, 2))).toBe('equal');
    expect((await listShare(fs)).map((e) => [e.path, e.type, e.size])).toEqual([
      ['a', 'dir', 0],
      ['a/b', 'dir', 0],
      ['a/b/c.txt', 'file', 8],
      ['top.bin', 'file', 70_000],
    ]);
    await removeFile(fs, 'a/b/c.txt');
    await expect(readFile(fs, 'a/b/c.txt')).rejects.toThrow(ShareError);
    await removeFile(fs, 'a/b');
    expect((await listShare(fs)).map((e) => e.path)).toEqual(['a', 'top.bin']);
  });

  it('refuses paths that climb out, name nothing, or run through a file; and a full share', async () => {
    const fs = new MemFs({ capacity: 1000 });
    await putFile(fs, 'f', new Uint8Array(1));
    for (const p of ['../x', 'a/../../x', '', '/', 'f/inside', 'nul\0name']) await expect(putFile(fs, p, new Uint8Array(1)), p).rejects.toThrow(ShareError);
    await expect(putFile(fs, 'big', new Uint8Array(5000))).rejects.toThrow(/big: write failed|only/);
    await expect(readFile(fs, 'missing')).rejects.toThrow(/no such file/);
  });
});

describe('errors across the worker boundary', () => {
  it('come back as the same classes with their fields', () => {
    const i = fromWire(structuredClone(toWire(new ImageError('x.img: HTTP 404', 'http', 'x.img'))));
    expect(i).toBeInstanceOf(ImageError);
    expect(i).toMatchObject({ message: 'x.img: HTTP 404', code: 'http', subject: 'x.img' });
    expect(fromWire(structuredClone(toWire(new ShareError('gone', 'a.txt'))))).toBeInstanceOf(ShareError);
    const v = fromWire(structuredClone(toWire(new RangeError('memory'))));
    expect(v).toBeInstanceOf(VmError);
    expect(v.message).toBe('memory');
  });
});

describe('the browser MachineHost', () => {
  it('yields through a MessageChannel: resolves in order and lets other messages in between', async () => {
    const y = messageChannelYield();
    const order: string[] = [];
    const other = new MessageChannel();
    other.port1.onmessage = () => order.push('message');
    const a = y().then(() => order.push('a'));
    other.port2.postMessage(0);
    const b = y().then(() => order.push('b'));
    await Promise.all([a, b]);
    await new Promise((r) => setTimeout(r, 10));
    expect(order.filter((x) => x !== 'message')).toEqual(['a', 'b']);
    expect(order).toContain('message');
    other.port1.close();
  });

  it('goes through the event loop at most every yieldEveryMs; slices in between chain on microtasks', async () => {
    const seen: number[] = [];
    const other = new MessageChannel();
    other.port1.onmessage = (e) => seen.push(e.data as number);
    const slow = browserHost({ yieldEveryMs: 60_000 });
    other.port2.postMessage(1);
    for (let i = 0; i < 100; i++) await slow.yield();
    expect(seen).toEqual([]); // no task ran: the message is still queued
    const every = browserHost({ yieldEveryMs: 0 });
    await every.yield();
    await every.yield();
    expect(seen).toEqual([1]);
    other.port1.close();
  });
});
