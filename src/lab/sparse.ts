/**
 * Reading storvm's sparse image format (src/node/lab/sparse-image.ts packs it) once gunzipped,
 * environment-free, so the browser's lab opens the same blank ext4 disk.
 *
 *   magic "storvm-sparse-1\n" (16 bytes) · u64 size · u32 blockSize · u32 count ·
 *   count × u32 block index (ascending) · count × blockSize bytes
 */
import { MemoryDisk } from '../backends/block/memory-disk.js';

export const MAGIC = 'storvm-sparse-1\n';
export const BLOCK = 4096;

/** A packed image's size and each non-zero block (index, contents). */
export function parseSparseBytes(b: Uint8Array): { size: number; blocks: Array<{ index: number; data: Uint8Array }> } {
  if (b.length < 32 || new TextDecoder().decode(b.subarray(0, 16)) !== MAGIC) throw new Error('not a storvm sparse image');
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const size = Number(v.getBigUint64(16, true));
  const bs = v.getUint32(24, true);
  const count = v.getUint32(28, true);
  const data = 32 + count * 4;
  if (bs !== BLOCK || b.length !== data + count * bs) throw new Error('sparse image is truncated or malformed');
  const blocks: Array<{ index: number; data: Uint8Array }> = [];
  for (let k = 0; k < count; k++) {
    const idx = v.getUint32(32 + 4 * k, true);
    if ((idx + 1) * bs > size) throw new Error(`sparse image block ${idx} lies past its size`);
    blocks.push({ index: idx, data: b.subarray(data + k * bs, data + (k + 1) * bs) });
  }
  return { size, blocks };
}

/** A sparse MemoryDisk of a gunzipped packed image: only the non-zero blocks take memory. */
export function sparseDisk(b: Uint8Array): MemoryDisk {
  const { size, blocks } = parseSparseBytes(b);
  const disk = new MemoryDisk(size);
  for (const { index, data } of blocks) disk.write(index * BLOCK, data);
  return disk;
}
