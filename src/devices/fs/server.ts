/**
 * A FUSE server over an FsBackend: the sibling of the 9P server, for virtio-fs. It reads one
 * request (fuse_in_header + arguments) from a byte source and writes one reply (fuse_out_header +
 * arguments) into a byte sink, so it knows nothing of virtqueues.
 *
 * This file frames requests and dispatches them, like the 9P server (../p9/server.ts): the
 * messages live in ops/ by group (init, lookup, dirs, attrs, files, locks, xattr), the session state
 * (node ids with their lookup counts, file handles, what INIT agreed) in session.ts, the reply
 * plumbing in context.ts.
 *
 * Everything the guest sends is checked before use: in.len must equal the bytes delivered, every
 * field must lie inside the message, names must be NUL-terminated, non-empty, without '/' and at
 * most NAME_MAX bytes, node ids and handles must be known, offsets and counts must not overflow.
 * Guest mistakes become an error reply (negative errno); nothing the guest sends throws.
 */
import type { FsBackend } from '../../backends/fs/backend.js';
import { E2BIG, EINVAL, EIO, ENOSYS } from '../../backends/fs/errno.js';
import type { P9Input as FuseInput, P9Output as FuseOutput } from '../p9/io.js';
import { RecordingOutput } from '../p9/io.js';
import { FuseContext, type FuseCacheMode, MAX_BUILT_REPLY, MAX_REQUEST, type Req, TIMEOUTS } from './context.js';
import type { Reply } from '../serve.js';
import { FUSE, FuseReader, FuseWriter, IN_HEADER_SIZE, WRITE_IN_SIZE } from './fuse.js';
import { access, getattr, setattr, statfs } from './ops/attrs.js';
import { link, mkdir, mknod, readdir, readlink, rename, symlink, unlink } from './ops/dirs.js';
import { copyFileRange, create, fallocate, flush, fsync, lseek, open, read, release, write } from './ops/files.js';
import { init } from './ops/init.js';
import { getlk, interrupt, setlk } from './ops/locks.js';
import { batchForget, forget, lookup } from './ops/lookup.js';
import { getxattr, removexattr, setxattr } from './ops/xattr.js';
import { FuseSession } from './session.js';

export type { FuseInput, FuseOutput, FuseCacheMode };
export { XATTR_SIZE_MAX as FUSE_XATTR_SIZE_MAX } from '../serve.js';

export interface FuseServerOptions {
  /** Default 'auto'. */
  cache?: FuseCacheMode;
  /** Largest WRITE the guest may send (4 KiB..16 MiB, whole pages); default 1 MiB. */
  maxWrite?: number;
  /** Most node ids at a time; more lookups answer ENFILE. Default 1,048,576. */
  maxNodes?: number;
  /** Most open handles at a time; more opens answer EMFILE. Default 65,536. */
  maxHandles?: number;
  /**
   * Keep POSIX locks (fcntl F_SETLK/F_SETLKW/F_GETLK) in the server, offering POSIX_LOCKS at
   * INIT, so that every guest process's locks live in one table beside the backend. Costs a FLUSH
   * per close(2). Default false: the guest kernel keeps them, as with virtiofsd's default.
   */
  posixLocks?: boolean;
  /** Most lock ranges held with posixLocks; more answer ENOLCK. Default 65,536. */
  maxLocks?: number;
  /**
   * Called as each request starts with its first bytes (header and arguments, at most 256; for
   * WRITE the header and write_in only); the function it returns gets the reply's first bytes
   * (at most 64, empty when there was no reply). For tracing tools; an untraced server pays one
   * check per request.
   */
  trace?: FuseTraceHook;
}

/** See {@link FuseServerOptions.trace}. */
export type FuseTraceHook = (request: Uint8Array) => (reply: Uint8Array) => void;

export class FuseServer {
  readonly cache: FuseCacheMode;
  readonly maxWrite: number;
  readonly maxNodes: number;
  readonly maxHandles: number;
  /** The session: node ids, handles, what INIT agreed. */
  readonly session: FuseSession;
  private readonly c: FuseContext;
  private readonly inBuf = new Uint8Array(MAX_REQUEST);
  private readonly r = new FuseReader(this.inBuf);
  private readonly trace: FuseTraceHook | undefined;

  constructor(
    readonly fs: FsBackend,
    opts: FuseServerOptions = {},
  ) {
    this.cache = opts.cache ?? 'auto';
    if (!(this.cache in TIMEOUTS)) throw new RangeError(`FuseServer: cache must be none, auto or always, got ${String(opts.cache)}`);
    const mw = opts.maxWrite ?? 1 << 20;
    if (!Number.isInteger(mw) || mw < 4096 || mw > 16 << 20 || mw % 4096 !== 0) {
      throw new RangeError(`FuseServer: maxWrite must be whole 4 KiB pages in 4096..${16 << 20}, got ${mw}`);
    }
    this.maxWrite = mw;
    this.maxNodes = opts.maxNodes ?? 1 << 20;
    this.maxHandles = opts.maxHandles ?? 65536;
    this.trace = opts.trace;
    this.session = new FuseSession(fs, this.maxNodes, this.maxHandles, opts.maxLocks ?? 65536);
    const w = new FuseWriter(new Uint8Array(MAX_BUILT_REPLY));
    this.c = new FuseContext(fs, this.session, this.cache, mw, opts.posixLocks === true, this.r, w);
  }

  /** Whether FUSE_INIT was answered (and no DESTROY since). */
  get initialized(): boolean {
    return this.session.initialized;
  }
  /** The flags agreed at INIT. */
  get flags(): number {
    return this.session.flags;
  }
  /** The protocol minor agreed at INIT. */
  get minor(): number {
    return this.session.minor;
  }
  /** Node ids the guest holds (the root included once it was looked up through INIT). */
  get nodeCount(): number {
    return this.session.nodes.size;
  }
  /** Open handles. */
  get handleCount(): number {
    return this.session.handles.size;
  }
  /** The lookup count of a node id (0 when unknown). */
  lookupCount(nodeid: bigint): number {
    return this.session.nodes.get(nodeid)?.nlookup ?? 0;
  }

  /** Drops every node id and handle (closing files): DESTROY, or a device reset. */
  reset(): void {
    this.session.reset();
  }

  /**
   * Serves one request read from `input`, writing its reply (if the opcode has one) into `out`.
   * Answers the reply's length, now or later (0 for FORGET and for a request too short to answer).
   */
  handle(input: FuseInput, out: FuseOutput): Reply {
    if (this.trace === undefined) return this.serve(input, out);
    const rout = new RecordingOutput(out);
    let end: ((reply: Uint8Array) => void) | undefined;
    const r = this.serve(input, rout, (head) => (end = this.trace!(head)));
    const report = (n: number): number => {
      end?.(n > 0 ? rout.head(Math.min(n, 64)) : new Uint8Array(0));
      return n;
    };
    return r instanceof Promise ? r.then(report) : report(r);
  }

  private serve(input: FuseInput, out: FuseOutput, started?: (head: Uint8Array) => void): Reply {
    const total = input.remaining;
    const buf = this.inBuf;
    if (total < IN_HEADER_SIZE) return 0;
    const hv = new DataView(buf.buffer, buf.byteOffset, IN_HEADER_SIZE);
    if (input.read(buf.subarray(0, IN_HEADER_SIZE)) !== IN_HEADER_SIZE) return 0;
    const len = hv.getUint32(0, true);
    const opcode = hv.getUint32(4, true);
    const req: Req = {
      unique: hv.getBigUint64(8, true),
      nodeid: hv.getBigUint64(16, true),
      uid: hv.getUint32(24, true),
      gid: hv.getUint32(28, true),
      out,
    };
    if (len !== total || (opcode !== FUSE.WRITE && len > MAX_REQUEST)) {
      started?.(buf.slice(0, IN_HEADER_SIZE));
      return this.c.error(req, len !== total ? EINVAL : E2BIG);
    }
    if (opcode === FUSE.WRITE) {
      const head = Math.min(len, IN_HEADER_SIZE + WRITE_IN_SIZE);
      if (input.read(buf.subarray(IN_HEADER_SIZE, head)) !== head - IN_HEADER_SIZE) return this.c.error(req, EINVAL);
      started?.(buf.slice(0, head));
      return write(this.c, input, req, len);
    }
    if (input.read(buf.subarray(IN_HEADER_SIZE, len)) !== len - IN_HEADER_SIZE) return this.c.error(req, EINVAL);
    started?.(buf.slice(0, Math.min(len, 256)));
    this.r.reset(len, IN_HEADER_SIZE);
    if (!this.session.initialized && opcode !== FUSE.INIT) {
      if (opcode === FUSE.FORGET || opcode === FUSE.BATCH_FORGET || opcode === FUSE.INTERRUPT) return 0;
      return this.c.error(req, EIO);
    }
    return this.dispatch(opcode, req, this.r);
  }

  private dispatch(op: number, q: Req, r: FuseReader): Reply {
    const c = this.c;
    switch (op) {
      case FUSE.INIT:
        return init(c, q, r);
      case FUSE.DESTROY:
        this.reset();
        return c.empty(q);
      case FUSE.LOOKUP:
        return lookup(c, q, r);
      case FUSE.FORGET:
        return forget(c, q, r);
      case FUSE.BATCH_FORGET:
        return batchForget(c, r);
      case FUSE.INTERRUPT:
        return interrupt(c, r);
      case FUSE.GETATTR:
        return getattr(c, q, r);
      case FUSE.SETATTR:
        return setattr(c, q, r);
      case FUSE.READLINK:
        return readlink(c, q);
      case FUSE.SYMLINK:
        return symlink(c, q, r);
      case FUSE.MKNOD:
        return mknod(c, q, r);
      case FUSE.MKDIR:
        return mkdir(c, q, r);
      case FUSE.UNLINK:
        return unlink(c, q, r, false);
      case FUSE.RMDIR:
        return unlink(c, q, r, true);
      case FUSE.RENAME:
        return rename(c, q, r, false);
      case FUSE.RENAME2:
        return rename(c, q, r, true);
      case FUSE.LINK:
        return link(c, q, r);
      case FUSE.OPEN:
        return open(c, q, r, false);
      case FUSE.OPENDIR:
        return open(c, q, r, true);
      case FUSE.READ:
        return read(c, q, r);
      case FUSE.RELEASE:
        return release(c, q, r, false);
      case FUSE.RELEASEDIR:
        return release(c, q, r, true);
      case FUSE.FLUSH:
        return flush(c, q, r);
      case FUSE.FSYNC:
        return fsync(c, q, r, false);
      case FUSE.FSYNCDIR:
        return fsync(c, q, r, true);
      case FUSE.STATFS:
        return statfs(c, q);
      case FUSE.CREATE:
        return create(c, q, r);
      case FUSE.READDIR:
        return readdir(c, q, r, false);
      case FUSE.READDIRPLUS:
        return readdir(c, q, r, true);
      case FUSE.SETXATTR:
        return setxattr(c, q, r);
      case FUSE.GETXATTR:
        return getxattr(c, q, r, false);
      case FUSE.LISTXATTR:
        return getxattr(c, q, r, true);
      case FUSE.REMOVEXATTR:
        return removexattr(c, q, r);
      case FUSE.ACCESS:
        return access(c, q, r);
      case FUSE.FALLOCATE:
        return fallocate(c, q, r);
      case FUSE.LSEEK:
        return lseek(c, q, r);
      case FUSE.COPY_FILE_RANGE:
        return copyFileRange(c, q, r);
      case FUSE.SYNCFS:
        return c.empty(q);
      case FUSE.GETLK:
        return getlk(c, q, r);
      case FUSE.SETLK:
        return setlk(c, q, r, false);
      case FUSE.SETLKW:
        return setlk(c, q, r, true);
      default:
        // BMAP, IOCTL, POLL, DAX mappings and anything unknown.
        return c.error(q, ENOSYS);
    }
  }
}
