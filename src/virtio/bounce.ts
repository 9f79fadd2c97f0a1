import type { GuestMemory } from '../memory/guest-memory.js';

/**
 * Bounce buffers for a transport whose reset can't wait for the device (hostile-guest line 49).
 *
 * A kernel that drives its devices by host calls resets one with a single synchronous call and has
 * no status register to poll, so the MMIO answer (Status reads non-zero until requests in flight
 * have drained) is not available. Instead, every view a device takes of a chain's buffers through
 * the chain's cursors is a host buffer: readable bytes are copied in when the view is taken, and
 * writable bytes are copied back into guest memory only when the chain is given back to a live
 * ring. A backend that finishes after a reset fills or reads host memory only.
 */

/** How many bytes all bounce buffers of one transport may hold at once. */
export const BOUNCE_LIMIT = 64 * 1024 * 1024;

/** Thrown where a view would take the bounce buffers of a transport past their limit. */
export class BounceLimitError extends RangeError {
  override readonly name = 'BounceLimitError';
  constructor(len: number, limit: number) {
    super(`a bounce buffer of ${len} bytes would pass the limit of ${limit} bytes held at once`);
  }
}

/** Bytes of released buffers a budget keeps for reuse. */
const POOL_LIMIT = 16 * 1024 * 1024;

/**
 * The bytes all bounce buffers of one transport hold, against a fixed limit (hostile-guest line
 * 48), and a pool of released buffers by size: a fresh zeroed buffer costs more than reusing one
 * (measured with bench/reset.ts).
 */
export class BounceBudget {
  held = 0;
  private readonly pool = new Map<number, Uint8Array[]>();
  private pooled = 0;
  constructor(readonly limit: number = BOUNCE_LIMIT) {}

  /** A buffer of `len` bytes with unspecified contents. */
  take(len: number): Uint8Array {
    const list = this.pool.get(len);
    const b = list?.pop();
    if (b === undefined) return new Uint8Array(len);
    this.pooled -= len;
    return b;
  }

  /** Takes back a buffer no request uses any more. */
  give(b: Uint8Array): void {
    if (this.pooled + b.length > POOL_LIMIT) return;
    let list = this.pool.get(b.length);
    if (list === undefined) this.pool.set(b.length, (list = []));
    list.push(b);
    this.pooled += b.length;
  }
}

/**
 * The bounce buffers of one chain. Readable views are copies, taken when the view is; writable
 * views start as zeros and are copied back by {@link writeBack}, up to the used length. The chain
 * holds its buffers against the budget until {@link release}, which the queue calls when the
 * chain is given back and the device calls when its request finishes (after a reset too).
 */
export class ChainBounce {
  private addrs: number[] | undefined;
  private bufs: Uint8Array[] | undefined;
  /** Offset of each writable buffer in the chain's writable part. */
  private offs: number[] | undefined;
  private held = 0;

  constructor(private readonly budget: BounceBudget) {}

  /** A host copy of the device-readable bytes [addr, addr + len). */
  readable(mem: GuestMemory, addr: number, len: number): Uint8Array {
    const b = this.alloc(len);
    mem.read(addr, b);
    return b;
  }

  /**
   * A host buffer for the device-writable bytes [addr, addr + len), `at` bytes into the writable
   * part. It starts as zeros, so no byte of an earlier request can reach the guest.
   */
  writable(addr: number, len: number, at: number): Uint8Array {
    const b = this.alloc(len).fill(0);
    (this.addrs ??= []).push(addr);
    (this.bufs ??= []).push(b);
    (this.offs ??= []).push(at);
    return b;
  }

  /** Copies what the device wrote, the first `written` bytes of the writable part, into guest memory. */
  writeBack(mem: GuestMemory, written: number): void {
    const { addrs, bufs, offs } = this;
    if (addrs === undefined || bufs === undefined || offs === undefined) return;
    for (let i = 0; i < addrs.length; i++) {
      const b = bufs[i]!;
      const n = Math.min(b.length, written - offs[i]!);
      if (n > 0) mem.write(addrs[i]!, n === b.length ? b : b.subarray(0, n));
    }
  }

  /**
   * Gives the buffers back to the budget, once the request is over (no backend uses them any
   * more); later calls do nothing.
   */
  release(): void {
    const budget = this.budget;
    budget.held -= this.held;
    this.held = 0;
    if (this.all !== undefined) for (const b of this.all) budget.give(b);
    this.addrs = this.bufs = this.offs = this.all = undefined;
  }

  /** Every buffer this chain took, readable and writable. */
  private all: Uint8Array[] | undefined;

  private alloc(len: number): Uint8Array {
    const budget = this.budget;
    if (budget.held + len > budget.limit) throw new BounceLimitError(len, budget.limit);
    budget.held += len;
    this.held += len;
    const b = budget.take(len);
    (this.all ??= []).push(b);
    return b;
  }
}
