/**
 * HttpDisk in Node (fetch and crypto.subtle are there): chunk files made by `storvm image chunk`
 * and Range requests, verified by hash, cached so a second open fetches nothing, fetched several
 * at once with readahead, images above 2 GiB, and every bad case a clear error.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockIoError } from '../../src/backends/block/backend.js';
import { ImageError } from '../../src/browser/errors.js';
import { type ChunkCache, checkManifest, HttpDisk } from '../../src/browser/http-disk.js';
import { main } from '../../src/node/cli.js';
import { diffBytes, pattern } from '../../src/testing/index.js';

const MiB = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), 'storvm-httpdisk-'));
let server: Server;
let base = '';
const hits = new Map<string, number>();
/** Paths answered with other bytes than the file's, or a status. */
const overrides = new Map<string, Uint8Array | number>();
let noRanges = false;

function image(): Uint8Array {
  const img = new Uint8Array(3 * MiB + 4096);
  img.set(pattern(MiB, 1), 0);
  img.set(pattern(MiB, 1), MiB); // the same chunk twice: stored once
  img.set(pattern(4096, 2), 3 * MiB); // a short last chunk; chunk 2 stays zeros
  return img;
}

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { write: (s) => (out += String(s)) }, { write: (s) => (err += String(s)) });
  return { code, out, err };
}

class MapCache implements ChunkCache {
  m = new Map<string, Uint8Array>();
  async get(h: string) {
    return this.m.get(h);
  }
  async put(h: string, b: Uint8Array) {
    this.m.set(h, b.slice());
  }
}

async function whole(d: HttpDisk): Promise<Uint8Array> {
  const out = new Uint8Array(d.size);
  // In pieces of a sector to a few chunks, as a guest reads.
  for (let at = 0, i = 0; at < d.size; i++) {
    const n = Math.min(d.size - at, [512, 4096, 700 * 1024, 2 * MiB][i % 4]!);
    await d.read(at, out.subarray(at, at + n));
    at += n;
  }
  return out;
}

beforeAll(async () => {
  writeFileSync(join(dir, 'disk.img'), image());
  writeFileSync(join(dir, 'disk.img.gz'), gzipSync(image()));
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const o = overrides.get(path);
    if (typeof o === 'number') return void res.writeHead(o).end();
    let body: Uint8Array;
    try {
      body = o ?? readFileSync(normalize(join(dir, path)));
    } catch {
      return void res.writeHead(404).end();
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (m && !noRanges) {
      const a = Number(m[1]);
      const b = Math.min(Number(m[2]), body.length - 1);
      res.writeHead(206, { 'content-range': `bytes ${a}-${b}/${body.length}`, 'content-length': b - a + 1 });
      return void res.end(body.subarray(a, b + 1));
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const r = await cli('image', 'chunk', join(dir, 'disk.img.gz'), join(dir, 'c'), '--chunk-size', '1024');
  expect(r.code, r.err).toBe(0);
  expect(r.out).toMatch(/3149824 bytes in 4 chunks of 1024 KiB \(1 all zeros, not stored; 2 chunk files\)/);
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('storvm image chunk', () => {
  it('writes SHA-256-named chunks and a manifest that checks out', () => {
    const m = checkManifest(JSON.parse(readFileSync(join(dir, 'c/manifest.json'), 'utf8')));
    expect(m.chunks[0]).toBe(m.chunks[1]);
    expect(m.chunks[2]).toBeNull();
    for (const h of m.chunks) if (h) expect(createHash('sha256').update(readFileSync(join(dir, 'c/chunks', h))).digest('hex')).toBe(h);
  });

  it('refuses bad input with one line and status 2', async () => {
    expect((await cli('image', 'chunk', join(dir, 'nope.img'), join(dir, 'x'))).err).toMatch(/^storvm: image .*nope\.img: no such file\n$/);
    expect((await cli('image', 'chunk', join(dir, 'disk.img'), join(dir, 'x'), '--chunk-size', '3')).code).toBe(2);
    expect((await cli('image', 'slice')).code).toBe(2);
  });
});

describe('HttpDisk', () => {
  it('reads chunk files exactly, fetching each distinct chunk once, and a second open from the cache fetches nothing', async () => {
    const cache = new MapCache();
    const d = await HttpDisk.open({ manifestUrl: `${base}/c/manifest.json`, cache });
    expect(d.size).toBe(image().length);
    expect(diffBytes(await whole(d), image())).toBe('equal');
    expect(d.fetched).toBe(2); // chunk 1 is chunk 0's file, chunk 2 is zeros
    const again = await HttpDisk.open({ manifestUrl: `${base}/c/manifest.json`, cache });
    const before = [...hits.entries()].filter(([p]) => p.startsWith('/c/chunks/')).reduce((n, [, k]) => n + k, 0);
    expect(diffBytes(await whole(again), image())).toBe('equal');
    const after = [...hits.entries()].filter(([p]) => p.startsWith('/c/chunks/')).reduce((n, [, k]) => n + k, 0);
    expect(after - before).toBe(0);
    expect(again.fetched).toBe(0);
  });

  it('reads by Range requests, with readahead for a sequential reader, verified by a manifest when given', async () => {
    const d = await HttpDisk.open({ imageUrl: `${base}/disk.img`, chunkSize: 256 * 1024, readahead: 3 });
    const a = new Uint8Array(4096);
    await d.read(0, a);
    await d.read(4096, a);
    await new Promise((r) => setTimeout(r, 100));
    expect(d.fetched).toBeGreaterThanOrEqual(4); // chunk 0, then 1..3 ahead
    expect(diffBytes(await whole(d), image())).toBe('equal');
    const verified = await HttpDisk.open({ imageUrl: `${base}/disk.img`, manifestUrl: `${base}/c/manifest.json` });
    expect(diffBytes(await whole(verified), image())).toBe('equal');
  });

  it('fails a read of a corrupt or missing chunk with IOERR and says which, and the rest still reads', async () => {
    const m = checkManifest(JSON.parse(readFileSync(join(dir, 'c/manifest.json'), 'utf8')));
    const errors: string[] = [];
    overrides.set(`/c/chunks/${m.chunks[3]}`, pattern(4096, 99));
    const d = await HttpDisk.open({ manifestUrl: `${base}/c/manifest.json`, onError: (e) => errors.push(e) });
    await expect(Promise.resolve(d.read(3 * MiB, new Uint8Array(512)))).rejects.toBeInstanceOf(BlockIoError);
    expect(errors[0]).toMatch(/^chunk 3 is corrupt: its SHA-256 is [0-9a-f]{12}…, the manifest says [0-9a-f]{12}…$/);
    const first = new Uint8Array(4096);
    await d.read(0, first);
    expect(diffBytes(first, pattern(4096, 1))).toBe('equal');
    overrides.set(`/c/chunks/${m.chunks[3]}`, 404);
    const d2 = await HttpDisk.open({ manifestUrl: `${base}/c/manifest.json`, onError: (e) => errors.push(e) });
    await expect(Promise.resolve(d2.read(3 * MiB, new Uint8Array(512)))).rejects.toThrow(/chunk 3: .*HTTP 404/);
    overrides.delete(`/c/chunks/${m.chunks[3]}`);
  });

  it('refuses a missing or bad manifest and a server without Range, as ImageErrors', async () => {
    const bad = async (o: Parameters<typeof HttpDisk.open>[0]) => {
      try {
        await HttpDisk.open(o);
      } catch (e) {
        expect(e).toBeInstanceOf(ImageError);
        return (e as ImageError).message;
      }
      throw new Error('opened');
    };
    expect(await bad({ manifestUrl: `${base}/none/manifest.json` })).toMatch(/HTTP 404/);
    overrides.set('/bad/manifest.json', new TextEncoder().encode('{"format":"storvm-chunks","version":1,"size":10,"chunkSize":4096,"chunks":[]}'));
    expect(await bad({ manifestUrl: `${base}/bad/manifest.json` })).toMatch(/chunk list does not match/);
    noRanges = true;
    expect(await bad({ imageUrl: `${base}/disk.img` })).toMatch(/does not answer Range requests .*storvm image chunk/);
    noRanges = false;
  });

  it('serves an image above 2 GiB without holding it whole', async () => {
    const size = 3 * 2 ** 30 + 4096;
    const cs = 1 << 20;
    const last = pattern(4096, 5);
    const h = createHash('sha256').update(last).digest('hex');
    const chunks: Array<string | null> = new Array(Math.ceil(size / cs)).fill(null);
    chunks[chunks.length - 1] = h;
    overrides.set('/big/manifest.json', new TextEncoder().encode(JSON.stringify({ format: 'storvm-chunks', version: 1, size, chunkSize: cs, chunks })));
    overrides.set(`/big/chunks/${h}`, last);
    const d = await HttpDisk.open({ manifestUrl: `${base}/big/manifest.json` });
    const got = new Uint8Array(8192);
    await d.read(size - 8192, got);
    expect(got.subarray(0, 4096).every((x) => x === 0)).toBe(true);
    expect(diffBytes(got.subarray(4096), last)).toBe('equal');
  });
});
