/**
 * Copy-on-write over a read-only (or any) base disk: writes land in an in-memory overlay, reads
 * take each block from the overlay when it was written there and from the base otherwise. Which
 * blocks were written is tracked in a bitmap (the `bitfield` package). The overlay can be merged
 * into a writable base (`commit`), dropped (`reset`), or saved to bytes and loaded back (`save`,
 * `OverlayDisk.load`) — e.g. to keep a browser page's changes in IndexedDB.
 */
import Bitfield from 'bitfield';
import { type BlockBackend, BlockError, checkRange, ImageFormatError, isPromise, ReadOnlyError } from './backend.js';
import { MemoryDisk } from './memory-disk.js';

export interface OverlayDiskOptions {
  /** Copy-on-write granularity in bytes: a power of two from 512 to 1 MiB; default 4096. */
  blockSize?: number;
}

/** "STVMOVL1": the magic of a saved overlay. */
const SAVE_MAGIC = [0x53, 0x54, 0x56, 0x4d, 0x4f, 0x56, 0x4c, 0x31];
const SAVE_HEADER = 32;

export class OverlayDisk implements BlockBackend {
  readonly size: number;
  readonly readOnly = false;
  readonly blockSize: number;
  private readonly blocks: number;
  private map: Bitfield;
  private data: MemoryDisk;

  constructor(
    readonly base: BlockBackend,
    opts: OverlayDiskOptions = {},
  ) {
    const bs = opts.blockSize ?? 4096;
    if (!Number.isInteger(bs) || bs < 512 || bs > 1 << 20 || (bs & (bs - 1)) !== 0) {
      throw new BlockError(`OverlayDisk blockSize must be a power of two from 512 to 1 MiB, got ${bs}`);
    }
    this.blockSize = bs;
    this.size = base.size;
    this.blocks = Math.ceil(base.size / bs);
    if (this.blocks >= 2 ** 31) throw new BlockError(`OverlayDisk: ${this.blocks} blocks is too many; use a larger blockSize`);
    this.map = new Bitfield(this.blocks);
    this.data = this.freshData();
  }

  private freshData(): MemoryDisk {
    return new MemoryDisk(this.blocks * this.blockSize, { chunkSize: Math.max(64 * 1024, this.blockSize) });
  }

  /** Number of blocks held in the overlay. */
  get writtenBlocks(): number {
    let n = 0;
    for (const byte of this.map.buffer) {
      for (let b = byte; b !== 0; b &= b - 1) n++;
    }
    return n;
  }

  /** True when block `i` is taken from the overlay. */
  isWritten(i: number): boolean {
    return this.map.get(i);
  }

  read(offset: number, dst: Uint8Array): void | Promise<void> {
    checkRange(offset, dst.length, this.size);
    const bs = this.blockSize;
    let pending: Promise<void>[] | undefined;
    let done = 0;
    while (done < dst.length) {
      // One run of blocks with the same source.
      const at = offset + done;
      const block = Math.floor(at / bs);
      const inOverlay = this.map.get(block);
      let end = Math.min((block + 1) * bs, offset + dst.length);
      for (let b = block + 1; end < offset + dst.length && this.map.get(b) === inOverlay; b++) {
        end = Math.min((b + 1) * bs, offset + dst.length);
      }
      const piece = dst.subarray(done, end - offset);
      if (inOverlay) this.data.read(at, piece);
      else {
        const r = this.base.read(at, piece);
        if (isPromise(r)) (pending ??= []).push(r);
      }
      done = end - offset;
    }
    if (pending === undefined) return;
    return Promise.all(pending).then(() => undefined);
  }

  write(offset: number, src: Uint8Array): void | Promise<void> {
    checkRange(offset, src.length, this.size);
    return this.apply(offset, src.length, (at, piece) => this.data.write(at, src.subarray(at - offset, at - offset + piece)));
  }

  flush(): void {}

  discard(offset: number, length: number): void | Promise<void> {
    return this.writeZeroes(offset, length);
  }

  writeZeroes(offset: number, length: number, _unmap = false): void | Promise<void> {
    checkRange(offset, length, this.size);
    return this.apply(offset, length, (at, piece) => this.data.writeZeroes(at, piece));
  }

  /**
   * Runs `put(at, len)` on the overlay data for [offset, offset + length), after copying in from
   * the base each partly covered block not yet in the overlay.
   */
  private apply(offset: number, length: number, put: (at: number, len: number) => void): void | Promise<void> {
    if (length === 0) return;
    const bs = this.blockSize;
    const end = offset + length;
    const first = Math.floor(offset / bs);
    const last = Math.floor((end - 1) / bs);
    let pending: Promise<void>[] | undefined;
    for (const b of first === last ? [first] : [first, last]) {
      const covered = offset <= b * bs && end >= Math.min((b + 1) * bs, this.size);
      if (covered || this.map.get(b)) continue;
      const r = this.fillFromBase(b);
      if (r !== undefined) (pending ??= []).push(r);
    }
    const finish = (): void => {
      put(offset, length);
      for (let b = first; b <= last; b++) this.map.set(b, true);
    };
    if (pending === undefined) return finish();
    return Promise.all(pending).then(finish);
  }

  /** Copies block `b` from the base into the overlay and marks it, unless it got there meanwhile. */
  private fillFromBase(b: number): Promise<void> | undefined {
    const bs = this.blockSize;
    const len = Math.min(bs, this.size - b * bs);
    const buf = new Uint8Array(len);
    const store = (): void => {
      // A concurrent write may have filled it while the base read ran: its bytes win.
      if (this.map.get(b)) return;
      this.data.write(b * bs, buf);
      this.map.set(b, true);
    };
    const r = this.base.read(b * bs, buf);
    if (isPromise(r)) return r.then(store);
    store();
    return undefined;
  }

  /**
   * Writes every overlay block into the base, flushes the base, and empties the overlay. The base
   * must be writable. Reads and writes must not run concurrently with a commit.
   */
  async commit(): Promise<void> {
    if (this.base.readOnly) throw new ReadOnlyError('OverlayDisk base');
    const bs = this.blockSize;
    const buf = new Uint8Array(bs);
    for (let b = 0; b < this.blocks; b++) {
      if (!this.map.get(b)) continue;
      const len = Math.min(bs, this.size - b * bs);
      const piece = buf.subarray(0, len);
      this.data.read(b * bs, piece);
      await this.base.write(b * bs, piece);
    }
    await this.base.flush();
    this.reset();
  }

  /** Drops every change: the disk reads as the base again. */
  reset(): void {
    this.map = new Bitfield(this.blocks);
    this.data = this.freshData();
  }

  /**
   * The overlay as bytes: a 32-byte header ("STVMOVL1", version 1, blockSize, size), the bitmap,
   * then the data of each written block in ascending order.
   */
  save(): Uint8Array {
    const bs = this.blockSize;
    const bitmap = this.map.buffer;
    const written = this.writtenBlocks;
    const out = new Uint8Array(SAVE_HEADER + bitmap.length + written * bs);
    const v = new DataView(out.buffer);
    out.set(SAVE_MAGIC, 0);
    v.setUint32(8, 1, true);
    v.setUint32(12, bs, true);
    v.setUint32(16, this.size % 2 ** 32, true);
    v.setUint32(20, Math.floor(this.size / 2 ** 32), true);
    v.setUint32(24, bitmap.length, true);
    v.setUint32(28, written, true);
    out.set(bitmap, SAVE_HEADER);
    let at = SAVE_HEADER + bitmap.length;
    for (let b = 0; b < this.blocks; b++) {
      if (!this.map.get(b)) continue;
      const len = Math.min(bs, this.size - b * bs);
      this.data.read(b * bs, out.subarray(at, at + len));
      at += bs;
    }
    return out;
  }

  snapshotLayer(): { base: BlockBackend; layer: Uint8Array } {
    return { base: this.base, layer: this.save() };
  }

  restoreLayer(layer: Uint8Array): void {
    this.restoreFrom(layer);
  }

  /**
   * Replaces this overlay's contents with a saved one (a snapshot restore): checked in full first,
   * so a bad `saved` leaves the overlay as it was. The block size must match.
   */
  restoreFrom(saved: Uint8Array): void {
    const other = OverlayDisk.load(this.base, saved);
    if (other.blockSize !== this.blockSize) throw new ImageFormatError(`saved overlay has ${other.blockSize}-byte blocks, this one ${this.blockSize}`);
    this.map = other.map;
    this.data = other.data;
  }

  /** Rebuilds an overlay saved by `save()` on top of `base` (which must have the same size). */
  static load(base: BlockBackend, saved: Uint8Array): OverlayDisk {
    const bad = (why: string): never => {
      throw new ImageFormatError(`saved overlay: ${why}`);
    };
    if (saved.length < SAVE_HEADER || SAVE_MAGIC.some((m, i) => saved[i] !== m)) bad('bad magic');
    const v = new DataView(saved.buffer, saved.byteOffset, saved.byteLength);
    if (v.getUint32(8, true) !== 1) bad(`unknown version ${v.getUint32(8, true)}`);
    const bs = v.getUint32(12, true);
    const size = v.getUint32(16, true) + v.getUint32(20, true) * 2 ** 32;
    if (size !== base.size) bad(`saved for a disk of ${size} bytes, base has ${base.size}`);
    const disk = new OverlayDisk(base, { blockSize: bs });
    const bitmapLen = v.getUint32(24, true);
    const written = v.getUint32(28, true);
    if (bitmapLen !== disk.map.buffer.length) bad(`bitmap of ${bitmapLen} bytes, expected ${disk.map.buffer.length}`);
    if (saved.length !== SAVE_HEADER + bitmapLen + written * bs) bad('truncated or overlong');
    disk.map = new Bitfield(saved.slice(SAVE_HEADER, SAVE_HEADER + bitmapLen));
    if (disk.writtenBlocks !== written) bad('block count does not match the bitmap');
    let at = SAVE_HEADER + bitmapLen;
    for (let b = 0; b < disk.blocks; b++) {
      if (!disk.map.get(b)) continue;
      const len = Math.min(bs, size - b * bs);
      disk.data.write(b * bs, saved.subarray(at, at + len));
      at += bs;
    }
    // Bits past the last block would claim blocks that don't exist.
    for (let b = disk.blocks; b < bitmapLen * 8; b++) if (disk.map.get(b)) bad('bitmap marks blocks past the end');
    return disk;
  }
}
