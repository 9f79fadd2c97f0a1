import type { GuestMemory } from '../memory/guest-memory.js';
import {
  bit,
  F_VERSION_1,
  INT_CONFIG_CHANGE,
  INT_USED_BUFFER,
  MMIO,
  MMIO_MAGIC,
  MMIO_VERSION,
  STATUS_ACKNOWLEDGE as ACK,
  STATUS_DEVICE_NEEDS_RESET as NEEDS_RESET,
  STATUS_DRIVER as DRIVER,
  STATUS_DRIVER_OK as DRIVER_OK,
  STATUS_FAILED as FAILED,
  STATUS_FEATURES_OK as FEATURES_OK,
  STORVM_VENDOR_ID,
  F_EVENT_IDX,
  F_INDIRECT_DESC,
  F_RING_PACKED,
} from './constants.js';
import type { DeviceContext, InterruptLine, VirtioDevice } from './device.js';
import { PackedQueue } from './packed.js';
import { SplitQueue } from './queue.js';
import type { Virtqueue } from './virtqueue.js';

const TWO_32 = 2 ** 32;

/**
 * The driver-visible status transitions (VIRTIO 1.2, 3.1.1 "Driver Requirements: Device
 * Initialization"), as from → to pairs of the bits ACK | DRIVER | FEATURES_OK | DRIVER_OK.
 * Writing 0 (reset), adding FAILED and writing the same value again are always allowed;
 * anything else is ignored.
 */
const STATUS_TRANSITIONS: ReadonlyMap<number, number> = new Map([
  [0, ACK],
  [ACK, ACK | DRIVER],
  [ACK | DRIVER, ACK | DRIVER | FEATURES_OK],
  [ACK | DRIVER | FEATURES_OK, ACK | DRIVER | FEATURES_OK | DRIVER_OK],
]);

/** The ring address registers: the queue field each one sets, and whether it is the high half. */
const RING_ADDRESS_REGISTERS: ReadonlyMap<number, readonly ['descAddr' | 'driverAddr' | 'deviceAddr', boolean]> = new Map([
  [MMIO.QueueDescLow, ['descAddr', false]],
  [MMIO.QueueDescHigh, ['descAddr', true]],
  [MMIO.QueueDriverLow, ['driverAddr', false]],
  [MMIO.QueueDriverHigh, ['driverAddr', true]],
  [MMIO.QueueDeviceLow, ['deviceAddr', false]],
  [MMIO.QueueDeviceHigh, ['deviceAddr', true]],
] as const);

/** A transport's registers and queues as plain data, for a snapshot (see MmioTransport.saveState). */
export interface TransportSnapshot {
  deviceId: number;
  status: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  /** Hexadecimal. */
  driverFeatures: string;
  queueSel: number;
  interruptStatus: number;
  configGeneration: number;
  needsResetReason: string | null;
  packed: boolean;
  queues: Array<{
    size: number;
    descAddr: number;
    driverAddr: number;
    deviceAddr: number;
    ready: boolean;
    indirect: boolean;
    eventIdx: boolean;
    broken: string | null;
    ring: number[];
  }>;
}

/** Every status value the state machine can reach: a prefix of the handshake, plus FAILED and NEEDS_RESET. */
const REACHABLE_STATUS = new Set(
  [0, ACK, ACK | DRIVER, ACK | DRIVER | FEATURES_OK, ACK | DRIVER | FEATURES_OK | DRIVER_OK].flatMap((s) =>
    s === 0 ? [0] : [s, s | FAILED, s | NEEDS_RESET, s | FAILED | NEEDS_RESET],
  ),
);

export interface MmioTransportOptions {
  /** Called when a device method threw: a device bug, kept out of the CPU loop. */
  onDeviceError?(error: unknown): void;
}

/**
 * A virtio-mmio register window, version 2 (VIRTIO 1.2, 4.2.2). It owns the registers, the
 * feature handshake, the status state machine and the queues' addresses; the device sees only
 * activate / notify / reset and signals through the context it is given.
 *
 * Nothing the guest writes makes it throw: invalid writes are ignored, device faults become
 * DEVICE_NEEDS_RESET.
 */
export class MmioTransport {
  private queueList: Virtqueue[];
  private readonly offered: bigint;

  private status = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private interruptStatus = 0;
  private configGeneration = 0;
  private ctx: DeviceContext | undefined;
  /**
   * Set by a reset that found requests in flight: what Status reads (the value before the reset)
   * until the device has drained them. See {@link draining}.
   */
  private drainStatus = 0;
  private readonly onDeviceError: (error: unknown) => void;
  /** Why the device last went to DEVICE_NEEDS_RESET, for diagnostics. */
  needsResetReason: string | undefined;

  constructor(
    readonly device: VirtioDevice,
    readonly memory: GuestMemory,
    readonly irq: InterruptLine,
    options: MmioTransportOptions = {},
  ) {
    this.queueList = device.queueMaxSizes.map((n) => new SplitQueue(n));
    // A modern-only transport: VERSION_1 is always offered (VIRTIO 1.2, 4.2.4 is legacy only).
    this.offered = BigInt.asUintN(64, device.features) | bit(F_VERSION_1);
    this.onDeviceError = options.onDeviceError ?? (() => {});
  }

  /**
   * The device's queues, by index: split ones, or packed ones once the driver accepted
   * VIRTIO_F_RING_PACKED (the objects are replaced at FEATURES_OK).
   */
  get queues(): readonly Virtqueue[] {
    return this.queueList;
  }

  /** Current device status (the Status register). */
  get deviceStatus(): number {
    return this.draining() ? this.drainStatus : this.status;
  }

  /**
   * True while a reset waits for in-flight requests: the device may still touch guest memory, so
   * Status reads non-zero (VIRTIO 1.2, 2.4: the driver waits for 0 before it reuses anything) and
   * register writes are ignored. Measured against bounce buffers in bench/reset.ts: draining costs
   * nothing per request, bouncing costs a copy of every async request's data.
   */
  private draining(): boolean {
    if (this.drainStatus === 0) return false;
    if ((this.guard(() => this.device.pending, 0) ?? 0) > 0) return true;
    this.drainStatus = 0;
    return false;
  }

  /** The features the driver acknowledged, masked to those offered. */
  get negotiatedFeatures(): bigint {
    return this.driverFeatures;
  }

  /** Resolves once no request of the device is in flight. */
  idle(): Promise<void> {
    return this.device.idle();
  }

  /**
   * The registers and queue state, for a snapshot. Only between requests: the machine drains the
   * device first, so nothing is in flight and no reset is waiting.
   */
  saveState(): TransportSnapshot {
    if (this.draining() || (this.guard(() => this.device.pending, 0) ?? 0) > 0) throw new Error('transport has requests in flight; drain it before saving');
    return {
      deviceId: this.device.deviceId,
      status: this.status,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeatures: this.driverFeatures.toString(16),
      queueSel: this.queueSel,
      interruptStatus: this.interruptStatus,
      configGeneration: this.configGeneration,
      needsResetReason: this.needsResetReason ?? null,
      packed: this.queueList[0]?.packed ?? false,
      queues: this.queueList.map((q) => ({
        size: q.size,
        descAddr: q.descAddr,
        driverAddr: q.driverAddr,
        deviceAddr: q.deviceAddr,
        ready: q.ready,
        indirect: q.indirect,
        eventIdx: q.eventIdx,
        broken: q.broken ?? null,
        ring: q.saveRing(),
      })),
    };
  }

  /**
   * Puts back what {@link saveState} gave, on a transport that has not been used yet, and
   * re-activates the device when the driver had set DRIVER_OK. Everything is checked against this
   * device and the guest memory before anything changes; a state that can't be this device's
   * throws an Error saying why.
   */
  loadState(s: TransportSnapshot): void {
    const bad = (why: string): never => {
      throw new Error(`virtio transport of device ${this.device.deviceId}: ${why}`);
    };
    if (s.deviceId !== this.device.deviceId) bad(`the snapshot has device ID ${s.deviceId} here`);
    if (!REACHABLE_STATUS.has(s.status)) bad(`status 0x${s.status.toString(16)} is not reachable`);
    let features: bigint;
    try {
      features = BigInt(`0x${s.driverFeatures}`);
    } catch {
      return bad(`driver features '${s.driverFeatures}'`);
    }
    if ((features & ~this.offered) !== 0n) bad('the driver features were not all offered by this device');
    if (s.queues.length !== this.queueList.length) bad(`${s.queues.length} queues, the device has ${this.queueList.length}`);
    const packed = s.packed;
    if (packed && !(features & bit(F_RING_PACKED))) bad('packed queues without VIRTIO_F_RING_PACKED');
    const fresh = this.queueList.map((q) => (packed ? new PackedQueue(q.maxSize) : new SplitQueue(q.maxSize)));
    s.queues.forEach((qs, i) => {
      const q = fresh[i]!;
      if (!q.validSize(qs.size)) bad(`queue ${i} size ${qs.size}`);
      q.size = qs.size;
      q.descAddr = qs.descAddr;
      q.driverAddr = qs.driverAddr;
      q.deviceAddr = qs.deviceAddr;
      q.indirect = qs.indirect;
      q.eventIdx = qs.eventIdx;
      if (qs.broken !== null) q.broken = qs.broken;
      if (!q.loadRing(qs.ring)) bad(`queue ${i} ring position`);
      if (qs.ready) {
        const why = q.layoutError(this.memory);
        if (why !== undefined) bad(`queue ${i}: ${why}`);
        q.ready = true;
      }
    });
    for (const [i, q] of fresh.entries()) q.epoch = this.queueList[i]!.epoch + 1;
    this.queueList = fresh;
    this.status = s.status;
    this.deviceFeaturesSel = s.deviceFeaturesSel >>> 0;
    this.driverFeaturesSel = s.driverFeaturesSel >>> 0;
    this.driverFeatures = features;
    this.queueSel = s.queueSel >>> 0;
    this.configGeneration = s.configGeneration >>> 0;
    this.needsResetReason = s.needsResetReason ?? undefined;
    this.drainStatus = 0;
    if (this.status & FEATURES_OK && !this.featuresAcceptable()) bad('the device refuses the saved features');
    if (this.status & DRIVER_OK) {
      // activate() sets indirect/eventIdx from the features, which is what they were.
      this.activate();
    }
    this.interruptStatus = s.interruptStatus & (INT_USED_BUFFER | INT_CONFIG_CHANGE);
    this.irq.set(this.interruptStatus !== 0);
  }

  /** A register read of `size` bytes (1, 2 or 4). Unknown or misaligned accesses read 0. */
  read(offset: number, size: number): number {
    if (offset >= MMIO.Config) {
      if (size !== 1 && size !== 2 && size !== 4) return 0;
      return this.guard(() => this.device.readConfig(offset - MMIO.Config, size) >>> 0, 0);
    }
    if (size !== 4) return 0; // VIRTIO 1.2, 4.2.2.2: registers are 32-bit wide
    const q = this.queues[this.queueSel];
    switch (offset) {
      case MMIO.MagicValue:
        return MMIO_MAGIC;
      case MMIO.Version:
        return MMIO_VERSION;
      case MMIO.DeviceID:
        return this.device.deviceId;
      case MMIO.VendorID:
        return STORVM_VENDOR_ID;
      case MMIO.DeviceFeatures:
        return this.deviceFeaturesSel > 1 ? 0 : Number(BigInt.asUintN(32, this.offered >> BigInt(32 * this.deviceFeaturesSel)));
      case MMIO.QueueNumMax:
        return q ? q.maxSize : 0;
      case MMIO.QueueReady:
        return q?.ready ? 1 : 0;
      case MMIO.InterruptStatus:
        return this.interruptStatus;
      case MMIO.Status:
        return this.deviceStatus;
      case MMIO.SHMLenLow:
      case MMIO.SHMLenHigh:
        return 0xffff_ffff; // no shared memory regions (VIRTIO 1.2, 4.2.2: "non-existent")
      case MMIO.QueueReset:
        return 0;
      case MMIO.ConfigGeneration:
        return this.configGeneration;
      default:
        return 0;
    }
  }

  /** A register write of `size` bytes (1, 2 or 4). Writes that don't fit the state are ignored. */
  write(offset: number, size: number, value: number): void {
    value = value >>> 0;
    if (offset >= MMIO.Config) {
      if ((size === 1 || size === 2 || size === 4) && this.status & DRIVER) {
        this.guard(() => this.device.writeConfig(offset - MMIO.Config, size, value), undefined);
      }
      return;
    }
    if (size !== 4 || this.draining()) return; // a driver that did not wait for 0 is ignored
    switch (offset) {
      case MMIO.DeviceFeaturesSel:
        this.deviceFeaturesSel = value;
        return;
      case MMIO.DriverFeaturesSel:
        this.driverFeaturesSel = value;
        return;
      case MMIO.DriverFeatures:
        this.writeDriverFeatures(value);
        return;
      case MMIO.QueueSel:
        this.queueSel = value;
        return;
      case MMIO.QueueNotify:
        this.notify(value);
        return;
      case MMIO.InterruptACK:
        this.interruptStatus &= ~value;
        if (this.interruptStatus === 0) this.irq.set(false);
        return;
      case MMIO.Status:
        this.writeStatus(value);
        return;
      default:
        this.writeQueueRegister(offset, value);
    }
  }

  private writeDriverFeatures(value: number): void {
    // Only between DRIVER and FEATURES_OK (VIRTIO 1.2, 3.1.1 steps 3-5).
    if ((this.status & (DRIVER | FEATURES_OK)) !== DRIVER || this.driverFeaturesSel > 1) return;
    const shift = BigInt(32 * this.driverFeaturesSel);
    const mask = 0xffff_ffffn << shift;
    const features = (this.driverFeatures & ~mask) | (BigInt(value) << shift);
    this.driverFeatures = features & this.offered; // never more than offered
  }

  /** QueueNum, QueueReady and the ring addresses of the selected queue. */
  private writeQueueRegister(offset: number, value: number): void {
    const q = this.queues[this.queueSel];
    // Queue setup happens after FEATURES_OK and before DRIVER_OK (VIRTIO 1.2, 3.1.1 step 7).
    if (q === undefined || (this.status & (FEATURES_OK | DRIVER_OK | NEEDS_RESET)) !== FEATURES_OK) return;
    if (offset === MMIO.QueueReady) {
      if (value === 1 && !q.ready) q.ready = q.layoutError(this.memory) === undefined;
      else if (value === 0) q.ready = false;
      return;
    }
    if (q.ready) return; // VIRTIO 1.2, 4.2.2.3: no changes while QueueReady is 1
    if (offset === MMIO.QueueNum) {
      if (q.validSize(value)) q.size = value;
      return;
    }
    const reg = RING_ADDRESS_REGISTERS.get(offset);
    if (reg === undefined) return;
    const [field, high] = reg;
    q[field] = high ? setHigh(q[field], value) : setLow(q[field], value);
  }

  private writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    const current = this.status & ~NEEDS_RESET; // NEEDS_RESET belongs to the device
    const wanted = value & ~NEEDS_RESET;
    if (wanted === current) return;
    if (wanted === (current | FAILED)) {
      this.status |= FAILED;
      return;
    }
    if (current & FAILED || STATUS_TRANSITIONS.get(current) !== wanted) return;
    if (wanted & DRIVER_OK && !(current & DRIVER_OK)) {
      this.status = (this.status & NEEDS_RESET) | wanted;
      this.activate();
      return;
    }
    if (wanted & FEATURES_OK && !(current & FEATURES_OK)) {
      if (!this.featuresAcceptable()) return;
      this.formatQueues((this.driverFeatures & bit(F_RING_PACKED)) !== 0n);
    }
    this.status = (this.status & NEEDS_RESET) | wanted;
  }

  private featuresAcceptable(): boolean {
    if (!(this.driverFeatures & bit(F_VERSION_1))) return false; // no legacy interface here
    const accept = this.device.acceptFeatures;
    if (accept === undefined) return true;
    return this.guard(() => accept.call(this.device, this.driverFeatures), false);
  }

  /**
   * Gives every queue the ring format just negotiated (VIRTIO 1.2, 2.8: packed with
   * VIRTIO_F_RING_PACKED). A new queue object carries the old one's epoch on, so a chain popped
   * before the reset still never completes into it.
   */
  private formatQueues(packed: boolean): void {
    this.queueList = this.queueList.map((q) => {
      if (q.packed === packed) return q;
      const fresh = packed ? new PackedQueue(q.maxSize) : new SplitQueue(q.maxSize);
      fresh.epoch = q.epoch + 1;
      return fresh;
    });
  }

  private activate(): void {
    const features = this.driverFeatures;
    for (const q of this.queues) {
      q.indirect = (features & bit(F_INDIRECT_DESC)) !== 0n;
      q.eventIdx = (features & bit(F_EVENT_IDX)) !== 0n;
    }
    const ctx: DeviceContext = {
      mem: this.memory,
      queues: this.queues,
      features,
      signalUsed: () => {
        if (this.ctx === ctx) this.raise(INT_USED_BUFFER);
      },
      signalConfig: () => {
        if (this.ctx === ctx) {
          this.configGeneration = (this.configGeneration + 1) >>> 0;
          this.raise(INT_CONFIG_CHANGE);
        }
      },
      needsReset: (reason) => {
        if (this.ctx === ctx) this.setNeedsReset(reason);
      },
    };
    this.ctx = ctx;
    this.guard(() => this.device.activate(ctx), undefined);
  }

  private notify(index: number): void {
    const q = this.queues[index];
    // VIRTIO 1.2, 4.2.2: QueueNotify before DRIVER_OK, for a missing or unready queue, or on a
    // device that needs a reset does nothing.
    if (q === undefined || !q.ready || (this.status & (DRIVER_OK | NEEDS_RESET)) !== DRIVER_OK) return;
    this.guard(() => this.device.notify(index), undefined);
  }

  private reset(): void {
    const before = this.status;
    this.ctx = undefined;
    this.guard(() => this.device.reset(), undefined);
    for (const q of this.queues) q.reset();
    this.status = 0;
    this.driverFeatures = 0n;
    this.deviceFeaturesSel = this.driverFeaturesSel = this.queueSel = 0;
    this.needsResetReason = undefined;
    if ((this.guard(() => this.device.pending, 0) ?? 0) > 0) this.drainStatus = before === 0 ? ACK : before;
    if (this.interruptStatus !== 0) {
      this.interruptStatus = 0;
      this.irq.set(false);
    }
  }

  private raise(bits: number): void {
    this.interruptStatus |= bits;
    this.irq.set(true);
  }

  private setNeedsReset(reason: string): void {
    if (this.status & NEEDS_RESET) return;
    this.needsResetReason = reason;
    this.status |= NEEDS_RESET;
    // VIRTIO 1.2, 2.1.2: the device SHOULD send a config change notification.
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    this.raise(INT_CONFIG_CHANGE);
  }

  /** Runs a device method; a throw becomes DEVICE_NEEDS_RESET, never an exception for the CPU. */
  private guard<T>(fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (error) {
      this.onDeviceError(error);
      if (this.status & DRIVER_OK) this.setNeedsReset(`device error: ${String(error)}`);
      return fallback;
    }
  }
}

function setLow(addr: number, low: number): number {
  return Math.floor(addr / TWO_32) * TWO_32 + low;
}
function setHigh(addr: number, high: number): number {
  return high * TWO_32 + (addr % TWO_32);
}
