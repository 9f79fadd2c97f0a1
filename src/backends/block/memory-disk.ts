import { type BlockBackend, BlockError, checkRange, ReadOnlyError } from './backend.js';

export interface MemoryDiskOptions {
  /** Refuse writes, discards and write-zeroes. */
  readOnly?: boolean;
  /** Allocation unit in bytes, a power of two from 4 KiB to 16 MiB; default 64 KiB. */
  chunkSize?: number;
}

/** Default allocation unit of a MemoryDisk. */
export const MEMORY_DISK_CHUNK = 64 * 1024;

/**
 * A disk held in memory, sparse: storage is allocated in chunks on the first write that touches
 * them, and chunks never written read as zeros. A 4 GiB disk costs nothing until it is used, and
 * sizes past 2 GiB (or 4 GiB) work since offsets are plain numbers below 2^53. Discard and
 * write-zeroes release whole chunks. Everything finishes synchronously.
 */
export class MemoryDisk implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  readonly chunkSize: number;
  private readonly chunks: Map<number, Uint8Array>;

  /**
   * @param sizeOrBytes a size in bytes for an empty disk, or the initial contents. Given bytes are
   *   used in place, not copied (writes to the disk land in them), except a short last chunk.
   */
  constructor(sizeOrBytes: number | Uint8Array, opts: MemoryDiskOptions = {}) {
    const chunkSize = opts.chunkSize ?? MEMORY_DISK_CHUNK;
    if (!Number.isInteger(chunkSize) || chunkSize < 4096 || chunkSize > 1 << 24 || (chunkSize & (chunkSize - 1)) !== 0) {
      throw new BlockError(`MemoryDisk chunkSize must be a power of two from 4096 to 16 MiB, got ${chunkSize}`);
    }
    this.chunkSize = chunkSize;
    this.readOnly = opts.readOnly ?? false;
    this.chunks = new Map();
    if (typeof sizeOrBytes === 'number') {
      if (!Number.isSafeInteger(sizeOrBytes) || sizeOrBytes < 0) throw new BlockError(`invalid MemoryDisk size ${sizeOrBytes}`);
      this.size = sizeOrBytes;
    } else {
      this.size = sizeOrBytes.length;
      for (let at = 0, i = 0; at < sizeOrBytes.length; at += chunkSize, i++) {
        const piece = sizeOrBytes.subarray(at, at + chunkSize);
        if (piece.length === chunkSize) {
          this.chunks.set(i, piece);
        } else {
          const last = new Uint8Array(chunkSize);
          last.set(piece);
          this.chunks.set(i, last);
        }
      }
    }
  }

  /**
   * Builds a disk from chunks already cut to `chunkSize` (used by the image loaders). The map is
   * taken over, not copied.
   * @internal
   */
  static fromChunks(size: number, chunks: Map<number, Uint8Array>, opts: MemoryDiskOptions = {}): MemoryDisk {
    const disk = new MemoryDisk(size, opts);
    for (const [i, c] of chunks) {
      if (c.length !== disk.chunkSize || i < 0 || i * disk.chunkSize >= size) throw new BlockError(`bad chunk ${i}`);
      disk.chunks.set(i, c);
    }
    return disk;
  }

  /** Bytes of storage currently allocated for written chunks. */
  get allocatedBytes(): number {
    return this.chunks.size * this.chunkSize;
  }

  read(offset: number, dst: Uint8Array): void {
    checkRange(offset, dst.length, this.size);
    const cs = this.chunkSize;
    let idx = Math.floor(offset / cs);
    let off = offset - idx * cs;
    let done = 0;
    while (done < dst.length) {
      const n = Math.min(cs - off, dst.length - done);
      const chunk = this.chunks.get(idx);
      if (chunk === undefined) dst.fill(0, done, done + n);
      else dst.set(n === cs ? chunk : chunk.subarray(off, off + n), done);
      done += n;
      idx++;
      off = 0;
    }
  }

  write(offset: number, src: Uint8Array): void {
    if (this.readOnly) throw new ReadOnlyError('MemoryDisk');
    checkRange(offset, src.length, this.size);
    const cs = this.chunkSize;
    let idx = Math.floor(offset / cs);
    let off = offset - idx * cs;
    let done = 0;
    while (done < src.length) {
      const n = Math.min(cs - off, src.length - done);
      let chunk = this.chunks.get(idx);
      if (chunk === undefined) {
        chunk = new Uint8Array(cs);
        this.chunks.set(idx, chunk);
      }
      chunk.set(n === src.length ? src : src.subarray(done, done + n), off);
      done += n;
      idx++;
      off = 0;
    }
  }

  flush(): void {}

  discard(offset: number, length: number): void {
    this.writeZeroes(offset, length, true);
  }

  /** Zeros the range; whole chunks inside it are released (with or without `unmap`: both read as zeros). */
  writeZeroes(offset: number, length: number, _unmap = false): void {
    if (this.readOnly) throw new ReadOnlyError('MemoryDisk');
    checkRange(offset, length, this.size);
    const cs = this.chunkSize;
    const end = offset + length;
    const firstFull = Math.ceil(offset / cs);
    const endFull = Math.floor(end / cs);
    const headEnd = Math.min(end, firstFull * cs);
    this.zeroWithin(offset, headEnd);
    if (endFull > firstFull) {
      // Cost follows what is allocated, not the (guest-chosen) length of the range.
      if (endFull - firstFull > this.chunks.size) {
        for (const k of [...this.chunks.keys()]) if (k >= firstFull && k < endFull) this.chunks.delete(k);
      } else {
        for (let i = firstFull; i < endFull; i++) this.chunks.delete(i);
      }
    }
    this.zeroWithin(Math.max(headEnd, endFull * cs), end);
  }

  /** Zeros [from, to), which lies inside one chunk. */
  private zeroWithin(from: number, to: number): void {
    if (from >= to) return;
    const idx = Math.floor(from / this.chunkSize);
    const chunk = this.chunks.get(idx);
    if (chunk !== undefined) chunk.fill(0, from - idx * this.chunkSize, to - idx * this.chunkSize);
  }

  /** Indices of allocated chunks, ascending (for savers and tests). */
  allocatedChunks(): number[] {
    return [...this.chunks.keys()].sort((a, b) => a - b);
  }

  /** The chunk with index `i`, or undefined when it was never written (zeros). */
  chunk(i: number): Uint8Array | undefined {
    return this.chunks.get(i);
  }
}
