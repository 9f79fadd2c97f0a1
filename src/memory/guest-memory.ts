/**
 * Guest-physical memory as devices see it.
 *
 * Addresses are plain numbers. A guest can name any 64-bit address; addresses at or above 2^53 are
 * not exactly representable, but every such address lies far outside any RAM this process can hold,
 * so the bounds checks below refuse them all the same. Every access is bounds-checked: an access
 * that is not wholly inside RAM throws {@link GuestMemoryError} and touches nothing.
 */
export interface GuestMemory {
  /** Lowest guest-physical address of RAM. */
  readonly base: number;
  /** RAM size in bytes. */
  readonly size: number;

  /** True when [addr, addr + len) lies wholly inside RAM (len 0 at the end of RAM included). */
  contains(addr: number, len: number): boolean;

  /** Copies dst.length bytes starting at addr into dst. */
  read(addr: number, dst: Uint8Array): void;
  /** Copies src into RAM starting at addr. */
  write(addr: number, src: Uint8Array): void;
  /** A zero-copy view of [addr, addr + len): writes through it land in guest RAM. */
  view(addr: number, len: number): Uint8Array;
  /** Fills [addr, addr + len) with one byte value. */
  fill(addr: number, len: number, value: number): void;

  readU8(addr: number): number;
  readU16(addr: number): number;
  readU32(addr: number): number;
  readU64(addr: number): bigint;
  writeU8(addr: number, value: number): void;
  writeU16(addr: number, value: number): void;
  writeU32(addr: number, value: number): void;
  writeU64(addr: number, value: bigint): void;

  /**
   * For a memory whose views can stop reaching it: a number that changes whenever views handed
   * out before stopped doing so (a non-shared WebAssembly.Memory grew and detached its buffer).
   * Absent when views stay valid for good.
   */
  viewGeneration?(): number;
}

/** The one error type for an access outside RAM. */
export class GuestMemoryError extends RangeError {
  override readonly name = 'GuestMemoryError';
  constructor(
    readonly addr: number,
    readonly length: number,
  ) {
    super(`guest memory access outside RAM: ${length} bytes at 0x${formatAddr(addr)}`);
  }
}

function formatAddr(addr: number): string {
  return Number.isFinite(addr) && addr >= 0 ? addr.toString(16) : String(addr);
}
