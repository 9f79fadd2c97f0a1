/**
 * Open files and their I/O: Tlopen, Tlcreate, Tread, Twrite, Tclunk, Tremove, Tfsync. Data moves
 * straight between guest buffers and the backend where it can.
 */
import {
  type FsCreds,
  O_ACCMODE,
  O_APPEND,
  O_RDONLY,
  O_TRUNC,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
} from '../../../backends/fs/backend.js';
import {
  EACCES,
  EBADF,
  EBUSY,
  EFBIG,
  EINVAL,
  EISDIR,
  ELOOP,
  ENOTDIR,
  EROFS,
  FsError,
} from '../../../backends/fs/errno.js';
import { type P9Context } from '../context.js';
import { type Reply, andThen, transferViews } from '../../serve.js';
import { type P9Input, type P9Output, scatter, splitAfter } from '../io.js';
import { checkNewName } from '../names.js';
import { type Decoder, HEADER_SIZE, IO_HEADER_SIZE, P9, TWRITE_HEADER_SIZE } from '../wire.js';

/** Linux: a write past the declared xattr size has no room (QEMU answers ENOSPC too). */
const ENOSPC_XATTR = 28;

export function tlopen(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  const flags = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  if (fid.file !== undefined || fid.xattrValue !== undefined || fid.xattrWrite !== undefined) {
    return c.error(out, tag, EINVAL);
  }
  const type = fid.node.mode & S_IFMT;
  // Only regular files and directories are ever opened: device nodes, FIFOs and sockets are
  // the guest kernel's business (it never asks), and a symlink is never followed.
  if (type === S_IFLNK) return c.error(out, tag, ELOOP);
  if (type !== S_IFREG && type !== S_IFDIR) return c.error(out, tag, EACCES);
  // Linux may send any flags on a directory (6.12 never sends O_DIRECTORY); it is read only.
  const acc = flags & O_ACCMODE;
  let bflags = acc | (flags & (O_TRUNC | O_APPEND));
  if (type === S_IFDIR) {
    if (acc !== O_RDONLY) return c.error(out, tag, EISDIR);
    bflags = O_RDONLY;
  } else if (c.fs.readOnly && (acc !== O_RDONLY || (flags & O_TRUNC) !== 0)) {
    return c.error(out, tag, EROFS);
  }
  return andThen(c.fs.open(fid.node, bflags), (f) => {
    if (f instanceof FsError) return c.error(out, tag, f.errno);
    if (c.session.fids.get(fidNo) !== fid || fid.file !== undefined) {
      c.fs.close(f);
      return c.error(out, tag, EBADF);
    }
    fid.file = f;
    fid.openFlags = bflags & ~O_TRUNC;
    const e = c.begin(P9.Rlopen, tag, out);
    c.putQid(e, f.node);
    e.u32(0); // iounit: let the client use msize
    return c.send(tag, out);
  });
}

export function tlcreate(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  const name = d.str();
  const flags = d.u32();
  const mode = d.u32();
  const gid = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  if (fid.file !== undefined || fid.xattrWrite !== undefined || fid.xattrValue !== undefined) {
    return c.error(out, tag, EINVAL);
  }
  const bad = checkNewName(name);
  if (bad !== 0) return c.error(out, tag, bad);
  if ((fid.node.mode & S_IFMT) !== S_IFDIR) return c.error(out, tag, ENOTDIR);
  if (c.fs.readOnly) return c.error(out, tag, EROFS);
  const creds: FsCreds = { uid: fid.uid, gid };
  const dir = fid.node;
  const bflags = (flags & O_ACCMODE) | (flags & O_APPEND);
  return andThen(c.fs.create(dir, name, bflags, mode & 0o7777, creds), (f) => {
    if (f instanceof FsError) return c.error(out, tag, f.errno);
    if (c.session.fids.get(fidNo) !== fid || fid.file !== undefined) {
      c.fs.close(f);
      return c.error(out, tag, EBADF);
    }
    // The fid now stands for the new, open file (9P: Tlcreate).
    c.fs.retain(f.node);
    c.fs.release(fid.node);
    fid.node = f.node;
    fid.parent = dir;
    fid.name = name;
    fid.file = f;
    fid.openFlags = bflags;
    const e = c.begin(P9.Rlcreate, tag, out);
    c.putQid(e, f.node);
    e.u32(0);
    return c.send(tag, out);
  });
}

export function tread(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  const offset = d.u64();
  const count = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  const room = Math.min(c.session.msize, out.remaining) - IO_HEADER_SIZE;
  if (room < 0) return 0;
  const want = Math.min(count, room);
  const xv = fid.xattrValue;
  if (xv !== undefined) {
    // Reading an xattr: only bytes of the value, offsets compared before any sum.
    const n = offset >= xv.length ? 0 : Math.min(want, xv.length - offset);
    const e = c.begin(P9.Rread, tag, out);
    e.u32(n);
    e.bytes(xv.subarray(offset, offset + n));
    return c.send(tag, out);
  }
  const file = fid.file;
  if (file === undefined) return c.error(out, tag, EBADF);
  if (offset > Number.MAX_SAFE_INTEGER) return c.error(out, tag, EINVAL);
  if (c.fs.asynchronous) {
    // The backend fills a buffer of ours; the reply is written only if still wanted.
    const buf = new Uint8Array(want);
    return andThen(c.fs.read(file, offset, buf), (n) => {
      if (n instanceof FsError) return c.error(out, tag, n.errno);
      const e = c.begin(P9.Rread, tag, out);
      e.u32(n);
      e.bytes(buf.subarray(0, Math.min(n, want)));
      return c.send(tag, out);
    });
  }
  // Data goes straight into the reply buffers; the 11-byte header is written last.
  const views = out.views(IO_HEADER_SIZE + want);
  const header = new Uint8Array(IO_HEADER_SIZE);
  const dataViews = splitAfter(views, IO_HEADER_SIZE);
  let done = 0;
  const finish = (errno: number): number => {
    if (errno !== 0 && done === 0) {
      const e = c.enc;
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
  // A backend that answers later than it said stops the transfer once the request is dead.
  const live = (): boolean => out.live?.() !== false;
  return transferViews(
    dataViews,
    (v, at) => c.fs.read(file, offset + at, v),
    (errno, n) => {
      done = n;
      return finish(errno);
    },
    live,
  );
}

export function twrite(c: P9Context, input: P9Input, tag: number, out: P9Output): Reply {
  const h = c.hdr;
  if (input.read(h.subarray(HEADER_SIZE, TWRITE_HEADER_SIZE)) !== TWRITE_HEADER_SIZE - HEADER_SIZE) {
    return c.error(out, tag, EINVAL);
  }
  const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
  const fidNo = dv.getUint32(7, true);
  const offset = dv.getUint32(11, true) + dv.getUint32(15, true) * 2 ** 32;
  const count = dv.getUint32(19, true);
  // The count must describe exactly the bytes that follow.
  if (count !== input.remaining) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  const xw = fid.xattrWrite;
  if (xw !== undefined) {
    if (offset > xw.value.length) return c.error(out, tag, ENOSPC_XATTR);
    const n = Math.min(count, xw.value.length - offset);
    let at = offset;
    for (const v of input.views(n)) {
      xw.value.set(v, at);
      at += v.length;
    }
    xw.copied += n;
    return rwrite(c, n, tag, out);
  }
  const file = fid.file;
  if (file === undefined) return c.error(out, tag, EBADF);
  if (c.fs.readOnly) return c.error(out, tag, EROFS);
  if (offset + count > Number.MAX_SAFE_INTEGER) return c.error(out, tag, EFBIG);
  return transferViews(
    input.views(count),
    (v, at) => c.fs.write(file, offset + at, v),
    (errno, done) => (errno !== 0 && done === 0 ? c.error(out, tag, errno) : rwrite(c, done, tag, out)),
    () => out.live?.() !== false,
  );
}

function rwrite(c: P9Context, n: number, tag: number, out: P9Output): number {
  const e = c.begin(P9.Rwrite, tag, out);
  e.u32(n);
  return c.send(tag, out);
}

export function tclunk(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  if (c.session.stale.delete(fidNo)) return c.simple(undefined, P9.Rclunk, tag, out);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  // The fid goes whatever closing answers (9P: clunk(5)).
  c.session.fids.delete(fidNo);
  const r = c.session.dropFid(fid);
  return andThen(r, (v) => c.simple(v, P9.Rclunk, tag, out));
}

export function tremove(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  c.session.fids.delete(fidNo);
  const parent = fid.parent;
  const name = fid.name;
  const isDir = (fid.node.mode & S_IFMT) === S_IFDIR;
  // Tremove clunks the fid even when the remove fails (9P: remove(5)).
  const closed = c.session.dropFid(fid);
  if (parent === null || name === '') return andThen(closed, () => c.error(out, tag, EBUSY));
  if (c.fs.readOnly) return andThen(closed, () => c.error(out, tag, EROFS));
  return andThen(closed, () =>
    andThen(c.fs.unlink(parent, name, isDir), (r) => {
      if (!(r instanceof FsError)) c.session.forgetName(parent, name);
      return c.simple(r, P9.Rremove, tag, out);
    }),
  );
}

export function tfsync(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  // Linux 5.x+ sends datasync[4]; older clients don't.
  const datasync = d.remaining >= 4 ? d.u32() : 0;
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  if (fid.file === undefined) return c.error(out, tag, EBADF);
  return andThen(c.fs.fsync(fid.file, datasync !== 0), (r) => c.simple(r, P9.Rfsync, tag, out));
}
