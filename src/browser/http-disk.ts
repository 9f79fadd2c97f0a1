/**
 * A disk image fetched lazily over HTTP, a chunk at a time, so a guest boots before (or without)
 * the whole image arriving. Two layouts:
 *
 * - **Chunk files**: a `manifest.json` written by `storvm image chunk IMAGE OUTDIR` lists the size,
 *   the chunk size and each chunk's SHA-256; chunk `i` is the file `chunks/<sha256>` beside it
 *   (identical chunks are stored once; all-zero chunks are not stored at all). Works on any
 *   static host.
 * - **Range requests**: any image URL on a server that answers `Range:` with 206 (checked on open).
 *   With a manifest as well, its hashes verify the ranges.
 *
 * Every chunk with a known hash is verified before the guest sees a byte of it, and a verified
 * chunk is kept in a cache (the worker passes one in OPFS), so the second boot fetches nothing.
 * Several chunks are fetched at once, and a sequential reader gets the next chunks ahead of time.
 * No buffer ever holds the whole disk, so images above 2 GiB work. A chunk that can't be fetched
 * or fails its hash fails the guest's read with IOERR and is reported through `onError`.
 */
import { type BlockBackend, BlockIoError, checkRange, ReadOnlyError } from '../backends/block/backend.js';
import { ImageError } from './errors.js';

export interface ChunkManifest {
  format: 'storvm-chunks';
  version: 1;
  size: number;
  chunkSize: number;
  /** SHA-256 (hex) of each chunk, or null for a chunk of zeros (no file). */
  chunks: Array<string | null>;
}

/** Where verified chunks are kept between boots, by hash. */
export interface ChunkCache {
  get(hash: string): Promise<Uint8Array | undefined>;
  put(hash: string, bytes: Uint8Array): Promise<void>;
}

export interface HttpDiskOptions {
  /** The manifest, for chunk files (or to verify ranges). */
  manifestUrl?: string;
  /** The image, for range requests. */
  imageUrl?: string;
  /** Chunk size for range requests without a manifest; default 1 MiB. */
  chunkSize?: number;
  cache?: ChunkCache;
  /** Fetches at once; default 4. */
  parallel?: number;
  /** Chunks fetched ahead of a sequential reader; default 4. */
  readahead?: number;
  /** Chunks kept in memory; default 64. */
  memoryChunks?: number;
  onError?(message: string): void;
  /** For tests: count what goes over the network. */
  fetch?: typeof fetch;
}

const HEX = /^[0-9a-f]{64}$/;

function hex(b: ArrayBuffer): string {
  return [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/** Checks a parsed manifest; throws a message naming what is wrong. */
export function checkManifest(m: unknown): ChunkManifest {
  const o = m as Partial<ChunkManifest>;
  if (typeof o !== 'object' || o === null || o.format !== 'storvm-chunks' || o.version !== 1) throw new Error('not a storvm chunk manifest (format "storvm-chunks", version 1)');
  if (!Number.isSafeInteger(o.size) || o.size! <= 0) throw new Error('manifest: bad size');
  const cs = o.chunkSize!;
  if (!Number.isInteger(cs) || cs < 4096 || cs > 64 << 20 || (cs & (cs - 1)) !== 0) throw new Error('manifest: chunkSize must be a power of two from 4 KiB to 64 MiB');
  if (!Array.isArray(o.chunks) || o.chunks.length !== Math.ceil(o.size! / cs)) throw new Error('manifest: the chunk list does not match the size');
  for (const h of o.chunks) if (h !== null && (typeof h !== 'string' || !HEX.test(h))) throw new Error('manifest: a chunk hash is not 64 hex digits');
  return o as ChunkManifest;
}

export class HttpDisk implements BlockBackend {
  readonly readOnly = true;
  /** Chunks fetched over the network since open. */
  fetched = 0;
  /** Chunks taken from the cache since open. */
  cached = 0;
  private readonly memory = new Map<number, Uint8Array>();
  private readonly pending = new Map<number, Promise<Uint8Array>>();
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  private lastChunk = -2;

  private constructor(
    readonly size: number,
    readonly chunkSize: number,
    private readonly hashes: Array<string | null> | undefined,
    private readonly chunkUrl: (i: number) => { url: string; range?: [number, number] },
    private readonly opts: HttpDiskOptions,
  ) {}

  /** Opens a chunked image (manifestUrl) or a Range-capable one (imageUrl). Errors are ImageErrors. */
  static async open(opts: HttpDiskOptions): Promise<HttpDisk> {
    const f = opts.fetch ?? fetch;
    const name = opts.manifestUrl ?? opts.imageUrl ?? '';
    const get = async (url: string, init?: RequestInit): Promise<Response> => {
      let r: Response;
      try {
        r = await f(url, init);
      } catch (e) {
        throw new ImageError(`${url}: could not fetch: ${e instanceof Error ? e.message : String(e)}`, 'network', name);
      }
      if (!r.ok) throw new ImageError(`${url}: HTTP ${r.status}${r.statusText ? ' ' + r.statusText : ''}`, 'http', name);
      return r;
    };
    let manifest: ChunkManifest | undefined;
    if (opts.manifestUrl) {
      const r = await get(opts.manifestUrl);
      try {
        manifest = checkManifest(await r.json());
      } catch (e) {
        throw new ImageError(`${opts.manifestUrl}: ${e instanceof Error ? e.message : String(e)}`, 'format', name);
      }
    }
    if (opts.imageUrl) {
      const imageUrl = opts.imageUrl;
      // One byte asks whether ranges work and how large the image is.
      const r = await get(imageUrl, { headers: { Range: 'bytes=0-0' } });
      const total = /\/(\d+)$/.exec(r.headers.get('content-range') ?? '')?.[1];
      await r.body?.cancel();
      if (r.status !== 206 || total === undefined) {
        throw new ImageError(`${imageUrl}: the server does not answer Range requests (got HTTP ${r.status}); host the image as chunk files (storvm image chunk)`, 'http', name);
      }
      const size = Number(total);
      if (!Number.isSafeInteger(size) || size <= 0) throw new ImageError(`${imageUrl}: the server gives its size as ${total} bytes`, 'format', name);
      if (manifest && manifest.size !== size) throw new ImageError(`${imageUrl}: ${size} bytes, but its manifest says ${manifest.size}`, 'format', name);
      const cs = manifest?.chunkSize ?? opts.chunkSize ?? 1 << 20;
      return new HttpDisk(size, cs, manifest?.chunks, (i) => ({ url: imageUrl, range: [i * cs, Math.min(size, (i + 1) * cs) - 1] }), opts);
    }
    if (!manifest || !opts.manifestUrl) throw new ImageError('HttpDisk: give a manifestUrl or an imageUrl', 'format', name);
    const m = manifest;
    const base = new URL('chunks/', new URL(opts.manifestUrl, typeof location !== 'undefined' ? location.href : undefined));
    return new HttpDisk(m.size, m.chunkSize, m.chunks, (i) => ({ url: new URL(m.chunks[i]!, base).href }), opts);
  }

  private async slot(): Promise<void> {
    if (this.active < (this.opts.parallel ?? 4)) {
      this.active++;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
  }

  private done(): void {
    this.active--;
    this.waiting.shift()?.();
  }

  private keep(i: number, bytes: Uint8Array): void {
    this.memory.set(i, bytes);
    const max = this.opts.memoryChunks ?? 64;
    while (this.memory.size > max) this.memory.delete(this.memory.keys().next().value as number);
  }

  private chunkLength(i: number): number {
    return Math.min(this.chunkSize, this.size - i * this.chunkSize);
  }

  /** Chunk i: from memory, a fetch under way, the cache, or the network (verified). */
  private chunk(i: number): Uint8Array | Promise<Uint8Array> {
    const have = this.memory.get(i);
    if (have) {
      // Recently used stays in memory longest.
      this.memory.delete(i);
      this.memory.set(i, have);
      return have;
    }
    const hash = this.hashes?.[i];
    if (hash === null) return new Uint8Array(this.chunkLength(i));
    const inFlight = this.pending.get(i);
    if (inFlight) return inFlight;
    const p = this.load(i, hash).finally(() => this.pending.delete(i));
    this.pending.set(i, p);
    return p;
  }

  private async load(i: number, hash: string | undefined): Promise<Uint8Array> {
    if (hash && this.opts.cache) {
      const c = await this.opts.cache.get(hash).catch(() => undefined);
      if (c && c.length === this.chunkLength(i) && (await this.digest(c)) === hash) {
        this.cached++;
        this.keep(i, c);
        return c;
      }
    }
    await this.slot();
    let bytes: Uint8Array;
    try {
      const { url, range } = this.chunkUrl(i);
      let r: Response;
      try {
        r = await (this.opts.fetch ?? fetch)(url, range ? { headers: { Range: `bytes=${range[0]}-${range[1]}` } } : {});
      } catch (e) {
        throw this.fail(`chunk ${i}: could not fetch ${url}: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (!r.ok) throw this.fail(`chunk ${i}: ${url}: HTTP ${r.status}`);
      if (range && r.status !== 206) throw this.fail(`chunk ${i}: ${url} ignored the Range request (HTTP ${r.status})`);
      bytes = new Uint8Array(await r.arrayBuffer());
      this.fetched++;
    } finally {
      this.done();
    }
    if (bytes.length !== this.chunkLength(i)) throw this.fail(`chunk ${i}: ${bytes.length} bytes, expected ${this.chunkLength(i)}`);
    if (hash !== undefined) {
      const got = await this.digest(bytes);
      if (got !== hash) throw this.fail(`chunk ${i} is corrupt: its SHA-256 is ${got.slice(0, 12)}…, the manifest says ${hash.slice(0, 12)}…`);
      await this.opts.cache?.put(hash, bytes).catch(() => {});
    }
    this.keep(i, bytes);
    return bytes;
  }

  private async digest(b: Uint8Array): Promise<string> {
    return hex(await crypto.subtle.digest('SHA-256', b as Uint8Array<ArrayBuffer>));
  }

  private fail(message: string): BlockIoError {
    this.opts.onError?.(message);
    return new BlockIoError(message);
  }

  read(offset: number, dst: Uint8Array): void | Promise<void> {
    checkRange(offset, dst.length, this.size);
    if (dst.length === 0) return;
    const cs = this.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + dst.length - 1) / cs);
    // Sequential reading: fetch what comes next before it is asked for.
    if (first === this.lastChunk || first === this.lastChunk + 1) {
      const ahead = this.opts.readahead ?? 4;
      for (let i = last + 1; i <= last + ahead && i * cs < this.size; i++) {
        const c = this.chunk(i);
        if (c instanceof Promise) c.catch(() => {});
      }
    }
    this.lastChunk = last;
    const waits: Promise<void>[] = [];
    for (let i = first; i <= last; i++) {
      const start = Math.max(offset, i * cs);
      const end = Math.min(offset + dst.length, (i + 1) * cs);
      const copy = (c: Uint8Array): void => dst.set(c.subarray(start - i * cs, end - i * cs), start - offset);
      const c = this.chunk(i);
      if (c instanceof Promise) waits.push(c.then(copy));
      else copy(c);
    }
    if (waits.length > 0) return Promise.all(waits).then(() => {});
  }

  write(): void {
    throw new ReadOnlyError('an HTTP disk');
  }

  flush(): void {}
}

/** A ChunkCache in the Origin Private File System (`storvm-cache/<sha256>`); undefined without OPFS. */
export async function opfsChunkCache(): Promise<ChunkCache | undefined> {
  if (typeof navigator === 'undefined' || navigator.storage?.getDirectory === undefined) return undefined;
  let dir: FileSystemDirectoryHandle;
  try {
    dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('storvm-cache', { create: true });
  } catch {
    return undefined;
  }
  return {
    async get(hash) {
      try {
        return new Uint8Array(await (await (await dir.getFileHandle(hash)).getFile()).arrayBuffer());
      } catch {
        return undefined;
      }
    },
    async put(hash, bytes) {
      const fh = await dir.getFileHandle(hash, { create: true });
      const w = await fh.createWritable();
      await w.write(bytes as Uint8Array<ArrayBuffer>);
      await w.close();
    },
  };
}
