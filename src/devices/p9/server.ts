/**
 * A 9P2000.L server: msize negotiation and every message the Linux v9fs client sends, over an
 * FsBackend. It reads one request from a byte source and writes one reply into a byte sink (a
 * virtio chain's readable and writable parts, or plain buffers in tests), so it knows nothing of
 * virtqueues.
 *
 * Everything the guest sends is checked before use: the size field must equal the bytes
 * delivered, every field must lie inside the message, names are screened, every reply fits the
 * negotiated msize and the sink. Guest mistakes become Rlerror with a Linux errno; nothing the
 * guest sends throws. Backend operations may answer later; such requests finish in any order, and
 * Tflush answers only after the request it flushes.
 *
 * This file frames requests and dispatches them; the messages live in ops/ by group (attach, walk,
 * files, attrs, dirs, locks, xattr), the session state (fid table, locks, msize) in session.ts,
 * the reply plumbing in context.ts. The FUSE server (../fs/) is built the same way.
 */
import type { FsBackend } from '../../backends/fs/backend.js';
import { EINVAL, EMSGSIZE, EOPNOTSUPP, EPROTO } from '../../backends/fs/errno.js';
import { DEFAULT_MAX_MSIZE, MIN_MSIZE, P9Context } from './context.js';
import type { Reply } from '../serve.js';
import { type P9Input, type P9Output, RecordingInput, RecordingOutput } from './io.js';
import { tattach, tflush, tversion } from './ops/attach.js';
import { tgetattr, tsetattr, tstatfs } from './ops/attrs.js';
import { tlink, tmkdir, tmknod, treaddir, treadlink, trename, trenameat, tsymlink, tunlinkat } from './ops/dirs.js';
import { tclunk, tfsync, tlcreate, tlopen, tread, tremove, twrite } from './ops/files.js';
import { tgetlock, tlock } from './ops/locks.js';
import { twalk } from './ops/walk.js';
import { txattrcreate, txattrwalk } from './ops/xattr.js';
import { P9Session } from './session.js';
import { Decoder, Encoder, HEADER_SIZE, P9, TWRITE_HEADER_SIZE } from './wire.js';

export { type P9Input, type P9Output, BytesIn, BytesOut } from './io.js';

export { MIN_MSIZE, DEFAULT_MAX_MSIZE } from './context.js';
export { XATTR_SIZE_MAX } from '../serve.js';

export interface P9ServerOptions {
  /** Largest msize to agree to (4096..16 MiB); default 512000. */
  maxMsize?: number;
  /** Most fids at a time; more answer EMFILE. Default 65536. */
  maxFids?: number;
  /** Most bytes of xattr values held by fids at a time; default 16 MiB. */
  xattrBudget?: number;
  /** Most lock ranges held; default 65536. */
  maxLocks?: number;
  /**
   * Called as each request starts; the function it returns gets, when the reply is written, the
   * request's first bytes (for Twrite its 23-byte header, for others up to 256 bytes) and the
   * reply's first bytes (up to 64; empty when none was sent). For tracing tools; an untraced
   * server pays one check per request.
   */
  trace?: P9TraceHook;
}

/** See {@link P9ServerOptions.trace}. */
export type P9TraceHook = () => (request: Uint8Array, reply: Uint8Array) => void;

export class P9Server {
  readonly maxMsize: number;
  readonly maxFids: number;
  readonly xattrBudget: number;
  /** The session: fid table, locks, msize, xattr bytes, requests in flight. */
  readonly session: P9Session;
  private readonly c: P9Context;
  private readonly inBuf: Uint8Array;
  private readonly hdr = new Uint8Array(TWRITE_HEADER_SIZE);
  private readonly hdr7 = this.hdr.subarray(0, HEADER_SIZE);
  private readonly dec: Decoder;
  private readonly trace: P9TraceHook | undefined;

  constructor(
    readonly fs: FsBackend,
    opts: P9ServerOptions = {},
  ) {
    const max = opts.maxMsize ?? DEFAULT_MAX_MSIZE;
    if (!Number.isInteger(max) || max < MIN_MSIZE || max > 16 << 20) {
      throw new RangeError(`P9Server: maxMsize must be an integer in ${MIN_MSIZE}..${16 << 20}, got ${max}`);
    }
    this.maxMsize = max;
    this.trace = opts.trace;
    this.maxFids = opts.maxFids ?? 65536;
    this.xattrBudget = opts.xattrBudget ?? 16 << 20;
    this.session = new P9Session(fs, this.maxFids, this.xattrBudget, opts.maxLocks ?? 65536);
    this.inBuf = new Uint8Array(max);
    this.dec = new Decoder(this.inBuf);
    this.c = new P9Context(fs, this.session, max, new Encoder(new Uint8Array(max)), this.hdr);
  }

  /** Negotiated msize; 0 until Tversion. */
  get msize(): number {
    return this.session.msize;
  }
  /** Fids in use. */
  get fidCount(): number {
    return this.session.fids.size;
  }
  /** Requests waiting on the backend. */
  get pending(): number {
    return this.session.inFlight.size;
  }
  /** Lock ranges held. */
  get lockCount(): number {
    return this.session.locks.size;
  }
  /** Bytes of xattr values held by fids. */
  get xattrBytes(): number {
    return this.session.xattrHeld;
  }

  /** Drops every fid (closing open files) and lock: Tversion, or a device reset. */
  reset(): void {
    this.session.reset();
  }

  /**
   * Serves one request read from `input`, writing its reply into `out`. Answers the reply's
   * length (0 when not even an Rlerror fits or the request has no tag), now or later.
   */
  handle(input: P9Input, out: P9Output): Reply {
    if (this.trace !== undefined) return this.traced(this.trace, input, out);
    return this.serve(input, out);
  }

  /** {@link serve} with the trace hook told of the start, the request and the reply. */
  private traced(trace: P9TraceHook, input: P9Input, out: P9Output): Reply {
    const end = trace();
    const rin = new RecordingInput(input);
    const rout = new RecordingOutput(out);
    const report = (n: number): number => {
      end(rin.head.subarray(0, rin.kept), rout.head(n));
      return n;
    };
    const r = this.serve(rin, rout);
    return r instanceof Promise ? r.then(report) : report(r);
  }

  private serve(input: P9Input, out: P9Output): Reply {
    const total = input.remaining;
    const hdr = this.hdr;
    if (total < HEADER_SIZE || input.read(this.hdr7) !== HEADER_SIZE) return 0;
    const size = (hdr[0]! | (hdr[1]! << 8) | (hdr[2]! << 16) | (hdr[3]! << 24)) >>> 0;
    const type = hdr[4]!;
    const tag = hdr[5]! | (hdr[6]! << 8);
    if (size !== total) return this.c.error(out, tag, EINVAL);
    const limit = this.session.msize || this.maxMsize;
    if (size > limit) return this.c.error(out, tag, EMSGSIZE);
    if (this.session.msize === 0 && type !== P9.Tversion) return this.c.error(out, tag, EPROTO);
    let r: Reply;
    if (type === P9.Twrite) {
      r = twrite(this.c, input, tag, out);
    } else {
      const buf = this.inBuf;
      buf.set(this.hdr7);
      if (input.read(buf.subarray(HEADER_SIZE, size)) !== size - HEADER_SIZE) return this.c.error(out, tag, EINVAL);
      this.dec.reset(buf, size);
      this.dec.pos = HEADER_SIZE;
      r = this.dispatch(type, tag, this.dec, out);
    }
    if (r instanceof Promise) {
      const p = r;
      this.session.inFlight.set(tag, p);
      const done = (): void => {
        if (this.session.inFlight.get(tag) === p) this.session.inFlight.delete(tag);
      };
      p.then(done, done);
    }
    return r;
  }

  private dispatch(type: number, tag: number, d: Decoder, out: P9Output): Reply {
    const c = this.c;
    switch (type) {
      case P9.Tversion:
        return tversion(c, d, tag, out);
      case P9.Tattach:
        return tattach(c, d, tag, out);
      case P9.Tflush:
        return tflush(c, d, tag, out);
      case P9.Twalk:
        return twalk(c, d, tag, out);
      case P9.Tlopen:
        return tlopen(c, d, tag, out);
      case P9.Tlcreate:
        return tlcreate(c, d, tag, out);
      case P9.Tread:
        return tread(c, d, tag, out);
      case P9.Tclunk:
        return tclunk(c, d, tag, out);
      case P9.Tremove:
        return tremove(c, d, tag, out);
      case P9.Tgetattr:
        return tgetattr(c, d, tag, out);
      case P9.Tsetattr:
        return tsetattr(c, d, tag, out);
      case P9.Treaddir:
        return treaddir(c, d, tag, out);
      case P9.Tmkdir:
        return tmkdir(c, d, tag, out);
      case P9.Tmknod:
        return tmknod(c, d, tag, out);
      case P9.Tsymlink:
        return tsymlink(c, d, tag, out);
      case P9.Treadlink:
        return treadlink(c, d, tag, out);
      case P9.Tlink:
        return tlink(c, d, tag, out);
      case P9.Trename:
        return trename(c, d, tag, out);
      case P9.Trenameat:
        return trenameat(c, d, tag, out);
      case P9.Tunlinkat:
        return tunlinkat(c, d, tag, out);
      case P9.Tstatfs:
        return tstatfs(c, d, tag, out);
      case P9.Tfsync:
        return tfsync(c, d, tag, out);
      case P9.Tlock:
        return tlock(c, d, tag, out);
      case P9.Tgetlock:
        return tgetlock(c, d, tag, out);
      case P9.Txattrwalk:
        return txattrwalk(c, d, tag, out);
      case P9.Txattrcreate:
        return txattrcreate(c, d, tag, out);
      default:
        // Tauth (no authentication), legacy 9P2000 / .u messages and anything unknown.
        return c.error(out, tag, EOPNOTSUPP);
    }
  }
}
