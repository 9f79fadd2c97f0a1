/**
 * A persistent, crash-safe copy-on-write disk over three synchronous files: a data file of
 * blocks and two map files written in turn. Over a read-only base (an image) it is an overlay
 * that keeps the guest's changes; with no base it is a whole disk that reads zeros until written.
 * It is environment-free: the files are anything with positional sync reads and writes (an OPFS
 * FileSystemSyncAccessHandle in a browser worker, a host file in Node).
 *
 * Crash safety comes from never overwriting a block that the last durable map points at. A write
 * goes to a free slot of the data file, and the in-memory map points the block at it. `flush()`
 * makes the data file durable, then writes the whole map, with a generation number and a CRC, to
 * the map file not written last time, and makes that durable. Only then do slots that the new map
 * no longer uses become free for reuse. So after a crash at any point, the newest valid map
 * describes exactly the disk as it was at a completed flush (or at the flush that was under way,
 * if its map got out whole), and every slot it names holds what it held then. A completed FLUSH is
 * never lost; blocks written after it read as they were at it, never torn.
 *
 * Space comes back: discard and write-zeroes drop whole blocks from the map, and after each flush
 * the data file is cut back to its last live slot. A write that the file refuses (a full quota)
 * fails that request and changes nothing the map points at.
 */
import { type BlockBackend, BlockError, BlockIoError, checkRange, ImageFormatError, isPromise, ReadOnlyError } from './backend.js';
import { crc32 } from './bytes.js';

/** A file with positional synchronous I/O, as FileSystemSyncAccessHandle has. */
export interface SyncFile {
  /** Reads into `dst` at byte `at`; returns the bytes read (fewer at the end of the file). */
  read(dst: Uint8Array, at: number): number;
  /** Writes `src` at byte `at`, growing the file as needed; returns the bytes written. Throws when full. */
  write(src: Uint8Array, at: number): number;
  truncate(size: number): void;
  getSize(): number;
  /** Makes every completed write durable. */
  flush(): void;
}

export interface PersistentOverlayFiles {
  data: SyncFile;
  mapA: SyncFile;
  mapB: SyncFile;
}

export interface PersistentOverlayOptions {
  /** The read-only base; without one the disk reads zeros where it was never written. */
  base?: BlockBackend;
  /** Size in bytes: required without a base; with one it is the base's size. */
  size?: number;
  /** Copy-on-write granularity, a power of two from 512 to 1 MiB; default 4096. Fixed at creation. */
  blockSize?: number;
  /**
   * Names the base (e.g. its URL and a hash of its first bytes). Stored in the map; opening the
   * files with a different identity is refused, so an overlay is never laid over another image.
   */
  baseId?: string;
}

/** "STVMPOV1". */
const MAGIC = [0x53, 0x54, 0x56, 0x4d, 0x50, 0x4f, 0x56, 0x31];
const VERSION = 1;
const HEADER = 48;
/** Map value for a block that reads as zeros whatever the base holds. */
const ZERO = 0xffff_ffff;
const MAX_ID = 1024;

// Slot states.
const FREE = 0;
/** Written since the last flush; not named by the durable map. */
const FRESH = 1;
/** Named by the durable map and by the current one. */
const DURABLE = 2;
/** Named by the durable map, no longer by the current one: free after the next flush. */
const RETIRED = 3;


interface LoadedMap {
  generation: number;
  blockSize: number;
  size: number;
  baseId: string;
  entries: Map<number, number>;
}

/** Reads and checks one map file; undefined when it is empty, torn or corrupt. */
function readMap(f: SyncFile): LoadedMap | undefined {
  const n = f.getSize();
  if (n < HEADER + 4) return undefined;
  const b = new Uint8Array(n);
  if (f.read(b, 0) !== n) return undefined;
  for (let i = 0; i < 8; i++) if (b[i] !== MAGIC[i]) return undefined;
  const v = new DataView(b.buffer);
  const count = v.getUint32(40, true);
  const idLen = v.getUint32(44, true);
  const end = HEADER + idLen + count * 8;
  if (v.getUint32(8, true) !== VERSION || idLen > MAX_ID || end + 4 > n) return undefined;
  if (crc32(b.subarray(0, end)) !== v.getUint32(end, true)) return undefined;
  const entries = new Map<number, number>();
  for (let i = 0, at = HEADER + idLen; i < count; i++, at += 8) entries.set(v.getUint32(at, true), v.getUint32(at + 4, true));
  return {
    blockSize: v.getUint32(12, true),
    generation: Number(v.getBigUint64(16, true)),
    size: Number(v.getBigUint64(24, true)),
    baseId: new TextDecoder().decode(b.subarray(HEADER, HEADER + idLen)),
    entries,
  };
}

export class PersistentOverlayDisk implements BlockBackend {
  readonly size: number;
  readonly readOnly = false;
  readonly blockSize: number;
  readonly baseId: string;
  readonly base: BlockBackend | undefined;
  private readonly files: PersistentOverlayFiles;
  /** Block index → slot (or ZERO). Absent: from the base, or zeros without one. */
  private map = new Map<number, number>();
  private state = new Uint8Array(1024);
  private slots = 0;
  /** Free slots, lowest last; may hold slots a run took since (checked when popped). */
  private free: number[] = [];
  private freeCount = 0;
  /** Where the search for a run of free slots starts. */
  private cursor = 0;
  private generation: number;
  /** The map file the next flush writes. */
  private nextMapB: boolean;
  /** Operations wait here while an earlier one waits on the base. */
  private tail: Promise<void> | undefined;
  private readonly zeros: Uint8Array;

  private constructor(files: PersistentOverlayFiles, opts: PersistentOverlayOptions, loaded: LoadedMap | undefined, loadedFromB: boolean) {
    this.files = files;
    this.base = opts.base;
    this.size = opts.base?.size ?? opts.size!;
    this.blockSize = loaded?.blockSize ?? opts.blockSize ?? 4096;
    this.baseId = opts.baseId ?? '';
    this.zeros = new Uint8Array(this.blockSize);
    this.generation = loaded?.generation ?? 0;
    this.nextMapB = loaded ? !loadedFromB : false;
    if (loaded) {
      for (const [block, slot] of loaded.entries) {
        this.map.set(block, slot);
        if (slot !== ZERO) {
          this.grow(slot + 1);
          this.state[slot] = DURABLE;
          this.slots = Math.max(this.slots, slot + 1);
        }
      }
      for (let s = this.slots - 1; s >= 0; s--) if (this.state[s] === FREE) this.free.push(s);
      this.freeCount = this.free.length;
    }
  }

  /**
   * Opens (or creates, when the map files are empty) the disk stored in `files`. Throws
   * ImageFormatError when the files hold a map for another base, size or block size, or when
   * they hold something but no valid map.
   */
  static open(files: PersistentOverlayFiles, opts: PersistentOverlayOptions = {}): PersistentOverlayDisk {
    const size = opts.base?.size ?? opts.size;
    if (size === undefined || !Number.isSafeInteger(size) || size < 0) throw new BlockError('PersistentOverlayDisk: give a base or a size');
    const bs = opts.blockSize ?? 4096;
    if (!Number.isInteger(bs) || bs < 512 || bs > 1 << 20 || (bs & (bs - 1)) !== 0) throw new BlockError(`PersistentOverlayDisk: blockSize must be a power of two from 512 to 1 MiB, got ${bs}`);
    if (Math.ceil(size / bs) >= ZERO) throw new BlockError('PersistentOverlayDisk: too many blocks; use a larger blockSize');
    if (new TextEncoder().encode(opts.baseId ?? '').length > MAX_ID) throw new BlockError(`PersistentOverlayDisk: baseId longer than ${MAX_ID} bytes`);
    const a = readMap(files.mapA);
    const b = readMap(files.mapB);
    const loaded = a && b ? (b.generation > a.generation ? b : a) : (a ?? b);
    if (loaded === undefined && (files.mapA.getSize() > 0 || files.mapB.getSize() > 0)) {
      throw new ImageFormatError('persistent overlay: its map files are corrupt (no valid copy)');
    }
    if (loaded) {
      if (loaded.size !== size) throw new ImageFormatError(`persistent overlay: stored for a disk of ${loaded.size} bytes, not ${size}`);
      if (loaded.baseId !== (opts.baseId ?? '')) throw new ImageFormatError(`persistent overlay: stored for base "${loaded.baseId}", not "${opts.baseId ?? ''}"`);
      if (opts.blockSize !== undefined && loaded.blockSize !== opts.blockSize) throw new ImageFormatError(`persistent overlay: stored with ${loaded.blockSize}-byte blocks, not ${opts.blockSize}`);
    }
    return new PersistentOverlayDisk(files, { ...opts, size }, loaded, loaded !== undefined && loaded === b);
  }

  /** Blocks the overlay holds (written, or zeroed over the base). */
  get mappedBlocks(): number {
    return this.map.size;
  }

  /** Bytes of the data file (slots, live or free, up to the last live one after a flush). */
  get dataBytes(): number {
    return this.files.data.getSize();
  }

  private grow(n: number): void {
    if (n <= this.state.length) return;
    let len = this.state.length;
    while (len < n) len *= 2;
    const s = new Uint8Array(len);
    s.set(this.state);
    this.state = s;
  }

  private serial<T>(op: () => T | Promise<T>): T | Promise<T> {
    if (this.tail !== undefined) {
      const p = this.tail.then(op);
      this.track(p);
      return p;
    }
    const r = op();
    if (isPromise(r)) this.track(r);
    return r;
  }

  private track(p: Promise<unknown>): void {
    const t: Promise<void> = p.then(
      () => {
        if (this.tail === t) this.tail = undefined;
      },
      () => {
        if (this.tail === t) this.tail = undefined;
      },
    );
    this.tail = t;
  }

  read(offset: number, dst: Uint8Array): void | Promise<void> {
    checkRange(offset, dst.length, this.size);
    return this.serial(() => this.readNow(offset, dst));
  }

  private readSlot(slot: number, into: number, dst: Uint8Array, len: number): void {
    const view = dst.subarray(0, len);
    const got = this.files.data.read(view, slot * this.blockSize + into);
    if (got !== len) throw new BlockIoError(`persistent overlay: short read of the data file (${got} of ${len} bytes)`);
  }

  private readNow(offset: number, dst: Uint8Array): void | Promise<void> {
    const bs = this.blockSize;
    const waits: Promise<void>[] = [];
    let at = 0;
    // Runs of base blocks are read from the base in one call.
    let baseStart = -1;
    const flushBase = (end: number): void => {
      if (baseStart < 0) return;
      const part = dst.subarray(baseStart, end);
      if (this.base === undefined) part.fill(0);
      else {
        const r = this.base.read(offset + baseStart, part);
        if (isPromise(r)) waits.push(r);
      }
      baseStart = -1;
    };
    while (at < dst.length) {
      const pos = offset + at;
      const block = Math.floor(pos / bs);
      const into = pos - block * bs;
      const n = Math.min(bs - into, dst.length - at);
      const slot = this.map.get(block);
      if (slot === undefined) {
        if (baseStart < 0) baseStart = at;
      } else {
        flushBase(at);
        if (slot === ZERO) dst.fill(0, at, at + n);
        else {
          // Consecutive slots for consecutive blocks: one read.
          let len = n;
          let next = block + 1;
          while (at + len < dst.length && this.map.get(next) === slot + (next - block)) {
            len += Math.min(bs, dst.length - at - len);
            next++;
          }
          this.readSlot(slot, into, dst.subarray(at), len);
          at += len;
          continue;
        }
      }
      at += n;
    }
    flushBase(at);
    if (waits.length > 0) return Promise.all(waits).then(() => {});
  }

  write(offset: number, src: Uint8Array): void | Promise<void> {
    checkRange(offset, src.length, this.size);
    return this.serial(() => this.writeNow(offset, src));
  }

  private allocate(): number {
    for (let s = this.free.pop(); s !== undefined; s = this.free.pop()) {
      if (this.state[s] === FREE) {
        this.freeCount--;
        return s;
      }
    }
    this.grow(this.slots + 1);
    return this.slots++;
  }

  /** First slot of `n` consecutive free slots (next fit), or -1. */
  private findRun(n: number): number {
    if (this.freeCount < n) return -1;
    for (let pass = 0; pass < 2; pass++) {
      let start = pass === 0 ? this.cursor : 0;
      const stop = pass === 0 ? this.slots : Math.min(this.cursor + n, this.slots);
      let len = 0;
      for (let s = start; s < stop; s++) {
        if (this.state[s] !== FREE) {
          len = 0;
          start = s + 1;
          continue;
        }
        if (++len === n) {
          this.cursor = start + n;
          return start;
        }
      }
    }
    return -1;
  }

  /** Points `block` at `slot` (or ZERO, or nothing), retiring what it pointed at. */
  private remap(block: number, slot: number | undefined): void {
    const old = this.map.get(block);
    if (old !== undefined && old !== ZERO) {
      if (this.state[old] === FRESH) this.release(old);
      else this.state[old] = RETIRED;
    }
    if (slot === undefined) this.map.delete(block);
    else this.map.set(block, slot);
  }

  /** Stores a whole block's new contents in a fresh slot. */
  private putBlock(block: number, data: Uint8Array): void {
    const slot = this.allocate();
    let wrote: number;
    try {
      wrote = this.files.data.write(data, slot * this.blockSize);
    } catch (e) {
      this.release(slot);
      throw new BlockIoError(`persistent overlay: write failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (wrote !== data.length) {
      this.release(slot);
      throw new BlockIoError(`persistent overlay: short write (${wrote} of ${data.length} bytes); storage full?`);
    }
    this.state[slot] = FRESH;
    this.remap(block, slot);
  }

  /**
   * Stores `run` whole blocks from `block` on in consecutive fresh slots (a run of free ones, or
   * appended to the data file), in one write.
   */
  private putRun(block: number, data: Uint8Array, run: number): void {
    const reuse = this.findRun(run);
    const first = reuse >= 0 ? reuse : this.slots;
    this.grow(first + run);
    let wrote: number;
    try {
      wrote = this.files.data.write(data, first * this.blockSize);
    } catch (e) {
      throw new BlockIoError(`persistent overlay: write failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (wrote !== data.length) throw new BlockIoError(`persistent overlay: short write (${wrote} of ${data.length} bytes); storage full?`);
    if (reuse >= 0) this.freeCount -= run;
    else this.slots = first + run;
    for (let j = 0; j < run; j++) {
      this.state[first + j] = FRESH;
      this.remap(block + j, first + j);
    }
  }

  private release(slot: number): void {
    this.state[slot] = FREE;
    this.free.push(slot);
    this.freeCount++;
  }

  private writeNow(offset: number, src: Uint8Array): void | Promise<void> {
    const bs = this.blockSize;
    const end = offset + src.length;
    let at = offset;
    const step = (): void | Promise<void> => {
      while (at < end) {
        const block = Math.floor(at / bs);
        const into = at - block * bs;
        const n = Math.min(bs - into, end - at);
        const piece = src.subarray(at - offset, at - offset + n);
        if (n === bs) {
          // A run of whole blocks goes to consecutive new slots at the end of the data file, in
          // one write: one call into the file per request, not per block, and it reads back in one.
          const run = Math.floor((end - at) / bs);
          if (run > 1) {
            this.putRun(block, src.subarray(at - offset, at - offset + run * bs), run);
            at += run * bs;
          } else {
            this.putBlock(block, piece);
            at += n;
          }
          continue;
        }
        // A part of a block: merge with what it holds now.
        const whole = new Uint8Array(bs);
        const blockStart = block * bs;
        const len = Math.min(bs, this.size - blockStart);
        const r = this.readNow(blockStart, whole.subarray(0, len));
        const finish = (): void => {
          whole.set(piece, into);
          this.putBlock(block, whole);
          at += n;
        };
        if (isPromise(r)) {
          return r.then(() => {
            finish();
            return step();
          });
        }
        finish();
      }
    };
    return step();
  }

  discard(offset: number, length: number): void | Promise<void> {
    return this.writeZeroes(offset, length);
  }

  writeZeroes(offset: number, length: number, _unmap = true): void | Promise<void> {
    checkRange(offset, length, this.size);
    return this.serial(() => {
      const bs = this.blockSize;
      const end = offset + length;
      const first = Math.ceil(offset / bs);
      const last = Math.floor(end / bs); // exclusive
      const parts: Array<[number, number]> = [];
      if (first > last) parts.push([offset, length]);
      else {
        if (offset < first * bs) parts.push([offset, first * bs - offset]);
        // The last block of a disk whose size is not a multiple of the block size is whole too.
        const tailWhole = end === this.size && end > last * bs;
        for (let b = first; b < last + (tailWhole ? 1 : 0); b++) this.remap(b, this.base === undefined ? undefined : ZERO);
        if (!tailWhole && end > last * bs) parts.push([last * bs, end - last * bs]);
      }
      let chain: void | Promise<void> = undefined;
      for (const [o, n] of parts) {
        chain = isPromise(chain) ? chain.then(() => this.writeNow(o, new Uint8Array(n))) : this.writeNow(o, new Uint8Array(n));
      }
      return chain;
    });
  }

  /** Makes every completed write durable: data first, then the map, then frees retired slots. */
  flush(): void | Promise<void> {
    return this.serial(() => this.flushNow());
  }

  private flushNow(): void {
    try {
      this.files.data.flush();
    } catch (e) {
      throw new BlockIoError(`persistent overlay: flush of the data file failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    const id = new TextEncoder().encode(this.baseId);
    const count = this.map.size;
    const end = HEADER + id.length + count * 8;
    const b = new Uint8Array(end + 4);
    const v = new DataView(b.buffer);
    b.set(MAGIC, 0);
    v.setUint32(8, VERSION, true);
    v.setUint32(12, this.blockSize, true);
    v.setBigUint64(16, BigInt(this.generation + 1), true);
    v.setBigUint64(24, BigInt(this.size), true);
    v.setUint32(40, count, true);
    v.setUint32(44, id.length, true);
    b.set(id, HEADER);
    let at = HEADER + id.length;
    for (const [block, slot] of this.map) {
      v.setUint32(at, block, true);
      v.setUint32(at + 4, slot, true);
      at += 8;
    }
    v.setUint32(end, crc32(b.subarray(0, end)), true);
    const f = this.nextMapB ? this.files.mapB : this.files.mapA;
    try {
      if (f.write(b, 0) !== b.length) throw new Error('short write');
      f.truncate(b.length);
      f.flush();
    } catch (e) {
      // The other map file still holds the last durable map; the next flush tries again.
      throw new BlockIoError(`persistent overlay: writing the map failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.generation++;
    this.nextMapB = !this.nextMapB;
    // The new map is durable: what it names is durable, what it dropped is free.
    for (let s = 0; s < this.slots; s++) {
      if (this.state[s] === FRESH) this.state[s] = DURABLE;
      else if (this.state[s] === RETIRED) this.state[s] = FREE;
    }
    let top = this.slots;
    while (top > 0 && this.state[top - 1] === FREE) top--;
    if (top < this.slots) {
      this.slots = top;
      try {
        this.files.data.truncate(top * this.blockSize);
      } catch {
        // Space not given back this time; nothing is lost.
      }
    }
    this.free = [];
    for (let s = this.slots - 1; s >= 0; s--) if (this.state[s] === FREE) this.free.push(s);
    this.freeCount = this.free.length;
    if (this.cursor > this.slots) this.cursor = 0;
  }

  /** Drops every change: the disk reads as its base (or zeros) again, durably. */
  reset(): void | Promise<void> {
    return this.serial(() => {
      for (const block of [...this.map.keys()]) this.remap(block, undefined);
      this.flushNow();
    });
  }
}

/** Refuses writes; for a second opener of a disk another writer holds (see the browser's locks). */
export class ReadOnlyView implements BlockBackend {
  readonly readOnly = true;
  constructor(private readonly inner: BlockBackend) {}
  get size(): number {
    return this.inner.size;
  }
  read(offset: number, dst: Uint8Array): void | Promise<void> {
    return this.inner.read(offset, dst);
  }
  write(): void {
    throw new ReadOnlyError('this disk (another writer holds it)');
  }
  flush(): void {}
}
