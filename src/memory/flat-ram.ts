import { GuestMemoryError, type GuestMemory } from './guest-memory.js';

/** Largest RAM a FlatRam accepts: one typed array of at most 4 GiB. */
export const MAX_FLAT_RAM = 2 ** 32;

/**
 * RAM as one contiguous buffer at a fixed guest-physical base (RISC-V boards put it at
 * 0x8000_0000). The buffer may be given — an ArrayBuffer, a SharedArrayBuffer or the buffer of a
 * WebAssembly.Memory — so an outside CPU can share the same bytes.
 */
export class FlatRam implements GuestMemory {
  readonly base: number;
  readonly size: number;
  /** All of RAM; index 0 is guest address `base`. For CPUs and loaders that need raw speed. */
  readonly bytes: Uint8Array;
  private readonly dv: DataView;
  private readonly end: number;

  constructor(base: number, size: number, buffer?: ArrayBufferLike) {
    if (!Number.isSafeInteger(base) || base < 0) throw new RangeError(`FlatRam: bad base address ${base}`);
    if (!Number.isSafeInteger(size) || size <= 0 || size > MAX_FLAT_RAM) {
      throw new RangeError(`FlatRam: size must be an integer in 1..${MAX_FLAT_RAM}, got ${size}`);
    }
    if (!Number.isSafeInteger(base + size)) throw new RangeError('FlatRam: base + size is not a safe integer');
    if (buffer !== undefined && buffer.byteLength < size) {
      throw new RangeError(`FlatRam: buffer of ${buffer.byteLength} bytes is smaller than size ${size}`);
    }
    this.base = base;
    this.size = size;
    this.end = base + size;
    this.bytes = new Uint8Array(buffer ?? new ArrayBuffer(size), 0, size);
    this.dv = new DataView(this.bytes.buffer, this.bytes.byteOffset, size);
  }

  contains(addr: number, len: number): boolean {
    // Written so that NaN, negative and fractional inputs all fail.
    return addr >= this.base && len >= 0 && addr + len <= this.end && Number.isInteger(addr + len);
  }

  /** Offset into `bytes` of [addr, addr + len), or throws. */
  private offset(addr: number, len: number): number {
    if (!(addr >= this.base && addr + len <= this.end) || !Number.isInteger(addr) || !(len >= 0)) {
      throw new GuestMemoryError(addr, len);
    }
    return addr - this.base;
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
    return this.dv.getUint8(this.offset(addr, 1));
  }
  readU16(addr: number): number {
    return this.dv.getUint16(this.offset(addr, 2), true);
  }
  readU32(addr: number): number {
    return this.dv.getUint32(this.offset(addr, 4), true);
  }
  readU64(addr: number): bigint {
    return this.dv.getBigUint64(this.offset(addr, 8), true);
  }
  writeU8(addr: number, value: number): void {
    this.dv.setUint8(this.offset(addr, 1), value);
  }
  writeU16(addr: number, value: number): void {
    this.dv.setUint16(this.offset(addr, 2), value, true);
  }
  writeU32(addr: number, value: number): void {
    this.dv.setUint32(this.offset(addr, 4), value, true);
  }
  writeU64(addr: number, value: bigint): void {
    this.dv.setBigUint64(this.offset(addr, 8), BigInt.asUintN(64, value), true);
  }
}
