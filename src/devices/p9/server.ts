/**
 * A 9P2000.L server: fid table, qids, msize negotiation and every message the Linux v9fs client
 * sends, over an FsBackend. It reads one request from a byte source and writes one reply into a
 * byte sink (a virtio chain's readable and writable parts, or plain buffers in tests), so it knows
 * nothing of virtqueues.
 *
 * Everything the guest sends is checked before use: the size field must equal the bytes
 * delivered, every field must lie inside the message, names are screened, every reply fits the
 * negotiated msize and the sink. Guest mistakes become Rlerror with a Linux errno; nothing the
 * guest sends throws. Backend operations may answer later; such requests finish in any order, and
 * Tflush answers only after the request it flushes.
 */
import {
  type Async,
  type FsResult,
  type FsBackend,
  type FsCreds,
  type FsDirEntry,
  type FsFile,
  type FsNode,
  type FsSetAttr,
  type FsStat,
  NAME_MAX,
  O_ACCMODE,
  O_APPEND,
  O_RDONLY,
  O_TRUNC,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
} from '../../backends/fs/backend.js';
import {
  E2BIG,
  EACCES,
  EBADF,
  EBUSY,
  EEXIST,
  EFBIG,
  EINVAL,
  EISDIR,
  ELOOP,
  EMFILE,
  EMSGSIZE,
  ENAMETOOLONG,
  ENOENT,
  ENOLCK,
  ENOMEM,
  ENOTDIR,
  EOPNOTSUPP,
  EPROTO,
  EROFS,
  FsError,
} from '../../backends/fs/errno.js';
import { LockTable } from './locks.js';
import {
  AT_REMOVEDIR,
  Decoder,
  Encoder,
  GETATTR_BASIC,
  HEADER_SIZE,
  IO_HEADER_SIZE,
  LOCK_BLOCKED,
  LOCK_ERROR,
  LOCK_SUCCESS,
  LOCK_TYPE_RDLCK,
  LOCK_TYPE_UNLCK,
  LOCK_TYPE_WRLCK,
  MAXWELEM,
  NOFID,
  P9,
  QID_SIZE,
  QT_DIR,
  QT_FILE,
  QT_SYMLINK,
  SETATTR_ATIME,
  SETATTR_ATIME_SET,
  SETATTR_CTIME,
  SETATTR_GID,
  SETATTR_MODE,
  SETATTR_MTIME,
  SETATTR_MTIME_SET,
  SETATTR_SIZE,
  SETATTR_UID,
  TWRITE_HEADER_SIZE,
  VERSION_9P2000L,
} from './wire.js';
import { type P9Input, type P9Output, RecordingInput, RecordingOutput, scatter, splitAfter } from './io.js';

export { type P9Input, type P9Output, BytesIn, BytesOut } from './io.js';

/** Smallest msize a client may ask for. */
export const MIN_MSIZE = 4096;
/** Largest msize storvm offers by default: what Linux asks for with msize=512000. */
export const DEFAULT_MAX_MSIZE = 512000;
/** Largest extended attribute value (Linux XATTR_SIZE_MAX). */
export const XATTR_SIZE_MAX = 65536;

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

type Reply = number | Promise<number>;

/**
 * Moves data through `views` one after another with `op` (a backend read or write at byte `at`
 * of the transfer), synchronously while the backend answers synchronously. Stops at the first
 * short transfer or error; `finish(errno, done)` then builds the reply.
 */
function transferViews(
  views: Uint8Array[],
  op: (v: Uint8Array, at: number) => Async<FsResult<number>>,
  finish: (errno: number, done: number) => number,
): Reply {
  let done = 0;
  const step = (i: number): Reply => {
    for (; i < views.length; i++) {
      const v = views[i]!;
      const r = op(v, done);
      if (r instanceof Promise) {
        return r.then((n) => {
          if (n instanceof FsError) return finish(n.errno, done);
          done += n;
          return n < v.length ? finish(0, done) : step(i + 1);
        });
      }
      if (r instanceof FsError) return finish(r.errno, done);
      done += r;
      if (r < v.length) break;
    }
    return finish(0, done);
  };
  return step(0);
}
type Node = FsNode;

/** A Twalk in progress. */
interface WalkState {
  fid: Fid;
  fidNo: number;
  newNo: number;
  names: string[];
  qids: Node[];
  cur: Node;
  parent: Node | null;
  curName: string;
  failure: number;
  tag: number;
  out: P9Output;
}

/** A fid: a reference to a file the client named, maybe opened, maybe an xattr channel. */
class Fid {
  file: FsFile | undefined = undefined;
  /** For Txattrwalk fids: the value (or name list) to read. */
  xattrValue: Uint8Array | undefined = undefined;
  /** For Txattrcreate fids: what to set on clunk. */
  xattrWrite: { name: string; flags: number; value: Uint8Array; copied: number } | undefined = undefined;
  constructor(
    public node: Node,
    /** The directory and name the fid was reached through (null for the root), for Trename / Tremove. */
    public parent: Node | null,
    public name: string,
    readonly uid: number,
  ) {}
}

/** Runs fn on a value now, or on a Promise's value later. */
function then<T, U>(r: T | Promise<T>, fn: (v: T) => U | Promise<U>): U | Promise<U> {
  return r instanceof Promise ? r.then(fn) : fn(r);
}

const enc8 = new TextEncoder();

/** How a name may not look: empty, with '/' or NUL. */
function illegalName(name: string): boolean {
  return name === '' || name.includes('/') || name.includes('\0');
}

/** Longer than NAME_MAX bytes of UTF-8. */
function nameTooLong(name: string): boolean {
  if (name.length > NAME_MAX) return true;
  for (let i = 0; i < name.length; i++) {
    if (name.charCodeAt(i) > 0x7f) return enc8.encode(name).length > NAME_MAX;
  }
  return false;
}

export class P9Server {
  readonly maxMsize: number;
  readonly maxFids: number;
  readonly xattrBudget: number;
  /** Negotiated msize; 0 until Tversion. */
  msize = 0;
  private readonly fids = new Map<number, Fid>();
  private readonly locks: LockTable;
  private readonly inFlight = new Map<number, Promise<number>>();
  private readonly inBuf: Uint8Array;
  private readonly hdr = new Uint8Array(TWRITE_HEADER_SIZE);
  private readonly hdr7 = this.hdr.subarray(0, HEADER_SIZE);
  private readonly dec: Decoder;
  private readonly enc: Encoder;
  private xattrHeld = 0;
  private rootIno: bigint | undefined;
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
    this.locks = new LockTable(opts.maxLocks ?? 65536);
    this.inBuf = new Uint8Array(max);
    this.dec = new Decoder(this.inBuf);
    this.enc = new Encoder(new Uint8Array(max));
  }

  /** Fids in use. */
  get fidCount(): number {
    return this.fids.size;
  }
  /** Requests waiting on the backend. */
  get pending(): number {
    return this.inFlight.size;
  }
  /** Lock ranges held. */
  get lockCount(): number {
    return this.locks.size;
  }
  /** Bytes of xattr values held by fids. */
  get xattrBytes(): number {
    return this.xattrHeld;
  }

  /** Drops every fid (closing open files) and lock: Tversion, or a device reset. */
  reset(): void {
    for (const fid of this.fids.values()) this.dropFid(fid);
    this.fids.clear();
    this.locks.clear();
    this.inFlight.clear();
    this.xattrHeld = 0;
    this.msize = 0;
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
    if (size !== total) return this.error(out, tag, EINVAL);
    const limit = this.msize || this.maxMsize;
    if (size > limit) return this.error(out, tag, EMSGSIZE);
    if (this.msize === 0 && type !== P9.Tversion) return this.error(out, tag, EPROTO);
    let r: Reply;
    if (type === P9.Twrite) {
      r = this.twrite(input, tag, out);
    } else {
      const buf = this.inBuf;
      buf.set(this.hdr7);
      if (input.read(buf.subarray(HEADER_SIZE, size)) !== size - HEADER_SIZE) return this.error(out, tag, EINVAL);
      this.dec.reset(buf, size);
      this.dec.pos = HEADER_SIZE;
      r = this.dispatch(type, tag, this.dec, out);
    }
    if (r instanceof Promise) {
      const p = r;
      this.inFlight.set(tag, p);
      const done = (): void => {
        if (this.inFlight.get(tag) === p) this.inFlight.delete(tag);
      };
      p.then(done, done);
    }
    return r;
  }

  private dispatch(type: number, tag: number, d: Decoder, out: P9Output): Reply {
    switch (type) {
      case P9.Tversion:
        return this.tversion(d, tag, out);
      case P9.Tattach:
        return this.tattach(d, tag, out);
      case P9.Tflush:
        return this.tflush(d, tag, out);
      case P9.Twalk:
        return this.twalk(d, tag, out);
      case P9.Tlopen:
        return this.tlopen(d, tag, out);
      case P9.Tlcreate:
        return this.tlcreate(d, tag, out);
      case P9.Tread:
        return this.tread(d, tag, out);
      case P9.Tclunk:
        return this.tclunk(d, tag, out);
      case P9.Tremove:
        return this.tremove(d, tag, out);
      case P9.Tgetattr:
        return this.tgetattr(d, tag, out);
      case P9.Tsetattr:
        return this.tsetattr(d, tag, out);
      case P9.Treaddir:
        return this.treaddir(d, tag, out);
      case P9.Tmkdir:
        return this.tmkdir(d, tag, out);
      case P9.Tmknod:
        return this.tmknod(d, tag, out);
      case P9.Tsymlink:
        return this.tsymlink(d, tag, out);
      case P9.Treadlink:
        return this.treadlink(d, tag, out);
      case P9.Tlink:
        return this.tlink(d, tag, out);
      case P9.Trename:
        return this.trename(d, tag, out);
      case P9.Trenameat:
        return this.trenameat(d, tag, out);
      case P9.Tunlinkat:
        return this.tunlinkat(d, tag, out);
      case P9.Tstatfs:
        return this.tstatfs(d, tag, out);
      case P9.Tfsync:
        return this.tfsync(d, tag, out);
      case P9.Tlock:
        return this.tlock(d, tag, out);
      case P9.Tgetlock:
        return this.tgetlock(d, tag, out);
      case P9.Txattrwalk:
        return this.txattrwalk(d, tag, out);
      case P9.Txattrcreate:
        return this.txattrcreate(d, tag, out);
      default:
        // Tauth (no authentication), legacy 9P2000 / .u messages and anything unknown.
        return this.error(out, tag, EOPNOTSUPP);
    }
  }

  // ---- reply plumbing -------------------------------------------------------------------------

  private begin(type: number, tag: number, out: P9Output): Encoder {
    this.enc.begin(type, tag, Math.min(this.msize || this.maxMsize, out.remaining));
    return this.enc;
  }

  /** Sends the reply built since `begin`; one that doesn't fit becomes Rlerror(EMSGSIZE). */
  private send(tag: number, out: P9Output): number {
    const n = this.enc.finish();
    if (n < 0) return this.error(out, tag, EMSGSIZE);
    return out.write(this.enc.buf.subarray(0, n)) === n ? n : 0;
  }

  private error(out: P9Output, tag: number, errno: number): number {
    if (out.remaining < IO_HEADER_SIZE) return 0;
    const e = this.enc;
    e.begin(P9.Rlerror, tag, IO_HEADER_SIZE);
    e.u32(errno);
    return out.write(e.buf.subarray(0, e.finish())) === IO_HEADER_SIZE ? IO_HEADER_SIZE : 0;
  }

  /** An empty reply of `type`, or Rlerror when r is an FsError. */
  private simple(r: unknown, type: number, tag: number, out: P9Output): number {
    if (r instanceof FsError) return this.error(out, tag, r.errno);
    this.begin(type, tag, out);
    return this.send(tag, out);
  }

  /** Rmkdir / Rmknod / Rsymlink: a qid. */
  private qidReply(r: Node | FsError, type: number, tag: number, out: P9Output): number {
    if (r instanceof FsError) return this.error(out, tag, r.errno);
    const e = this.begin(type, tag, out);
    this.putQid(e, r);
    return this.send(tag, out);
  }

  private putQid(e: Encoder, node: Node): void {
    e.qidOf(qidType(node.mode), node.version, node.ino);
  }

  // ---- fids -----------------------------------------------------------------------------------

  private fid(n: number): Fid | undefined {
    return this.fids.get(n);
  }

  /** Whether a new fid number may be taken; answers an errno or 0. */
  private canTake(n: number): number {
    if (n === NOFID) return EINVAL;
    if (this.fids.has(n)) return EINVAL;
    if (this.fids.size >= this.maxFids) return EMFILE;
    return 0;
  }

  private addFid(n: number, fid: Fid): void {
    this.fs.retain(fid.node);
    this.fids.set(n, fid);
  }

  /** Closes what a fid holds; answers what closing said (xattr commits can fail). */
  private dropFid(fid: Fid): unknown {
    let r: unknown = undefined;
    if (fid.file !== undefined) {
      r = this.fs.close(fid.file);
      fid.file = undefined;
    }
    if (fid.xattrValue !== undefined) {
      this.xattrHeld -= fid.xattrValue.length;
      fid.xattrValue = undefined;
    }
    const xw = fid.xattrWrite;
    if (xw !== undefined) {
      this.xattrHeld -= xw.value.length;
      fid.xattrWrite = undefined;
      if (xw.copied !== xw.value.length) r = new FsError(EINVAL);
      else if (xw.value.length === 0) r = this.fs.removexattr(fid.node, xw.name);
      else r = this.fs.setxattr(fid.node, xw.name, xw.value, xw.flags);
    }
    this.fs.release(fid.node);
    return r;
  }

  /** Checks a name for something to be created: answers an errno or 0. */
  private checkNewName(name: string): number {
    if (illegalName(name)) return EINVAL;
    if (name === '.' || name === '..') return EEXIST;
    if (nameTooLong(name)) return ENAMETOOLONG;
    return 0;
  }

  /** Checks a name to remove or rename. */
  private checkOldName(name: string): number {
    if (illegalName(name)) return EINVAL;
    if (name === '.' || name === '..') return EINVAL;
    if (nameTooLong(name)) return ENAMETOOLONG;
    return 0;
  }

  // ---- session --------------------------------------------------------------------------------

  private tversion(d: Decoder, tag: number, out: P9Output): Reply {
    const msize = d.u32();
    const version = d.str();
    if (d.bad) return this.error(out, tag, EINVAL);
    if (msize < MIN_MSIZE) return this.error(out, tag, EMSGSIZE);
    // A new session: every fid, open file and lock of the old one goes (9P: version(5)).
    this.reset();
    const ok = version === VERSION_9P2000L || version.startsWith(VERSION_9P2000L + '.');
    this.msize = Math.min(msize, this.maxMsize);
    const e = this.begin(P9.Rversion, tag, out);
    e.u32(this.msize);
    e.str(ok ? VERSION_9P2000L : 'unknown');
    if (!ok) this.msize = 0;
    return this.send(tag, out);
  }

  private tattach(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    d.u32(); // afid: no authentication
    d.str(); // uname
    d.str(); // aname: one export per device
    const uid = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const bad = this.canTake(fidNo);
    if (bad !== 0) return this.error(out, tag, bad);
    return then(this.fs.root(), (root) => {
      if (root instanceof FsError) return this.error(out, tag, root.errno);
      if (this.fids.has(fidNo)) return this.error(out, tag, EINVAL);
      this.rootIno = root.ino;
      this.addFid(fidNo, new Fid(root, null, '', uid === NOFID ? 0 : uid));
      const e = this.begin(P9.Rattach, tag, out);
      this.putQid(e, root);
      return this.send(tag, out);
    });
  }

  private tflush(d: Decoder, tag: number, out: P9Output): Reply {
    const oldtag = d.u16();
    if (d.bad) return this.error(out, tag, EINVAL);
    const old = this.inFlight.get(oldtag);
    if (old === undefined || oldtag === tag) return this.simple(undefined, P9.Rflush, tag, out);
    // The flushed request answers first; Rflush follows (9P: flush(5)).
    const after = (): number => this.simple(undefined, P9.Rflush, tag, out);
    return old.then(after, after);
  }

  // ---- walking --------------------------------------------------------------------------------

  private twalk(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    const newNo = d.u32();
    const n = d.u16();
    // Refuse an oversized walk before decoding, let alone allocating, anything for it.
    if (d.bad || n > MAXWELEM) return this.error(out, tag, EINVAL);
    const names: string[] = [];
    for (let i = 0; i < n; i++) names.push(d.str());
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    if (fid.xattrValue !== undefined || fid.xattrWrite !== undefined) return this.error(out, tag, EINVAL);
    if (newNo !== fidNo) {
      const bad = this.canTake(newNo);
      if (bad !== 0) return this.error(out, tag, bad);
    }
    for (const name of names) {
      if (illegalName(name)) return this.error(out, tag, ENOENT);
      if (nameTooLong(name)) return this.error(out, tag, ENAMETOOLONG);
    }
    const w: WalkState = {
      fid,
      fidNo,
      newNo,
      names,
      qids: [],
      cur: fid.node,
      parent: fid.parent,
      curName: fid.name,
      failure: 0,
      tag,
      out,
    };
    return this.walkFrom(w, 0);
  }

  /** Looks up names[i..] (no closures on the synchronous path: walks are the hottest message). */
  private walkFrom(w: WalkState, i: number): Reply {
    const names = w.names;
    for (; i < names.length; i++) {
      const name = names[i]!;
      if ((w.cur.mode & S_IFMT) !== S_IFDIR) {
        w.failure = ENOTDIR;
        break;
      }
      // '..' at the export root stays at the root.
      if (name === '..' && w.cur.ino === this.rootIno) {
        this.walkAccept(w, '.', w.cur);
        continue;
      }
      const r = this.fs.lookup(w.cur, name);
      if (r instanceof Promise) {
        const next = i + 1;
        return r.then((v) => (this.walkAccept(w, name, v) ? this.walkFrom(w, next) : this.walkFinish(w)));
      }
      if (!this.walkAccept(w, name, r)) break;
    }
    return this.walkFinish(w);
  }

  /** Takes one lookup result; false stops the walk. */
  private walkAccept(w: WalkState, name: string, r: Node | FsError): boolean {
    if (r instanceof FsError) {
      w.failure = r.errno;
      return false;
    }
    if (name === '..') {
      // The parent of the parent isn't known here; '..' results can't be renamed or removed.
      w.parent = null;
      w.curName = '';
    } else if (name !== '.') {
      w.parent = w.cur;
      w.curName = name;
    }
    w.cur = r;
    w.qids.push(r);
    return true;
  }

  private walkFinish(w: WalkState): number {
    const { out, tag, qids, fid } = w;
    if (qids.length < w.names.length && qids.length === 0) return this.error(out, tag, w.failure || ENOENT);
    if (qids.length === w.names.length) {
      if (w.newNo === w.fidNo) {
        if (fid.file !== undefined) return this.error(out, tag, EINVAL);
        this.fs.retain(w.cur);
        this.fs.release(fid.node);
        fid.node = w.cur;
        fid.parent = w.parent;
        fid.name = w.curName;
      } else {
        if (this.canTake(w.newNo) !== 0) return this.error(out, tag, EINVAL);
        this.addFid(w.newNo, new Fid(w.cur, w.parent, w.curName, fid.uid));
      }
    }
    const e = this.begin(P9.Rwalk, tag, out);
    e.u16(qids.length);
    for (const q of qids) this.putQid(e, q);
    return this.send(tag, out);
  }

  // ---- open, create, I/O ----------------------------------------------------------------------

  private tlopen(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    const flags = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    if (fid.file !== undefined || fid.xattrValue !== undefined || fid.xattrWrite !== undefined) {
      return this.error(out, tag, EINVAL);
    }
    const type = fid.node.mode & S_IFMT;
    // Only regular files and directories are ever opened: device nodes, FIFOs and sockets are
    // the guest kernel's business (it never asks), and a symlink is never followed.
    if (type === S_IFLNK) return this.error(out, tag, ELOOP);
    if (type !== S_IFREG && type !== S_IFDIR) return this.error(out, tag, EACCES);
    // Linux may send any flags on a directory (6.12 never sends O_DIRECTORY); it is read only.
    const acc = flags & O_ACCMODE;
    let bflags = acc | (flags & (O_TRUNC | O_APPEND));
    if (type === S_IFDIR) {
      if (acc !== O_RDONLY) return this.error(out, tag, EISDIR);
      bflags = O_RDONLY;
    } else if (this.fs.readOnly && (acc !== O_RDONLY || (flags & O_TRUNC) !== 0)) {
      return this.error(out, tag, EROFS);
    }
    return then(this.fs.open(fid.node, bflags), (f) => {
      if (f instanceof FsError) return this.error(out, tag, f.errno);
      if (this.fids.get(fidNo) !== fid || fid.file !== undefined) {
        this.fs.close(f);
        return this.error(out, tag, EBADF);
      }
      fid.file = f;
      const e = this.begin(P9.Rlopen, tag, out);
      this.putQid(e, f.node);
      e.u32(0); // iounit: let the client use msize
      return this.send(tag, out);
    });
  }

  private tlcreate(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    const name = d.str();
    const flags = d.u32();
    const mode = d.u32();
    const gid = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    if (fid.file !== undefined || fid.xattrWrite !== undefined || fid.xattrValue !== undefined) {
      return this.error(out, tag, EINVAL);
    }
    const bad = this.checkNewName(name);
    if (bad !== 0) return this.error(out, tag, bad);
    if ((fid.node.mode & S_IFMT) !== S_IFDIR) return this.error(out, tag, ENOTDIR);
    if (this.fs.readOnly) return this.error(out, tag, EROFS);
    const creds: FsCreds = { uid: fid.uid, gid };
    const dir = fid.node;
    const bflags = (flags & O_ACCMODE) | (flags & O_APPEND);
    return then(this.fs.create(dir, name, bflags, mode & 0o7777, creds), (f) => {
      if (f instanceof FsError) return this.error(out, tag, f.errno);
      if (this.fids.get(fidNo) !== fid || fid.file !== undefined) {
        this.fs.close(f);
        return this.error(out, tag, EBADF);
      }
      // The fid now stands for the new, open file (9P: Tlcreate).
      this.fs.retain(f.node);
      this.fs.release(fid.node);
      fid.node = f.node;
      fid.parent = dir;
      fid.name = name;
      fid.file = f;
      const e = this.begin(P9.Rlcreate, tag, out);
      this.putQid(e, f.node);
      e.u32(0);
      return this.send(tag, out);
    });
  }

  private tread(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    const offset = d.u64();
    const count = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    const room = Math.min(this.msize, out.remaining) - IO_HEADER_SIZE;
    if (room < 0) return 0;
    const want = Math.min(count, room);
    const xv = fid.xattrValue;
    if (xv !== undefined) {
      // Reading an xattr: only bytes of the value, offsets compared before any sum.
      const n = offset >= xv.length ? 0 : Math.min(want, xv.length - offset);
      const e = this.begin(P9.Rread, tag, out);
      e.u32(n);
      e.bytes(xv.subarray(offset, offset + n));
      return this.send(tag, out);
    }
    const file = fid.file;
    if (file === undefined) return this.error(out, tag, EBADF);
    if (offset > Number.MAX_SAFE_INTEGER) return this.error(out, tag, EINVAL);
    if (this.fs.asynchronous) {
      // The backend fills a buffer of ours; the reply is written only if still wanted.
      const buf = new Uint8Array(want);
      return then(this.fs.read(file, offset, buf), (n) => {
        if (n instanceof FsError) return this.error(out, tag, n.errno);
        const e = this.begin(P9.Rread, tag, out);
        e.u32(n);
        e.bytes(buf.subarray(0, Math.min(n, want)));
        return this.send(tag, out);
      });
    }
    // Data goes straight into the reply buffers; the 11-byte header is written last.
    const views = out.views(IO_HEADER_SIZE + want);
    const header = new Uint8Array(IO_HEADER_SIZE);
    const dataViews = splitAfter(views, IO_HEADER_SIZE);
    let done = 0;
    const finish = (errno: number): number => {
      if (errno !== 0 && done === 0) {
        const e = this.enc;
        e.begin(P9.Rlerror, tag, IO_HEADER_SIZE);
        e.u32(errno);
        scatter(views, e.buf.subarray(0, e.finish()));
        return IO_HEADER_SIZE;
      }
      const dv = new DataView(header.buffer);
      dv.setUint32(0, IO_HEADER_SIZE + done, true);
      dv.setUint8(4, P9.Rread);
      dv.setUint16(5, tag, true);
      dv.setUint32(7, done, true);
      scatter(views, header);
      return IO_HEADER_SIZE + done;
    };
    return transferViews(dataViews, (v, at) => this.fs.read(file, offset + at, v), (errno, n) => {
      done = n;
      return finish(errno);
    });
  }

  private twrite(input: P9Input, tag: number, out: P9Output): Reply {
    const h = this.hdr;
    if (input.read(h.subarray(HEADER_SIZE, TWRITE_HEADER_SIZE)) !== TWRITE_HEADER_SIZE - HEADER_SIZE) {
      return this.error(out, tag, EINVAL);
    }
    const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
    const fidNo = dv.getUint32(7, true);
    const offset = dv.getUint32(11, true) + dv.getUint32(15, true) * 2 ** 32;
    const count = dv.getUint32(19, true);
    // The count must describe exactly the bytes that follow.
    if (count !== input.remaining) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    const xw = fid.xattrWrite;
    if (xw !== undefined) {
      if (offset > xw.value.length) return this.error(out, tag, ENOSPC_XATTR);
      const n = Math.min(count, xw.value.length - offset);
      let at = offset;
      for (const v of input.views(n)) {
        xw.value.set(v, at);
        at += v.length;
      }
      xw.copied += n;
      return this.rwrite(n, tag, out);
    }
    const file = fid.file;
    if (file === undefined) return this.error(out, tag, EBADF);
    if (this.fs.readOnly) return this.error(out, tag, EROFS);
    if (offset + count > Number.MAX_SAFE_INTEGER) return this.error(out, tag, EFBIG);
    return transferViews(input.views(count), (v, at) => this.fs.write(file, offset + at, v), (errno, done) =>
      errno !== 0 && done === 0 ? this.error(out, tag, errno) : this.rwrite(done, tag, out),
    );
  }

  private rwrite(n: number, tag: number, out: P9Output): number {
    const e = this.begin(P9.Rwrite, tag, out);
    e.u32(n);
    return this.send(tag, out);
  }

  private tclunk(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    // The fid goes whatever closing answers (9P: clunk(5)).
    this.fids.delete(fidNo);
    const r = this.dropFid(fid);
    return then(r, (v) => this.simple(v, P9.Rclunk, tag, out));
  }

  private tremove(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    this.fids.delete(fidNo);
    const parent = fid.parent;
    const name = fid.name;
    const isDir = (fid.node.mode & S_IFMT) === S_IFDIR;
    // Tremove clunks the fid even when the remove fails (9P: remove(5)).
    const closed = this.dropFid(fid);
    if (parent === null || name === '') return then(closed, () => this.error(out, tag, EBUSY));
    if (this.fs.readOnly) return then(closed, () => this.error(out, tag, EROFS));
    return then(closed, () =>
      then(this.fs.unlink(parent, name, isDir), (r) => {
        if (!(r instanceof FsError)) this.forgetName(parent, name);
        return this.simple(r, P9.Rremove, tag, out);
      }),
    );
  }

  // ---- attributes -----------------------------------------------------------------------------

  private tgetattr(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    d.u64(); // request_mask: the basic set is always answered
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    const node = fid.node;
    return then(this.fs.getattr(node, fid.file), (st) => {
      if (st instanceof FsError) return this.error(out, tag, st.errno);
      return this.rgetattr(st, node, tag, out);
    });
  }

  private rgetattr(st: FsStat, node: Node, tag: number, out: P9Output): number {
    const e = this.begin(P9.Rgetattr, tag, out);
    e.u64(GETATTR_BASIC);
    e.qidOf(qidType(st.mode), node.version, st.ino);
    e.u32(st.mode);
    e.u32(st.uid);
    e.u32(st.gid);
    e.u64(st.nlink);
    e.u64(st.rdev);
    e.u64(st.size);
    e.u64(st.blksize);
    e.u64(st.blocks);
    e.u64(st.atime.sec);
    e.u64(st.atime.nsec);
    e.u64(st.mtime.sec);
    e.u64(st.mtime.nsec);
    e.u64(st.ctime.sec);
    e.u64(st.ctime.nsec);
    e.u64(0); // btime
    e.u64(0);
    e.u64(0); // gen
    e.u64(0); // data_version
    return this.send(tag, out);
  }

  private tsetattr(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    const valid = d.u32();
    const mode = d.u32();
    const uid = d.u32();
    const gid = d.u32();
    const size = d.u64();
    const atimeSec = d.u64();
    const atimeNsec = d.u64();
    const mtimeSec = d.u64();
    const mtimeNsec = d.u64();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    const a: FsSetAttr = {};
    if (valid & SETATTR_MODE) a.mode = mode & 0o7777;
    if (valid & SETATTR_UID) a.uid = uid;
    if (valid & SETATTR_GID) a.gid = gid;
    if (valid & SETATTR_SIZE) {
      if (size > Number.MAX_SAFE_INTEGER) return this.error(out, tag, EFBIG);
      a.size = size;
    }
    if (valid & SETATTR_ATIME) {
      if (valid & SETATTR_ATIME_SET) {
        if (atimeNsec >= 1e9) return this.error(out, tag, EINVAL);
        a.atime = { sec: atimeSec, nsec: atimeNsec };
      } else a.atime = 'now';
    }
    if (valid & SETATTR_MTIME) {
      if (valid & SETATTR_MTIME_SET) {
        if (mtimeNsec >= 1e9) return this.error(out, tag, EINVAL);
        a.mtime = { sec: mtimeSec, nsec: mtimeNsec };
      } else a.mtime = 'now';
    }
    if (valid & SETATTR_CTIME) a.ctime = true;
    if (this.fs.readOnly) return this.error(out, tag, EROFS);
    return then(this.fs.setattr(fid.node, a, fid.file), (r) => this.simple(r, P9.Rsetattr, tag, out));
  }

  // ---- directories ----------------------------------------------------------------------------

  private treaddir(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    const offset = d.u64();
    const count = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    const file = fid.file;
    if (file === undefined) return this.error(out, tag, EBADF);
    if ((file.node.mode & S_IFMT) !== S_IFDIR) return this.error(out, tag, ENOTDIR);
    const room = Math.min(count, Math.min(this.msize, out.remaining) - IO_HEADER_SIZE);
    if (room < 0) return 0;
    // A forged offset past any cookie simply lists nothing.
    if (offset > Number.MAX_SAFE_INTEGER) return this.rreaddir([], room, tag, out);
    // An entry takes at least 25 bytes (qid, offset, type, name length, one byte of name).
    const max = Math.floor(room / 25) + 1;
    return then(this.fs.readdir(file, offset, max), (r) => {
      if (r instanceof FsError) return this.error(out, tag, r.errno);
      return this.rreaddir(r, room, tag, out);
    });
  }

  private rreaddir(entries: FsDirEntry[], room: number, tag: number, out: P9Output): number {
    const e = this.begin(P9.Rreaddir, tag, out);
    const countAt = e.room(4);
    const start = e.pos;
    // Entries that don't fit are left for the next Treaddir, which resumes at the last `next` sent.
    e.limit = Math.min(e.limit, start + room);
    for (const ent of entries) {
      const before = e.pos;
      e.qidOf(qidType(ent.type), 0, ent.ino);
      e.u64(ent.next);
      e.u8(direntType(ent.type));
      e.str(ent.name);
      if (e.overflow) {
        e.pos = before;
        e.overflow = false;
        break;
      }
    }
    if (countAt < 0) return this.error(out, tag, EMSGSIZE);
    e.patchU32(countAt, e.pos - start);
    return this.send(tag, out);
  }

  /**
   * The directory fid a create-type message names, or the errno to answer: a bad fid, then a bad
   * new name, then `extra` (a message's own check), then a read-only export.
   */
  private createParent(dfid: number, name: string, extra = 0): Fid | number {
    const fid = this.fid(dfid);
    if (fid === undefined) return EBADF;
    const bad = this.checkNewName(name);
    if (bad !== 0) return bad;
    if (extra !== 0) return extra;
    return this.fs.readOnly ? EROFS : fid;
  }

  private tmkdir(d: Decoder, tag: number, out: P9Output): Reply {
    const dfid = d.u32();
    const name = d.str();
    const mode = d.u32();
    const gid = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.createParent(dfid, name);
    if (typeof fid === 'number') return this.error(out, tag, fid);
    return then(this.fs.mkdir(fid.node, name, mode & 0o7777, { uid: fid.uid, gid }), (r) =>
      this.qidReply(r, P9.Rmkdir, tag, out),
    );
  }

  private tmknod(d: Decoder, tag: number, out: P9Output): Reply {
    const dfid = d.u32();
    const name = d.str();
    const mode = d.u32();
    const major = d.u32();
    const minor = d.u32();
    const gid = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.createParent(dfid, name);
    if (typeof fid === 'number') return this.error(out, tag, fid);
    const rdev = ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
    return then(this.fs.mknod(fid.node, name, mode, rdev, { uid: fid.uid, gid }), (r) =>
      this.qidReply(r, P9.Rmknod, tag, out),
    );
  }

  private tsymlink(d: Decoder, tag: number, out: P9Output): Reply {
    const dfid = d.u32();
    const name = d.str();
    const target = d.str();
    const gid = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.createParent(dfid, name, target.includes('\0') ? EINVAL : 0);
    if (typeof fid === 'number') return this.error(out, tag, fid);
    return then(this.fs.symlink(fid.node, name, target, { uid: fid.uid, gid }), (r) =>
      this.qidReply(r, P9.Rsymlink, tag, out),
    );
  }

  private treadlink(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    return then(this.fs.readlink(fid.node), (r) => {
      if (r instanceof FsError) return this.error(out, tag, r.errno);
      const e = this.begin(P9.Rreadlink, tag, out);
      e.str(r);
      return this.send(tag, out);
    });
  }

  private tlink(d: Decoder, tag: number, out: P9Output): Reply {
    const dfidNo = d.u32();
    const fidNo = d.u32();
    const name = d.str();
    if (d.bad) return this.error(out, tag, EINVAL);
    const dfid = this.fid(dfidNo);
    const fid = this.fid(fidNo);
    if (dfid === undefined || fid === undefined) return this.error(out, tag, EBADF);
    const bad = this.checkNewName(name);
    if (bad !== 0) return this.error(out, tag, bad);
    if (this.fs.readOnly) return this.error(out, tag, EROFS);
    if ((fid.node.mode & S_IFMT) === S_IFDIR) return this.error(out, tag, EPERM_LINK);
    return then(this.fs.link(dfid.node, name, fid.node), (r) => this.simple(r, P9.Rlink, tag, out));
  }

  private trename(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    const dfidNo = d.u32();
    const name = d.str();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    const dfid = this.fid(dfidNo);
    if (fid === undefined || dfid === undefined) return this.error(out, tag, EBADF);
    const bad = this.checkNewName(name);
    if (bad !== 0) return this.error(out, tag, bad === EEXIST ? EINVAL : bad);
    if (fid.parent === null || fid.name === '') return this.error(out, tag, EBUSY);
    return this.doRename(fid.parent, fid.name, dfid.node, name, P9.Rrename, tag, out);
  }

  private trenameat(d: Decoder, tag: number, out: P9Output): Reply {
    const oldNo = d.u32();
    const oldName = d.str();
    const newNo = d.u32();
    const newName = d.str();
    if (d.bad) return this.error(out, tag, EINVAL);
    const od = this.fid(oldNo);
    const nd = this.fid(newNo);
    if (od === undefined || nd === undefined) return this.error(out, tag, EBADF);
    const bad = this.checkOldName(oldName) || this.checkOldName(newName);
    if (bad !== 0) return this.error(out, tag, bad);
    return this.doRename(od.node, oldName, nd.node, newName, P9.Rrenameat, tag, out);
  }

  private doRename(od: Node, on: string, nd: Node, nn: string, type: number, tag: number, out: P9Output): Reply {
    if (this.fs.readOnly) return this.error(out, tag, EROFS);
    return then(this.fs.rename(od, on, nd, nn), (r) => {
      if (!(r instanceof FsError)) {
        // Fids reached through the old name now live under the new one.
        for (const f of this.fids.values()) {
          if (f.parent === od && f.name === on) {
            f.parent = nd;
            f.name = nn;
          }
        }
      }
      return this.simple(r, type, tag, out);
    });
  }

  private tunlinkat(d: Decoder, tag: number, out: P9Output): Reply {
    const dfidNo = d.u32();
    const name = d.str();
    const flags = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const dfid = this.fid(dfidNo);
    if (dfid === undefined) return this.error(out, tag, EBADF);
    const bad = this.checkOldName(name);
    if (bad !== 0) return this.error(out, tag, bad);
    if (this.fs.readOnly) return this.error(out, tag, EROFS);
    const dir = dfid.node;
    return then(this.fs.unlink(dir, name, (flags & AT_REMOVEDIR) !== 0), (r) => {
      if (!(r instanceof FsError)) this.forgetName(dir, name);
      return this.simple(r, P9.Runlinkat, tag, out);
    });
  }

  /** After a name went away, fids reached through it can't be renamed or removed by it. */
  private forgetName(dir: Node, name: string): void {
    for (const f of this.fids.values()) {
      if (f.parent === dir && f.name === name) {
        f.parent = null;
        f.name = '';
      }
    }
  }

  private tstatfs(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    return then(this.fs.statfs(fid.node), (s) => {
      if (s instanceof FsError) return this.error(out, tag, s.errno);
      const e = this.begin(P9.Rstatfs, tag, out);
      e.u32(s.type);
      e.u32(s.bsize);
      e.u64(s.blocks);
      e.u64(s.bfree);
      e.u64(s.bavail);
      e.u64(s.files);
      e.u64(s.ffree);
      e.u64big(s.fsid);
      e.u32(s.namelen);
      return this.send(tag, out);
    });
  }

  private tfsync(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    // Linux 5.x+ sends datasync[4]; older clients don't.
    const datasync = d.remaining >= 4 ? d.u32() : 0;
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    if (fid.file === undefined) return this.error(out, tag, EBADF);
    return then(this.fs.fsync(fid.file, datasync !== 0), (r) => this.simple(r, P9.Rfsync, tag, out));
  }

  // ---- locks ----------------------------------------------------------------------------------

  private tlock(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    const type = d.u8();
    d.u32(); // flags: a blocking request is answered BLOCKED; the client retries
    const start = d.u64();
    const length = d.u64();
    const procId = d.u32();
    const clientId = d.str();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    if (type !== LOCK_TYPE_RDLCK && type !== LOCK_TYPE_WRLCK && type !== LOCK_TYPE_UNLCK) {
      return this.error(out, tag, EINVAL);
    }
    let status = LOCK_SUCCESS;
    if (start > Number.MAX_SAFE_INTEGER) {
      status = LOCK_ERROR;
    } else {
      const end = length === 0 || start + length > Number.MAX_SAFE_INTEGER ? Infinity : start + length;
      const r = this.locks.set(fid.node.ino, { start, end, type, procId, clientId });
      status = r === 'ok' ? LOCK_SUCCESS : r === 'blocked' ? LOCK_BLOCKED : LOCK_ERROR;
      if (r === 'full') return this.error(out, tag, ENOLCK);
    }
    const e = this.begin(P9.Rlock, tag, out);
    e.u8(status);
    return this.send(tag, out);
  }

  private tgetlock(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    const type = d.u8();
    const start = d.u64();
    const length = d.u64();
    const procId = d.u32();
    const clientId = d.str();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    if (type !== LOCK_TYPE_RDLCK && type !== LOCK_TYPE_WRLCK) return this.error(out, tag, EINVAL);
    if (start > Number.MAX_SAFE_INTEGER) return this.error(out, tag, EINVAL);
    const end = length === 0 || start + length > Number.MAX_SAFE_INTEGER ? Infinity : start + length;
    const c = this.locks.conflict(fid.node.ino, { start, end, type, procId, clientId });
    const e = this.begin(P9.Rgetlock, tag, out);
    if (c === undefined) {
      e.u8(LOCK_TYPE_UNLCK);
      e.u64(start);
      e.u64(length);
      e.u32(procId);
      e.str(clientId);
    } else {
      e.u8(c.type);
      e.u64(c.start);
      e.u64(c.end === Infinity ? 0 : c.end - c.start);
      e.u32(c.procId);
      e.str(c.clientId);
    }
    return this.send(tag, out);
  }

  // ---- extended attributes --------------------------------------------------------------------

  private txattrwalk(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    const newNo = d.u32();
    const name = d.str();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    const bad = this.canTake(newNo);
    if (bad !== 0) return this.error(out, tag, bad);
    if (name.includes('\0') || nameTooLong(name)) return this.error(out, tag, EINVAL);
    const node = fid.node;
    const got =
      name === ''
        ? then(this.fs.listxattr(node), (l) => (l instanceof FsError ? l : joinNames(l)))
        : this.fs.getxattr(node, name);
    return then(got, (v) => {
      if (v instanceof FsError) return this.error(out, tag, v.errno);
      if (v.length > XATTR_SIZE_MAX) return this.error(out, tag, E2BIG);
      if (this.xattrHeld + v.length > this.xattrBudget) return this.error(out, tag, ENOMEM);
      if (this.canTake(newNo) !== 0) return this.error(out, tag, EINVAL);
      const x = new Fid(node, fid.parent, fid.name, fid.uid);
      x.xattrValue = v;
      this.xattrHeld += v.length;
      this.addFid(newNo, x);
      const e = this.begin(P9.Rxattrwalk, tag, out);
      e.u64(v.length);
      return this.send(tag, out);
    });
  }

  private txattrcreate(d: Decoder, tag: number, out: P9Output): Reply {
    const fidNo = d.u32();
    const name = d.str();
    const size = d.u64();
    const flags = d.u32();
    if (d.bad) return this.error(out, tag, EINVAL);
    const fid = this.fid(fidNo);
    if (fid === undefined) return this.error(out, tag, EBADF);
    if (fid.file !== undefined || fid.xattrValue !== undefined || fid.xattrWrite !== undefined) {
      return this.error(out, tag, EINVAL);
    }
    if (illegalXattrName(name)) return this.error(out, tag, EINVAL);
    if (size > XATTR_SIZE_MAX) return this.error(out, tag, E2BIG);
    if ((flags & ~3) !== 0) return this.error(out, tag, EINVAL);
    if (this.fs.readOnly) return this.error(out, tag, EROFS);
    if (this.xattrHeld + size > this.xattrBudget) return this.error(out, tag, ENOMEM);
    // The value buffer starts zeroed, so nothing uninitialised can ever be stored or read.
    fid.xattrWrite = { name, flags, value: new Uint8Array(size), copied: 0 };
    this.xattrHeld += size;
    return this.simple(undefined, P9.Rxattrcreate, tag, out);
  }
}

/** Linux: a write past the declared xattr size has no room (QEMU answers ENOSPC too). */
const ENOSPC_XATTR = 28;
/** link(2) on a directory. */
const EPERM_LINK = 1;

function illegalXattrName(name: string): boolean {
  return name === '' || name.includes('\0') || nameTooLong(name);
}

/** listxattr's format: each name followed by a NUL. */
function joinNames(names: string[]): Uint8Array {
  return enc8.encode(names.map((n) => n + '\0').join(''));
}

function qidType(mode: number): number {
  const t = mode & S_IFMT;
  return t === S_IFDIR ? QT_DIR : t === S_IFLNK ? QT_SYMLINK : QT_FILE;
}

/** d_type of a mode (DT_* = S_IFMT >> 12). */
function direntType(mode: number): number {
  return (mode & S_IFMT) >>> 12;
}
