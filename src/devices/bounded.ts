/**
 * The bounded little-endian reader and writer under the 9P and FUSE codecs. Every read of a guest
 * message and every write of a reply goes through `take` / `room`, the one place that checks a
 * field against the end of the message or the reply limit: a read past the end sets `bad` and
 * yields zeros, a write past the limit sets `overflow` and writes nothing.
 */

/** Reads fields of one message in buf[pos, end). */
export class BoundedReader {
  protected dv: DataView;
  pos = 0;
  end = 0;
  /** Set when a field ran past the end; every read after that yields 0 (or empty). */
  bad = false;

  constructor(public buf: Uint8Array) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  /** Consumes n bytes and answers where they start, or -1 (and `bad`) when they run past the end. */
  protected take(n: number): number {
    const at = this.pos;
    if (this.bad || at + n > this.end) {
      this.bad = true;
      return -1;
    }
    this.pos = at + n;
    return at;
  }

  u8(): number {
    const at = this.take(1);
    return at < 0 ? 0 : this.buf[at]!;
  }
  u16(): number {
    const at = this.take(2);
    return at < 0 ? 0 : this.dv.getUint16(at, true);
  }
  u32(): number {
    const at = this.take(4);
    return at < 0 ? 0 : this.dv.getUint32(at, true);
  }
  /** A u64 exactly. */
  u64big(): bigint {
    const at = this.take(8);
    return at < 0 ? 0n : this.dv.getBigUint64(at, true);
  }
  /** The next n bytes as a view of the message (zero-copy). */
  bytes(n: number): Uint8Array {
    const at = this.take(n);
    return at < 0 ? new Uint8Array(0) : this.buf.subarray(at, at + n);
  }
}

/** Writes one reply into buf[0, limit); the reply's u32 length goes at offset 0 (`finish`). */
export class BoundedWriter {
  protected dv: DataView;
  pos = 0;
  /** No byte goes at or past this. */
  limit = 0;
  /** Set when a field didn't fit; the reply must not be sent. */
  overflow = false;

  constructor(public buf: Uint8Array) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.limit = buf.length;
  }

  /** Reserves n bytes and answers where they start, or -1 (and `overflow`). */
  room(n: number): number {
    const at = this.pos;
    if (this.overflow || at + n > this.limit) {
      this.overflow = true;
      return -1;
    }
    this.pos = at + n;
    return at;
  }

  u8(v: number): void {
    const at = this.room(1);
    if (at >= 0) this.buf[at] = v;
  }
  u16(v: number): void {
    const at = this.room(2);
    if (at >= 0) this.dv.setUint16(at, v, true);
  }
  u32(v: number): void {
    const at = this.room(4);
    if (at >= 0) this.dv.setUint32(at, v >>> 0, true);
  }
  bytes(src: Uint8Array): void {
    const at = this.room(src.length);
    if (at >= 0) this.buf.set(src, at);
  }
  zeros(n: number): void {
    const at = this.room(n);
    if (at >= 0) this.buf.fill(0, at, at + n);
  }
  /** Writes the reply's length at offset 0; answers it, or -1 when the reply overflowed. */
  finish(): number {
    if (this.overflow) return -1;
    this.dv.setUint32(0, this.pos, true);
    return this.pos;
  }
}
