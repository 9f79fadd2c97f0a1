/**
 * A FUSE server over an FsBackend: the sibling of the 9P server, for virtio-fs. It reads one
 * request (fuse_in_header + arguments) from a byte source and writes one reply (fuse_out_header +
 * arguments) into a byte sink, so it knows nothing of virtqueues.
 *
 * State is two tables. Node ids stand for inodes the guest kernel holds, each with the lookup
 * count FUSE defines (every entry reply adds one; FORGET takes them back); file handles stand for
 * open files and directories. Both are capped, ids are never reused, and the root (node id 1) is
 * never forgotten.
 *
 * Everything the guest sends is checked before use: in.len must equal the bytes delivered, every
 * field must lie inside the message, names must be NUL-terminated, non-empty, without '/' and at
 * most NAME_MAX bytes, node ids and handles must be known, offsets and counts must not overflow.
 * Guest mistakes become an error reply (negative errno); nothing the guest sends throws.
 */
import {
  type Async,
  type FsBackend,
  type FsCreds,
  type FsDirEntry,
  type FsFile,
  type FsNode,
  type FsResult,
  type FsSetAttr,
  type FsStat,
  NAME_MAX,
  O_ACCMODE,
  O_APPEND,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
} from '../../backends/fs/backend.js';
import {
  E2BIG,
  EACCES,
  EBADF,
  EEXIST,
  EFBIG,
  EINVAL,
  EIO,
  EISDIR,
  ELOOP,
  EMFILE,
  ENAMETOOLONG,
  ENFILE,
  ENODATA,
  ENOENT,
  ENOSYS,
  ENOTDIR,
  ENXIO,
  EOPNOTSUPP,
  EPROTO,
  ERANGE,
  EROFS,
  FsError,
} from '../../backends/fs/errno.js';
import type { P9Input as FuseInput, P9Output as FuseOutput } from '../p9/io.js';
import { RecordingOutput, scatter, splitAfter } from '../p9/io.js';
import {
  ATTR_OUT_SIZE,
  direntSize,
  ENTRY_OUT_SIZE,
  FALLOC_FL_KEEP_SIZE,
  FATTR,
  FOPEN_CACHE_DIR,
  FOPEN_DIRECT_IO,
  FOPEN_KEEP_CACHE,
  FOPEN_NOFLUSH,
  FUSE,
  FUSE_FSYNC_FDATASYNC,
  FUSE_GETATTR_FH,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FUSE_ROOT_ID,
  FuseReader,
  FuseWriter,
  IN_HEADER_SIZE,
  INIT,
  OUT_HEADER_SIZE,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  RENAME_WHITEOUT,
  SEEK_DATA,
  SEEK_HOLE,
  utf8Length,
  WRITE_IN_SIZE,
} from './fuse.js';

export type { FuseInput, FuseOutput };

/**
 * How much the guest kernel may cache, after virtiofsd's cache=none/auto/always: entry and
 * attribute timeouts of 0, 1 s or a day, and open files with DIRECT_IO, with no flag, or with
 * KEEP_CACHE (and the writeback cache).
 */
export type FuseCacheMode = 'none' | 'auto' | 'always';

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
   * Called as each request starts with its first bytes (header and arguments, at most 256; for
   * WRITE the header and write_in only); the function it returns gets the reply's first bytes
   * (at most 64, empty when there was no reply). For tracing tools; an untraced server pays one
   * check per request.
   */
  trace?: FuseTraceHook;
}

/** See {@link FuseServerOptions.trace}. */
export type FuseTraceHook = (request: Uint8Array) => (reply: Uint8Array) => void;

/** Largest extended attribute value (Linux XATTR_SIZE_MAX). */
export const FUSE_XATTR_SIZE_MAX = 65536;
/** Largest list of xattr names (Linux XATTR_LIST_MAX). */
const XATTR_LIST_MAX = 65536;
/** Largest request other than WRITE: SETXATTR with a full value, its name and headers. */
const MAX_REQUEST = IN_HEADER_SIZE + 16 + NAME_MAX + 1 + FUSE_XATTR_SIZE_MAX + 64;
/** Largest reply built in our own buffer (READDIR pages, xattrs, READLINK). */
const MAX_BUILT_REPLY = 256 * 1024;
/** Most bytes one COPY_FILE_RANGE moves (the kernel loops on a short copy). */
const COPY_CHUNK = 1 << 20;

type Reply = number | Promise<number>;

/** Runs fn on a value now, or on a Promise's value later. */
function then<T, U>(r: T | Promise<T>, fn: (v: T) => U | Promise<U>): U | Promise<U> {
  return r instanceof Promise ? r.then(fn) : fn(r);
}

/** An inode the guest holds by node id. */
class Inode {
  nlookup = 0;
  constructor(
    readonly id: bigint,
    readonly node: FsNode,
  ) {}
}

/** An open file or directory. */
class Handle {
  constructor(
    readonly file: FsFile,
    readonly dir: boolean,
  ) {}
}

/** Request fields every handler needs. */
interface Req {
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  out: FuseOutput;
}

/** The seconds part of each cache mode's timeouts. */
const TIMEOUTS: Record<FuseCacheMode, number> = { none: 0, auto: 1, always: 86400 };

export class FuseServer {
  readonly cache: FuseCacheMode;
  readonly maxWrite: number;
  readonly maxNodes: number;
  readonly maxHandles: number;
  /** Whether FUSE_INIT was answered (and no DESTROY since). */
  initialized = false;
  /** The flags agreed at INIT. */
  flags = 0;
  /** The protocol minor agreed at INIT. */
  minor = 0;
  private readonly nodes = new Map<bigint, Inode>();
  private readonly byNode = new Map<FsNode, Inode>();
  private nextId = 2n;
  private readonly handles = new Map<bigint, Handle>();
  private nextFh = 1n;
  private readonly inBuf = new Uint8Array(MAX_REQUEST);
  private readonly r = new FuseReader(this.inBuf);
  private readonly w = new FuseWriter(new Uint8Array(MAX_BUILT_REPLY));
  private readonly timeout: number;
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
    this.timeout = TIMEOUTS[this.cache];
    this.trace = opts.trace;
  }

  /** Node ids the guest holds (the root included once it was looked up through INIT). */
  get nodeCount(): number {
    return this.nodes.size;
  }
  /** Open handles. */
  get handleCount(): number {
    return this.handles.size;
  }
  /** The lookup count of a node id (0 when unknown). */
  lookupCount(nodeid: bigint): number {
    return this.nodes.get(nodeid)?.nlookup ?? 0;
  }

  /** Drops every node id and handle (closing files): DESTROY, or a device reset. */
  reset(): void {
    for (const h of this.handles.values()) this.fs.close(h.file);
    this.handles.clear();
    for (const n of this.nodes.values()) this.fs.release(n.node);
    this.nodes.clear();
    this.byNode.clear();
    this.initialized = false;
    this.flags = 0;
    this.minor = 0;
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
      return this.error(req, len !== total ? EINVAL : E2BIG);
    }
    if (opcode === FUSE.WRITE) {
      const head = Math.min(len, IN_HEADER_SIZE + WRITE_IN_SIZE);
      if (input.read(buf.subarray(IN_HEADER_SIZE, head)) !== head - IN_HEADER_SIZE) return this.error(req, EINVAL);
      started?.(buf.slice(0, head));
      return this.write(input, req, len);
    }
    if (input.read(buf.subarray(IN_HEADER_SIZE, len)) !== len - IN_HEADER_SIZE) return this.error(req, EINVAL);
    started?.(buf.slice(0, Math.min(len, 256)));
    this.r.reset(len, IN_HEADER_SIZE);
    if (!this.initialized && opcode !== FUSE.INIT) {
      if (opcode === FUSE.FORGET || opcode === FUSE.BATCH_FORGET || opcode === FUSE.INTERRUPT) return 0;
      return this.error(req, EIO);
    }
    return this.dispatch(opcode, req, this.r);
  }

  private dispatch(op: number, q: Req, r: FuseReader): Reply {
    switch (op) {
      case FUSE.INIT:
        return this.init(q, r);
      case FUSE.DESTROY:
        this.reset();
        return this.empty(q);
      case FUSE.LOOKUP:
        return this.lookup(q, r);
      case FUSE.FORGET:
        return this.forget(q, r);
      case FUSE.BATCH_FORGET:
        return this.batchForget(r);
      case FUSE.INTERRUPT:
        return 0; // requests finish on their own; no reply is due (fuse.h: EAGAIN only to retry)
      case FUSE.GETATTR:
        return this.getattr(q, r);
      case FUSE.SETATTR:
        return this.setattr(q, r);
      case FUSE.READLINK:
        return this.readlink(q);
      case FUSE.SYMLINK:
        return this.symlink(q, r);
      case FUSE.MKNOD:
        return this.mknod(q, r);
      case FUSE.MKDIR:
        return this.mkdir(q, r);
      case FUSE.UNLINK:
        return this.unlink(q, r, false);
      case FUSE.RMDIR:
        return this.unlink(q, r, true);
      case FUSE.RENAME:
        return this.rename(q, r, false);
      case FUSE.RENAME2:
        return this.rename(q, r, true);
      case FUSE.LINK:
        return this.link(q, r);
      case FUSE.OPEN:
        return this.open(q, r, false);
      case FUSE.OPENDIR:
        return this.open(q, r, true);
      case FUSE.READ:
        return this.read(q, r);
      case FUSE.RELEASE:
        return this.release(q, r, false);
      case FUSE.RELEASEDIR:
        return this.release(q, r, true);
      case FUSE.FLUSH:
        return this.flush(q, r);
      case FUSE.FSYNC:
        return this.fsync(q, r, false);
      case FUSE.FSYNCDIR:
        return this.fsync(q, r, true);
      case FUSE.STATFS:
        return this.statfs(q);
      case FUSE.CREATE:
        return this.create(q, r);
      case FUSE.READDIR:
        return this.readdir(q, r, false);
      case FUSE.READDIRPLUS:
        return this.readdir(q, r, true);
      case FUSE.SETXATTR:
        return this.setxattr(q, r);
      case FUSE.GETXATTR:
        return this.getxattr(q, r, false);
      case FUSE.LISTXATTR:
        return this.getxattr(q, r, true);
      case FUSE.REMOVEXATTR:
        return this.removexattr(q, r);
      case FUSE.ACCESS:
        return this.access(q, r);
      case FUSE.FALLOCATE:
        return this.fallocate(q, r);
      case FUSE.LSEEK:
        return this.lseek(q, r);
      case FUSE.COPY_FILE_RANGE:
        return this.copyFileRange(q, r);
      case FUSE.SYNCFS:
        return this.empty(q);
      default:
        // GETLK/SETLK(W) (POSIX_LOCKS is not offered, so the kernel keeps locks itself), BMAP,
        // IOCTL, POLL, DAX mappings and anything unknown.
        return this.error(q, ENOSYS);
    }
  }

  // ---- reply plumbing -------------------------------------------------------------------------

  private begin(q: Req): FuseWriter {
    this.w.begin(q.unique, q.out.remaining);
    return this.w;
  }

  private send(q: Req): number {
    const n = this.w.finish();
    if (n < 0) return this.error(q, ERANGE);
    return q.out.write(this.w.buf.subarray(0, n)) === n ? n : 0;
  }

  private error(q: Req, errno: number): number {
    if (q.out.remaining < OUT_HEADER_SIZE) return 0;
    const b = new Uint8Array(OUT_HEADER_SIZE);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, OUT_HEADER_SIZE, true);
    dv.setInt32(4, -errno, true);
    dv.setBigUint64(8, q.unique, true);
    return q.out.write(b) === OUT_HEADER_SIZE ? OUT_HEADER_SIZE : 0;
  }

  private empty(q: Req): number {
    this.begin(q);
    return this.send(q);
  }

  /** An empty reply, or the error r carries. */
  private simple(q: Req, r: unknown): number {
    return r instanceof FsError ? this.error(q, r.errno) : this.empty(q);
  }

  private putAttr(w: FuseWriter, st: FsStat): void {
    w.u64(st.ino);
    w.u64(st.size);
    w.u64(st.blocks);
    w.u64(st.atime.sec);
    w.u64(st.mtime.sec);
    w.u64(st.ctime.sec);
    w.u32(st.atime.nsec);
    w.u32(st.mtime.nsec);
    w.u32(st.ctime.nsec);
    w.u32(st.mode);
    w.u32(st.nlink);
    w.u32(st.uid);
    w.u32(st.gid);
    w.u32(st.rdev);
    w.u32(st.blksize);
    w.u32(0); // flags
  }

  private putEntry(w: FuseWriter, id: bigint, st: FsStat): void {
    w.u64(id);
    w.u64(0); // generation: ids are never reused
    w.u64(this.timeout);
    w.u64(this.timeout);
    w.u32(0);
    w.u32(0);
    this.putAttr(w, st);
  }

  // ---- nodes and handles ----------------------------------------------------------------------

  private node(id: bigint): FsNode | undefined {
    return this.nodes.get(id)?.node;
  }

  /** Takes one lookup reference on `node` for the guest; answers its id, or 0n when full. */
  private remember(node: FsNode): bigint {
    let n = this.byNode.get(node);
    if (n === undefined) {
      if (this.nodes.size >= this.maxNodes) return 0n;
      n = new Inode(this.nextId++, node);
      this.nodes.set(n.id, n);
      this.byNode.set(node, n);
      this.fs.retain(node);
    }
    n.nlookup++;
    return n.id;
  }

  /** Gives back `count` lookups of a node id; at 0 the id is gone. Unknown ids change nothing. */
  private drop(id: bigint, count: number): void {
    if (id === FUSE_ROOT_ID) return;
    const n = this.nodes.get(id);
    if (n === undefined) return;
    n.nlookup -= Math.min(count, n.nlookup);
    if (n.nlookup > 0) return;
    this.nodes.delete(id);
    this.byNode.delete(n.node);
    this.fs.release(n.node);
  }

  /** An entry reply for `node`: stat it, then count the lookup (only if the reply is sent). */
  private entryReply(q: Req, node: FsNode): Reply {
    return then(this.fs.getattr(node), (st) => {
      if (st instanceof FsError) return this.error(q, st.errno);
      const id = this.remember(node);
      if (id === 0n) return this.error(q, ENFILE);
      const w = this.begin(q);
      this.putEntry(w, id, st);
      const n = this.send(q);
      if (n !== OUT_HEADER_SIZE + ENTRY_OUT_SIZE) this.drop(id, 1);
      return n;
    });
  }

  private handleOf(fh: bigint, dir: boolean): Handle | number {
    const h = this.handles.get(fh);
    if (h === undefined) return EBADF;
    if (h.dir !== dir) return dir ? ENOTDIR : EISDIR;
    return h;
  }

  private addHandle(file: FsFile, dir: boolean): bigint {
    const fh = this.nextFh++;
    this.handles.set(fh, new Handle(file, dir));
    return fh;
  }

  /** A name argument: NUL-terminated, then screened. Answers the name or an errno. */
  private name(r: FuseReader, kind: 'new' | 'old' | 'lookup'): string | number {
    const name = r.cstr();
    if (r.bad) return EINVAL;
    if (r.lastBytes > NAME_MAX) return ENAMETOOLONG;
    if (name === '' || name.includes('/')) return kind === 'lookup' ? ENOENT : EINVAL;
    if (name === '.' || name === '..') return kind === 'new' ? EEXIST : kind === 'old' ? EINVAL : 0;
    return name;
  }

  private creds(q: Req): FsCreds {
    return { uid: q.uid, gid: q.gid };
  }

  // ---- session --------------------------------------------------------------------------------

  private init(q: Req, r: FuseReader): Reply {
    const major = r.u32();
    const minor = r.u32();
    const maxReadahead = r.u32();
    const flags = r.u32();
    if (r.bad) return this.error(q, EINVAL);
    if (major < FUSE_KERNEL_VERSION) return this.error(q, EPROTO);
    // A second INIT starts a new session, as after DESTROY.
    if (this.initialized) this.reset();
    const w = this.begin(q);
    if (major > FUSE_KERNEL_VERSION) {
      // Answer our major only: the kernel retries with it (fuse_lowlevel.c does the same).
      w.u32(FUSE_KERNEL_VERSION);
      w.u32(FUSE_KERNEL_MINOR_VERSION);
      w.zeros(56);
      return this.send(q);
    }
    let want = INIT.ASYNC_READ | INIT.ATOMIC_O_TRUNC | INIT.BIG_WRITES | INIT.PARALLEL_DIROPS | INIT.ASYNC_DIO | INIT.MAX_PAGES;
    // READDIRPLUS answers lookups with each listing; with zero timeouts (cache=none) the kernel
    // would throw them away and ask again, so only the caching modes offer it (as virtiofsd does).
    if (this.cache !== 'none') want |= INIT.DO_READDIRPLUS | INIT.READDIRPLUS_AUTO;
    if (this.cache === 'auto') want |= INIT.AUTO_INVAL_DATA;
    if (this.cache === 'always') want |= INIT.WRITEBACK_CACHE | INIT.CACHE_SYMLINKS;
    this.flags = (want & flags) >>> 0;
    this.minor = Math.min(minor, FUSE_KERNEL_MINOR_VERSION);
    w.u32(FUSE_KERNEL_VERSION);
    w.u32(this.minor);
    w.u32(Math.min(maxReadahead, this.maxWrite));
    w.u32(this.flags);
    w.u16(64); // max_background
    w.u16(48); // congestion_threshold
    w.u32(this.maxWrite);
    w.u32(1); // time_gran: nanoseconds
    w.u16(this.maxWrite / 4096); // max_pages
    w.u16(0); // map_alignment: no DAX window
    w.zeros(32); // flags2, max_stack_depth, unused
    const n = this.send(q);
    if (n > 0) {
      this.initialized = true;
      // The root is node id 1 for the whole session and is never forgotten.
      return then(this.fs.root(), (root) => {
        if (root instanceof FsError) {
          this.initialized = false;
          return n;
        }
        const ino = new Inode(FUSE_ROOT_ID, root);
        ino.nlookup = 1;
        this.nodes.set(FUSE_ROOT_ID, ino);
        this.byNode.set(root, ino);
        this.fs.retain(root);
        return n;
      });
    }
    return n;
  }

  // ---- names ----------------------------------------------------------------------------------

  private lookup(q: Req, r: FuseReader): Reply {
    const dir = this.node(q.nodeid);
    const name = this.name(r, 'lookup');
    if (dir === undefined) return this.error(q, ENOENT);
    if (typeof name === 'number') return name === 0 ? this.lookupDots(q, dir, r) : this.error(q, name);
    if ((dir.mode & S_IFMT) !== S_IFDIR) return this.error(q, ENOTDIR);
    return then(this.fs.lookup(dir, name), (node) => (node instanceof FsError ? this.error(q, node.errno) : this.entryReply(q, node)));
  }

  /** LOOKUP of '.' or '..' (the kernel sends them only for exported file handles). */
  private lookupDots(q: Req, dir: FsNode, r: FuseReader): Reply {
    r.pos = IN_HEADER_SIZE;
    const name = r.cstr();
    return then(this.fs.lookup(dir, name), (node) => (node instanceof FsError ? this.error(q, node.errno) : this.entryReply(q, node)));
  }

  private forget(q: Req, r: FuseReader): number {
    const n = r.u64();
    if (!r.bad) this.drop(q.nodeid, n);
    return 0;
  }

  private batchForget(r: FuseReader): number {
    const count = r.u32();
    r.u32();
    // A count the message can't hold is refused whole: nothing is forgotten.
    if (r.bad || count > Math.floor(r.remaining / 16)) return 0;
    for (let i = 0; i < count; i++) {
      const id = r.id();
      const n = r.u64();
      this.drop(id, n);
    }
    return 0;
  }

  private mkdir(q: Req, r: FuseReader): Reply {
    const mode = r.u32();
    r.u32(); // umask: the kernel already applied it (DONT_MASK is not offered)
    return this.make(q, r, (dir, name) => this.fs.mkdir(dir, name, mode & 0o7777, this.creds(q)));
  }

  private mknod(q: Req, r: FuseReader): Reply {
    const mode = r.u32();
    const rdev = r.u32();
    r.u32();
    r.u32();
    return this.make(q, r, (dir, name) => this.fs.mknod(dir, name, mode, rdev, this.creds(q)));
  }

  private symlink(q: Req, r: FuseReader): Reply {
    // fuse_symlink: the new name, then the target, each NUL-terminated.
    return this.make(q, r, (dir, name) => {
      const target = r.cstr();
      if (r.bad) return new FsError(EINVAL);
      if (target === '' || r.lastBytes >= 4096) return new FsError(target === '' ? ENOENT : ENAMETOOLONG);
      return this.fs.symlink(dir, name, target, this.creds(q));
    });
  }

  /** The common part of MKDIR, MKNOD, SYMLINK: a directory node id and a new name. */
  private make(q: Req, r: FuseReader, op: (dir: FsNode, name: string) => Async<FsResult<FsNode>>): Reply {
    if (r.bad) return this.error(q, EINVAL);
    const dir = this.node(q.nodeid);
    const name = this.name(r, 'new');
    if (dir === undefined) return this.error(q, ENOENT);
    if (typeof name === 'number') return this.error(q, name);
    if ((dir.mode & S_IFMT) !== S_IFDIR) return this.error(q, ENOTDIR);
    if (this.fs.readOnly) return this.error(q, EROFS);
    return then(op(dir, name), (node) => (node instanceof FsError ? this.error(q, node.errno) : this.entryReply(q, node)));
  }

  private link(q: Req, r: FuseReader): Reply {
    const old = this.node(r.id());
    if (r.bad) return this.error(q, EINVAL);
    const dir = this.node(q.nodeid);
    const name = this.name(r, 'new');
    if (dir === undefined || old === undefined) return this.error(q, ENOENT);
    if (typeof name === 'number') return this.error(q, name);
    if ((old.mode & S_IFMT) === S_IFDIR) return this.error(q, EPERM_LINK);
    if (this.fs.readOnly) return this.error(q, EROFS);
    return then(this.fs.link(dir, name, old), (res) => {
      if (res instanceof FsError) return this.error(q, res.errno);
      return then(this.fs.lookup(dir, name), (node) => (node instanceof FsError ? this.error(q, node.errno) : this.entryReply(q, node)));
    });
  }

  private unlink(q: Req, r: FuseReader, rmdir: boolean): Reply {
    const dir = this.node(q.nodeid);
    const name = this.name(r, 'old');
    if (dir === undefined) return this.error(q, ENOENT);
    if (typeof name === 'number') return this.error(q, name);
    if (this.fs.readOnly) return this.error(q, EROFS);
    return then(this.fs.unlink(dir, name, rmdir), (res) => this.simple(q, res));
  }

  private rename(q: Req, r: FuseReader, v2: boolean): Reply {
    const newDirId = r.id();
    const flags = v2 ? r.u32() : 0;
    if (v2) r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const oldName = this.name(r, 'old');
    const newName = typeof oldName === 'number' ? oldName : this.name(r, 'old');
    const od = this.node(q.nodeid);
    const nd = this.node(newDirId);
    if (od === undefined || nd === undefined) return this.error(q, ENOENT);
    if (typeof oldName === 'number') return this.error(q, oldName);
    if (typeof newName === 'number') return this.error(q, newName);
    if ((flags & (RENAME_EXCHANGE | RENAME_WHITEOUT)) !== 0 || (flags & ~7) !== 0) return this.error(q, EINVAL);
    if (this.fs.readOnly) return this.error(q, EROFS);
    const go = (): Reply => then(this.fs.rename(od, oldName, nd, newName), (res) => this.simple(q, res));
    if ((flags & RENAME_NOREPLACE) === 0) return go();
    return then(this.fs.lookup(nd, newName), (hit) => {
      if (!(hit instanceof FsError)) return this.error(q, EEXIST);
      return hit.errno === ENOENT ? go() : this.error(q, hit.errno);
    });
  }

  private readlink(q: Req): Reply {
    const node = this.node(q.nodeid);
    if (node === undefined) return this.error(q, ENOENT);
    if ((node.mode & S_IFMT) !== S_IFLNK) return this.error(q, EINVAL);
    return then(this.fs.readlink(node), (target) => {
      if (target instanceof FsError) return this.error(q, target.errno);
      const w = this.begin(q);
      w.str(target);
      return this.send(q);
    });
  }

  // ---- attributes -----------------------------------------------------------------------------

  private getattr(q: Req, r: FuseReader): Reply {
    const gflags = r.u32();
    r.u32();
    const fh = r.id();
    if (r.bad) return this.error(q, EINVAL);
    const node = this.node(q.nodeid);
    if (node === undefined) return this.error(q, ENOENT);
    let file: FsFile | undefined;
    if (gflags & FUSE_GETATTR_FH) {
      const h = this.handles.get(fh);
      if (h === undefined) return this.error(q, EBADF);
      file = h.file;
    }
    return this.attrReply(q, node, file);
  }

  private attrReply(q: Req, node: FsNode, file?: FsFile): Reply {
    return then(this.fs.getattr(node, file), (st) => {
      if (st instanceof FsError) return this.error(q, st.errno);
      const w = this.begin(q);
      w.u64(this.timeout);
      w.u32(0);
      w.u32(0);
      this.putAttr(w, st);
      return this.send(q);
    });
  }

  private setattr(q: Req, r: FuseReader): Reply {
    const valid = r.u32();
    r.u32();
    const fh = r.id();
    const size = r.u64();
    r.u64(); // lock_owner
    const atime = r.u64();
    const mtime = r.u64();
    r.u64(); // ctime: set by the backend
    const atimensec = r.u32();
    const mtimensec = r.u32();
    r.u32();
    const mode = r.u32();
    r.u32();
    const uid = r.u32();
    const gid = r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const node = this.node(q.nodeid);
    if (node === undefined) return this.error(q, ENOENT);
    let file: FsFile | undefined;
    if (valid & FATTR.FH) {
      const h = this.handles.get(fh);
      if (h === undefined) return this.error(q, EBADF);
      file = h.file;
    }
    const a: FsSetAttr = {};
    if (valid & FATTR.MODE) a.mode = mode & 0o7777;
    if (valid & FATTR.UID) a.uid = uid;
    if (valid & FATTR.GID) a.gid = gid;
    if (valid & FATTR.SIZE) {
      if (size > Number.MAX_SAFE_INTEGER) return this.error(q, EFBIG);
      if ((node.mode & S_IFMT) === S_IFDIR) return this.error(q, EISDIR);
      a.size = size;
    }
    if (valid & FATTR.ATIME) {
      if (valid & FATTR.ATIME_NOW) a.atime = 'now';
      else if (atimensec >= 1e9 || atime > Number.MAX_SAFE_INTEGER) return this.error(q, EINVAL);
      else a.atime = { sec: atime, nsec: atimensec };
    }
    if (valid & FATTR.MTIME) {
      if (valid & FATTR.MTIME_NOW) a.mtime = 'now';
      else if (mtimensec >= 1e9 || mtime > Number.MAX_SAFE_INTEGER) return this.error(q, EINVAL);
      else a.mtime = { sec: mtime, nsec: mtimensec };
    }
    if (valid & FATTR.CTIME) a.ctime = true;
    const changes = valid & (FATTR.MODE | FATTR.UID | FATTR.GID | FATTR.SIZE | FATTR.ATIME | FATTR.MTIME | FATTR.CTIME);
    if (changes === 0) return this.attrReply(q, node, file);
    if (this.fs.readOnly) return this.error(q, EROFS);
    return then(this.fs.setattr(node, a, file), (res) => (res instanceof FsError ? this.error(q, res.errno) : this.attrReply(q, node, file)));
  }

  private access(q: Req, r: FuseReader): Reply {
    const mask = r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const node = this.node(q.nodeid);
    if (node === undefined) return this.error(q, ENOENT);
    return then(this.fs.getattr(node), (st) => {
      if (st instanceof FsError) return this.error(q, st.errno);
      if ((mask & 2) !== 0 && this.fs.readOnly) return this.error(q, EROFS);
      const m = st.mode;
      let bits: number;
      if (q.uid === 0) {
        // root may read and write anything; execute needs some x bit (or a directory).
        bits = 6 | ((m & 0o111) !== 0 || (m & S_IFMT) === S_IFDIR ? 1 : 0);
      } else if (q.uid === st.uid) bits = (m >> 6) & 7;
      else if (q.gid === st.gid) bits = (m >> 3) & 7;
      else bits = m & 7;
      return (mask & 7 & ~bits) === 0 ? this.empty(q) : this.error(q, EACCES);
    });
  }

  private statfs(q: Req): Reply {
    const node = this.node(q.nodeid) ?? this.node(FUSE_ROOT_ID);
    if (node === undefined) return this.error(q, ENOENT);
    return then(this.fs.statfs(node), (s) => {
      if (s instanceof FsError) return this.error(q, s.errno);
      const w = this.begin(q);
      w.u64(s.blocks);
      w.u64(s.bfree);
      w.u64(s.bavail);
      w.u64(s.files);
      w.u64(s.ffree);
      w.u32(s.bsize);
      w.u32(s.namelen);
      w.u32(s.bsize); // frsize
      w.u32(0);
      w.zeros(24);
      return this.send(q);
    });
  }

  // ---- open files -----------------------------------------------------------------------------

  /** Backend open flags for what the kernel asked, after the writeback cache's needs. */
  private openFlags(flags: number): number {
    let acc = flags & O_ACCMODE;
    let extra = flags & (O_TRUNC | O_APPEND);
    if (this.flags & INIT.WRITEBACK_CACHE) {
      // The kernel reads pages around partial writes and does O_APPEND itself (virtiofsd does the same).
      if (acc === O_WRONLY) acc = O_RDWR;
      extra &= ~O_APPEND;
    }
    return acc | extra;
  }

  /**
   * open_flags of a regular file: DIRECT_IO for cache=none, KEEP_CACHE for always; and NOFLUSH
   * always, since every WRITE reached the backend before it was answered, so a FLUSH at close
   * (two per `: > f` in a shell) would only cost a round trip.
   */
  private fileOpenFlags(): number {
    return FOPEN_NOFLUSH | (this.cache === 'none' ? FOPEN_DIRECT_IO : this.cache === 'always' ? FOPEN_KEEP_CACHE : 0);
  }

  private openOut(q: Req, fh: bigint, dir: boolean): number {
    const w = this.begin(q);
    w.u64(fh);
    w.u32(dir ? (this.cache === 'always' ? FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE : 0) : this.fileOpenFlags());
    w.u32(0);
    return this.send(q);
  }

  private open(q: Req, r: FuseReader, dir: boolean): Reply {
    const flags = r.u32();
    r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const node = this.node(q.nodeid);
    if (node === undefined) return this.error(q, ENOENT);
    const type = node.mode & S_IFMT;
    if (dir && type !== S_IFDIR) return this.error(q, ENOTDIR);
    if (!dir) {
      // Only regular files are opened on the backend; the guest kernel handles device nodes and
      // FIFOs itself and never follows a symlink through OPEN.
      if (type === S_IFDIR) return this.error(q, EISDIR);
      if (type === S_IFLNK) return this.error(q, ELOOP);
      if (type !== S_IFREG) return this.error(q, EACCES);
    }
    if (this.handles.size >= this.maxHandles) return this.error(q, EMFILE);
    const bflags = dir ? O_RDONLY : this.openFlags(flags);
    if (!dir && this.fs.readOnly && ((bflags & O_ACCMODE) !== O_RDONLY || (bflags & O_TRUNC) !== 0)) return this.error(q, EROFS);
    return then(this.fs.open(node, bflags), (f) => {
      if (f instanceof FsError) return this.error(q, f.errno);
      const fh = this.addHandle(f, dir);
      const n = this.openOut(q, fh, dir);
      if (n === OUT_HEADER_SIZE) this.closeHandle(fh);
      return n;
    });
  }

  private closeHandle(fh: bigint): Async<FsResult<void>> {
    const h = this.handles.get(fh);
    if (h === undefined) return undefined;
    this.handles.delete(fh);
    return this.fs.close(h.file);
  }

  private create(q: Req, r: FuseReader): Reply {
    const flags = r.u32();
    const mode = r.u32();
    r.u32(); // umask: already applied
    r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const dir = this.node(q.nodeid);
    const name = this.name(r, 'new');
    if (dir === undefined) return this.error(q, ENOENT);
    if (typeof name === 'number') return this.error(q, name);
    if ((dir.mode & S_IFMT) !== S_IFDIR) return this.error(q, ENOTDIR);
    if (this.fs.readOnly) return this.error(q, EROFS);
    if (this.handles.size >= this.maxHandles) return this.error(q, EMFILE);
    const bflags = this.openFlags(flags);
    const made = (f: FsFile): Reply =>
      then(this.fs.getattr(f.node, f), (st) => {
        if (st instanceof FsError) {
          this.fs.close(f);
          return this.error(q, st.errno);
        }
        const id = this.remember(f.node);
        if (id === 0n) {
          this.fs.close(f);
          return this.error(q, ENFILE);
        }
        const fh = this.addHandle(f, false);
        const w = this.begin(q);
        this.putEntry(w, id, st);
        w.u64(fh);
        w.u32(this.fileOpenFlags());
        w.u32(0);
        const n = this.send(q);
        if (n === OUT_HEADER_SIZE) {
          this.drop(id, 1);
          this.closeHandle(fh);
        }
        return n;
      });
    return then(this.fs.create(dir, name, bflags, mode & 0o7777, this.creds(q)), (f) => {
      if (!(f instanceof FsError)) return made(f);
      // open(O_CREAT) without O_EXCL of a name that appeared since the kernel looked: open it.
      if (f.errno !== EEXIST || (flags & 0o200) !== 0) return this.error(q, f.errno);
      return then(this.fs.lookup(dir, name), (node) => {
        if (node instanceof FsError) return this.error(q, node.errno);
        if ((node.mode & S_IFMT) !== S_IFREG) return this.error(q, (node.mode & S_IFMT) === S_IFDIR ? EISDIR : EEXIST);
        return then(this.fs.open(node, bflags), (g) => (g instanceof FsError ? this.error(q, g.errno) : made(g)));
      });
    });
  }

  private release(q: Req, r: FuseReader, dir: boolean): Reply {
    const fh = r.id();
    if (r.bad) return this.error(q, EINVAL);
    const h = this.handleOf(fh, dir);
    if (typeof h === 'number') return this.error(q, h);
    return then(this.closeHandle(fh), (res) => this.simple(q, res));
  }

  private flush(q: Req, r: FuseReader): Reply {
    const fh = r.id();
    if (r.bad) return this.error(q, EINVAL);
    const h = this.handleOf(fh, false);
    // Writes reach the backend as they come; there is nothing buffered to flush.
    return typeof h === 'number' ? this.error(q, h) : this.empty(q);
  }

  private fsync(q: Req, r: FuseReader, dir: boolean): Reply {
    const fh = r.id();
    const flags = r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const h = this.handleOf(fh, dir);
    if (typeof h === 'number') return this.error(q, h);
    return then(this.fs.fsync(h.file, (flags & FUSE_FSYNC_FDATASYNC) !== 0), (res) => {
      // A backend without directory sync has nothing to make durable there.
      if (dir && res instanceof FsError && (res.errno === EOPNOTSUPP || res.errno === EINVAL)) return this.empty(q);
      return this.simple(q, res);
    });
  }

  private read(q: Req, r: FuseReader): Reply {
    const fh = r.id();
    const offset = r.u64();
    const size = r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const h = this.handleOf(fh, false);
    if (typeof h === 'number') return this.error(q, h);
    const out = q.out;
    const room = out.remaining - OUT_HEADER_SIZE;
    if (room < 0) return 0;
    if (offset > Number.MAX_SAFE_INTEGER) return this.error(q, EINVAL);
    const want = Math.min(size, room, this.maxWrite);
    const file = h.file;
    const header = (n: number): Uint8Array => {
      const b = new Uint8Array(OUT_HEADER_SIZE);
      const dv = new DataView(b.buffer);
      dv.setUint32(0, OUT_HEADER_SIZE + n, true);
      dv.setBigUint64(8, q.unique, true);
      return b;
    };
    if (this.fs.asynchronous) {
      // The backend fills a buffer of ours; it is copied out only while the request is live.
      const buf = new Uint8Array(want);
      return then(this.fs.read(file, offset, buf), (n) => {
        if (n instanceof FsError) return this.error(q, n.errno);
        const k = Math.min(n, want);
        if (out.live?.() === false) return 0;
        if (out.write(header(k)) !== OUT_HEADER_SIZE) return 0;
        return OUT_HEADER_SIZE + out.write(buf.subarray(0, k));
      });
    }
    // Data goes straight into the reply buffers; the header is written last.
    const views = out.views(OUT_HEADER_SIZE + want);
    const dataViews = splitAfter(views, OUT_HEADER_SIZE);
    let done = 0;
    const finish = (errno: number): number => {
      if (errno !== 0 && done === 0) {
        const e = header(0);
        new DataView(e.buffer).setInt32(4, -errno, true);
        scatter(views, e);
        return OUT_HEADER_SIZE;
      }
      scatter(views, header(done));
      return OUT_HEADER_SIZE + done;
    };
    // A backend that calls itself synchronous answers now. Should one answer later anyway, the
    // transfer goes on only while the request is still live (no writes into RAM after a reset).
    const step = (i: number): Reply => {
      for (; i < dataViews.length; i++) {
        const v = dataViews[i]!;
        const res = this.fs.read(file, offset + done, v);
        const after = (n: FsResult<number>): number | undefined => {
          if (n instanceof FsError) return finish(n.errno);
          done += n;
          return n < v.length ? finish(0) : undefined;
        };
        if (res instanceof Promise) {
          const next = i + 1;
          return res.then((n) => (out.live?.() === false ? 0 : (after(n) ?? step(next))));
        }
        const end = after(res);
        if (end !== undefined) return end;
      }
      return finish(0);
    };
    return step(0);
  }

  /** WRITE, with the header and write_in already in inBuf; the payload is still in `input`. */
  private write(input: FuseInput, q: Req, len: number): Reply {
    if (len < IN_HEADER_SIZE + WRITE_IN_SIZE) return this.error(q, EINVAL);
    if (!this.initialized) return this.error(q, EIO);
    const r = this.r;
    r.reset(IN_HEADER_SIZE + WRITE_IN_SIZE, IN_HEADER_SIZE);
    const fh = r.id();
    const offset = r.u64();
    const size = r.u32();
    // The size must describe exactly the bytes that follow.
    if (size !== input.remaining) return this.error(q, EINVAL);
    if (size > this.maxWrite) return this.error(q, E2BIG);
    const h = this.handleOf(fh, false);
    if (typeof h === 'number') return this.error(q, h);
    if (this.fs.readOnly) return this.error(q, EROFS);
    if (offset + size > Number.MAX_SAFE_INTEGER) return this.error(q, EFBIG);
    const file = h.file;
    let views = input.views(size);
    if (this.fs.asynchronous && views.length > 0) {
      // A late write must not read guest memory reused after a reset: bounce through our buffer.
      const copy = new Uint8Array(size);
      let at = 0;
      for (const v of views) {
        copy.set(v, at);
        at += v.length;
      }
      views = [copy];
    }
    const reply = (n: number): number => {
      const w = this.begin(q);
      w.u32(n);
      w.u32(0);
      return this.send(q);
    };
    let done = 0;
    const step = (i: number): Reply => {
      for (; i < views.length; i++) {
        const v = views[i]!;
        const res = this.fs.write(file, offset + done, v);
        const after = (n: FsResult<number>): Reply | undefined => {
          if (n instanceof FsError) return done === 0 ? this.error(q, n.errno) : reply(done);
          done += n;
          return n < v.length ? reply(done) : undefined;
        };
        if (res instanceof Promise) {
          const next = i + 1;
          return res.then((n) => after(n) ?? step(next));
        }
        const end = after(res);
        if (end !== undefined) return end;
      }
      return reply(done);
    };
    return step(0);
  }

  private fallocate(q: Req, r: FuseReader): Reply {
    const fh = r.id();
    const offset = r.u64();
    const length = r.u64();
    const mode = r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const h = this.handleOf(fh, false);
    if (typeof h === 'number') return this.error(q, h);
    if (offset + length > Number.MAX_SAFE_INTEGER) return this.error(q, EFBIG);
    if ((mode & ~FALLOC_FL_KEEP_SIZE) !== 0) return this.error(q, EOPNOTSUPP);
    if (this.fs.readOnly) return this.error(q, EROFS);
    // Backends have no block reservation: mode 0 only makes sure the size covers the range.
    if (mode & FALLOC_FL_KEEP_SIZE) return this.empty(q);
    const file = h.file;
    return then(this.fs.getattr(file.node, file), (st) => {
      if (st instanceof FsError) return this.error(q, st.errno);
      if (st.size >= offset + length) return this.empty(q);
      return then(this.fs.setattr(file.node, { size: offset + length }, file), (res) => this.simple(q, res));
    });
  }

  private lseek(q: Req, r: FuseReader): Reply {
    const fh = r.id();
    const offset = r.u64();
    const whence = r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const h = this.handleOf(fh, false);
    if (typeof h === 'number') return this.error(q, h);
    if (whence !== SEEK_DATA && whence !== SEEK_HOLE) return this.error(q, EINVAL);
    const file = h.file;
    return then(this.fs.getattr(file.node, file), (st) => {
      if (st instanceof FsError) return this.error(q, st.errno);
      // No sparse maps: all of the file is data and the only hole is at its end.
      if (offset >= st.size) return this.error(q, ENXIO);
      const w = this.begin(q);
      w.u64(whence === SEEK_DATA ? offset : st.size);
      return this.send(q);
    });
  }

  private copyFileRange(q: Req, r: FuseReader): Reply {
    const fhIn = r.id();
    const offIn = r.u64();
    r.id(); // nodeid_out: the handle says which file
    const fhOut = r.id();
    const offOut = r.u64();
    const len = r.u64();
    const flags = r.u64();
    if (r.bad) return this.error(q, EINVAL);
    if (flags !== 0) return this.error(q, EINVAL);
    const hi = this.handleOf(fhIn, false);
    const ho = this.handleOf(fhOut, false);
    if (typeof hi === 'number') return this.error(q, hi);
    if (typeof ho === 'number') return this.error(q, ho);
    if (this.fs.readOnly) return this.error(q, EROFS);
    const n = Math.min(len, COPY_CHUNK);
    if (offIn + n > Number.MAX_SAFE_INTEGER || offOut + n > Number.MAX_SAFE_INTEGER) return this.error(q, EFBIG);
    const buf = new Uint8Array(n);
    const reply = (k: number): number => {
      const w = this.begin(q);
      w.u32(k);
      w.u32(0);
      return this.send(q);
    };
    return then(this.fs.read(hi.file, offIn, buf), (got) => {
      if (got instanceof FsError) return this.error(q, got.errno);
      if (got === 0) return reply(0);
      return then(this.fs.write(ho.file, offOut, buf.subarray(0, got)), (put) =>
        put instanceof FsError ? this.error(q, put.errno) : reply(put),
      );
    });
  }

  // ---- directories ----------------------------------------------------------------------------

  private readdir(q: Req, r: FuseReader, plus: boolean): Reply {
    const fh = r.id();
    const offset = r.u64();
    const size = r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const h = this.handleOf(fh, true);
    if (typeof h === 'number') return this.error(q, h);
    const room = Math.min(size, q.out.remaining - OUT_HEADER_SIZE, MAX_BUILT_REPLY - OUT_HEADER_SIZE);
    if (room < 0) return 0;
    // A forged offset past any cookie simply lists nothing.
    if (offset > Number.MAX_SAFE_INTEGER) return this.dirReply(q, [], [], room, plus);
    const max = Math.floor(room / direntSize(1, plus)) + 1;
    return then(this.fs.readdir(h.file, offset, max), (entries) => {
      if (entries instanceof FsError) return this.error(q, entries.errno);
      if (!plus) return this.dirReply(q, entries, [], room, false);
      return this.plusLookups(q, h.file.node, entries, room);
    });
  }

  /** READDIRPLUS: looks every entry up (not '.' and '..') and stats it, in order. */
  private plusLookups(q: Req, dir: FsNode, entries: FsDirEntry[], room: number): Reply {
    const found: Array<{ node: FsNode; st: FsStat } | undefined> = [];
    // Only as many entries as can fit are looked up.
    let budget = 0;
    let count = 0;
    for (const e of entries) {
      budget += direntSize(utf8Length(e.name), true);
      if (budget > room) break;
      count++;
    }
    const step = (i: number): Reply => {
      for (; i < count; i++) {
        const e = entries[i]!;
        if (e.name === '.' || e.name === '..') {
          found.push(undefined);
          continue;
        }
        const hit = then(this.fs.lookup(dir, e.name), (node) =>
          node instanceof FsError ? undefined : then(this.fs.getattr(node), (st) => (st instanceof FsError ? undefined : { node, st })),
        );
        if (hit instanceof Promise) {
          const next = i + 1;
          return hit.then((v) => {
            found.push(v);
            return step(next);
          });
        }
        found.push(hit);
      }
      return this.dirReply(q, entries.slice(0, count), found, room, true);
    };
    return step(0);
  }

  private dirReply(q: Req, entries: FsDirEntry[], found: Array<{ node: FsNode; st: FsStat } | undefined>, room: number, plus: boolean): number {
    const w = this.begin(q);
    w.limit = Math.min(w.limit, OUT_HEADER_SIZE + room);
    const taken: bigint[] = [];
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const before = w.pos;
      if (w.pos + direntSize(utf8Length(e.name), plus) > w.limit) break;
      if (plus) {
        const f = found[i];
        if (f === undefined) w.zeros(ENTRY_OUT_SIZE);
        else {
          const id = this.remember(f.node);
          if (id === 0n) w.zeros(ENTRY_OUT_SIZE);
          else {
            taken.push(id);
            this.putEntry(w, id, f.st);
          }
        }
      }
      w.u64(e.ino);
      w.u64(e.next);
      const namelenAt = w.pos;
      w.u32(0);
      w.u32((e.type & S_IFMT) >>> 12);
      const n = w.str(e.name);
      new DataView(w.buf.buffer, w.buf.byteOffset).setUint32(namelenAt, n, true);
      w.align8();
      if (w.overflow) {
        w.pos = before;
        w.overflow = false;
        break;
      }
    }
    const sent = this.send(q);
    // Entries the guest never received hold no lookups.
    if (sent <= OUT_HEADER_SIZE) for (const id of taken) this.drop(id, 1);
    return sent;
  }

  // ---- extended attributes --------------------------------------------------------------------

  private setxattr(q: Req, r: FuseReader): Reply {
    const size = r.u32();
    const flags = r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const node = this.node(q.nodeid);
    const name = r.cstr();
    if (r.bad) return this.error(q, EINVAL);
    if (node === undefined) return this.error(q, ENOENT);
    if (name === '' || r.lastBytes > NAME_MAX) return this.error(q, name === '' ? EINVAL : ERANGE);
    if (size > FUSE_XATTR_SIZE_MAX) return this.error(q, E2BIG);
    if (size !== r.remaining) return this.error(q, EINVAL);
    if (this.fs.readOnly) return this.error(q, EROFS);
    const value = r.bytes(size).slice();
    return then(this.fs.setxattr(node, name, value, flags & 3), (res) => this.simple(q, res));
  }

  private getxattr(q: Req, r: FuseReader, list: boolean): Reply {
    const size = r.u32();
    r.u32();
    if (r.bad) return this.error(q, EINVAL);
    const node = this.node(q.nodeid);
    let name = '';
    if (!list) {
      name = r.cstr();
      if (r.bad) return this.error(q, EINVAL);
      if (name === '' || r.lastBytes > NAME_MAX) return this.error(q, name === '' ? EINVAL : ERANGE);
    }
    if (node === undefined) return this.error(q, ENOENT);
    const answer = (value: Uint8Array | string[]): number => {
      let bytes: number;
      if (Array.isArray(value)) {
        bytes = 0;
        for (const n of value) bytes += utf8Length(n) + 1;
        if (bytes > XATTR_LIST_MAX) return this.error(q, E2BIG);
      } else bytes = value.length;
      const w = this.begin(q);
      if (size === 0) {
        // The guest asks for the size first.
        w.u32(bytes);
        w.u32(0);
        return this.send(q);
      }
      if (bytes > size) return this.error(q, ERANGE);
      if (Array.isArray(value)) {
        for (const n of value) {
          w.str(n);
          w.zeros(1);
        }
      } else w.bytes(value);
      return this.send(q);
    };
    if (list) return then(this.fs.listxattr(node), (v) => (v instanceof FsError ? this.error(q, v.errno) : answer(v)));
    return then(this.fs.getxattr(node, name), (v) => (v instanceof FsError ? this.error(q, v.errno === ENOENT ? ENODATA : v.errno) : answer(v)));
  }

  private removexattr(q: Req, r: FuseReader): Reply {
    const node = this.node(q.nodeid);
    const name = r.cstr();
    if (r.bad) return this.error(q, EINVAL);
    if (node === undefined) return this.error(q, ENOENT);
    if (name === '' || r.lastBytes > NAME_MAX) return this.error(q, name === '' ? EINVAL : ERANGE);
    if (this.fs.readOnly) return this.error(q, EROFS);
    return then(this.fs.removexattr(node, name), (res) => this.simple(q, res));
  }
}

/** link(2) of a directory. */
const EPERM_LINK = 1;

