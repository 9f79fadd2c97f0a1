/**
 * Where 9P messages come from and go to: the server reads a request from a P9Input and writes its
 * reply to a P9Output. A chain's reader and writer fit these, and so do plain buffers (BytesIn,
 * BytesOut). The recording wrappers keep the first bytes of each for tracing.
 */

/** Where a request comes from: ChainReader fits, and so does a plain buffer (BytesIn). */
export interface P9Input {
  readonly remaining: number;
  read(dst: Uint8Array): number;
  /** Zero-copy views of the next n bytes. */
  views(n: number): Uint8Array[];
}

/** Where a reply goes: ChainWriter fits, and so does a plain buffer (BytesOut). */
export interface P9Output {
  readonly remaining: number;
  write(src: Uint8Array): number;
  /** Zero-copy views of the next n bytes. */
  views(n: number): Uint8Array[];
  /** False once the request's session is gone (device reset); nothing may be written then. */
  live?(): boolean;
}

/**
 * A reply writer that stops writing once `live()` says the request's session ended (a device
 * reset): an async backend that answers late never writes into memory the driver took back. The
 * 9P and FUSE devices wrap each chain's writer in one.
 */
export class GuardedOutput implements P9Output {
  constructor(
    private readonly inner: P9Output,
    readonly live: () => boolean,
  ) {}
  get remaining(): number {
    return this.inner.remaining;
  }
  write(src: Uint8Array): number {
    return this.live() ? this.inner.write(src) : 0;
  }
  views(n: number): Uint8Array[] {
    return this.live() ? this.inner.views(n) : [];
  }
}

/** Request bytes a trace keeps. */
const TRACE_REQUEST_BYTES = 256;
/** Reply bytes a trace keeps. */
const TRACE_REPLY_BYTES = 64;

/** A P9Input that keeps a copy of the first bytes read through it. */
export class RecordingInput implements P9Input {
  readonly head = new Uint8Array(TRACE_REQUEST_BYTES);
  kept = 0;
  constructor(private readonly inner: P9Input) {}
  get remaining(): number {
    return this.inner.remaining;
  }
  read(dst: Uint8Array): number {
    const n = this.inner.read(dst);
    const k = Math.min(n, TRACE_REQUEST_BYTES - this.kept);
    if (k > 0) this.head.set(dst.subarray(0, k), this.kept);
    this.kept += Math.max(k, 0);
    return n;
  }
  views(n: number): Uint8Array[] {
    return this.inner.views(n);
  }
}

/** A P9Output that remembers where the reply's first bytes went. */
export class RecordingOutput implements P9Output {
  private written: Uint8Array | undefined;
  private firstViews: Uint8Array[] | undefined;
  constructor(private readonly inner: P9Output) {}
  get remaining(): number {
    return this.inner.remaining;
  }
  write(src: Uint8Array): number {
    const n = this.inner.write(src);
    if (this.written === undefined && this.firstViews === undefined && n > 0) this.written = src.slice(0, Math.min(n, TRACE_REPLY_BYTES));
    return n;
  }
  views(n: number): Uint8Array[] {
    const v = this.inner.views(n);
    if (this.written === undefined && this.firstViews === undefined) this.firstViews = v;
    return v;
  }
  live(): boolean {
    return this.inner.live?.() ?? true;
  }
  /** The reply's first `length` bytes (at most TRACE_REPLY_BYTES), read after it was written. */
  head(length: number): Uint8Array {
    if (this.written !== undefined) return this.written.subarray(0, Math.min(length, this.written.length));
    const out = new Uint8Array(Math.min(length, TRACE_REPLY_BYTES));
    let at = 0;
    for (const v of this.firstViews ?? []) {
      if (at >= out.length) break;
      const k = Math.min(v.length, out.length - at);
      out.set(v.subarray(0, k), at);
      at += k;
    }
    return out.subarray(0, at);
  }
}

/** Views of the bytes after the first `skip` bytes of a list of views. */
export function splitAfter(views: Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const v of views) {
    if (skip >= v.length) {
      skip -= v.length;
      continue;
    }
    out.push(skip > 0 ? v.subarray(skip) : v);
    skip = 0;
  }
  return out;
}

/** Copies src over the start of a list of views. */
export function scatter(views: Uint8Array[], src: Uint8Array): void {
  let done = 0;
  for (const v of views) {
    if (done >= src.length) break;
    const n = Math.min(v.length, src.length - done);
    v.set(src.subarray(done, done + n));
    done += n;
  }
}

/** A request held in a plain buffer, for tests and non-virtio transports. */
export class BytesIn implements P9Input {
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {}
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  read(dst: Uint8Array): number {
    const n = Math.min(dst.length, this.remaining);
    dst.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return n;
  }
  views(n: number): Uint8Array[] {
    n = Math.min(n, this.remaining);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return [v];
  }
}

/** A reply buffer, for tests and non-virtio transports. */
export class BytesOut implements P9Output {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  write(src: Uint8Array): number {
    const n = Math.min(src.length, this.remaining);
    this.buf.set(src.subarray(0, n), this.pos);
    this.pos += n;
    return n;
  }
  views(n: number): Uint8Array[] {
    n = Math.min(n, this.remaining);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return [v];
  }
}
