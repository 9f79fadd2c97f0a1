/**
 * Opening disk images from host files, for Node: raw (FileDisk), `.img.gz` (streamed into a
 * MemoryDisk) and qcow2 (with backing files resolved next to the image). The format is found from
 * the file's first bytes.
 */
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type BlockBackend, BlockError } from '../backends/block/backend.js';
import { type GzipProgress, loadGzipImage } from '../backends/block/gzip.js';
import type { MemoryDisk } from '../backends/block/memory-disk.js';
import { OverlayDisk } from '../backends/block/overlay-disk.js';
import { Qcow2Disk } from '../backends/block/qcow2.js';
import { FileDisk } from './file-disk.js';

export type ImageFormat = 'raw' | 'qcow2' | 'gzip';

export interface OpenImageOptions {
  /** Refuse writes. Otherwise raw files are written in place, and gzip and qcow2 images get an
   *  in-memory copy-on-write layer (the image file is never modified). */
  readOnly?: boolean;
  /** Skip detection. */
  format?: ImageFormat;
  /** Progress of a gzip image's decompression. */
  onProgress?: (p: GzipProgress) => void;
}

export interface OpenedImage {
  disk: BlockBackend;
  format: ImageFormat;
  /** Closes every host file the image holds open. */
  close(): Promise<void>;
}

/** Longest chain of qcow2 backing files followed. */
const MAX_BACKING_DEPTH = 16;

/** Detects the format of the image at `path` from its magic bytes. */
export async function detectImageFormat(path: string): Promise<ImageFormat> {
  const h = await open(path, 'r');
  try {
    const b = new Uint8Array(4);
    const { bytesRead } = await h.read(b, 0, 4, 0);
    if (bytesRead >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (bytesRead === 4 && b[0] === 0x51 && b[1] === 0x46 && b[2] === 0x49 && b[3] === 0xfb) return 'qcow2';
    return 'raw';
  } finally {
    await h.close();
  }
}

/** Opens a raw, gzip or qcow2 image as a block backend for VirtioBlk. */
export async function openDiskImage(path: string, opts: OpenImageOptions = {}): Promise<OpenedImage> {
  const format = opts.format ?? (await detectImageFormat(path));
  const readOnly = opts.readOnly ?? false;
  if (format === 'raw') {
    const disk = await FileDisk.open(path, { readOnly });
    return { disk, format, close: () => disk.close() };
  }
  if (format === 'gzip') {
    // The decompressed image stays as it was; the guest's writes go to a copy-on-write layer,
    // which is what a snapshot carries (it refers to the image itself by its content hash).
    const image = await openGzipImage(path, { readOnly: true, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
    return { disk: readOnly ? image : new OverlayDisk(image), format, close: async () => {} };
  }
  const files: FileDisk[] = [];
  try {
    const q = await openQcow2Chain(path, files, 0);
    return {
      disk: readOnly ? q : new OverlayDisk(q),
      format,
      close: async () => {
        await Promise.all(files.map((f) => f.close()));
      },
    };
  } catch (e) {
    await Promise.all(files.map((f) => f.close()));
    throw e;
  }
}

/** Opens a qcow2 image read-only, with its backing chain; close it with the returned `close`. */
export async function openQcow2Image(path: string): Promise<{ disk: Qcow2Disk; close(): Promise<void> }> {
  const files: FileDisk[] = [];
  try {
    const disk = await openQcow2Chain(path, files, 0);
    return { disk, close: async () => void (await Promise.all(files.map((f) => f.close()))) };
  } catch (e) {
    await Promise.all(files.map((f) => f.close()));
    throw e;
  }
}

async function openQcow2Chain(path: string, files: FileDisk[], depth: number): Promise<Qcow2Disk> {
  if (depth > MAX_BACKING_DEPTH) throw new BlockError(`qcow2: backing chain deeper than ${MAX_BACKING_DEPTH} at ${path}`);
  const file = await FileDisk.open(path, { readOnly: true });
  files.push(file);
  return Qcow2Disk.open(file, {
    openBacking: async (name, fmt) => {
      const backingPath = isAbsolute(name) ? name : resolve(dirname(path), name);
      const kind = fmt ?? (await detectImageFormat(backingPath));
      if (kind === 'qcow2') return openQcow2Chain(backingPath, files, depth + 1);
      if (kind === 'raw') {
        const raw = await FileDisk.open(backingPath, { readOnly: true });
        files.push(raw);
        return raw;
      }
      throw new BlockError(`qcow2: backing format "${kind}" of ${backingPath} is not supported`);
    },
  });
}

/** Streams a `.img.gz` file into a MemoryDisk. */
export async function openGzipImage(
  path: string,
  opts: { readOnly?: boolean; onProgress?: (p: GzipProgress) => void } = {},
): Promise<MemoryDisk> {
  const { size } = await stat(path);
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  return loadGzipImage(stream as AsyncIterable<Uint8Array>, { ...opts, totalCompressed: size });
}
