/** Attributes: Tgetattr, Tsetattr, Tstatfs. */
import { type FsNode, type FsSetAttr, type FsStat } from '../../../backends/fs/backend.js';
import { EFBIG, EINVAL, EROFS, FsError } from '../../../backends/fs/errno.js';
import { type P9Context, qidType } from '../context.js';
import { type Reply, andThen } from '../../serve.js';
import { type P9Output } from '../io.js';
import {
  type Decoder,
  GETATTR_BASIC,
  P9,
  SETATTR_ATIME,
  SETATTR_ATIME_SET,
  SETATTR_CTIME,
  SETATTR_GID,
  SETATTR_MODE,
  SETATTR_MTIME,
  SETATTR_MTIME_SET,
  SETATTR_SIZE,
  SETATTR_UID,
} from '../wire.js';

export function tgetattr(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  d.u64(); // request_mask: the basic set is always answered
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  const node = fid.node;
  return andThen(c.fs.getattr(node, fid.file), (st) => {
    if (st instanceof FsError) return c.error(out, tag, st.errno);
    return rgetattr(c, st, node, tag, out);
  });
}

function rgetattr(c: P9Context, st: FsStat, node: FsNode, tag: number, out: P9Output): number {
  const e = c.begin(P9.Rgetattr, tag, out);
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
  return c.send(tag, out);
}

export function tsetattr(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
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
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  const a: FsSetAttr = {};
  if (valid & SETATTR_MODE) a.mode = mode & 0o7777;
  if (valid & SETATTR_UID) a.uid = uid;
  if (valid & SETATTR_GID) a.gid = gid;
  if (valid & SETATTR_SIZE) {
    if (size > Number.MAX_SAFE_INTEGER) return c.error(out, tag, EFBIG);
    a.size = size;
  }
  if (valid & SETATTR_ATIME) {
    if (valid & SETATTR_ATIME_SET) {
      if (atimeNsec >= 1e9) return c.error(out, tag, EINVAL);
      a.atime = { sec: atimeSec, nsec: atimeNsec };
    } else a.atime = 'now';
  }
  if (valid & SETATTR_MTIME) {
    if (valid & SETATTR_MTIME_SET) {
      if (mtimeNsec >= 1e9) return c.error(out, tag, EINVAL);
      a.mtime = { sec: mtimeSec, nsec: mtimeNsec };
    } else a.mtime = 'now';
  }
  if (valid & SETATTR_CTIME) a.ctime = true;
  if (c.fs.readOnly) return c.error(out, tag, EROFS);
  return andThen(c.fs.setattr(fid.node, a, fid.file), (r) => c.simple(r, P9.Rsetattr, tag, out));
}

export function tstatfs(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  return andThen(c.fs.statfs(fid.node), (s) => {
    if (s instanceof FsError) return c.error(out, tag, s.errno);
    const e = c.begin(P9.Rstatfs, tag, out);
    e.u32(s.type);
    e.u32(s.bsize);
    e.u64(s.blocks);
    e.u64(s.bfree);
    e.u64(s.bavail);
    e.u64(s.files);
    e.u64(s.ffree);
    e.u64big(s.fsid);
    e.u32(s.namelen);
    return c.send(tag, out);
  });
}
