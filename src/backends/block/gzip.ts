/**
 * Loading `.img.gz` disk images: the compressed bytes are streamed through fflate's Gunzip into a
 * sparse {@link MemoryDisk}, one chunk at a time, so the compressed file is never held whole and
 * runs of zeros in the image cost no memory.
 */
import { Gunzip } from 'fflate';
import { BlockError, ImageFormatError } from './backend.js';
import { MEMORY_DISK_CHUNK, MemoryDisk } from './memory-disk.js';
import { isZero } from './bytes.js';

export interface GzipProgress {
  /** Compressed bytes consumed so far. */
  compressedBytes: number;
  /** Total compressed bytes, when the caller said (`totalCompressed`). */
  totalCompressed: number | undefined;
  /** Decompressed bytes so far. */
  bytes: number;
  /** True on the last call. */
  done: boolean;
}

/** The part of a WHATWG ReadableStream the loader uses (a fetch() body, a File's stream()). */
export interface ByteStream {
  getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array | undefined }>; releaseLock(): void };
}

export interface GzipLoadOptions {
  /** Called after each compressed piece is consumed, and once at the end. */
  onProgress?: (p: GzipProgress) => void;
  /** The compressed size, if known, passed through to `onProgress`. */
  totalCompressed?: number;
  /** Refuse images that decompress to more than this many bytes; default 1 TiB. */
  maxSize?: number;
  /** Make the resulting disk read-only. */
  readOnly?: boolean;
}

/** Pieces a whole-buffer source is cut into, so progress is reported as the work goes. */
const PIECE = 1 << 20;

/**
 * Decompresses a gzip image into a MemoryDisk. `source` is the whole file, an (async) iterable of
 * its pieces such as a Node ReadStream, or a WHATWG ReadableStream such as a fetch() body.
 * The disk's size is the decompressed size rounded up to a whole 512-byte sector.
 * Throws ImageFormatError for data that is not gzip, corrupt or truncated.
 */
export async function loadGzipImage(
  source: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array> | ByteStream,
  opts: GzipLoadOptions = {},
): Promise<MemoryDisk> {
  const maxSize = opts.maxSize ?? 2 ** 40;
  const cs = MEMORY_DISK_CHUNK;
  const chunks = new Map<number, Uint8Array>();
  let current = new Uint8Array(cs);
  let fill = 0;
  let index = 0;
  let total = 0;
  let compressed = 0;
  let tooBig = false;

  const keep = (): void => {
    // Only chunks holding a non-zero byte are kept: zeros stay holes.
    if (!isZero(current, fill)) {
      chunks.set(index, current);
      current = new Uint8Array(cs);
    } else {
      current.fill(0, 0, fill);
    }
    fill = 0;
    index++;
  };
  const gunzip = new Gunzip((data) => {
    total += data.length;
    if (total > maxSize) {
      tooBig = true;
      return;
    }
    for (let at = 0; at < data.length; ) {
      const n = Math.min(cs - fill, data.length - at);
      current.set(data.subarray(at, at + n), fill);
      fill += n;
      at += n;
      if (fill === cs) keep();
    }
  });
  const report = (done: boolean): void =>
    opts.onProgress?.({ compressedBytes: compressed, totalCompressed: opts.totalCompressed, bytes: total, done });
  // The last 8 input bytes: a complete gzip member ends with CRC32 and ISIZE (RFC 1952, 2.3.1).
  const trailer = new Uint8Array(8);
  let trailerFill = 0;
  const push = (piece: Uint8Array, final: boolean): void => {
    if (piece.length >= 8) {
      trailer.set(piece.subarray(piece.length - 8));
      trailerFill = 8;
    } else if (piece.length > 0) {
      const keep = Math.min(trailerFill, 8 - piece.length);
      trailer.copyWithin(0, trailerFill - keep, trailerFill);
      trailer.set(piece, keep);
      trailerFill = keep + piece.length;
    }
    try {
      gunzip.push(piece, final);
    } catch (e) {
      throw new ImageFormatError(`gzip image: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (tooBig) throw new BlockError(`gzip image decompresses to more than maxSize (${maxSize} bytes)`);
    compressed += piece.length;
  };

  let sawData = false;
  if (source instanceof Uint8Array) {
    for (let at = 0; at < source.length; at += PIECE) {
      push(source.subarray(at, at + PIECE), at + PIECE >= source.length);
      sawData = true;
      report(false);
    }
  } else {
    const pieces = isByteStream(source) ? streamPieces(source) : (source as AsyncIterable<Uint8Array>);
    for await (const piece of pieces) {
      if (piece.length === 0) continue;
      push(piece, false);
      sawData = true;
      report(false);
    }
    if (sawData) push(new Uint8Array(0), true);
  }
  if (!sawData) throw new ImageFormatError('gzip image: empty input');
  // fflate's streaming Gunzip accepts input that stops inside the 8-byte trailer; the ISIZE field
  // (the size mod 2^32) catches that, and any other size mismatch.
  const isize = trailerFill === 8 ? (trailer[4]! | (trailer[5]! << 8) | (trailer[6]! << 16) | (trailer[7]! << 24)) >>> 0 : -1;
  if (isize !== total % 2 ** 32) throw new ImageFormatError(`gzip image: truncated or corrupt (the trailer does not match the ${total} bytes unpacked)`);
  if (fill > 0) keep();
  const size = Math.ceil(total / 512) * 512;
  report(true);
  return MemoryDisk.fromChunks(size, chunks, { readOnly: opts.readOnly ?? false });
}

function isByteStream(s: unknown): s is ByteStream {
  return typeof (s as { getReader?: unknown }).getReader === 'function';
}

async function* streamPieces(s: ByteStream): AsyncGenerator<Uint8Array> {
  const reader = s.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      if (value !== undefined) yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

