/**
 * What the hart needs from the machine around it. The CPU never imports a device: RAM is reached
 * directly through `Ram` (the fast path), everything else through `Bus`, and interrupts arrive
 * through `Hart.setInterruptLine`.
 */

/** Guest RAM: a byte array mapped at physical address `base`. Compatible with memory's FlatRam. */
export interface Ram {
  readonly base: number;
  readonly bytes: Uint8Array;
}

/**
 * Physical accesses outside RAM (MMIO). `size` is 1, 2, 4 or 8 bytes; 64-bit values travel as two
 * int32 halves. A `false` return means nothing answers at `pa`: the hart raises an access fault
 * (priv spec 3.7, 3.1.15 "load/store access fault").
 */
export interface Bus {
  read(pa: number, size: number, out: Int32Array): boolean;
  write(pa: number, size: number, lo: number, hi: number): boolean;
}

/** A bus with nothing on it: every non-RAM access faults. */
export const EMPTY_BUS: Bus = {
  read: () => false,
  write: () => false,
};
