import type { GuestMemory } from '../memory/guest-memory.js';
import { DescriptorChain } from './chain.js';
import type { Virtqueue } from './virtqueue.js';
import { AVAIL_F_NO_INTERRUPT, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, DESC_SIZE } from './constants.js';

const TWO_32 = 2 ** 32;
const U32_MAX = 0xffff_ffff;

/**
 * The device side of a split virtqueue (VIRTIO 1.2, 2.7).
 *
 * The queue owns only the ring addresses, the size and its own indices; every method that touches
 * a ring takes the guest memory as an argument, so the queue never holds RAM and never trusts what
 * it read last time. Everything the guest wrote is validated here, at the boundary.
 */
export class SplitQueue implements Virtqueue {
  readonly packed = false;
  /** Largest size the device accepts (QueueNumMax). */
  readonly maxSize: number;
  /** Queue size chosen by the driver (QueueNum); a power of two in 1..maxSize once ready. */
  size: number;
  /** Guest-physical addresses of the descriptor table, available ring and used ring. */
  descAddr = 0;
  driverAddr = 0;
  deviceAddr = 0;
  /** True once the driver set QueueReady and the rings passed validation. */
  ready = false;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirect = false;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx = false;
  /** Set when the driver broke the ring protocol; the device must go to DEVICE_NEEDS_RESET. */
  broken: string | undefined = undefined;
  /** Bumped on every reset: chains popped under an older epoch are never completed. */
  epoch = 0;

  private nextAvail = 0;
  private nextUsed = 0;
  private signalledUsed = 0;
  private signalledValid = false;

  constructor(maxSize: number) {
    if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > 32768 || (maxSize & (maxSize - 1)) !== 0) {
      throw new RangeError(`queue max size must be a power of two in 1..32768, got ${maxSize}`);
    }
    this.maxSize = maxSize;
    this.size = maxSize;
  }

  /** Back to the state after device reset (VIRTIO 1.2, 4.2.3.1 / 2.4). */
  reset(): void {
    this.size = this.maxSize;
    this.descAddr = this.driverAddr = this.deviceAddr = 0;
    this.ready = this.indirect = this.eventIdx = false;
    this.broken = undefined;
    this.nextAvail = this.nextUsed = this.signalledUsed = 0;
    this.signalledValid = false;
    this.epoch++;
  }

  saveRing(): number[] {
    return [this.nextAvail, this.nextUsed, this.signalledUsed, this.signalledValid ? 1 : 0];
  }

  loadRing(ring: readonly number[]): boolean {
    if (ring.length !== 4 || !ring.every((v) => Number.isInteger(v) && v >= 0 && v <= 0xffff) || ring[3]! > 1) return false;
    [this.nextAvail, this.nextUsed, this.signalledUsed] = ring as [number, number, number];
    this.signalledValid = ring[3] === 1;
    return true;
  }

  /** The index of the next available entry the device will look at (u16). */
  get lastAvailIdx(): number {
    return this.nextAvail;
  }
  /** The used index the device will publish next (u16). */
  get usedIdx(): number {
    return this.nextUsed;
  }

  validSize(size: number): boolean {
    return SplitQueue.validSize(size, this.maxSize);
  }

  /** True when QueueNum is a valid size for this queue (VIRTIO 1.2, 2.7: a power of two). */
  static validSize(size: number, maxSize: number): boolean {
    return Number.isInteger(size) && size >= 1 && size <= maxSize && (size & (size - 1)) === 0;
  }

  /**
   * Why the ring layout can't be used, or undefined when it can: the size must be a power of two
   * no larger than the maximum, each ring aligned as VIRTIO 1.2, 2.7 table "Virtqueue Part
   * Alignment" requires (16 / 2 / 4), and each ring wholly inside RAM.
   */
  layoutError(mem: GuestMemory): string | undefined {
    const n = this.size;
    if (!SplitQueue.validSize(n, this.maxSize)) return `queue size ${n} is not a power of two in 1..${this.maxSize}`;
    if (this.descAddr % 16 !== 0 || !mem.contains(this.descAddr, DESC_SIZE * n)) return 'descriptor table misaligned or outside RAM';
    if (this.driverAddr % 2 !== 0 || !mem.contains(this.driverAddr, 6 + 2 * n)) return 'available ring misaligned or outside RAM';
    if (this.deviceAddr % 4 !== 0 || !mem.contains(this.deviceAddr, 6 + 8 * n)) return 'used ring misaligned or outside RAM';
    return undefined;
  }

  /**
   * Takes the next available chain, or returns null when there is none (or the queue is broken).
   * A chain that fails validation comes back with `error` set, to be completed with length 0.
   */
  pop(mem: GuestMemory): DescriptorChain | null {
    if (!this.ready || this.broken !== undefined) return null;
    const size = this.size;
    const availIdx = mem.readU16(this.driverAddr + 2);
    const pending = (availIdx - this.nextAvail) & 0xffff;
    if (pending === 0) return null;
    if (pending > size) {
      // VIRTIO 1.2, 2.7.13: the driver can't have more than `size` buffers outstanding. Treat it
      // as a broken driver instead of walking phantom entries.
      this.broken = `available index ${availIdx} is ${pending} entries ahead of ${this.nextAvail} (queue size ${size})`;
      return null;
    }
    const head = mem.readU16(this.driverAddr + 4 + 2 * (this.nextAvail & (size - 1)));
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
    if (this.eventIdx) mem.writeU16(this.deviceAddr + 4 + 8 * size, this.nextAvail); // avail_event
    if (head >= size) {
      // No valid id to hand back: the ring itself is corrupt.
      this.broken = `available ring entry ${head} is not below the queue size ${size}`;
      return null;
    }
    const chain = new DescriptorChain(head, this.epoch);
    chain.error = this.walk(mem, chain);
    return chain;
  }

  /** Walks and copies the descriptors of `chain`; returns why it is invalid, if it is. */
  private walk(mem: GuestMemory, chain: DescriptorChain): string | undefined {
    let table = this.descAddr;
    let tableLen = this.size;
    let ttl = this.size; // VIRTIO 1.2, 2.7.5.3.1: no chain is longer than the queue size
    let inIndirect = false;
    let idx = chain.head;
    let total = 0;
    const { addrs, lens } = chain;
    for (;;) {
      if (ttl-- === 0) return inIndirect ? 'indirect chain longer than its table (loop?)' : 'chain longer than the queue size (loop?)';
      const d = table + DESC_SIZE * idx;
      const addr = mem.readU32(d) + mem.readU32(d + 4) * TWO_32;
      const len = mem.readU32(d + 8);
      const flags = mem.readU16(d + 12);
      const next = mem.readU16(d + 14);
      if (flags & DESC_F_INDIRECT) {
        // VIRTIO 1.2, 2.7.5.3: one level only, never with NEXT, and only when negotiated.
        if (!this.indirect) return 'indirect descriptor without VIRTIO_F_INDIRECT_DESC';
        if (inIndirect) return 'indirect descriptor inside an indirect table';
        if (flags & DESC_F_NEXT) return 'indirect descriptor with NEXT set';
        if (len === 0 || len % DESC_SIZE !== 0) return `indirect table length ${len} is not a non-zero multiple of 16`;
        if (len / DESC_SIZE > this.size) return `indirect table of ${len / DESC_SIZE} descriptors exceeds the queue size`;
        if (!mem.contains(addr, len)) return 'indirect table outside RAM';
        table = addr;
        tableLen = ttl = len / DESC_SIZE;
        inIndirect = true;
        idx = 0;
        continue;
      }
      if (!mem.contains(addr, len)) return `buffer of ${len} bytes at 0x${addr.toString(16)} is outside RAM`;
      total += len;
      if (total > U32_MAX) return 'chain length overflows 32 bits';
      addrs.push(addr);
      lens.push(len);
      if (flags & DESC_F_WRITE) {
        chain.writableBytes += len;
      } else {
        if (addrs.length !== chain.readableCount + 1) return 'readable descriptor after a writable one';
        chain.readableCount++;
        chain.readableBytes += len;
      }
      if (!(flags & DESC_F_NEXT)) return undefined;
      if (next >= tableLen) return `next index ${next} is outside the table of ${tableLen}`;
      idx = next;
    }
  }

  /**
   * Returns a chain to the driver with `len` bytes written (VIRTIO 1.2, 2.7.8). The element is
   * written before used.idx moves, so the driver never sees an index without its entry. A chain
   * from before the last reset is dropped: its ring may already belong to a new driver.
   * Returns false when the chain was dropped.
   */
  addUsed(mem: GuestMemory, chain: DescriptorChain, len: number): boolean {
    if (chain.epoch !== this.epoch || !this.ready) return false;
    const written = len > 0 ? Math.min(len, chain.writableBytes) >>> 0 : 0;
    const elem = this.deviceAddr + 4 + 8 * (this.nextUsed & (this.size - 1));
    mem.writeU32(elem, chain.head);
    mem.writeU32(elem + 4, written);
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    mem.writeU16(this.deviceAddr + 2, this.nextUsed);
    return true;
  }

  /**
   * Whether the driver wants an interrupt for the used entries added since the last time this
   * answered true (VIRTIO 1.2, 2.7.7.2 and 2.7.10: used_event with EVENT_IDX, else the
   * NO_INTERRUPT flag). Call it once after a batch of addUsed.
   */
  needsNotification(mem: GuestMemory): boolean {
    if (!this.ready) return false;
    if (!this.eventIdx) return (mem.readU16(this.driverAddr) & AVAIL_F_NO_INTERRUPT) === 0;
    const next = this.nextUsed;
    const old = this.signalledUsed;
    const wasValid = this.signalledValid;
    this.signalledUsed = next;
    this.signalledValid = true;
    if (!wasValid) return true;
    const usedEvent = mem.readU16(this.driverAddr + 4 + 2 * this.size);
    // vring_need_event(): notify if used_event lies in (old, next].
    return ((next - usedEvent - 1) & 0xffff) < ((next - old) & 0xffff);
  }
}
