/**
 * A virtio driver as the guest sees it, for tests and benchmarks: it sets a device up through the
 * MMIO registers the way Linux's virtio_mmio driver does, builds direct and indirect descriptor
 * chains in guest memory, kicks, and collects used entries. Every device's tests use it.
 */
import {
  AVAIL_F_NO_INTERRUPT,
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_AVAIL,
  DESC_F_USED,
  DESC_F_WRITE,
  F_RING_PACKED,
  FlatRam,
  type GuestMemory,
  MMIO,
  MmioTransport,
  type MmioTransportOptions,
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
  type VirtioDevice,
} from '../index.js';

export const RAM_BASE = 0x8000_0000;

/** An interrupt line that remembers its level and counts rising edges. */
export class TestIrq {
  level = false;
  raised = 0;
  set(level: boolean): void {
    if (level && !this.level) this.raised++;
    this.level = level;
  }
}

/** A descriptor as the driver writes it. */
export interface RawDesc {
  addr: number;
  len: number;
  flags: number;
  next: number;
}

/** One used ring element. */
export interface UsedElem {
  id: number;
  len: number;
}

/** What the driver put in a chain, to look at once the device answered. */
export interface Submitted {
  head: number;
  /** Guest addresses and lengths of the writable buffers, in order. */
  writable: Array<{ addr: number; len: number }>;
  /** Descriptor indices this chain holds in the queue's table. */
  descs: number[];
}

export interface ChainSpec {
  /** Contents of the device-readable buffers, in order. */
  readable?: Uint8Array[];
  /** Lengths of the device-writable buffers, in order. */
  writable?: number[];
  /** Put the buffers in an indirect table (VIRTIO_F_INDIRECT_DESC). */
  indirect?: boolean;
}

export interface InitOptions {
  /**
   * Features to accept (masked with what is offered); default: everything offered. The ring
   * format follows `packed`, not this mask: VIRTIO_F_RING_PACKED is taken only with `packed`.
   */
  features?: bigint;
  /** Use packed virtqueues (VIRTIO_F_RING_PACKED); the queues are then in `packedQueues`. */
  packed?: boolean;
  /** QueueNum per queue; default: each queue's QueueNumMax (capped at 256). */
  queueSizes?: number[];
  /** How many queues to set up; default all the device has. */
  queues?: number;
}

export interface DriverOptions extends MmioTransportOptions {
  /** The memory the device is given: `mem` itself (default), or a wrapper that watches it. */
  deviceMem?: GuestMemory;
}

/** What split and packed driver queues share: enough to run requests on either. */
export interface DriverRing {
  readonly index: number;
  readonly size: number;
  readonly driver: QueueHost;
  /** Builds a chain from fresh buffers and makes it available. */
  add(spec: ChainSpec): Submitted;
  /** Notifies the device (QueueNotify). */
  kick(): void;
  /** Takes the used buffers published since the last call and frees their descriptors. */
  takeUsed(): UsedElem[];
  /** Reads back what the device wrote into a chain's writable buffers. */
  readWritable(sub: Submitted, len?: number): Uint8Array;
  /** Adds, kicks, waits for the device and returns the used element of that chain. */
  submit(spec: ChainSpec): Promise<{ sub: Submitted; used: UsedElem; data: Uint8Array }>;
}

/** A bump allocator over guest RAM. */
export class GuestAllocator {
  private next: number;
  constructor(
    readonly mem: GuestMemory,
    start = mem.base,
  ) {
    this.next = start;
  }
  alloc(len: number, align = 16): number {
    const addr = Math.ceil(this.next / align) * align;
    if (addr + len > this.mem.base + this.mem.size) throw new Error('test RAM exhausted');
    this.next = addr + len;
    return addr;
  }
  /** Address of the first byte never handed out. */
  get top(): number {
    return this.next;
  }
}

/** What a DriverQueue needs of its driver, whatever the transport: RAM, an allocator, a kick. */
export interface QueueHost {
  readonly mem: GuestMemory;
  readonly allocator: GuestAllocator;
  /** Notifies the device of queue `index`. */
  notify(index: number): void;
  /** Resolves once the device has no request in flight. */
  idle(): Promise<void>;
}

/** Where a queue's rings are, when the driver placed them itself (one contiguous block, say). */
export interface RingAddresses {
  desc: number;
  avail: number;
  used: number;
}

/** The driver's view of one split queue (VIRTIO 1.2, 2.7). */
export class DriverQueue implements DriverRing {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  /** The driver's shadow of avail.idx. */
  availIdx = 0;
  /** The used index up to which entries were collected. */
  lastUsed = 0;
  private free: number[];
  private readonly held = new Map<number, Submitted>();

  constructor(
    readonly driver: QueueHost,
    readonly index: number,
    readonly size: number,
    rings?: RingAddresses,
  ) {
    const a = driver.allocator;
    this.desc = rings?.desc ?? a.alloc(16 * size, 16);
    this.avail = rings?.avail ?? a.alloc(6 + 2 * size, 2);
    this.used = rings?.used ?? a.alloc(6 + 8 * size, 4);
    // Fresh rings start zeroed, as vring_alloc_queue() gives them.
    driver.mem.fill(this.desc, 16 * size, 0);
    driver.mem.fill(this.avail, 6 + 2 * size, 0);
    driver.mem.fill(this.used, 6 + 8 * size, 0);
    this.free = Array.from({ length: size }, (_, i) => i);
  }

  get mem(): GuestMemory {
    return this.driver.mem;
  }

  /** Writes descriptor `i` of the table (or of any table at `table`). */
  writeDesc(i: number, d: RawDesc, table = this.desc): void {
    const at = table + 16 * i;
    this.mem.writeU64(at, BigInt(d.addr));
    this.mem.writeU32(at + 8, d.len);
    this.mem.writeU16(at + 12, d.flags);
    this.mem.writeU16(at + 14, d.next);
  }

  /** Puts `head` in the next available slot and moves avail.idx (VIRTIO 1.2, 2.7.13). */
  publish(head: number): void {
    this.mem.writeU16(this.avail + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.mem.writeU16(this.avail + 2, this.availIdx);
  }

  /** Sets avail.idx directly (for hostile tests). */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.mem.writeU16(this.avail + 2, this.availIdx);
  }

  /** Writes the used_event field (EVENT_IDX). */
  setUsedEvent(idx: number): void {
    this.mem.writeU16(this.avail + 4 + 2 * this.size, idx & 0xffff);
  }
  /** Reads the device's avail_event field (EVENT_IDX). */
  get availEvent(): number {
    return this.mem.readU16(this.used + 4 + 8 * this.size);
  }
  /** Sets or clears VIRTQ_AVAIL_F_NO_INTERRUPT. */
  setNoInterrupt(on: boolean): void {
    this.mem.writeU16(this.avail, on ? AVAIL_F_NO_INTERRUPT : 0);
  }
  /** used.idx as the device published it. */
  get usedIdx(): number {
    return this.mem.readU16(this.used + 2);
  }

  /** Builds a chain from fresh buffers and publishes it. */
  add(spec: ChainSpec): Submitted {
    const sub = this.build(spec);
    this.publish(sub.head);
    return sub;
  }

  /** Builds a chain without publishing it. */
  build(spec: ChainSpec): Submitted {
    const a = this.driver.allocator;
    const descs: RawDesc[] = [];
    const writable: Array<{ addr: number; len: number }> = [];
    for (const data of spec.readable ?? []) {
      const addr = a.alloc(Math.max(1, data.length), 8);
      this.mem.write(addr, data);
      descs.push({ addr, len: data.length, flags: 0, next: 0 });
    }
    for (const len of spec.writable ?? []) {
      const addr = a.alloc(Math.max(1, len), 8);
      this.mem.fill(addr, len, 0xee); // so a test sees what the device did not write
      descs.push({ addr, len, flags: DESC_F_WRITE, next: 0 });
      writable.push({ addr, len });
    }
    if (descs.length === 0) throw new Error('a chain needs at least one buffer');
    if (spec.indirect) {
      const table = a.alloc(16 * descs.length, 16);
      descs.forEach((d, i) => {
        const last = i === descs.length - 1;
        this.writeDesc(i, { ...d, flags: d.flags | (last ? 0 : DESC_F_NEXT), next: last ? 0 : i + 1 }, table);
      });
      const head = this.take(1)[0]!;
      this.writeDesc(head, { addr: table, len: 16 * descs.length, flags: DESC_F_INDIRECT, next: 0 });
      return this.hold({ head, writable, descs: [head] });
    }
    const ids = this.take(descs.length);
    descs.forEach((d, i) => {
      const last = i === descs.length - 1;
      this.writeDesc(ids[i]!, { ...d, flags: d.flags | (last ? 0 : DESC_F_NEXT), next: last ? 0 : ids[i + 1]! });
    });
    return this.hold({ head: ids[0]!, writable, descs: ids });
  }

  private take(n: number): number[] {
    if (this.free.length < n) throw new Error(`queue ${this.index}: ${n} descriptors wanted, ${this.free.length} free`);
    return this.free.splice(0, n);
  }

  private hold(sub: Submitted): Submitted {
    this.held.set(sub.head, sub);
    return sub;
  }

  /** Notifies the device of this queue (QueueNotify, or the transport's own kick). */
  kick(): void {
    this.driver.notify(this.index);
  }

  /** Takes the used entries published since the last call and frees their descriptors. */
  takeUsed(): UsedElem[] {
    const out: UsedElem[] = [];
    const idx = this.usedIdx;
    while (this.lastUsed !== idx) {
      const at = this.used + 4 + 8 * (this.lastUsed % this.size);
      const elem = { id: this.mem.readU32(at), len: this.mem.readU32(at + 4) };
      out.push(elem);
      const sub = this.held.get(elem.id);
      if (sub) {
        this.held.delete(elem.id);
        this.free.push(...sub.descs);
      }
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }

  /** Reads back the bytes the device wrote into a submitted chain's writable buffers. */
  readWritable(sub: Submitted, len = Infinity): Uint8Array {
    return readBack(this.mem, sub, len);
  }

  /** Adds, kicks, waits for the device and returns the used element of that chain. */
  async submit(spec: ChainSpec): Promise<{ sub: Submitted; used: UsedElem; data: Uint8Array }> {
    const sub = this.add(spec);
    this.kick();
    await this.driver.idle();
    const used = this.takeUsed().find((u) => u.id === sub.head);
    if (used === undefined) throw new Error(`queue ${this.index}: chain ${sub.head} was not completed`);
    return { sub, used, data: this.readWritable(sub, used.len) };
  }
}

/** A driver bound to one MMIO transport over any GuestMemory (a FlatRam of 16 MiB by default). */
export class TestDriver implements QueueHost {
  readonly irq = new TestIrq();
  readonly transport: MmioTransport;
  readonly allocator: GuestAllocator;
  /** Split queues set up by `init` or `setupQueue`. */
  readonly queues: DriverQueue[] = [];
  /** Packed queues set up by `init({ packed: true })` or `setupPackedQueue`. */
  readonly packedQueues: PackedDriverQueue[] = [];
  features = 0n;

  constructor(
    readonly device: VirtioDevice,
    readonly mem: GuestMemory = new FlatRam(RAM_BASE, 16 << 20),
    opts: DriverOptions = {},
  ) {
    this.transport = new MmioTransport(device, opts.deviceMem ?? mem, this.irq, opts);
    this.allocator = new GuestAllocator(mem);
  }

  read(offset: number): number {
    return this.transport.read(offset, 4);
  }
  write(offset: number, value: number): void {
    this.transport.write(offset, 4, value);
  }
  get status(): number {
    return this.read(MMIO.Status);
  }
  notify(index: number): void {
    this.transport.write(MMIO.QueueNotify, 4, index);
  }
  idle(): Promise<void> {
    return this.transport.idle();
  }

  /** The 64-bit DeviceFeatures. */
  deviceFeatures(): bigint {
    this.write(MMIO.DeviceFeaturesSel, 0);
    const lo = this.read(MMIO.DeviceFeatures);
    this.write(MMIO.DeviceFeaturesSel, 1);
    const hi = this.read(MMIO.DeviceFeatures);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** Writes DriverFeatures, both halves. */
  writeFeatures(features: bigint): void {
    this.write(MMIO.DriverFeaturesSel, 0);
    this.write(MMIO.DriverFeatures, Number(features & 0xffff_ffffn));
    this.write(MMIO.DriverFeaturesSel, 1);
    this.write(MMIO.DriverFeatures, Number((features >> 32n) & 0xffff_ffffn));
  }

  /** Reset, ACKNOWLEDGE, DRIVER and the feature handshake; returns whether FEATURES_OK stuck. */
  negotiate(wanted?: bigint): boolean {
    this.write(MMIO.Status, 0);
    this.queues.length = 0;
    this.packedQueues.length = 0;
    if (this.read(MMIO.MagicValue) !== 0x74726976 || this.read(MMIO.Version) !== 2) throw new Error('not a virtio-mmio v2 device');
    this.write(MMIO.Status, STATUS_ACKNOWLEDGE);
    this.write(MMIO.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    const offered = this.deviceFeatures();
    this.features = offered & (wanted ?? offered & ~(1n << BigInt(F_RING_PACKED)));
    this.writeFeatures(this.features);
    this.write(MMIO.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    return (this.status & STATUS_FEATURES_OK) !== 0;
  }

  /** Sets up queue `index` with `size` entries the way Linux's vm_setup_vq does. */
  setupQueue(index: number, size?: number): DriverQueue {
    this.write(MMIO.QueueSel, index);
    if (this.read(MMIO.QueueReady) !== 0) throw new Error(`queue ${index} already ready`);
    const max = this.read(MMIO.QueueNumMax);
    if (max === 0) throw new Error(`queue ${index} does not exist`);
    const n = size ?? Math.min(max, 256);
    const q = new DriverQueue(this, index, n);
    this.write(MMIO.QueueNum, n);
    this.write(MMIO.QueueDescLow, q.desc % 2 ** 32);
    this.write(MMIO.QueueDescHigh, Math.floor(q.desc / 2 ** 32));
    this.write(MMIO.QueueDriverLow, q.avail % 2 ** 32);
    this.write(MMIO.QueueDriverHigh, Math.floor(q.avail / 2 ** 32));
    this.write(MMIO.QueueDeviceLow, q.used % 2 ** 32);
    this.write(MMIO.QueueDeviceHigh, Math.floor(q.used / 2 ** 32));
    this.write(MMIO.QueueReady, 1);
    this.queues[index] = q;
    return q;
  }

  /** The whole Linux probe sequence: negotiate, set up queues, DRIVER_OK. */
  init(opts: InitOptions = {}): this {
    const packedBit = 1n << BigInt(F_RING_PACKED);
    // A split driver never takes RING_PACKED, whatever `features` says; a packed one always asks.
    const wanted = opts.packed ? (opts.features ?? ~0n) | packedBit : (opts.features ?? ~0n) & ~packedBit;
    if (!this.negotiate(wanted)) throw new Error('device refused FEATURES_OK');
    if (opts.packed && !(this.features & packedBit)) throw new Error('device does not offer VIRTIO_F_RING_PACKED');
    const count = opts.queues ?? this.device.queueMaxSizes.length;
    for (let i = 0; i < count; i++) {
      const size = opts.queueSizes?.[i];
      const index = opts.packed ? this.setupPackedQueue(i, size).index : this.setupQueue(i, size).index;
      if (this.read(MMIO.QueueReady) !== 1) throw new Error(`queue ${index} did not go ready`);
    }
    this.write(MMIO.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    return this;
  }

  /** Queue `index` as set up, split or packed. */
  ring(index: number): DriverRing {
    const q = this.packedQueues[index] ?? this.queues[index];
    if (q === undefined) throw new Error(`queue ${index} is not set up`);
    return q;
  }

  /** Sets up packed queue `index` with `size` entries (VIRTIO 1.2, 2.8), as vm_setup_vq does. */
  setupPackedQueue(index: number, size?: number): PackedDriverQueue {
    this.write(MMIO.QueueSel, index);
    if (this.read(MMIO.QueueReady) !== 0) throw new Error(`queue ${index} already ready`);
    const max = this.read(MMIO.QueueNumMax);
    if (max === 0) throw new Error(`queue ${index} does not exist`);
    const n = size ?? Math.min(max, 256);
    const q = new PackedDriverQueue(this, index, n);
    this.write(MMIO.QueueNum, n);
    this.writeAddress(MMIO.QueueDescLow, q.ring);
    this.writeAddress(MMIO.QueueDriverLow, q.driverEvent);
    this.writeAddress(MMIO.QueueDeviceLow, q.deviceEvent);
    this.write(MMIO.QueueReady, 1);
    this.packedQueues[index] = q;
    return q;
  }

  /** Writes a 64-bit address into a Low/High register pair. */
  writeAddress(low: number, addr: number): void {
    this.write(low, addr % 2 ** 32);
    this.write(low + 4, Math.floor(addr / 2 ** 32));
  }

  /** Reads and acknowledges InterruptStatus, as vm_interrupt() does. */
  ackInterrupt(): number {
    const status = this.read(MMIO.InterruptStatus);
    this.write(MMIO.InterruptACK, status);
    return status;
  }

  /** Reads `size` bytes of config space at `offset`. */
  config(offset: number, size: 1 | 2 | 4 = 4): number {
    return this.transport.read(MMIO.Config + offset, size);
  }

  /** A 64-bit config field, read as Linux does: two 32-bit halves under a stable generation. */
  config64(offset: number): bigint {
    for (;;) {
      const gen = this.read(MMIO.ConfigGeneration);
      const v = (BigInt(this.config(offset + 4)) << 32n) | BigInt(this.config(offset));
      if (this.read(MMIO.ConfigGeneration) === gen) return v;
    }
  }
}

/** A packed descriptor as the driver writes it (VIRTIO 1.2, 2.8.13). */
export interface PackedDesc {
  addr: number;
  len: number;
  id: number;
  flags: number;
}

/**
 * The driver's view of one packed queue (VIRTIO 1.2, 2.8), the way Linux's virtio_ring does it:
 * a ring of descriptors with a wrap counter on each side, buffer ids from a free list, the head
 * descriptor's flags written last, used descriptors found by their AVAIL/USED bits.
 */
export class PackedDriverQueue implements DriverRing {
  readonly ring: number;
  readonly driverEvent: number;
  readonly deviceEvent: number;
  /** The next slot the driver fills, and its wrap counter. */
  nextAvail = 0;
  availWrap = 1;
  /** The next slot where the driver looks for a used descriptor, and its wrap counter. */
  nextUsed = 0;
  usedWrap = 1;
  private freeSlots: number;
  private freeIds: number[];
  private readonly held = new Map<number, Submitted & { slots: number; ownsId: boolean }>();

  constructor(
    readonly driver: TestDriver,
    readonly index: number,
    readonly size: number,
  ) {
    const a = driver.allocator;
    this.ring = a.alloc(16 * size, 16);
    this.driverEvent = a.alloc(4, 4);
    this.deviceEvent = a.alloc(4, 4);
    driver.mem.fill(this.ring, 16 * size, 0);
    driver.mem.fill(this.driverEvent, 4, 0);
    driver.mem.fill(this.deviceEvent, 4, 0);
    this.freeSlots = size;
    this.freeIds = Array.from({ length: size }, (_, i) => i);
  }

  get mem(): GuestMemory {
    return this.driver.mem;
  }

  /** The AVAIL/USED bits that make a descriptor available under wrap counter `wrap`. */
  static availFlags(wrap: number): number {
    return wrap ? DESC_F_AVAIL : DESC_F_USED;
  }

  /** Writes ring slot `slot` (or entry `slot` of a table at `table`); the flags go last. */
  writeDesc(slot: number, d: PackedDesc, table = this.ring): void {
    const at = table + 16 * slot;
    this.mem.writeU64(at, BigInt(d.addr));
    this.mem.writeU32(at + 8, d.len);
    this.mem.writeU16(at + 12, d.id);
    this.mem.writeU16(at + 14, d.flags);
  }

  /** Reads ring slot `slot`. */
  readDesc(slot: number): PackedDesc {
    const at = this.ring + 16 * slot;
    return { addr: Number(this.mem.readU64(at)), len: this.mem.readU32(at + 8), id: this.mem.readU16(at + 12), flags: this.mem.readU16(at + 14) };
  }

  /**
   * Makes descriptors available in consecutive slots from `nextAvail`: the AVAIL/USED bits of the
   * current wrap counter added, NEXT on all but the last (unless `chain` is false), the head's
   * flags written last as Linux does. Any addresses, ids and lengths: hostile tests use it too.
   * Returns the slot of the head.
   */
  publishRaw(descs: PackedDesc[], opts: { chain?: boolean } = {}): number {
    const headSlot = this.nextAvail;
    let headFlags = 0;
    descs.forEach((d, i) => {
      const last = i === descs.length - 1;
      const flags = d.flags | (opts.chain !== false && !last ? DESC_F_NEXT : 0) | PackedDriverQueue.availFlags(this.availWrap);
      if (i === 0) {
        headFlags = flags;
        // Not yet available: the driver's previous-lap bits until the whole chain is written.
        this.writeDesc(this.nextAvail, { ...d, flags: DESC_F_AVAIL | DESC_F_USED });
      } else {
        this.writeDesc(this.nextAvail, { ...d, flags });
      }
      this.advanceAvail();
    });
    this.mem.writeU16(this.ring + 16 * headSlot + 14, headFlags);
    this.freeSlots -= descs.length;
    const id = descs[descs.length - 1]!.id;
    if (!this.held.has(id)) this.held.set(id, { head: id, writable: [], descs: [headSlot], slots: descs.length, ownsId: false });
    return headSlot;
  }

  private advanceAvail(): void {
    if (++this.nextAvail === this.size) {
      this.nextAvail = 0;
      this.availWrap ^= 1;
    }
  }

  add(spec: ChainSpec): Submitted {
    const a = this.driver.allocator;
    const descs: Array<{ addr: number; len: number; flags: number }> = [];
    const writable: Array<{ addr: number; len: number }> = [];
    for (const data of spec.readable ?? []) {
      const addr = a.alloc(Math.max(1, data.length), 8);
      this.mem.write(addr, data);
      descs.push({ addr, len: data.length, flags: 0 });
    }
    for (const len of spec.writable ?? []) {
      const addr = a.alloc(Math.max(1, len), 8);
      this.mem.fill(addr, len, 0xee);
      descs.push({ addr, len, flags: DESC_F_WRITE });
      writable.push({ addr, len });
    }
    if (descs.length === 0) throw new Error('a chain needs at least one buffer');
    const slots = spec.indirect ? 1 : descs.length;
    if (this.freeSlots < slots || this.freeIds.length === 0) throw new Error(`queue ${this.index}: ${slots} slots wanted, ${this.freeSlots} free`);
    const id = this.freeIds.shift()!;
    let ring: PackedDesc[] = descs.map((d) => ({ ...d, id }));
    if (spec.indirect) {
      const table = a.alloc(16 * descs.length, 16);
      descs.forEach((d, i) => this.writeDesc(i, { ...d, id: 0 }, table));
      ring = [{ addr: table, len: 16 * descs.length, flags: DESC_F_INDIRECT, id }];
    }
    this.held.delete(id);
    const headSlot = this.publishRaw(ring);
    const sub = { head: id, writable, descs: [headSlot], slots, ownsId: true };
    this.held.set(id, sub);
    return sub;
  }

  kick(): void {
    this.driver.transport.write(MMIO.QueueNotify, 4, this.index);
  }

  /** Whether slot `slot` holds a used descriptor for wrap counter `wrap` (VIRTIO 1.2, 2.8.1). */
  isUsed(slot: number, wrap = this.usedWrap): boolean {
    const flags = this.mem.readU16(this.ring + 16 * slot + 14);
    const avail = (flags & DESC_F_AVAIL) !== 0;
    const used = (flags & DESC_F_USED) !== 0;
    return avail === used && used === (wrap === 1);
  }

  takeUsed(): UsedElem[] {
    const out: UsedElem[] = [];
    for (let guard = 0; guard < this.size && this.isUsed(this.nextUsed); guard++) {
      const d = this.readDesc(this.nextUsed);
      out.push({ id: d.id, len: d.len });
      const sub = this.held.get(d.id);
      const skip = sub?.slots ?? 1;
      if (sub) {
        this.held.delete(d.id);
        if (sub.ownsId) this.freeIds.push(d.id);
        this.freeSlots += sub.slots;
      }
      this.nextUsed += skip;
      if (this.nextUsed >= this.size) {
        this.nextUsed -= this.size;
        this.usedWrap ^= 1;
      }
    }
    return out;
  }

  /** Sets the driver event suppression structure: flags (ENABLE 0, DISABLE 1, DESC 2), offset, wrap. */
  setDriverEvent(flags: number, off = 0, wrap = 0): void {
    this.mem.writeU16(this.driverEvent, (off & 0x7fff) | (wrap << 15));
    this.mem.writeU16(this.driverEvent + 2, flags);
  }

  /** The device event suppression structure as the device left it. */
  get deviceEventState(): { off: number; wrap: number; flags: number } {
    const ow = this.mem.readU16(this.deviceEvent);
    return { off: ow & 0x7fff, wrap: ow >>> 15, flags: this.mem.readU16(this.deviceEvent + 2) };
  }

  readWritable(sub: Submitted, len = Infinity): Uint8Array {
    return readBack(this.mem, sub, len);
  }

  async submit(spec: ChainSpec): Promise<{ sub: Submitted; used: UsedElem; data: Uint8Array }> {
    const sub = this.add(spec);
    this.kick();
    await this.driver.transport.idle();
    const used = this.takeUsed().find((u) => u.id === sub.head);
    if (used === undefined) throw new Error(`queue ${this.index}: buffer ${sub.head} was not completed`);
    return { sub, used, data: this.readWritable(sub, used.len) };
  }
}

/** The bytes the device wrote into a chain's writable buffers, up to `len`. */
function readBack(mem: GuestMemory, sub: Submitted, len: number): Uint8Array {
  const total = sub.writable.reduce((s, w) => s + w.len, 0);
  const out = new Uint8Array(Math.min(total, len));
  let done = 0;
  for (const w of sub.writable) {
    if (done >= out.length) break;
    const n = Math.min(w.len, out.length - done);
    out.set(mem.view(w.addr, n), done);
    done += n;
  }
  return out;
}
