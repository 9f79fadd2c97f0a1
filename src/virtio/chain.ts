import type { GuestMemory } from '../memory/guest-memory.js';
import type { ChainBounce } from './bounce.js';

/**
 * One descriptor chain popped from a split or packed queue, already walked and validated (VIRTIO
 * 1.2, 2.7.5 and 2.8): every buffer lies inside RAM, readable buffers come before writable ones, the walk was
 * bounded. The descriptors were read once into this object; the device works on this copy only,
 * never on the guest's table again (a guest that rewrites its table mid-request changes nothing).
 *
 * A chain the queue refused still has a head so it can be given back: `error` says why, and the
 * device completes it with used length 0 without looking at any buffer.
 */
export class DescriptorChain {
  /** Buffer addresses: readable ones first, then writable ones. */
  readonly addrs: number[] = [];
  /** Buffer lengths, parallel to `addrs`. */
  readonly lens: number[] = [];
  /** How many of `addrs` are device-readable; the rest are device-writable. */
  readableCount = 0;
  /** Total bytes of the readable buffers. */
  readableBytes = 0;
  /** Total bytes of the writable buffers. */
  writableBytes = 0;
  /** Why the queue refused this chain, or undefined for a valid chain. */
  error: string | undefined = undefined;

  /**
   * Ring slots the chain took (packed rings: the device skips this many when it writes the used
   * descriptor; VIRTIO 1.2, 2.8.6). Always 1 for split rings, where it is not used.
   */
  slots = 1;

  /**
   * Set by a queue whose transport can't wait for in-flight work at a reset (host calls): views
   * of this chain's buffers are then host copies, written back when the chain is given back to a
   * live ring (see bounce.ts). Undefined: views are guest RAM itself.
   */
  bounce: ChainBounce | undefined = undefined;

  constructor(
    /**
     * The id the used ring gives back to the driver: the head descriptor's index (split), or the
     * buffer id of the chain's last descriptor (packed).
     */
    public head: number,
    /** The queue's reset epoch at pop time; completions from an older epoch are dropped. */
    readonly epoch: number,
  ) {}

  /** A cursor over the device-readable bytes. */
  reader(mem: GuestMemory): ChainReader {
    return new ChainReader(mem, this);
  }

  /** A cursor over the device-writable bytes; `written` counts what the device wrote. */
  writer(mem: GuestMemory): ChainWriter {
    return new ChainWriter(mem, this);
  }
}

/** Shared cursor state: a position inside a run of segments of a chain. */
abstract class Cursor {
  protected seg: number;
  protected segOff = 0;
  protected readonly segEnd: number;
  /** Bytes left in this cursor's part of the chain. */
  remaining: number;

  constructor(
    protected readonly mem: GuestMemory,
    protected readonly chain: DescriptorChain,
    first: number,
    end: number,
    total: number,
  ) {
    this.seg = first;
    this.segEnd = end;
    this.remaining = total;
  }

  /**
   * Moves up to n bytes forward, calling `fn(addr, len, done)` for each contiguous piece, where
   * `done` counts the bytes handled before this piece. Returns the bytes moved.
   */
  protected advance(n: number, fn: ((addr: number, len: number, done: number) => void) | null): number {
    const { addrs, lens } = this.chain;
    let done = 0;
    n = Math.min(n, this.remaining);
    while (done < n && this.seg < this.segEnd) {
      const len = lens[this.seg]!;
      const avail = len - this.segOff;
      if (avail === 0) {
        this.seg++;
        this.segOff = 0;
        continue;
      }
      const take = Math.min(avail, n - done);
      if (fn !== null) fn(addrs[this.seg]! + this.segOff, take, done);
      done += take;
      this.segOff += take;
      if (this.segOff === len) {
        this.seg++;
        this.segOff = 0;
      }
    }
    this.remaining -= done;
    return done;
  }

  /** Skips up to n bytes; returns how many were skipped. */
  skip(n: number): number {
    return this.advance(n, null);
  }

  /**
   * Views of the next n bytes (fewer at the end), one per buffer piece: zero-copy views of guest
   * RAM, or host buffers when the chain bounces.
   */
  views(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    const bounce = this.chain.bounce;
    if (bounce === undefined) this.advance(n, (addr, len) => out.push(this.mem.view(addr, len)));
    else {
      const start = this.position();
      this.advance(n, (addr, len, done) => out.push(this.bounced(bounce, addr, len, start + done)));
    }
    return out;
  }

  /** Bytes of this cursor's part already passed. */
  protected abstract position(): number;
  /** A bounce buffer for [addr, addr + len), `at` bytes into this cursor's part. */
  protected abstract bounced(bounce: ChainBounce, addr: number, len: number, at: number): Uint8Array;
}

/** Reads the device-readable part of a chain as one byte stream. */
export class ChainReader extends Cursor {
  constructor(mem: GuestMemory, chain: DescriptorChain) {
    super(mem, chain, 0, chain.readableCount, chain.readableBytes);
  }

  protected position(): number {
    return this.chain.readableBytes - this.remaining;
  }
  protected bounced(bounce: ChainBounce, addr: number, len: number): Uint8Array {
    return bounce.readable(this.mem, addr, len);
  }

  /** Copies up to dst.length bytes into dst; returns how many were copied. */
  read(dst: Uint8Array): number {
    // Fast path: the whole read sits in the current buffer (the common header case).
    const len = this.chain.lens[this.seg];
    if (len !== undefined && this.seg < this.segEnd && len - this.segOff >= dst.length) {
      this.mem.read(this.chain.addrs[this.seg]! + this.segOff, dst);
      this.segOff += dst.length;
      this.remaining -= dst.length;
      return dst.length;
    }
    return this.advance(dst.length, (addr, n, done) => this.mem.read(addr, dst.subarray(done, done + n)));
  }

  /** Reads exactly dst.length bytes, or returns false (and the cursor is at the end). */
  readExact(dst: Uint8Array): boolean {
    if (this.remaining < dst.length) {
      this.skip(this.remaining);
      return false;
    }
    return this.read(dst) === dst.length;
  }
}

/** Writes the device-writable part of a chain as one byte stream. */
export class ChainWriter extends Cursor {
  constructor(mem: GuestMemory, chain: DescriptorChain) {
    super(mem, chain, chain.readableCount, chain.addrs.length, chain.writableBytes);
  }

  /** Bytes written (or skipped) so far: the used length to report. */
  get written(): number {
    return this.chain.writableBytes - this.remaining;
  }
  protected position(): number {
    return this.written;
  }
  protected bounced(bounce: ChainBounce, addr: number, len: number, at: number): Uint8Array {
    return bounce.writable(addr, len, at);
  }

  /** Copies up to src.length bytes from src; returns how many were written. */
  write(src: Uint8Array): number {
    const len = this.chain.lens[this.seg];
    if (len !== undefined && this.seg < this.segEnd && len - this.segOff >= src.length) {
      this.mem.write(this.chain.addrs[this.seg]! + this.segOff, src);
      this.segOff += src.length;
      this.remaining -= src.length;
      return src.length;
    }
    return this.advance(src.length, (addr, n, done) => this.mem.write(addr, src.subarray(done, done + n)));
  }

  /** Writes one byte; returns false when no writable byte is left. */
  writeU8(value: number): boolean {
    if (this.remaining === 0) return false;
    let len = this.chain.lens[this.seg]!;
    while (this.segOff === len) {
      this.seg++;
      this.segOff = 0;
      len = this.chain.lens[this.seg]!;
    }
    this.mem.writeU8(this.chain.addrs[this.seg]! + this.segOff, value);
    this.segOff++;
    this.remaining--;
    return true;
  }

  /** Writes up to n zero bytes; returns how many were written. */
  zero(n: number): number {
    return this.advance(n, (addr, len) => this.mem.fill(addr, len, 0));
  }
}
