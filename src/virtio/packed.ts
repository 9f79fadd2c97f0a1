import type { GuestMemory } from '../memory/guest-memory.js';
import { DescriptorChain } from './chain.js';
import { DESC_SIZE, RING_EVENT_FLAGS_DESC, RING_EVENT_FLAGS_DISABLE } from './constants.js';
import type { Virtqueue } from './virtqueue.js';

const TWO_32 = 2 ** 32;
const U32_MAX = 0xffff_ffff;
const WRAP_BIT = 0x8000;
// Descriptor flags (VIRTIO 1.2, 2.8.1), the values of DESC_F_* in constants.ts. The walk tests
// them on every descriptor, and V8 loads an imported binding at each use where it folds a
// module-local const.
const F_NEXT = 0x1;
const F_WRITE = 0x2;
const F_INDIRECT = 0x4;
/** AVAIL (bit 7) and USED (bit 15), the pair that the wrap counters are compared with. */
const F_AVAIL = 0x80;
const F_AVAIL_USED = 0x8080;

/**
 * The device side of a packed virtqueue (VIRTIO 1.2, 2.8): one descriptor ring that driver and
 * device both write, told apart by the AVAIL and USED flag bits against each side's wrap counter.
 * The driver area and the device area are the two event suppression structures (2.8.10).
 *
 * Like {@link SplitQueue} it owns only addresses and its own counters, takes the memory on every
 * call, and validates everything it reads. A ring it cannot walk (a chain that runs on past the
 * ring, or into a descriptor the driver has not made available, or a buffer id outside the ring)
 * marks the queue broken: there is no safe place to go on from. A chain that is walkable but
 * invalid (a buffer outside RAM, a bad indirect table) comes back with `error` set.
 */
export class PackedQueue implements Virtqueue {
  readonly packed = true;
  readonly maxSize: number;
  size: number;
  descAddr = 0;
  driverAddr = 0;
  deviceAddr = 0;
  ready = false;
  indirect = false;
  eventIdx = false;
  broken: string | undefined = undefined;
  epoch = 0;

  /** The slot the device reads next, and the driver's wrap counter the device expects there. */
  private nextAvail = 0;
  private availWrap = 1;
  /** The slot of the next used descriptor, and the device's own wrap counter. */
  private nextUsed = 0;
  private usedWrap = 1;
  /** Used slots written since the driver was last interrupted (or asked and declined). */
  private sinceSignal = 0;
  private signalledValid = false;

  constructor(maxSize: number) {
    if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > 32768) {
      throw new RangeError(`queue max size must be an integer in 1..32768, got ${maxSize}`);
    }
    this.maxSize = maxSize;
    this.size = maxSize;
  }

  reset(): void {
    this.size = this.maxSize;
    this.descAddr = this.driverAddr = this.deviceAddr = 0;
    this.ready = this.indirect = this.eventIdx = false;
    this.broken = undefined;
    this.nextAvail = this.nextUsed = this.sinceSignal = 0;
    this.availWrap = this.usedWrap = 1;
    this.signalledValid = false;
    this.epoch++;
  }

  saveRing(): number[] {
    return [this.nextAvail, this.availWrap, this.nextUsed, this.usedWrap, this.sinceSignal, this.signalledValid ? 1 : 0];
  }

  loadRing(ring: readonly number[]): boolean {
    if (ring.length !== 6 || !ring.every((v) => Number.isInteger(v) && v >= 0)) return false;
    const [na, aw, nu, uw, since, sv] = ring as [number, number, number, number, number, number];
    if (na >= this.size || nu >= this.size || aw > 1 || uw > 1 || sv > 1 || since > 0xffff) return false;
    this.nextAvail = na; this.availWrap = aw; this.nextUsed = nu; this.usedWrap = uw; this.sinceSignal = since;
    this.signalledValid = sv === 1;
    return true;
  }

  get lastAvailIdx(): number {
    return this.nextAvail;
  }
  get usedIdx(): number {
    return this.nextUsed;
  }
  /** The device's wrap counters, for tests: [driver's expected, device's own]. */
  get wrapCounters(): [number, number] {
    return [this.availWrap, this.usedWrap];
  }

  /** Packed rings need not be a power of two (VIRTIO 1.2, 2.8.10.1 is about alignment only). */
  validSize(size: number): boolean {
    return Number.isInteger(size) && size >= 1 && size <= this.maxSize;
  }

  /**
   * The descriptor ring is 16-aligned and the two event suppression structures 4-aligned
   * (VIRTIO 1.2, 2.8.10.1 table "Packed Virtqueue Part Alignment"), each wholly inside RAM.
   */
  layoutError(mem: GuestMemory): string | undefined {
    const n = this.size;
    if (!this.validSize(n)) return `queue size ${n} is not in 1..${this.maxSize}`;
    if (this.descAddr % 16 !== 0 || !mem.contains(this.descAddr, DESC_SIZE * n)) return 'descriptor ring misaligned or outside RAM';
    if (this.driverAddr % 4 !== 0 || !mem.contains(this.driverAddr, 4)) return 'driver event suppression misaligned or outside RAM';
    if (this.deviceAddr % 4 !== 0 || !mem.contains(this.deviceAddr, 4)) return 'device event suppression misaligned or outside RAM';
    return undefined;
  }

  /**
   * Takes the chain at the next available slot, walked and copied in one loop, and moves past it;
   * null when the slot is not available (or the ring can't be walked: then `broken` is set). A
   * chain that is walkable but invalid comes back with `error` set.
   */
  pop(mem: GuestMemory): DescriptorChain | null {
    if (!this.ready || this.broken !== undefined) return null;
    const ring = this.descAddr;
    const size = this.size;
    let pos = this.nextAvail;
    let wrap = this.availWrap;
    // The flag bits of an available descriptor: AVAIL (bit 7) equal to the driver's wrap counter,
    // USED (bit 15) its inverse (VIRTIO 1.2, 2.8.1).
    let want = wrap === 1 ? F_AVAIL : WRAP_BIT;
    let d = ring + DESC_SIZE * pos;
    let flags = mem.readU16(d + 14);
    if ((flags & F_AVAIL_USED) !== want) {
      // Nothing new. With EVENT_IDX, ask to be kicked when the driver fills this slot (2.8.10).
      if (this.eventIdx) {
        mem.writeU16(this.deviceAddr, pos | (wrap << 15));
        mem.writeU16(this.deviceAddr + 2, RING_EVENT_FLAGS_DESC);
      }
      return null;
    }
    const chain = new DescriptorChain(0, this.epoch);
    const { addrs, lens } = chain;
    let error: string | undefined;
    let total = 0;
    let count = 0;
    for (;;) {
      const addr = mem.readU32(d) + mem.readU32(d + 4) * TWO_32;
      const len = mem.readU32(d + 8);
      count++;
      if (++pos === size) {
        pos = 0;
        wrap ^= 1;
        want ^= F_AVAIL_USED;
      }
      if (error === undefined) {
        if ((flags & F_INDIRECT) !== 0) {
          error = this.indirectTable(mem, chain, addr, len, flags, count);
          total = chain.readableBytes + chain.writableBytes;
        } else if (!mem.contains(addr, len)) {
          error = outsideRam(addr, len);
        } else if ((total += len) > U32_MAX) {
          error = 'chain length overflows 32 bits';
        } else {
          addrs.push(addr);
          lens.push(len);
          if ((flags & F_WRITE) !== 0) chain.writableBytes += len;
          else if (addrs.length !== chain.readableCount + 1) error = 'readable descriptor after a writable one';
          else {
            chain.readableCount++;
            chain.readableBytes += len;
          }
        }
      }
      if ((flags & F_NEXT) === 0) {
        // No DESC_F_NEXT: the buffer id is in the chain's last descriptor (2.8.6); the driver
        // chose it below the size.
        const id = mem.readU16(d + 12);
        if (id >= size) {
          this.broken = `buffer id ${id} is not below the ring size ${size}`;
          return null;
        }
        chain.head = id;
        break;
      }
      if (count === size) {
        // VIRTIO 1.2, 2.8.6: no chain is longer than the ring; this one has no end we can find.
        this.broken = `packed chain longer than the ring of ${size}`;
        return null;
      }
      d = ring + DESC_SIZE * pos;
      flags = mem.readU16(d + 14);
      if ((flags & F_AVAIL_USED) !== want) {
        this.broken = `packed chain runs into slot ${pos}, which the driver has not made available`;
        return null;
      }
    }
    this.nextAvail = pos;
    this.availWrap = wrap;
    chain.slots = count;
    chain.error = error;
    return chain;
  }

  /**
   * Copies an indirect table (VIRTIO 1.2, 2.8.19): len/16 descriptors in order, NEXT ignored.
   * Only when negotiated, never with NEXT, only as the chain's one descriptor, never nested.
   */
  private indirectTable(mem: GuestMemory, chain: DescriptorChain, addr: number, len: number, flags: number, count: number): string | undefined {
    if (!this.indirect) return 'indirect descriptor without VIRTIO_F_INDIRECT_DESC';
    if ((flags & F_NEXT) !== 0 || count !== 1) return 'indirect descriptor chained with others';
    if (len === 0 || len % DESC_SIZE !== 0) return `indirect table length ${len} is not a non-zero multiple of 16`;
    if (len / DESC_SIZE > this.size) return `indirect table of ${len / DESC_SIZE} descriptors exceeds the ring size`;
    if (!mem.contains(addr, len)) return 'indirect table outside RAM';
    let total = 0;
    for (let d = addr; d < addr + len; d += DESC_SIZE) {
      const a = mem.readU32(d) + mem.readU32(d + 4) * TWO_32;
      const l = mem.readU32(d + 8);
      const f = mem.readU16(d + 14);
      if ((f & F_INDIRECT) !== 0) return 'indirect descriptor inside an indirect table';
      if (!mem.contains(a, l)) return outsideRam(a, l);
      if ((total += l) > U32_MAX) return 'chain length overflows 32 bits';
      const e = push(chain, a, l, f);
      if (e !== undefined) return e;
    }
    return undefined;
  }

  /**
   * Writes the used descriptor (VIRTIO 1.2, 2.8.7): id and length first, the flags last, since
   * the flags are what makes it used for the driver. Chains may complete in any order; each used
   * descriptor moves the used slot on by the number of slots its chain took.
   */
  addUsed(mem: GuestMemory, chain: DescriptorChain, len: number): boolean {
    if (chain.epoch !== this.epoch || !this.ready) return false;
    const written = len > 0 ? Math.min(len, chain.writableBytes) >>> 0 : 0;
    const d = this.descAddr + DESC_SIZE * this.nextUsed;
    mem.writeU32(d + 8, written);
    mem.writeU16(d + 12, chain.head);
    // AVAIL and USED both equal to the device's wrap counter mark it used (2.8.1); WRITE says the
    // length counts written bytes (2.8.7).
    let flags = this.usedWrap === 1 ? F_AVAIL_USED : 0;
    if (written > 0) flags |= F_WRITE;
    mem.writeU16(d + 14, flags);
    let next = this.nextUsed + chain.slots;
    if (next >= this.size) {
      next -= this.size;
      this.usedWrap ^= 1;
    }
    this.nextUsed = next;
    this.sinceSignal += chain.slots;
    return true;
  }

  /**
   * The driver's event suppression structure decides (VIRTIO 1.2, 2.8.10): DISABLE never,
   * DESC (with EVENT_IDX) once the used slot passes the given offset and wrap, anything else
   * always. An offset beyond the ring is not trusted: the device interrupts.
   */
  needsNotification(mem: GuestMemory): boolean {
    if (!this.ready) return false;
    const flags = mem.readU16(this.driverAddr + 2) & 3;
    const since = this.sinceSignal;
    const wasValid = this.signalledValid;
    this.sinceSignal = 0;
    this.signalledValid = true;
    if (flags === RING_EVENT_FLAGS_DISABLE) return false;
    if (flags !== RING_EVENT_FLAGS_DESC || !this.eventIdx || !wasValid || since >= this.size) return true;
    const offWrap = mem.readU16(this.driverAddr);
    let event = offWrap & ~WRAP_BIT;
    if (event >= this.size) return true;
    // On a line that counts slots across one wrap: the event slot of the previous lap is below 0.
    if (offWrap >>> 15 !== this.usedWrap) event -= this.size;
    // vring_need_event(): interrupt when the event slot is among the `since` slots just used.
    const d = this.nextUsed - event - 1;
    return d >= 0 && d < since;
  }
}

function outsideRam(addr: number, len: number): string {
  return `buffer of ${len} bytes at 0x${addr.toString(16)} is outside RAM`;
}

/** Adds one buffer to a chain: readable buffers must all come before writable ones. */
function push(chain: DescriptorChain, addr: number, len: number, flags: number): string | undefined {
  chain.addrs.push(addr);
  chain.lens.push(len);
  if ((flags & F_WRITE) !== 0) {
    chain.writableBytes += len;
    return undefined;
  }
  if (chain.addrs.length !== chain.readableCount + 1) return 'readable descriptor after a writable one';
  chain.readableCount++;
  chain.readableBytes += len;
  return undefined;
}
