/**
 * `storvm image chunk IMAGE OUTDIR`: cuts a disk image (raw, .gz or qcow2: the disk the guest
 * would see) into chunk files named by their SHA-256, plus a manifest.json listing them, so an
 * image can be served from any static host and fetched lazily by the browser's HttpDisk.
 * Chunks of zeros are not written; identical chunks are written once.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDiskImage } from './image-disk.js';
import { UsageError } from './options.js';

export interface ChunkResult {
  size: number;
  chunkSize: number;
  chunks: number;
  zeroChunks: number;
  /** Distinct chunk files written (or already there). */
  files: number;
}

export async function chunkImage(image: string, outDir: string, opts: { chunkSize?: number } = {}): Promise<ChunkResult> {
  const chunkSize = opts.chunkSize ?? 1 << 20;
  if (!Number.isInteger(chunkSize) || chunkSize < 4096 || chunkSize > 64 << 20 || (chunkSize & (chunkSize - 1)) !== 0) {
    throw new UsageError(`--chunk-size must be a power of two from 4 KiB to 64 MiB, got ${chunkSize} bytes`);
  }
  if (!existsSync(image)) throw new UsageError(`image ${image}: no such file`);
  let opened;
  try {
    opened = await openDiskImage(image, { readOnly: true });
  } catch (e) {
    throw new UsageError(`image ${image}: ${(e as Error).message}`);
  }
  try {
    const { disk } = opened;
    if (disk.size === 0) throw new UsageError(`image ${image}: it is empty`);
    mkdirSync(join(outDir, 'chunks'), { recursive: true });
    const hashes: Array<string | null> = [];
    const seen = new Set<string>();
    let zeros = 0;
    const buf = new Uint8Array(chunkSize);
    for (let at = 0; at < disk.size; at += chunkSize) {
      const piece = buf.subarray(0, Math.min(chunkSize, disk.size - at));
      await disk.read(at, piece);
      if (piece.every((b) => b === 0)) {
        hashes.push(null);
        zeros++;
        continue;
      }
      const h = createHash('sha256').update(piece).digest('hex');
      hashes.push(h);
      if (!seen.has(h)) {
        seen.add(h);
        const file = join(outDir, 'chunks', h);
        if (!existsSync(file)) writeFileSync(file, piece);
      }
    }
    const manifest = { format: 'storvm-chunks', version: 1, size: disk.size, chunkSize, chunks: hashes };
    writeFileSync(join(outDir, 'manifest.json'), JSON.stringify(manifest) + '\n');
    return { size: disk.size, chunkSize, chunks: hashes.length, zeroChunks: zeros, files: seen.size };
  } finally {
    await opened.close();
  }
}
