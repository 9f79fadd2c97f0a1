import type { GuestMemory } from '../memory/guest-memory.js';
import { bit, DESC_SIZE, F_EVENT_IDX, F_INDIRECT_DESC, F_RING_PACKED, F_VERSION_1 } from './constants.js';
import type { DescriptorChain } from './chain.js';
import type { DeviceContext, VirtioDevice } from './device.js';
import { BounceBudget, ChainBounce } from './bounce.js';
import { SplitQueue } from './queue.js';

/** The largest config buffer a driver may hand to `setup`: the size of the MMIO config window. */
export const HOST_CALL_MAX_CONFIG = 0xf00;

/** Where the three parts of a split ring lie when they are laid out in one piece. */
export interface VringLayout {
  desc: number;
  avail: number;
  used: number;
  /** First byte after the used ring (its avail_event included). */
  end: number;
}

/**
 * The contiguous split-ring layout of the legacy interface (VIRTIO 1.2, 2.7.2 "Legacy Interfaces:
 * A Note on Virtqueue Layout"; Linux vring_init()): the descriptor table, then the available ring
 * with its used_event, then padding up to `align`, then the used ring.
 */
export function legacyVringLayout(desc: number, size: number, align: number): VringLayout {
  const avail = desc + DESC_SIZE * size;
  const availEnd = avail + 4 + 2 * size + 2; // flags, idx, ring[size], used_event
  const used = Math.ceil(availEnd / align) * align;
  return { desc, avail, used, end: used + 4 + 8 * size + 2 };
}

/**
 * A split queue whose chains bounce (bounce.ts): a reset by host call is one synchronous call
 * that can't wait for requests in flight, so no view a device takes of a chain is guest RAM. What
 * the device wrote goes into guest memory here, when the chain is given back to a live ring, and
 * never after a reset. This also keeps requests in flight across a memory grow whole: a non-shared
 * WebAssembly.Memory detaches its old buffer when it grows, but host buffers don't move.
 */
class BouncingQueue extends SplitQueue {
  constructor(
    maxSize: number,
    private readonly budget: BounceBudget,
  ) {
    super(maxSize);
  }
  override pop(mem: GuestMemory): DescriptorChain | null {
    const chain = super.pop(mem);
    if (chain !== null && chain.error === undefined) chain.bounce = new ChainBounce(this.budget);
    return chain;
  }
  override addUsed(mem: GuestMemory, chain: DescriptorChain, len: number): boolean {
    const bounce = chain.bounce;
    if (bounce === undefined) return super.addUsed(mem, chain, len);
    if (chain.epoch === this.epoch && this.ready) bounce.writeBack(mem, len > 0 ? Math.min(len, chain.writableBytes) : 0);
    bounce.release();
    return super.addUsed(mem, chain, len);
  }
}

export interface HostCallTransportOptions {
  /**
   * Delivers interrupt `irq` to the guest: the number the driver gave with `setup` (config
   * changes) or `enableVring` (used buffers of that ring). It is called from inside transport
   * calls too (a notify whose requests finish at once raises its ring's interrupt before it
   * returns), so an embedder whose kernel can't take an interrupt there queues it.
   */
  raiseIrq(irq: number): void;
  /** Alignment of the used ring in the contiguous layout: the guest's page size. Default 4096. */
  ringAlign?: number;
  /** Called when a device method (or `raiseIrq`) threw: a host bug, kept out of the guest's call. */
  onDeviceError?(error: unknown): void;
  /** Called when a guest call was refused or ignored, with the reason; for diagnostics. */
  onRefused?(call: string, reason: string): void;
  /**
   * Bytes the bounce buffers of this transport may hold at once (default 64 MiB); a request whose
   * views would pass it fails (bounce.ts, hostile-guest line 48).
   */
  bounceLimit?: number;
  /** Called when the device went to DEVICE_NEEDS_RESET (the driver can't read a status here). */
  onNeedsReset?(reason: string): void;
}

/**
 * A virtio transport driven by host calls instead of register writes, for a kernel that reaches
 * its devices through imported functions (a kernel that is itself WebAssembly). The same
 * {@link VirtioDevice}s as behind `MmioTransport`, over any {@link GuestMemory}.
 *
 * The driver keeps the status byte to itself; what the device learns is the call sequence:
 * `setup` (where the config bytes live and the config interrupt, once per probe, kept across
 * resets), `reset`, `setFeatures` (FEATURES_OK), `enableVring` for each ring (the first one stands
 * in for DRIVER_OK), `notify`, `disableVring`. Every call checks what the MMIO path checks: the
 * phase, the queue index, the queue size, ring alignment and placement in RAM, features masked to
 * those offered. A call that doesn't fit is ignored (and reported to `onRefused`); nothing the
 * guest passes makes a call throw.
 */
export class HostCallTransport {
  readonly queues: readonly SplitQueue[];
  /** Features offered to the driver: the device's and VERSION_1. */
  readonly offeredFeatures: bigint;
  /** Why the device last went to DEVICE_NEEDS_RESET, for diagnostics. */
  needsResetReason: string | undefined;

  private readonly align: number;
  private readonly queueIrqs: number[];
  private driverFeatures = 0n;
  private featuresOk = false;
  private needsReset = false;
  private ctx: DeviceContext | undefined;
  private configIrq = -1;
  private configAddr = 0;
  /** The config bytes as last published into the guest's buffer. */
  private configShadow = new Uint8Array(0);
  /** A config change arrived before `setup`: raise it once the driver says where. */
  private configPending = false;
  private readonly options: HostCallTransportOptions;

  constructor(
    readonly device: VirtioDevice,
    readonly memory: GuestMemory,
    options: HostCallTransportOptions,
  ) {
    const align = options.ringAlign ?? 4096;
    if (!Number.isInteger(align) || align < 4 || align > 2 ** 30 || (align & (align - 1)) !== 0) {
      throw new RangeError(`HostCallTransport: ringAlign must be a power of two from 4 to 2^30, got ${align}`);
    }
    if (typeof options.raiseIrq !== 'function') throw new TypeError('HostCallTransport: raiseIrq is required');
    const limit = options.bounceLimit;
    if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new RangeError(`HostCallTransport: bounceLimit must be a non-negative integer, got ${limit}`);
    }
    this.align = align;
    this.options = options;
    const budget = new BounceBudget(options.bounceLimit);
    this.queues = device.queueMaxSizes.map((n) => new BouncingQueue(n, budget));
    this.queueIrqs = this.queues.map(() => -1);
    // Split rings only here: a device's VIRTIO_F_RING_PACKED is not passed on (VIRTIO 1.2, 2.8).
    this.offeredFeatures = (BigInt.asUintN(64, device.features) & ~bit(F_RING_PACKED)) | bit(F_VERSION_1);
  }

  /** The features the driver set, masked to those offered; 0 before `setFeatures`. */
  get negotiatedFeatures(): bigint {
    return this.driverFeatures;
  }

  /** True once the device was activated (the first ring enabled after `setFeatures`). */
  get active(): boolean {
    return this.ctx !== undefined;
  }

  /** True while the device is in DEVICE_NEEDS_RESET. */
  get broken(): boolean {
    return this.needsReset;
  }

  /** The interrupt number ring `index` raises, or undefined when it is not enabled. */
  queueIrq(index: number): number | undefined {
    const irq = this.queueIrqs[index];
    return irq === undefined || irq < 0 ? undefined : irq;
  }

  /** Resolves once no request of the device is in flight. */
  idle(): Promise<void> {
    return this.device.idle();
  }

  /**
   * The driver's probe: config bytes go to [configAddr, configAddr + configLen) (at most
   * {@link HOST_CALL_MAX_CONFIG} of them are used) and config changes raise `configIrq`. The
   * device writes its config there now and again on every change.
   */
  setup(configIrq: number, configAddr: number, configLen: number): boolean {
    if (!isU32(configIrq) || !isU32(configLen) || !Number.isSafeInteger(configAddr) || configAddr < 0) {
      return this.refuse('setup', `bad arguments (${configIrq}, ${configAddr}, ${configLen})`);
    }
    const len = Math.min(configLen, HOST_CALL_MAX_CONFIG);
    if (!this.memory.contains(configAddr, len)) {
      return this.refuse('setup', `config buffer of ${len} bytes at 0x${configAddr.toString(16)} is outside RAM`);
    }
    this.configIrq = configIrq;
    this.configAddr = configAddr;
    this.configShadow = new Uint8Array(len);
    this.publishConfig();
    if (this.configPending) {
      this.configPending = false;
      this.raise(configIrq);
    }
    return true;
  }

  /** Device reset (VIRTIO 1.2, 2.4): queues, features and in-flight work are dropped; `setup` stays. */
  reset(): void {
    this.ctx = undefined;
    this.guard(() => this.device.reset(), undefined);
    for (const q of this.queues) q.reset();
    this.queueIrqs.fill(-1);
    this.driverFeatures = 0n;
    this.featuresOk = false;
    this.needsReset = false;
    this.needsResetReason = undefined;
  }

  /** The driver's features (FEATURES_OK, VIRTIO 1.2, 3.1.1 steps 4-5), masked to those offered. */
  setFeatures(features: bigint): boolean {
    if (typeof features !== 'bigint') return this.refuse('set_features', `features must be a bigint, got ${typeof features}`);
    if (this.featuresOk) return this.refuse('set_features', 'features were already set; the device must be reset first');
    const masked = BigInt.asUintN(64, features) & this.offeredFeatures;
    if (!(masked & bit(F_VERSION_1))) return this.refuse('set_features', 'VERSION_1 not acknowledged (no legacy interface)');
    const accept = this.device.acceptFeatures;
    if (accept !== undefined && !this.guard(() => accept.call(this.device, masked), false)) {
      return this.refuse('set_features', `the device refused features 0x${masked.toString(16)}`);
    }
    this.driverFeatures = masked;
    this.featuresOk = true;
    return true;
  }

  /**
   * Enables ring `index` of `size` entries laid out contiguously from `descAddr` (see
   * {@link legacyVringLayout}); its used buffers raise `irq`. The first ring enabled activates
   * the device.
   */
  enableVring(index: number, size: number, descAddr: number, irq: number): boolean {
    const call = 'enable_vring';
    if (!this.featuresOk) return this.refuse(call, 'before set_features');
    if (this.needsReset) return this.refuse(call, 'the device needs a reset');
    const q = Number.isInteger(index) ? this.queues[index] : undefined;
    if (q === undefined) return this.refuse(call, `no queue ${index} (the device has ${this.queues.length})`);
    if (q.ready) return this.refuse(call, `queue ${index} is already enabled`);
    if (!SplitQueue.validSize(size, q.maxSize)) return this.refuse(call, `queue size ${size} is not a power of two in 1..${q.maxSize}`);
    if (!Number.isSafeInteger(descAddr) || descAddr < 0) return this.refuse(call, `bad ring address ${descAddr}`);
    if (!isU32(irq)) return this.refuse(call, `bad interrupt number ${irq}`);
    const layout = legacyVringLayout(descAddr, size, this.align);
    q.size = size;
    q.descAddr = layout.desc;
    q.driverAddr = layout.avail;
    q.deviceAddr = layout.used;
    const error = q.layoutError(this.memory);
    if (error !== undefined) {
      q.reset();
      return this.refuse(call, `queue ${index}: ${error}`);
    }
    q.indirect = (this.driverFeatures & bit(F_INDIRECT_DESC)) !== 0n;
    q.eventIdx = (this.driverFeatures & bit(F_EVENT_IDX)) !== 0n;
    q.ready = true;
    this.queueIrqs[index] = irq;
    if (this.ctx === undefined) this.activate();
    return true;
  }

  /** Disables ring `index`: it is not served any more, and its in-flight requests complete nowhere. */
  disableVring(index: number): boolean {
    const q = Number.isInteger(index) ? this.queues[index] : undefined;
    if (q === undefined) return this.refuse('disable_vring', `no queue ${index}`);
    if (!q.ready) return false;
    q.reset(); // a new epoch: chains popped before are never completed into this ring
    this.queueIrqs[index] = -1;
    return true;
  }

  /** The driver made buffers available in ring `index`. */
  notify(index: number): boolean {
    const q = this.queues[index];
    // As QueueNotify (VIRTIO 1.2, 4.2.2): nothing for a missing or disabled ring, before the
    // device is active or while it needs a reset.
    if (q === undefined || !q.ready || this.ctx === undefined || this.needsReset) {
      return this.refuse('notify', `queue ${index} is not live`);
    }
    this.guard(() => this.device.notify(index), undefined);
    return true;
  }

  /**
   * The driver wrote into its config buffer: each byte that differs from what was published is
   * passed to the device's `writeConfig` (one byte at a time), then the buffer is published again,
   * so writes the device ignores (read-only fields) don't stick.
   */
  configWritten(): boolean {
    if (this.configIrq < 0) return this.refuse('config_written', 'before setup');
    if (!this.featuresOk) return this.refuse('config_written', 'before set_features');
    const shadow = this.configShadow;
    const now = new Uint8Array(shadow.length);
    this.memory.read(this.configAddr, now);
    for (let i = 0; i < now.length; i++) {
      if (now[i] !== shadow[i]) this.guard(() => this.device.writeConfig(i, 1, now[i]!), undefined);
    }
    this.publishConfig();
    return true;
  }

  private activate(): void {
    const ctx: DeviceContext = {
      mem: this.memory,
      queues: this.queues,
      features: this.driverFeatures,
      signalUsed: (queue) => {
        const irq = this.queueIrqs[queue];
        if (this.ctx === ctx && irq !== undefined && irq >= 0) this.raise(irq);
      },
      signalConfig: () => {
        if (this.ctx === ctx) this.configChanged();
      },
      needsReset: (reason) => {
        if (this.ctx === ctx) this.setNeedsReset(reason);
      },
    };
    this.ctx = ctx;
    this.guard(() => this.device.activate(ctx), undefined);
  }

  /** Publishes the config again and raises the config interrupt (or holds it until `setup`). */
  private configChanged(): void {
    if (this.configIrq < 0) {
      this.configPending = true;
      return;
    }
    this.publishConfig();
    this.raise(this.configIrq);
  }

  /** Writes the device's config bytes into the driver's buffer. */
  private publishConfig(): void {
    const shadow = this.configShadow;
    if (shadow.length === 0) return;
    this.guard(() => {
      for (let i = 0; i < shadow.length; i++) shadow[i] = this.device.readConfig(i, 1) & 0xff;
    }, undefined);
    // The buffer was checked at setup and RAM never shrinks under it.
    this.memory.write(this.configAddr, shadow);
  }

  private setNeedsReset(reason: string): void {
    if (this.needsReset) return;
    this.needsReset = true;
    this.needsResetReason = reason;
    this.report(() => this.options.onNeedsReset?.(reason));
    // VIRTIO 1.2, 2.1.2: the device SHOULD send a config change notification.
    this.configChanged();
  }

  private raise(irq: number): void {
    this.report(() => this.options.raiseIrq(irq));
  }

  private refuse(call: string, reason: string): false {
    this.report(() => this.options.onRefused?.(call, reason));
    return false;
  }

  /** Runs an embedder callback; a throw is the embedder's bug and goes to onDeviceError. */
  private report(fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.deviceError(error);
    }
  }

  private deviceError(error: unknown): void {
    try {
      this.options.onDeviceError?.(error);
    } catch {
      // nothing more can be done without throwing into the guest's call
    }
  }

  /** Runs a device method; a throw becomes DEVICE_NEEDS_RESET, never an exception for the caller. */
  private guard<T>(fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (error) {
      this.deviceError(error);
      if (this.ctx !== undefined) this.setNeedsReset(`device error: ${String(error)}`);
      return fallback;
    }
  }
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
}
