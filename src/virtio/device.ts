import type { GuestMemory } from '../memory/guest-memory.js';
import type { DescriptorChain } from './chain.js';
import { bit, F_EVENT_IDX, F_INDIRECT_DESC, F_RING_PACKED, F_VERSION_1 } from './constants.js';
import type { Virtqueue } from './virtqueue.js';

/** An interrupt line the transport drives; the machine (or a test) owns what it is wired to. */
export interface InterruptLine {
  set(level: boolean): void;
}

/**
 * What a device gets when the driver sets DRIVER_OK. The transport owns the registers and the
 * interrupt line; the device only asks it to signal.
 */
export interface DeviceContext {
  readonly mem: GuestMemory;
  /** All queues of the device, by index; only those with `ready` set may be used. */
  readonly queues: readonly Virtqueue[];
  /** The negotiated feature bits. */
  readonly features: bigint;
  /** Used buffers were added to a queue: raise the used-buffer interrupt (VIRTIO 1.2, 2.3.2). */
  signalUsed(queue: number): void;
  /** The config space changed: bump ConfigGeneration and raise the config interrupt. */
  signalConfig(): void;
  /** The device can't go on (VIRTIO 1.2, 2.1.2): set DEVICE_NEEDS_RESET and tell the driver. */
  needsReset(reason: string): void;
}

/** A device's own state in a snapshot: plain data (JSON), and binary blobs beside it. */
export interface DeviceSnapshot {
  state: unknown;
  blobs?: Uint8Array[];
}

/**
 * Thrown by a device's `loadState` when the snapshot was taken with something else behind the
 * device (another disk, a share with other files): the restore is refused, with this message.
 */
export class DeviceStateMismatch extends Error {
  override name = 'DeviceStateMismatch';
}

/** A virtio device as a transport sees it: no registers, no interrupt line of its own. */
export interface VirtioDevice {
  readonly deviceId: number;
  /** Offered feature bits, device-specific and reserved ones (VERSION_1 is added by the transport). */
  readonly features: bigint;
  /** QueueNumMax of each queue; the length is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** Reads `size` (1, 2 or 4) bytes of config space at `offset`, little-endian; 0 outside it. */
  readConfig(offset: number, size: number): number;
  /** Writes config space; writes to read-only fields are ignored. */
  writeConfig(offset: number, size: number, value: number): void;
  /** May refuse a feature combination at FEATURES_OK (VIRTIO 1.2, 3.1.1 step 5). */
  acceptFeatures?(features: bigint): boolean;
  /** The driver set DRIVER_OK. */
  activate(ctx: DeviceContext): void;
  /** The driver notified queue `queue`; the transport already checked the queue is ready. */
  notify(queue: number): void;
  /** The driver reset the device: forget the context; in-flight work must not complete into rings. */
  reset(): void;
  /** Resolves once no request is in flight. */
  idle(): Promise<void>;
  /**
   * Requests still in flight: work that may still read or write guest memory (a backend filling a
   * buffer, or reading one). While this is above 0 after a reset, the transport keeps the Status
   * register non-zero, so a driver that waits for 0 (VIRTIO 1.2, 2.4) knows the device is done
   * with its memory. A device without the field is taken to finish everything synchronously.
   */
  readonly pending?: number;
  /**
   * Deterministic delivery: while on, async completions are held back and delivered by
   * `flushCompletions()` in submission order, so a replayed run sees them at the same points.
   */
  setDeterministic?(on: boolean): void;
  flushCompletions?(): void;
  /**
   * Snapshots: the device's own state (not the transport's, not the rings'), taken with nothing in
   * flight. A device without it has no state beyond its configuration.
   */
  saveState?(): DeviceSnapshot | Promise<DeviceSnapshot>;
  /**
   * Puts back what saveState gave, after the transport restored its registers and re-activated
   * the device. Throws DeviceStateMismatch when the backend is not the one saved with, or another
   * Error for a state that can't be this device's.
   */
  loadState?(snapshot: DeviceSnapshot): void | Promise<void>;
}

/** The feature bits every storvm device offers for its queues. */
export const COMMON_FEATURES = bit(F_VERSION_1) | bit(F_INDIRECT_DESC) | bit(F_EVENT_IDX);
/** VIRTIO_F_RING_PACKED: what a device adds to offer packed virtqueues (VIRTIO 1.2, 2.8). */
export const PACKED_FEATURES = bit(F_RING_PACKED);

/**
 * The processing loop shared by devices: pop chains, refuse the invalid ones with length 0, hand
 * the rest to `handle`, which answers with the bytes written now or with a Promise of them. Async
 * requests may finish in any order; a completion that arrives after a reset is dropped.
 */
export abstract class QueueDevice implements VirtioDevice {
  abstract readonly deviceId: number;
  abstract readonly features: bigint;
  abstract readonly queueMaxSizes: readonly number[];
  abstract readConfig(offset: number, size: number): number;

  protected ctx: DeviceContext | undefined;
  private inFlight = 0;
  /**
   * Async requests in flight per queue, for the live driver session. A queue with `size` of them
   * is not popped further until one completes: a correct driver never has more outstanding, and
   * a hostile one that republishes heads must not grow host memory without bound.
   */
  private busy: number[] = [];
  private throttled: boolean[] = [];
  /** Completions held for `flushCompletions()` in deterministic mode, with their submission order. */
  private held: Array<{ seq: number; deliver: () => void }> | undefined;
  private submitted = 0;
  private idleWaiters: Array<() => void> = [];
  /** Queues with a used-buffer notification held back by {@link lazyNotify}. */
  private lazy: number[] = [];

  /**
   * Serves one valid chain of queue `queue`. Returns the bytes written into its writable part, or
   * a Promise of them. It must not throw for anything the guest controls: guest errors become a
   * status in the reply. A throw or rejection completes the chain with length 0.
   */
  protected abstract handle(queue: number, chain: DescriptorChain, mem: GuestMemory): number | Promise<number>;

  /** Called on reset, after the context is dropped. */
  protected onReset(): void {}

  /**
   * Whether used-buffer notifications of `queue` may wait: until another queue of the device
   * notifies, or at the latest until the current burst of guest work ends (a microtask, so the end
   * of the CPU slice), so that many completions cost the guest one interrupt. Only for queues
   * whose completions nobody waits on, such as virtio-fs's FORGETs. Default: none.
   */
  protected lazyNotify(_queue: number): boolean {
    return false;
  }

  /** Raises (or, for a lazy queue, schedules) the used-buffer notification of `queue`. */
  private signal(ctx: DeviceContext, queue: number): void {
    if (this.lazyNotify(queue)) {
      if (this.lazy.length === 0) void Promise.resolve().then(() => this.flushLazy(ctx));
      if (!this.lazy.includes(queue)) this.lazy.push(queue);
      return;
    }
    this.flushLazy(ctx);
    ctx.signalUsed(queue);
  }

  private flushLazy(ctx: DeviceContext): void {
    if (this.lazy.length === 0) return;
    const queues = this.lazy;
    this.lazy = [];
    if (this.ctx === ctx) for (const q of queues) ctx.signalUsed(q);
  }

  writeConfig(_offset: number, _size: number, _value: number): void {}

  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }

  reset(): void {
    this.ctx = undefined;
    this.busy = [];
    this.throttled = [];
    this.lazy = [];
    this.onReset();
  }

  notify(queueIndex: number): void {
    const ctx = this.ctx;
    const queue = ctx?.queues[queueIndex];
    if (ctx === undefined || queue === undefined || !queue.ready) return;
    const mem = ctx.mem;
    let completed = false;
    for (;;) {
      if ((this.busy[queueIndex] ?? 0) >= queue.size || this.inFlight >= this.inFlightCap()) {
        this.throttled[queueIndex] = true;
        break;
      }
      const chain = queue.pop(mem);
      if (chain === null) break;
      if (chain.error !== undefined) {
        completed = queue.addUsed(mem, chain, 0) || completed;
        continue;
      }
      let result: number | Promise<number>;
      try {
        result = this.handle(queueIndex, chain, mem);
      } catch {
        result = 0;
      }
      if (typeof result === 'number') {
        completed = queue.addUsed(mem, chain, result) || completed;
      } else {
        this.inFlight++;
        this.busy[queueIndex] = (this.busy[queueIndex] ?? 0) + 1;
        const seq = this.submitted++;
        result.then(
          (len) => this.arrive(seq, () => this.complete(ctx, queueIndex, chain, len)),
          () => this.arrive(seq, () => this.complete(ctx, queueIndex, chain, 0)),
        );
      }
    }
    if (queue.broken !== undefined) ctx.needsReset(queue.broken);
    if (completed && queue.needsNotification(mem)) this.signal(ctx, queueIndex);
  }

  setDeterministic(on: boolean): void {
    if (!on) this.flushCompletions();
    this.held = on ? [] : undefined;
  }

  flushCompletions(): void {
    const held = this.held;
    if (held === undefined || held.length === 0) return;
    this.held = [];
    held.sort((a, b) => a.seq - b.seq);
    for (const h of held) h.deliver();
  }

  /** An async request finished: deliver it now, or hold it for `flushCompletions()`. */
  private arrive(seq: number, deliver: () => void): void {
    this.inFlight--;
    if (this.held !== undefined) this.held.push({ seq, deliver });
    else deliver();
    if (this.inFlight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * Requests in flight over all driver sessions, at most: one session's worth, the sum of the
   * queues' maximum sizes. A reset by host call can't wait for old requests, so without this a
   * driver that resets and resubmits again and again would pile up host work without bound.
   */
  private inFlightCap(): number {
    if (this.cap < 0) {
      let n = 0;
      for (const m of this.queueMaxSizes) n += m;
      this.cap = n;
    }
    return this.cap;
  }
  private cap = -1;

  private complete(ctx: DeviceContext, queueIndex: number, chain: DescriptorChain, len: number): void {
    // After a reset the context is gone and the queue's epoch moved on: the chain is dropped.
    // A queue disabled on its own (host-call transport) moves its epoch within the same context:
    // the chain is dropped, but it no longer counts as in flight.
    if (this.ctx === ctx) {
      const queue = ctx.queues[queueIndex]!;
      this.busy[queueIndex]!--;
      if (queue.epoch === chain.epoch && queue.addUsed(ctx.mem, chain, len) && queue.needsNotification(ctx.mem)) this.signal(ctx, queueIndex);
    }
    // The request is over: its bounce buffers, if any, go back to the budget even when the chain
    // was dropped (given back, addUsed released them already).
    chain.bounce?.release();
    // There is room again, also when the request was of an earlier session: pick up what the
    // driver published meanwhile.
    this.resumeThrottled();
  }

  /** Serves again every queue of the live session that stopped for want of room. */
  private resumeThrottled(): void {
    const t = this.throttled;
    for (let i = 0; i < t.length; i++) {
      if (t[i] && this.ctx !== undefined) {
        t[i] = false;
        this.notify(i);
      }
    }
  }

  /**
   * Whether a chain still belongs to the live driver session: false once the device was reset
   * after the chain was popped. An async request checks this before it writes guest memory, since
   * after a reset that memory may belong to something else.
   */
  protected isLive(queue: number, chain: DescriptorChain): boolean {
    return this.ctx !== undefined && this.ctx.queues[queue]?.epoch === chain.epoch;
  }

  /**
   * {@link isLive} as a function to call later: true while the session and the queue epoch the
   * chain was popped under still stand. Reply writers of async servers keep one per request.
   */
  protected liveness(queue: number, chain: DescriptorChain): () => boolean {
    const ctx = this.ctx;
    const q = ctx?.queues[queue];
    return () => ctx !== undefined && this.ctx === ctx && q!.epoch === chain.epoch;
  }

  /** Requests currently in flight. */
  get pending(): number {
    return this.inFlight;
  }

  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/**
 * A little-endian read of `size` bytes at `offset` of a device's config space held as bytes; 0
 * for a read that falls outside it (VIRTIO 1.2, 4.2.2.2: the driver reads config with accesses
 * of 1, 2 or 4 bytes).
 */
export function readConfigBytes(config: Uint8Array, offset: number, size: number): number {
  if (!Number.isInteger(offset) || offset < 0 || size < 1 || offset + size > config.length) return 0;
  let v = 0;
  for (let i = size - 1; i >= 0; i--) v = v * 256 + config[offset + i]!;
  return v >>> 0;
}
