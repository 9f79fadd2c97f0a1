/**
 * Loading images in the worker from what the page gave: a URL (fetched, streamed), a Blob or
 * File (read lazily where the format allows), bytes, or a ReadableStream. Everything that goes
 * wrong becomes an {@link ImageError} naming the image and what was wrong.
 *
 * Disks: raw images from a Blob are read on demand ({@link BlobDisk}); raw images from anywhere
 * else are held in memory; `.gz` images stream through fflate into a sparse MemoryDisk with
 * progress; qcow2 images are opened over a Blob or bytes. A writable disk gets an in-memory
 * copy-on-write overlay unless the image is already the worker's own copy.
 */
import { Gunzip } from 'fflate';
import type { BlockBackend } from '../backends/block/backend.js';
import { BlockError } from '../backends/block/backend.js';
import { loadGzipImage } from '../backends/block/gzip.js';
import { MemoryDisk } from '../backends/block/memory-disk.js';
import { OverlayDisk } from '../backends/block/overlay-disk.js';
import { Qcow2Disk } from '../backends/block/qcow2.js';
import { BlobDisk } from './blob-disk.js';
import { ImageError } from './errors.js';
import { describe, type ProgressInfo, type WireDisk, type WireImageSource } from './protocol.js';

export type Progress = (info: ProgressInfo) => void;

const MiB = 1 << 20;

function mib(n: number): string {
  return `${(n / MiB).toFixed(n < 10 * MiB ? 1 : 0)} MiB`;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A source as a stream of pieces, with its total size when known. */
interface Opened {
  pieces: AsyncIterable<Uint8Array>;
  total: number | undefined;
}

async function* readerPieces(stream: ReadableStream<Uint8Array>, name: string, code: 'network' | 'read'): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        throw new ImageError(`${name}: ${code === 'network' ? 'the download broke off' : 'reading failed'}: ${errText(e)}`, code, name);
      }
      if (r.done) return;
      if (r.value.length > 0) yield r.value;
    }
  } finally {
    reader.releaseLock();
  }
}

async function openSource(source: WireImageSource, name: string, maxBytes: number): Promise<Opened> {
  if (typeof source === 'string') {
    let res: Response;
    try {
      res = await fetch(source);
    } catch (e) {
      throw new ImageError(`${name}: could not fetch: ${errText(e)}`, 'network', name);
    }
    if (!res.ok) throw new ImageError(`${name}: HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`, 'http', name);
    const len = Number(res.headers.get('content-length') ?? NaN);
    const total = Number.isFinite(len) && len >= 0 ? len : undefined;
    if (total !== undefined && total > maxBytes) throw tooLarge(name, total, maxBytes);
    if (res.body === null) return { pieces: (async function* () {})(), total: 0 };
    return { pieces: readerPieces(res.body, name, 'network'), total };
  }
  if (source instanceof Blob) {
    if (source.size > maxBytes) throw tooLarge(name, source.size, maxBytes);
    return { pieces: readerPieces(source.stream(), name, 'read'), total: source.size };
  }
  if (source instanceof ArrayBuffer) source = new Uint8Array(source);
  if (source instanceof Uint8Array) {
    const bytes = source;
    if (bytes.length > maxBytes) throw tooLarge(name, bytes.length, maxBytes);
    return { pieces: (async function* () { if (bytes.length) yield bytes; })(), total: bytes.length };
  }
  return { pieces: readerPieces(source, name, 'read'), total: undefined };
}

function tooLarge(name: string, size: number, max: number): ImageError {
  return new ImageError(`${name}: ${mib(size)} is more than this page may hold in memory (${mib(max)})`, 'too-large', name);
}

/** Reads a whole source into memory, reporting download progress, refusing more than `maxBytes`. */
export async function readAll(source: WireImageSource, what: string, name: string, maxBytes: number, progress: Progress): Promise<Uint8Array> {
  if (source instanceof Uint8Array) {
    if (source.length > maxBytes) throw tooLarge(name, source.length, maxBytes);
    return source;
  }
  const { pieces, total } = await openSource(source, name, maxBytes);
  const parts: Uint8Array[] = [];
  let bytes = 0;
  let last = 0;
  for await (const p of pieces) {
    bytes += p.length;
    if (bytes > maxBytes) throw tooLarge(name, bytes, maxBytes);
    parts.push(p);
    if (bytes - last >= 256 * 1024) {
      last = bytes;
      progress({ what, phase: 'download', bytes, total });
    }
  }
  progress({ what, phase: 'download', bytes, total: total ?? bytes });
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function isGzip(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

export function isQcow2(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x51 && b[1] === 0x46 && b[2] === 0x49 && b[3] === 0xfb;
}

/** Decompresses gzip bytes in pieces, reporting progress; refuses output above `maxBytes`. */
export function gunzipBytes(data: Uint8Array, what: string, name: string, maxBytes: number, progress: Progress): Uint8Array {
  const parts: Uint8Array[] = [];
  let bytes = 0;
  let tooBig = false;
  const g = new Gunzip((chunk) => {
    bytes += chunk.length;
    if (bytes > maxBytes) tooBig = true;
    else parts.push(chunk);
  });
  const PIECE = 256 * 1024;
  try {
    for (let at = 0; at < data.length; at += PIECE) {
      g.push(data.subarray(at, at + PIECE), at + PIECE >= data.length);
      if (tooBig) throw tooLarge(name, bytes, maxBytes);
      progress({ what, phase: 'unpack', bytes, total: undefined });
    }
  } catch (e) {
    if (e instanceof ImageError) throw e;
    throw new ImageError(`${name}: corrupt or truncated gzip: ${errText(e)}`, 'format', name);
  }
  // fflate's streaming Gunzip does not throw on input that ends early; a complete member ends
  // with an 8-byte trailer whose last word is the uncompressed size mod 2^32.
  const n = data.length;
  const isize = n >= 18 ? (data[n - 4]! | (data[n - 3]! << 8) | (data[n - 2]! << 16) | (data[n - 1]! << 24)) >>> 0 : -1;
  if (parts.length === 0 || isize !== bytes % 2 ** 32) {
    throw new ImageError(`${name}: corrupt or truncated gzip (${mib(bytes)} unpacked before it ended)`, 'format', name);
  }
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  progress({ what, phase: 'ready', bytes, total: bytes });
  return out;
}

/**
 * Loads the kernel: its bytes, gunzipped when it is an Image.gz. `maxBytes` limits the download,
 * `ramBytes` what it may unpack to (a kernel larger than guest RAM can't boot anyway).
 */
export async function loadKernel(source: WireImageSource, maxBytes: number, ramBytes: number, progress: Progress): Promise<Uint8Array> {
  const name = describe(source, 'kernel');
  const raw = await readAll(source, 'kernel', name, maxBytes, progress);
  if (raw.length === 0) throw new ImageError(`${name}: the kernel image is empty`, 'format', name);
  return isGzip(raw) ? gunzipBytes(raw, 'kernel', name, ramBytes, progress) : raw;
}

/** Loads the initramfs as it is (the kernel unpacks gzip itself), after checking a gzip one is whole. */
export async function loadInitrd(source: WireImageSource, maxBytes: number, ramBytes: number, progress: Progress): Promise<Uint8Array> {
  const name = describe(source, 'initramfs');
  const raw = await readAll(source, 'initrd', name, maxBytes, progress);
  if (raw.length === 0) throw new ImageError(`${name}: the initramfs is empty`, 'format', name);
  // A truncated initramfs would fail deep in the guest's boot; check it here, where the error can
  // name the file.
  if (isGzip(raw)) gunzipBytes(raw, 'initrd', name, ramBytes, () => {});
  progress({ what: 'initrd', phase: 'ready', bytes: raw.length, total: raw.length });
  return raw;
}


/** First bytes of a source without consuming it (Blob and bytes only; other sources are read whole first). */
async function head(source: Blob | Uint8Array, name: string): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source.subarray(0, 4);
  try {
    return new Uint8Array(await source.slice(0, 4).arrayBuffer());
  } catch (e) {
    throw new ImageError(`${name}: could not read the file: ${errText(e)}`, 'read', name);
  }
}

export interface LoadedDisk {
  disk: BlockBackend;
  /** raw, gzip or qcow2; with "+opfs" (or just "opfs") for a persistent disk. */
  format: string;
}

/** Opens a disk image as a block backend for VirtioBlk. */
export async function loadDisk(d: WireDisk & { source: WireImageSource }, what: string, maxBytes: number, progress: Progress): Promise<LoadedDisk> {
  const name = d.name;
  let src: WireImageSource = d.source instanceof ArrayBuffer ? new Uint8Array(d.source) : d.source;
  if (!(src instanceof Blob) && !(src instanceof Uint8Array)) {
    // A URL or a stream: peek at the format from the whole download, except gzip, which streams.
    if (d.format === 'gzip') return { disk: await gzipDisk(src, d, what, maxBytes, progress), format: 'gzip' };
    src = await readAll(src, what, name, maxBytes, progress);
  }
  if (src instanceof Uint8Array && src.length > maxBytes) throw tooLarge(name, src.length, maxBytes);
  const magic = await head(src, name);
  const format = d.format ?? (isGzip(magic) ? 'gzip' : isQcow2(magic) ? 'qcow2' : 'raw');
  if ((src instanceof Blob ? src.size : src.length) === 0) throw new ImageError(`${name}: the image is empty`, 'format', name);
  if (format === 'gzip') return { disk: await gzipDisk(src, d, what, maxBytes, progress), format };
  const base: BlockBackend = src instanceof Blob ? new BlobDisk(src) : new MemoryDisk(src, { readOnly: d.readOnly });
  if (format === 'qcow2') {
    let q: Qcow2Disk;
    try {
      q = await Qcow2Disk.open(base);
    } catch (e) {
      throw new ImageError(`${name}: ${errText(e)}`, 'format', name);
    }
    progress({ what, phase: 'ready', bytes: q.size, total: q.size });
    return { disk: d.readOnly ? q : new OverlayDisk(q), format };
  }
  progress({ what, phase: 'ready', bytes: base.size, total: base.size });
  // Bytes the page handed over are the worker's own copy: the guest may write them in place.
  return { disk: d.readOnly || !(base instanceof BlobDisk) ? base : new OverlayDisk(base), format };
}

async function gzipDisk(src: WireImageSource, d: WireDisk, what: string, maxBytes: number, progress: Progress): Promise<BlockBackend> {
  const { pieces, total } = await openSource(src, d.name, maxBytes);
  try {
    const disk = await loadGzipImage(pieces, {
      readOnly: d.readOnly,
      ...(total !== undefined ? { totalCompressed: total } : {}),
      onProgress: (p) => progress({ what, phase: p.done ? 'ready' : 'unpack', bytes: p.bytes, total: p.done ? p.bytes : undefined }),
    });
    if (disk.size === 0) throw new ImageError(`${d.name}: the image is empty`, 'format', d.name);
    return disk;
  } catch (e) {
    if (e instanceof ImageError) throw e;
    if (e instanceof BlockError) throw new ImageError(`${d.name}: ${errText(e)}`, 'format', d.name);
    throw e;
  }
}
