/**
 * A tiny sparse image format for committed blank disk images: gzip of a header, the indices of
 * the non-zero 4 KiB blocks and their contents. A blank 1 GiB ext4 image is ~150 such blocks, so
 * it is ~3 KB on disk, where plain gzip of the image would be ~1 MB.
 *
 *   magic "storvm-sparse-1\n" (16 bytes) · u64 size · u32 blockSize · u32 count ·
 *   count × u32 block index (ascending) · count × blockSize bytes
 *
 * Run as a script to pack a raw image: `tsx src/node/lab/sparse-image.ts IN OUT`.
 */
import { closeSync, ftruncateSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { MemoryDisk } from '../../backends/block/memory-disk.js';
import { BLOCK, MAGIC, parseSparseBytes } from '../../lab/sparse.js';

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Packs a raw image (its length a multiple of 4 KiB) into the sparse format, gzipped. */
export function packSparse(image: Uint8Array): Uint8Array {
  if (image.length % BLOCK !== 0) throw new Error(`image size ${image.length} is not a multiple of ${BLOCK}`);
  const blocks: number[] = [];
  for (let i = 0; i < image.length / BLOCK; i++) if (!isZero(image.subarray(i * BLOCK, (i + 1) * BLOCK))) blocks.push(i);
  const out = new Uint8Array(32 + blocks.length * (4 + BLOCK));
  const v = new DataView(out.buffer);
  out.set(new TextEncoder().encode(MAGIC), 0);
  v.setBigUint64(16, BigInt(image.length), true);
  v.setUint32(24, BLOCK, true);
  v.setUint32(28, blocks.length, true);
  const data = 32 + blocks.length * 4;
  blocks.forEach((b, k) => {
    v.setUint32(32 + 4 * k, b, true);
    out.set(image.subarray(b * BLOCK, (b + 1) * BLOCK), data + k * BLOCK);
  });
  return gzipSync(out, { level: 9 });
}

/** Reads a packed image: its size and each non-zero block (index, contents). */
function parseSparse(gz: Uint8Array): { size: number; blocks: Array<{ index: number; data: Uint8Array }> } {
  return parseSparseBytes(gunzipSync(gz));
}

/** Unpacks into a sparse MemoryDisk: only the non-zero blocks take memory. */
export function unpackSparse(gz: Uint8Array): MemoryDisk {
  const { size, blocks } = parseSparse(gz);
  const disk = new MemoryDisk(size);
  for (const { index, data } of blocks) disk.write(index * BLOCK, data);
  return disk;
}

/** Unpacks into a sparse host file (created or truncated): only the non-zero blocks are written. */
export function unpackSparseToFile(gz: Uint8Array, path: string): void {
  const { size, blocks } = parseSparse(gz);
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const { index, data } of blocks) writeSync(fd, data, 0, data.length, index * BLOCK);
  } finally {
    closeSync(fd);
  }
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\//, '/'))) {
  const [input, output] = process.argv.slice(2);
  if (input === undefined || output === undefined) {
    process.stderr.write('usage: sparse-image.ts IN.img OUT.sparse.gz\n');
    process.exit(2);
  }
  writeFileSync(output, packSparse(readFileSync(input)));
}
