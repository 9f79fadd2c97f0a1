/**
 * Open files and their I/O: OPEN(DIR), CREATE, RELEASE(DIR), FLUSH, FSYNC(DIR), READ, WRITE,
 * FALLOCATE, LSEEK, COPY_FILE_RANGE. Data moves straight between guest buffers and the backend
 * where it can.
 */
import {
  type FsFile,
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
} from '../../../backends/fs/backend.js';
import {
  E2BIG,
  EACCES,
  EEXIST,
  EFBIG,
  EINVAL,
  EIO,
  EISDIR,
  ELOOP,
  EMFILE,
  ENFILE,
  ENOENT,
  ENOSYS,
  ENOTDIR,
  ENXIO,
  EOPNOTSUPP,
  EROFS,
  FsError,
} from '../../../backends/fs/errno.js';
import { type P9Input as FuseInput, scatter, splitAfter } from '../../p9/io.js';
import { type FuseContext, type Req } from '../context.js';
import { type Reply, andThen, transferViews } from '../../serve.js';
import { killSuidgid } from './attrs.js';
import { newEntry } from './dirs.js';
import { lockOwner } from './locks.js';
import {
  type FuseReader,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FOPEN_CACHE_DIR,
  FOPEN_DIRECT_IO,
  FOPEN_KEEP_CACHE,
  FOPEN_NOFLUSH,
  FUSE_FSYNC_FDATASYNC,
  FUSE_OPEN_KILL_SUIDGID,
  FUSE_WRITE_KILL_SUIDGID,
  IN_HEADER_SIZE,
  INIT,
  OUT_HEADER_SIZE,
  SEEK_DATA,
  SEEK_HOLE,
  WRITE_IN_SIZE,
} from '../fuse.js';

/** Most bytes one COPY_FILE_RANGE moves (the kernel loops on a short copy). */
const COPY_CHUNK = 1 << 20;

/** Backend open flags for what the kernel asked, after the writeback cache's needs. */
function openFlags(c: FuseContext, flags: number): number {
  let acc = flags & O_ACCMODE;
  let extra = flags & (O_TRUNC | O_APPEND);
  if (c.session.flags & INIT.WRITEBACK_CACHE) {
    // The kernel reads pages around partial writes and does O_APPEND itself (virtiofsd does the same).
    if (acc === O_WRONLY) acc = O_RDWR;
    extra &= ~O_APPEND;
  }
  return acc | extra;
}

/**
 * open_flags of a regular file: DIRECT_IO for cache=none, KEEP_CACHE for always; and NOFLUSH
 * unless the server keeps POSIX locks, since every WRITE reached the backend before it was
 * answered, so a FLUSH at close (two per `: > f` in a shell) would only cost a round trip.
 */
function fileOpenFlags(c: FuseContext): number {
  // With POSIX locks kept here, FLUSH is how close(2) drops the closer's locks: it must come.
  const noflush = (c.session.flags & INIT.POSIX_LOCKS) !== 0 ? 0 : FOPEN_NOFLUSH;
  return noflush | (c.cache === 'none' ? FOPEN_DIRECT_IO : c.cache === 'always' ? FOPEN_KEEP_CACHE : 0);
}

function openOut(c: FuseContext, q: Req, fh: bigint, dir: boolean): number {
  const w = c.begin(q);
  w.u64(fh);
  w.u32(dir ? (c.cache === 'always' ? FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE : 0) : fileOpenFlags(c));
  w.u32(0);
  return c.send(q);
}

export function open(c: FuseContext, q: Req, r: FuseReader, dir: boolean): Reply {
  const flags = r.u32();
  const openFlags2 = r.u32();
  if (r.bad) return c.error(q, EINVAL);
  const node = c.session.node(q.nodeid);
  if (node === undefined) return c.error(q, ENOENT);
  const type = node.mode & S_IFMT;
  if (dir && type !== S_IFDIR) return c.error(q, ENOTDIR);
  if (!dir) {
    // Only regular files are opened on the backend; the guest kernel handles device nodes and
    // FIFOs itself and never follows a symlink through OPEN.
    if (type === S_IFDIR) return c.error(q, EISDIR);
    if (type === S_IFLNK) return c.error(q, ELOOP);
    if (type !== S_IFREG) return c.error(q, EACCES);
  }
  if (c.session.handles.size >= c.session.maxHandles) return c.error(q, EMFILE);
  const bflags = dir ? O_RDONLY : openFlags(c, flags);
  if (!dir && c.fs.readOnly && ((bflags & O_ACCMODE) !== O_RDONLY || (bflags & O_TRUNC) !== 0)) return c.error(q, EROFS);
  return andThen(c.fs.open(node, bflags), (f) => {
    if (f instanceof FsError) return c.error(q, f.errno);
    const fh = c.session.addHandle(f, dir, bflags & ~O_TRUNC);
    const answer = (): number => {
      const n = openOut(c, q, fh, dir);
      if (n === OUT_HEADER_SIZE) c.session.closeHandle(fh);
      return n;
    };
    // An O_TRUNC open by a caller without CAP_FSETID clears set-user-ID / set-group-ID.
    if (!dir && (bflags & O_TRUNC) !== 0 && (openFlags2 & FUSE_OPEN_KILL_SUIDGID) !== 0 && (c.session.flags & INIT.HANDLE_KILLPRIV_V2) !== 0) {
      return andThen(killSuidgid(c, f.node, f), answer);
    }
    return answer();
  });
}

export function create(c: FuseContext, q: Req, r: FuseReader): Reply {
  const flags = r.u32();
  const mode = r.u32();
  r.u32(); // umask: already applied
  r.u32();
  const at = newEntry(c, q, r);
  if (typeof at === 'number') return at;
  const { dir, name } = at;
  if (c.session.handles.size >= c.session.maxHandles) return c.error(q, EMFILE);
  const bflags = openFlags(c, flags);
  const made = (f: FsFile): Reply =>
    andThen(c.fs.getattr(f.node, f), (st) => {
      if (st instanceof FsError) {
        c.fs.close(f);
        return c.error(q, st.errno);
      }
      const id = c.session.remember(f.node);
      if (id === 0n) {
        c.fs.close(f);
        return c.error(q, ENFILE);
      }
      const fh = c.session.addHandle(f, false, bflags & ~O_TRUNC);
      const w = c.begin(q);
      c.putEntry(w, id, st);
      w.u64(fh);
      w.u32(fileOpenFlags(c));
      w.u32(0);
      const n = c.send(q);
      if (n === OUT_HEADER_SIZE) {
        c.session.drop(id, 1);
        c.session.closeHandle(fh);
      }
      return n;
    });
  return andThen(c.fs.create(dir, name, bflags, mode & 0o7777, c.creds(q)), (f) => {
    if (!(f instanceof FsError)) return made(f);
    // open(O_CREAT) without O_EXCL of a name that appeared since the kernel looked: open it.
    if (f.errno !== EEXIST || (flags & 0o200) !== 0) return c.error(q, f.errno);
    return andThen(c.fs.lookup(dir, name), (node) => {
      if (node instanceof FsError) return c.error(q, node.errno);
      if ((node.mode & S_IFMT) !== S_IFREG) return c.error(q, (node.mode & S_IFMT) === S_IFDIR ? EISDIR : EEXIST);
      return andThen(c.fs.open(node, bflags), (g) => (g instanceof FsError ? c.error(q, g.errno) : made(g)));
    });
  });
}

export function release(c: FuseContext, q: Req, r: FuseReader, dir: boolean): Reply {
  const fh = r.u64big();
  if (r.bad) return c.error(q, EINVAL);
  const h = c.session.handleOf(fh, dir);
  if (typeof h === 'number') return c.error(q, h);
  return andThen(c.session.closeHandle(fh), (res) => c.simple(q, res));
}

export function flush(c: FuseContext, q: Req, r: FuseReader): Reply {
  const fh = r.u64big();
  r.u32();
  r.u32();
  const owner = r.u64big();
  if (r.bad) return c.error(q, EINVAL);
  const h = c.session.handleOf(fh, false);
  // Writes reach the backend as they come, so there is nothing buffered to flush: without POSIX
  // locks to drop, ENOSYS tells the kernel never to send FLUSH again (fc->no_flush). That spares
  // the two FLUSHes per `: > f` the writeback cache (cache=always) sends despite NOFLUSH; the
  // kernel still writes dirty pages back before it would have sent one.
  if (typeof h === 'number') return c.error(q, h);
  if ((c.session.flags & INIT.POSIX_LOCKS) === 0) return c.error(q, ENOSYS);
  // close(2) of any descriptor drops the process's POSIX locks on the file (fuse_flush_in.lock_owner).
  c.session.locks.unlockOwner(h.file.node.ino, lockOwner(owner));
  return c.empty(q);
}

export function fsync(c: FuseContext, q: Req, r: FuseReader, dir: boolean): Reply {
  const fh = r.u64big();
  const flags = r.u32();
  if (r.bad) return c.error(q, EINVAL);
  const h = c.session.handleOf(fh, dir);
  if (typeof h === 'number') return c.error(q, h);
  return andThen(c.fs.fsync(h.file, (flags & FUSE_FSYNC_FDATASYNC) !== 0), (res) => {
    // A backend without directory sync has nothing to make durable there.
    if (dir && res instanceof FsError && (res.errno === EOPNOTSUPP || res.errno === EINVAL)) return c.empty(q);
    return c.simple(q, res);
  });
}

export function read(c: FuseContext, q: Req, r: FuseReader): Reply {
  const fh = r.u64big();
  const offset = r.u64();
  const size = r.u32();
  if (r.bad) return c.error(q, EINVAL);
  const h = c.session.handleOf(fh, false);
  if (typeof h === 'number') return c.error(q, h);
  const out = q.out;
  const room = out.remaining - OUT_HEADER_SIZE;
  if (room < 0) return 0;
  if (offset > Number.MAX_SAFE_INTEGER) return c.error(q, EINVAL);
  const want = Math.min(size, room, c.maxWrite);
  const file = h.file;
  if (c.fs.asynchronous) {
    // The backend fills a buffer of ours; it is copied out only while the request is live.
    const buf = new Uint8Array(want);
    return andThen(c.fs.read(file, offset, buf), (n) => {
      if (n instanceof FsError) return c.error(q, n.errno);
      const k = Math.min(n, want);
      if (out.live?.() === false) return 0;
      if (out.write(c.header(q, k)) !== OUT_HEADER_SIZE) return 0;
      return OUT_HEADER_SIZE + out.write(buf.subarray(0, k));
    });
  }
  // Data goes straight into the reply buffers; the header is written last. A backend that calls
  // itself synchronous answers now; should one answer later anyway, the transfer goes on only
  // while the request is still live (no writes into RAM after a reset).
  const views = out.views(OUT_HEADER_SIZE + want);
  return transferViews(
    splitAfter(views, OUT_HEADER_SIZE),
    (v, at) => c.fs.read(file, offset + at, v),
    (errno, done) => {
      const err = errno !== 0 && done === 0;
      scatter(views, c.header(q, err ? 0 : done, err ? errno : 0));
      return OUT_HEADER_SIZE + (err ? 0 : done);
    },
    () => out.live?.() !== false,
  );
}

/** WRITE, with the header and write_in already in inBuf; the payload is still in `input`. */
export function write(c: FuseContext, input: FuseInput, q: Req, len: number): Reply {
  if (len < IN_HEADER_SIZE + WRITE_IN_SIZE) return c.error(q, EINVAL);
  if (!c.session.initialized) return c.error(q, EIO);
  const r = c.r;
  r.reset(IN_HEADER_SIZE + WRITE_IN_SIZE, IN_HEADER_SIZE);
  const fh = r.u64big();
  const offset = r.u64();
  const size = r.u32();
  const writeFlags = r.u32();
  // The size must describe exactly the bytes that follow.
  if (size !== input.remaining) return c.error(q, EINVAL);
  if (size > c.maxWrite) return c.error(q, E2BIG);
  const h = c.session.handleOf(fh, false);
  if (typeof h === 'number') return c.error(q, h);
  if (c.fs.readOnly) return c.error(q, EROFS);
  if (offset + size > Number.MAX_SAFE_INTEGER) return c.error(q, EFBIG);
  const file = h.file;
  let views = input.views(size);
  if (c.fs.asynchronous && views.length > 0) {
    // A late write must not read guest memory reused after a reset: bounce through our buffer.
    const copy = new Uint8Array(size);
    let at = 0;
    for (const v of views) {
      copy.set(v, at);
      at += v.length;
    }
    views = [copy];
  }
  const sent = (n: number): number => {
    const w = c.begin(q);
    w.u32(n);
    w.u32(0);
    return c.send(q);
  };
  // A write by a caller without CAP_FSETID clears set-user-ID / set-group-ID (HANDLE_KILLPRIV_V2).
  const kill = (writeFlags & FUSE_WRITE_KILL_SUIDGID) !== 0 && (c.session.flags & INIT.HANDLE_KILLPRIV_V2) !== 0;
  const reply = (n: number): Reply => (kill && n > 0 ? andThen(killSuidgid(c, file.node, file), () => sent(n)) : sent(n));
  return transferViews(
    views,
    (v, at) => c.fs.write(file, offset + at, v),
    (errno, done) => (errno !== 0 && done === 0 ? c.error(q, errno) : reply(done)),
    () => q.out.live?.() !== false,
    // Reset while the write was under way: no reply, but written data still drops the bits.
    (done) => (kill && done > 0 ? andThen(killSuidgid(c, file.node), () => 0) : 0),
  );
}

export function fallocate(c: FuseContext, q: Req, r: FuseReader): Reply {
  const fh = r.u64big();
  const offset = r.u64();
  const length = r.u64();
  const mode = r.u32();
  if (r.bad) return c.error(q, EINVAL);
  const h = c.session.handleOf(fh, false);
  if (typeof h === 'number') return c.error(q, h);
  if (offset + length > Number.MAX_SAFE_INTEGER) return c.error(q, EFBIG);
  const punch = mode === (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE); // Linux sends PUNCH_HOLE only with KEEP_SIZE
  if (!punch && (mode & ~FALLOC_FL_KEEP_SIZE) !== 0) return c.error(q, EOPNOTSUPP);
  if (c.fs.readOnly) return c.error(q, EROFS);
  // The backend frees the range where it keeps holes (MemFs), or answers ENOTSUP.
  if (punch) return andThen(c.fs.punchHole(h.file, offset, length), (res) => c.simple(q, res));
  // Backends have no block reservation: mode 0 only makes sure the size covers the range.
  if (mode & FALLOC_FL_KEEP_SIZE) return c.empty(q);
  const file = h.file;
  return andThen(c.fs.getattr(file.node, file), (st) => {
    if (st instanceof FsError) return c.error(q, st.errno);
    if (st.size >= offset + length) return c.empty(q);
    return andThen(c.fs.setattr(file.node, { size: offset + length }, file), (res) => c.simple(q, res));
  });
}

export function lseek(c: FuseContext, q: Req, r: FuseReader): Reply {
  const fh = r.u64big();
  const offset = r.u64();
  const whence = r.u32();
  if (r.bad) return c.error(q, EINVAL);
  const h = c.session.handleOf(fh, false);
  if (typeof h === 'number') return c.error(q, h);
  if (whence !== SEEK_DATA && whence !== SEEK_HOLE) return c.error(q, EINVAL);
  const file = h.file;
  return andThen(c.fs.getattr(file.node, file), (st) => {
    if (st instanceof FsError) return c.error(q, st.errno);
    // No sparse maps: all of the file is data and the only hole is at its end.
    if (offset >= st.size) return c.error(q, ENXIO);
    const w = c.begin(q);
    w.u64(whence === SEEK_DATA ? offset : st.size);
    return c.send(q);
  });
}

export function copyFileRange(c: FuseContext, q: Req, r: FuseReader): Reply {
  const fhIn = r.u64big();
  const offIn = r.u64();
  r.u64big(); // nodeid_out: the handle says which file
  const fhOut = r.u64big();
  const offOut = r.u64();
  const len = r.u64();
  const flags = r.u64();
  if (r.bad) return c.error(q, EINVAL);
  if (flags !== 0) return c.error(q, EINVAL);
  const hi = c.session.handleOf(fhIn, false);
  const ho = c.session.handleOf(fhOut, false);
  if (typeof hi === 'number') return c.error(q, hi);
  if (typeof ho === 'number') return c.error(q, ho);
  if (c.fs.readOnly) return c.error(q, EROFS);
  const n = Math.min(len, COPY_CHUNK);
  if (offIn + n > Number.MAX_SAFE_INTEGER || offOut + n > Number.MAX_SAFE_INTEGER) return c.error(q, EFBIG);
  const buf = new Uint8Array(n);
  const reply = (k: number): number => {
    const w = c.begin(q);
    w.u32(k);
    w.u32(0);
    return c.send(q);
  };
  return andThen(c.fs.read(hi.file, offIn, buf), (got) => {
    if (got instanceof FsError) return c.error(q, got.errno);
    if (got === 0) return reply(0);
    return andThen(c.fs.write(ho.file, offOut, buf.subarray(0, got)), (put) =>
      put instanceof FsError ? c.error(q, put.errno) : reply(put),
    );
  });
}
