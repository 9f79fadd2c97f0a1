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

/** The bytes all bounce buffers of one transport hold, against a fixed limit (hostile-guest line 48). */
export class BounceBudget {
  held = 0;
  constructor(readonly limit: number = BOUNCE_LIMIT) {}
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

  /** A host buffer for the device-writable bytes [addr, addr + len), `at` bytes into the writable part. */
  writable(addr: number, len: number, at: number): Uint8Array {
    const b = this.alloc(len);
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

  /** Gives the buffers' bytes back to the budget; later calls do nothing. */
  release(): void {
    this.budget.held -= this.held;
    this.held = 0;
    this.addrs = this.bufs = this.offs = undefined;
  }

  private alloc(len: number): Uint8Array {
    const budget = this.budget;
    if (budget.held + len > budget.limit) throw new BounceLimitError(len, budget.limit);
    budget.held += len;
    this.held += len;
    return new Uint8Array(len);
  }
}
