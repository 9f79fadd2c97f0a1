/**
 * What every FUSE message handler (ops/) works with: the backend, the session, the cache mode,
 * and the reply plumbing over one writer. Replies are built with `begin` … `send`; a reply that
 * doesn't fit becomes an ERANGE error, and `error` writes a bare header with -errno.
 */
import { type FsBackend, type FsCreds, type FsNode, type FsStat, NAME_MAX } from '../../backends/fs/backend.js';
import { EEXIST, EINVAL, ENAMETOOLONG, ENFILE, ENOENT, ERANGE, FsError } from '../../backends/fs/errno.js';
import type { P9Output as FuseOutput } from '../p9/io.js';
import { type Reply, XATTR_SIZE_MAX, andThen } from '../serve.js';
import type { FuseSession } from './session.js';
import { ENTRY_OUT_SIZE, type FuseReader, type FuseWriter, IN_HEADER_SIZE, OUT_HEADER_SIZE } from './fuse.js';

/**
 * How much the guest kernel may cache, after virtiofsd's cache=none/auto/always: entry and
 * attribute timeouts of 0, 1 s or a day, and open files with DIRECT_IO, with no flag, or with
 * KEEP_CACHE (and the writeback cache).
 */
export type FuseCacheMode = 'none' | 'auto' | 'always';

/** The seconds part of each cache mode's timeouts. */
export const TIMEOUTS: Record<FuseCacheMode, number> = { none: 0, auto: 1, always: 86400 };

/** Largest request other than WRITE: SETXATTR with a full value, its name and headers. */
export const MAX_REQUEST = IN_HEADER_SIZE + 16 + NAME_MAX + 1 + XATTR_SIZE_MAX + 64;
/** Largest reply built in our own buffer (READDIR pages, xattrs, READLINK). */
export const MAX_BUILT_REPLY = 256 * 1024;

/** Request fields every handler needs. */
export interface Req {
  unique: bigint;
  nodeid: bigint;
  uid: number;
  gid: number;
  out: FuseOutput;
}

export class FuseContext {
  /** Entry and attribute timeouts, in seconds. */
  readonly timeout: number;

  constructor(
    readonly fs: FsBackend,
    readonly session: FuseSession,
    readonly cache: FuseCacheMode,
    readonly maxWrite: number,
    /** Whether INIT offers POSIX_LOCKS (the server keeps POSIX locks). */
    readonly posixLocks: boolean,
    /** The request reader, over the server's request buffer. */
    readonly r: FuseReader,
    /** The reply writer, over a buffer of MAX_BUILT_REPLY bytes. */
    readonly w: FuseWriter,
  ) {
    this.timeout = TIMEOUTS[cache];
  }

  begin(q: Req): FuseWriter {
    this.w.begin(q.unique, q.out.remaining);
    return this.w;
  }

  send(q: Req): number {
    const n = this.w.finish();
    if (n < 0) return this.error(q, ERANGE);
    return q.out.write(this.w.buf.subarray(0, n)) === n ? n : 0;
  }

  /**
   * A bare fuse_out_header for `q`: its length with `dataBytes` after it, and -errno. One
   * buffer, reused: copy it out (write, scatter) before building the next.
   */
  header(q: Req, dataBytes: number, errno = 0): Uint8Array {
    const dv = this.hdrView;
    dv.setUint32(0, OUT_HEADER_SIZE + dataBytes, true);
    dv.setInt32(4, -errno, true);
    dv.setBigUint64(8, q.unique, true);
    return this.hdr;
  }
  private readonly hdr = new Uint8Array(OUT_HEADER_SIZE);
  private readonly hdrView = new DataView(this.hdr.buffer);

  error(q: Req, errno: number): number {
    if (q.out.remaining < OUT_HEADER_SIZE) return 0;
    return q.out.write(this.header(q, 0, errno)) === OUT_HEADER_SIZE ? OUT_HEADER_SIZE : 0;
  }

  empty(q: Req): number {
    this.begin(q);
    return this.send(q);
  }

  /** An empty reply, or the error r carries. */
  simple(q: Req, r: unknown): number {
    return r instanceof FsError ? this.error(q, r.errno) : this.empty(q);
  }

  putAttr(w: FuseWriter, st: FsStat): void {
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

  putEntry(w: FuseWriter, id: bigint, st: FsStat): void {
    w.u64(id);
    w.u64(0); // generation: ids are never reused
    w.u64(this.timeout);
    w.u64(this.timeout);
    w.u32(0);
    w.u32(0);
    this.putAttr(w, st);
  }

  /** An entry reply for `node`: stat it, then count the lookup (only if the reply is sent). */
  entryReply(q: Req, node: FsNode): Reply {
    return andThen(this.fs.getattr(node), (st) => {
      if (st instanceof FsError) return this.error(q, st.errno);
      const id = this.session.remember(node);
      if (id === 0n) return this.error(q, ENFILE);
      const w = this.begin(q);
      this.putEntry(w, id, st);
      const n = this.send(q);
      if (n !== OUT_HEADER_SIZE + ENTRY_OUT_SIZE) this.session.drop(id, 1);
      return n;
    });
  }

  /** A name argument: NUL-terminated, then screened. Answers the name or an errno. */
  name(r: FuseReader, kind: 'new' | 'old' | 'lookup'): string | number {
    const name = r.cstr();
    if (r.bad) return EINVAL;
    if (r.lastBytes > NAME_MAX) return ENAMETOOLONG;
    if (name === '' || name.includes('/')) return kind === 'lookup' ? ENOENT : EINVAL;
    if (name === '.' || name === '..') return kind === 'new' ? EEXIST : kind === 'old' ? EINVAL : 0;
    return name;
  }

  /** An extended attribute's name: NUL-terminated, not empty, at most NAME_MAX bytes. Answers it or an errno. */
  xattrName(r: FuseReader): string | number {
    const name = r.cstr();
    if (r.bad) return EINVAL;
    if (name === '') return EINVAL;
    return r.lastBytes > NAME_MAX ? ERANGE : name;
  }

  creds(q: Req): FsCreds {
    return { uid: q.uid, gid: q.gid };
  }
}
