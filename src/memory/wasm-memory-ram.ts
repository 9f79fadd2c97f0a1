import { GuestMemoryError, type GuestMemory } from './guest-memory.js';

/**
 * What {@link WasmMemoryRam} needs of a `WebAssembly.Memory`: its current buffer. The core is
 * environment-free and its type library has no WebAssembly namespace, so the memory is taken by
 * shape; a real `WebAssembly.Memory` fits, and so does anything else with a `buffer`.
 */
export interface WasmMemoryLike {
  readonly buffer: ArrayBufferLike;
}

/**
 * Guest RAM that is a WebAssembly linear memory, for a kernel that is itself wasm: its physical
 * addresses are offsets into the memory, so RAM starts at 0 and ends where the memory ends now.
 *
 * The memory may grow under it, from this thread or (shared memory) another one. Growing a
 * non-shared memory detaches its old buffer; growing a shared one leaves the old buffer valid but
 * as short as it was. Either way the cached view is simply too short afterwards, so an access that
 * misses it takes the current `memory.buffer` and checks again: the fast path stays one compare,
 * and an address the memory has since grown to is served. Memories never shrink.
 *
 * A `view()` into a non-shared memory is detached by a later grow (it then reads as empty and
 * writes to it are lost); views into a shared memory stay valid. `viewGeneration()` tells the
 * two apart for a request that held views across a grow.
 */
export class WasmMemoryRam implements GuestMemory {
  readonly base = 0;
  private bytes: Uint8Array;
  private dv: DataView;
  private generation = 0;

  constructor(readonly memory: WasmMemoryLike) {
    const buffer: unknown = memory?.buffer;
    if (!(buffer instanceof ArrayBuffer) && !(typeof SharedArrayBuffer === 'function' && buffer instanceof SharedArrayBuffer)) {
      throw new TypeError('WasmMemoryRam: the memory has no ArrayBuffer or SharedArrayBuffer `buffer`');
    }
    this.bytes = new Uint8Array(buffer);
    this.dv = new DataView(buffer);
  }

  /** RAM size in bytes: the memory's current length. */
  get size(): number {
    this.refresh();
    return this.bytes.length;
  }

  /** True when `memory.buffer` is a SharedArrayBuffer (a memory created with `shared: true`). */
  get shared(): boolean {
    return typeof SharedArrayBuffer === 'function' && this.memory.buffer instanceof SharedArrayBuffer;
  }

  /** Changes each time a grow detached the buffer that earlier views point into. */
  viewGeneration(): number {
    // A detached view has length 0: one compare while nothing happened.
    if (this.bytes.length === 0) this.refresh();
    return this.generation;
  }

  /** Takes the memory's current buffer when the cached one no longer covers all of it. */
  private refresh(): void {
    const buffer = this.memory.buffer;
    const old = this.bytes.buffer;
    if (buffer === old && this.bytes.length === buffer.byteLength) return;
    if (buffer !== old && old.byteLength === 0) this.generation++; // the old one was detached
    this.bytes = new Uint8Array(buffer);
    this.dv = new DataView(buffer);
  }

  contains(addr: number, len: number): boolean {
    if (inside(addr, len, this.bytes.length)) return true;
    this.refresh();
    return inside(addr, len, this.bytes.length);
  }

  /** Offset of [addr, addr + len) in the current buffer (which is addr itself), or throws. */
  private offset(addr: number, len: number): number {
    if (inside(addr, len, this.bytes.length)) return addr;
    this.refresh();
    if (inside(addr, len, this.bytes.length)) return addr;
    throw new GuestMemoryError(addr, len);
  }

  read(addr: number, dst: Uint8Array): void {
    const off = this.offset(addr, dst.length);
    dst.set(this.bytes.subarray(off, off + dst.length));
  }

  write(addr: number, src: Uint8Array): void {
    const off = this.offset(addr, src.length);
    this.bytes.set(src, off);
  }

  view(addr: number, len: number): Uint8Array {
    const off = this.offset(addr, len);
    return this.bytes.subarray(off, off + len);
  }

  fill(addr: number, len: number, value: number): void {
    const off = this.offset(addr, len);
    this.bytes.fill(value, off, off + len);
  }

  readU8(addr: number): number {
    const off = this.offset(addr, 1); // before this.dv: offset() may replace it
    return this.dv.getUint8(off);
  }
  readU16(addr: number): number {
    const off = this.offset(addr, 2);
    return this.dv.getUint16(off, true);
  }
  readU32(addr: number): number {
    const off = this.offset(addr, 4);
    return this.dv.getUint32(off, true);
  }
  readU64(addr: number): bigint {
    const off = this.offset(addr, 8);
    return this.dv.getBigUint64(off, true);
  }
  writeU8(addr: number, value: number): void {
    const off = this.offset(addr, 1);
    this.dv.setUint8(off, value);
  }
  writeU16(addr: number, value: number): void {
    const off = this.offset(addr, 2);
    this.dv.setUint16(off, value, true);
  }
  writeU32(addr: number, value: number): void {
    const off = this.offset(addr, 4);
    this.dv.setUint32(off, value, true);
  }
  writeU64(addr: number, value: bigint): void {
    const off = this.offset(addr, 8);
    this.dv.setBigUint64(off, BigInt.asUintN(64, value), true);
  }
}

/** [addr, addr + len) lies in [0, end); written so that NaN, negative and fractional inputs fail. */
function inside(addr: number, len: number, end: number): boolean {
  return addr >= 0 && len >= 0 && addr + len <= end && Number.isInteger(addr) && Number.isInteger(len);
}
