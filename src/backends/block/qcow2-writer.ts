/**
 * Writes any block backend out as a qcow2 (version 3) image, streamed: first a pass over the disk
 * finds the clusters holding anything but zeros, then the image comes out in order — header, L1
 * table, refcount table and blocks, L2 tables, data clusters — as a sequence of byte pieces, so
 * no buffer ever holds the image. Clusters of zeros are left unallocated (they read as zeros), so
 * a mostly empty disk makes a small file. The layout follows the qcow2 specification
 * (docs/interop/qcow2.txt in QEMU): 64 KiB clusters, 16-bit refcounts, every refcount 1.
 */
import type { BlockBackend } from './backend.js';
import { BlockError } from './backend.js';
import { isZero } from './bytes.js';

export interface Qcow2WriteOptions {
  /** Cluster size as a power of two: 16 (64 KiB, the default) from 12 to 21. */
  clusterBits?: number;
  /** Called as the disk is read, with bytes done and the total (each pass counts). */
  onProgress?(done: number, total: number): void;
}

const COPIED = 2n ** 63n;


/** The qcow2 image of `disk`, as pieces in file order. The disk is read twice; keep it still meanwhile. */
export async function* qcow2Image(disk: BlockBackend, opts: Qcow2WriteOptions = {}): AsyncGenerator<Uint8Array> {
  const bits = opts.clusterBits ?? 16;
  if (!Number.isInteger(bits) || bits < 12 || bits > 21) throw new BlockError(`qcow2 writer: clusterBits must be 12..21, got ${bits}`);
  const cs = 2 ** bits;
  const size = disk.size;
  const clusters = Math.ceil(size / cs);
  const l2Entries = cs / 8;
  const l1Size = Math.ceil(clusters / l2Entries);

  // Pass 1: which clusters hold data.
  const used = new Uint8Array(clusters);
  const buf = new Uint8Array(cs);
  let dataCount = 0;
  for (let c = 0; c < clusters; c++) {
    const piece = buf.subarray(0, Math.min(cs, size - c * cs));
    await disk.read(c * cs, piece);
    if (!isZero(piece)) {
      used[c] = 1;
      dataCount++;
    }
    opts.onProgress?.(Math.min(size, (c + 1) * cs), 2 * size);
  }
  const l2Used: number[] = [];
  for (let t = 0; t < l1Size; t++) {
    for (let c = t * l2Entries; c < Math.min(clusters, (t + 1) * l2Entries); c++) {
      if (used[c]) {
        l2Used.push(t);
        break;
      }
    }
  }

  // Layout, in clusters: header | L1 | refcount table | refcount blocks | L2 tables | data.
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / cs));
  const perRefBlock = cs / 2;
  let refBlocks = 1;
  let refTableClusters = 1;
  for (;;) {
    const total = 1 + l1Clusters + refTableClusters + refBlocks + l2Used.length + dataCount;
    const needBlocks = Math.ceil(total / perRefBlock);
    const needTable = Math.max(1, Math.ceil((needBlocks * 8) / cs));
    if (needBlocks === refBlocks && needTable === refTableClusters) break;
    refBlocks = needBlocks;
    refTableClusters = needTable;
  }
  const l1At = 1;
  const refTableAt = l1At + l1Clusters;
  const refBlocksAt = refTableAt + refTableClusters;
  const l2At = refBlocksAt + refBlocks;
  const dataAt = l2At + l2Used.length;
  const totalClusters = dataAt + dataCount;

  // Header (version 3, 104 bytes), then the end-of-extensions marker (zeros) in cluster 0.
  const header = new Uint8Array(cs);
  const h = new DataView(header.buffer);
  h.setUint32(0, 0x514649fb);
  h.setUint32(4, 3);
  h.setUint32(20, bits);
  h.setBigUint64(24, BigInt(size));
  h.setUint32(36, l1Size);
  h.setBigUint64(40, BigInt(l1At * cs));
  h.setBigUint64(48, BigInt(refTableAt * cs));
  h.setUint32(56, refTableClusters);
  h.setUint32(96, 4); // refcount_order: 16-bit refcounts
  h.setUint32(100, 104); // header_length
  yield header;

  // L1: each used table's offset, COPIED (refcount 1).
  const l1 = new Uint8Array(l1Clusters * cs);
  const l1v = new DataView(l1.buffer);
  l2Used.forEach((t, k) => l1v.setBigUint64(8 * t, BigInt((l2At + k) * cs) | COPIED));
  yield l1;

  const table = new Uint8Array(refTableClusters * cs);
  const tv = new DataView(table.buffer);
  for (let b = 0; b < refBlocks; b++) tv.setBigUint64(8 * b, BigInt((refBlocksAt + b) * cs));
  yield table;
  for (let b = 0; b < refBlocks; b++) {
    const block = new Uint8Array(cs);
    const bv = new DataView(block.buffer);
    for (let i = 0; i < perRefBlock; i++) if (b * perRefBlock + i < totalClusters) bv.setUint16(2 * i, 1);
    yield block;
  }

  // L2 tables, with data clusters numbered in disk order.
  let next = dataAt;
  for (const t of l2Used) {
    const l2 = new Uint8Array(cs);
    const v = new DataView(l2.buffer);
    for (let i = 0; i < l2Entries; i++) {
      const c = t * l2Entries + i;
      if (c < clusters && used[c]) v.setBigUint64(8 * i, BigInt(next++ * cs) | COPIED);
    }
    yield l2;
  }

  // Pass 2: the data clusters, whole (the last one padded with zeros).
  for (let c = 0; c < clusters; c++) {
    if (!used[c]) continue;
    const out = new Uint8Array(cs);
    await disk.read(c * cs, out.subarray(0, Math.min(cs, size - c * cs)));
    yield out;
    opts.onProgress?.(size + Math.min(size, (c + 1) * cs), 2 * size);
  }
}
