/** Attributes: GETATTR, SETATTR, ACCESS, STATFS. */
import { type Async, type FsFile, type FsNode, type FsResult, type FsSetAttr, S_IFDIR, S_IFMT } from '../../../backends/fs/backend.js';
import { EACCES, EBADF, EFBIG, EINVAL, EISDIR, ENOENT, EROFS, FsError } from '../../../backends/fs/errno.js';
import { type FuseContext, type Req } from '../context.js';
import { type Reply, andThen } from '../../serve.js';
import { type FuseReader, FATTR, FUSE_GETATTR_FH, FUSE_ROOT_ID } from '../fuse.js';

export function getattr(c: FuseContext, q: Req, r: FuseReader): Reply {
  const gflags = r.u32();
  r.u32();
  const fh = r.u64big();
  if (r.bad) return c.error(q, EINVAL);
  const node = c.session.node(q.nodeid);
  if (node === undefined) return c.error(q, ENOENT);
  let file: FsFile | undefined;
  if (gflags & FUSE_GETATTR_FH) {
    const h = c.session.handles.get(fh);
    if (h === undefined) return c.error(q, EBADF);
    file = h.file;
  }
  return attrReply(c, q, node, file);
}

function attrReply(c: FuseContext, q: Req, node: FsNode, file?: FsFile): Reply {
  return andThen(c.fs.getattr(node, file), (st) => {
    if (st instanceof FsError) {
      // fstat(2) of a file unlinked while open comes without a handle (fuse_getattr has none):
      // a backend that stats by name can't find it, but an open handle of the node still can.
      const open = file === undefined && st.errno === ENOENT ? c.session.openFileOf(node) : undefined;
      if (open !== undefined) return attrReply(c, q, node, open);
      return c.error(q, st.errno);
    }
    const w = c.begin(q);
    w.u64(c.timeout);
    w.u32(0);
    w.u32(0);
    c.putAttr(w, st);
    return c.send(q);
  });
}

export function setattr(c: FuseContext, q: Req, r: FuseReader): Reply {
  const valid = r.u32();
  r.u32();
  const fh = r.u64big();
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
  if (r.bad) return c.error(q, EINVAL);
  const node = c.session.node(q.nodeid);
  if (node === undefined) return c.error(q, ENOENT);
  let file: FsFile | undefined;
  if (valid & FATTR.FH) {
    const h = c.session.handles.get(fh);
    if (h === undefined) return c.error(q, EBADF);
    file = h.file;
  }
  const a: FsSetAttr = {};
  if (valid & FATTR.MODE) a.mode = mode & 0o7777;
  if (valid & FATTR.UID) a.uid = uid;
  if (valid & FATTR.GID) a.gid = gid;
  if (valid & FATTR.SIZE) {
    if (size > Number.MAX_SAFE_INTEGER) return c.error(q, EFBIG);
    if ((node.mode & S_IFMT) === S_IFDIR) return c.error(q, EISDIR);
    a.size = size;
  }
  if (valid & FATTR.ATIME) {
    if (valid & FATTR.ATIME_NOW) a.atime = 'now';
    else if (atimensec >= 1e9 || atime > Number.MAX_SAFE_INTEGER) return c.error(q, EINVAL);
    else a.atime = { sec: atime, nsec: atimensec };
  }
  if (valid & FATTR.MTIME) {
    if (valid & FATTR.MTIME_NOW) a.mtime = 'now';
    else if (mtimensec >= 1e9 || mtime > Number.MAX_SAFE_INTEGER) return c.error(q, EINVAL);
    else a.mtime = { sec: mtime, nsec: mtimensec };
  }
  if (valid & FATTR.CTIME) a.ctime = true;
  const changes = valid & (FATTR.MODE | FATTR.UID | FATTR.GID | FATTR.SIZE | FATTR.ATIME | FATTR.MTIME | FATTR.CTIME);
  if (changes === 0) return attrReply(c, q, node, file);
  if (c.fs.readOnly) return c.error(q, EROFS);
  const set = (): Reply =>
    andThen(c.fs.setattr(node, a, file), (res) => (res instanceof FsError ? c.error(q, res.errno) : attrReply(c, q, node, file)));
  // chown, or a truncate by a caller without CAP_FSETID, of a non-directory (HANDLE_KILLPRIV_V2).
  if ((valid & FATTR.KILL_SUIDGID) === 0 || (node.mode & S_IFMT) === S_IFDIR) return set();
  if (a.mode !== undefined) {
    a.mode = withoutSuidgid(a.mode);
    return set();
  }
  return andThen(c.fs.getattr(node, file), (st) => {
    if (st instanceof FsError) return c.error(q, st.errno);
    const m = withoutSuidgid(st.mode & 0o7777);
    if (m !== (st.mode & 0o7777)) a.mode = m;
    return set();
  });
}

/**
 * Permission bits with set-user-ID cleared, and set-group-ID too when group execute is set (the
 * VFS's rule: without group execute, set-group-ID marks mandatory locking and stays).
 */
export function withoutSuidgid(mode: number): number {
  let m = mode & ~S_ISUID;
  if ((m & S_IXGRP) !== 0) m &= ~S_ISGID;
  return m;
}

/** Clears set-user-ID / set-group-ID of a file after a write or an O_TRUNC open asked for it. */
export function killSuidgid(c: FuseContext, node: FsNode, file?: FsFile): Async<FsResult<void>> {
  return andThen(c.fs.getattr(node, file), (st): Async<FsResult<void>> => {
    if (st instanceof FsError) return st;
    const m = withoutSuidgid(st.mode & 0o7777);
    return m === (st.mode & 0o7777) ? undefined : c.fs.setattr(node, { mode: m }, file);
  });
}

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const S_IXGRP = 0o010;

export function access(c: FuseContext, q: Req, r: FuseReader): Reply {
  const mask = r.u32();
  if (r.bad) return c.error(q, EINVAL);
  const node = c.session.node(q.nodeid);
  if (node === undefined) return c.error(q, ENOENT);
  return andThen(c.fs.getattr(node), (st) => {
    if (st instanceof FsError) return c.error(q, st.errno);
    if ((mask & 2) !== 0 && c.fs.readOnly) return c.error(q, EROFS);
    const m = st.mode;
    let bits: number;
    if (q.uid === 0) {
      // root may read and write anything; execute needs some x bit (or a directory).
      bits = 6 | ((m & 0o111) !== 0 || (m & S_IFMT) === S_IFDIR ? 1 : 0);
    } else if (q.uid === st.uid) bits = (m >> 6) & 7;
    else if (q.gid === st.gid) bits = (m >> 3) & 7;
    else bits = m & 7;
    return (mask & 7 & ~bits) === 0 ? c.empty(q) : c.error(q, EACCES);
  });
}

export function statfs(c: FuseContext, q: Req): Reply {
  const node = c.session.node(q.nodeid) ?? c.session.node(FUSE_ROOT_ID);
  if (node === undefined) return c.error(q, ENOENT);
  return andThen(c.fs.statfs(node), (s) => {
    if (s instanceof FsError) return c.error(q, s.errno);
    const w = c.begin(q);
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
    return c.send(q);
  });
}
