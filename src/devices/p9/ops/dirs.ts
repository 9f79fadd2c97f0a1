/**
 * Directories and names: Treaddir, Tmkdir, Tmknod, Tsymlink, Treadlink, Tlink, Trename,
 * Trenameat, Tunlinkat.
 */
import { type FsDirEntry, type FsNode, S_IFDIR, S_IFMT } from '../../../backends/fs/backend.js';
import {
  EBADF,
  EBUSY,
  EEXIST,
  EINVAL,
  EMSGSIZE,
  ENOTDIR,
  EROFS,
  FsError,
} from '../../../backends/fs/errno.js';
import { type P9Context, qidType, direntType } from '../context.js';
import { type Reply, andThen } from '../../serve.js';
import { type P9Output } from '../io.js';
import { checkNewName, checkOldName } from '../names.js';
import { Fid } from '../session.js';
import { type Decoder, AT_REMOVEDIR, IO_HEADER_SIZE, P9 } from '../wire.js';

/** link(2) on a directory. */
const EPERM_LINK = 1;

export function treaddir(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  const offset = d.u64();
  const count = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  const file = fid.file;
  if (file === undefined) return c.error(out, tag, EBADF);
  if ((file.node.mode & S_IFMT) !== S_IFDIR) return c.error(out, tag, ENOTDIR);
  const room = Math.min(count, Math.min(c.session.msize, out.remaining) - IO_HEADER_SIZE);
  if (room < 0) return 0;
  // A forged offset past any cookie simply lists nothing.
  if (offset > Number.MAX_SAFE_INTEGER) return rreaddir(c, [], room, tag, out);
  // An entry takes at least 25 bytes (qid, offset, type, name length, one byte of name).
  const max = Math.floor(room / 25) + 1;
  return andThen(c.fs.readdir(file, offset, max), (r) => {
    if (r instanceof FsError) return c.error(out, tag, r.errno);
    return rreaddir(c, r, room, tag, out);
  });
}

function rreaddir(c: P9Context, entries: FsDirEntry[], room: number, tag: number, out: P9Output): number {
  const e = c.begin(P9.Rreaddir, tag, out);
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
  if (countAt < 0) return c.error(out, tag, EMSGSIZE);
  e.patchU32(countAt, e.pos - start);
  return c.send(tag, out);
}

/**
 * The directory fid a create-type message names, or the errno to answer: a bad fid, then a bad
 * new name, then `extra` (a message's own check), then a read-only export.
 */
function createParent(c: P9Context, dfid: number, name: string, extra = 0): Fid | number {
  const fid = c.session.fid(dfid);
  if (fid === undefined) return c.session.missingFid(dfid);
  const bad = checkNewName(name);
  if (bad !== 0) return bad;
  if (extra !== 0) return extra;
  return c.fs.readOnly ? EROFS : fid;
}

export function tmkdir(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const dfid = d.u32();
  const name = d.str();
  const mode = d.u32();
  const gid = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = createParent(c, dfid, name);
  if (typeof fid === 'number') return c.error(out, tag, fid);
  return andThen(c.fs.mkdir(fid.node, name, mode & 0o7777, { uid: fid.uid, gid }), (r) =>
    c.qidReply(r, P9.Rmkdir, tag, out),
  );
}

export function tmknod(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const dfid = d.u32();
  const name = d.str();
  const mode = d.u32();
  const major = d.u32();
  const minor = d.u32();
  const gid = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = createParent(c, dfid, name);
  if (typeof fid === 'number') return c.error(out, tag, fid);
  const rdev = ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
  return andThen(c.fs.mknod(fid.node, name, mode, rdev, { uid: fid.uid, gid }), (r) =>
    c.qidReply(r, P9.Rmknod, tag, out),
  );
}

export function tsymlink(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const dfid = d.u32();
  const name = d.str();
  const target = d.str();
  const gid = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = createParent(c, dfid, name, target.includes('\0') ? EINVAL : 0);
  if (typeof fid === 'number') return c.error(out, tag, fid);
  return andThen(c.fs.symlink(fid.node, name, target, { uid: fid.uid, gid }), (r) =>
    c.qidReply(r, P9.Rsymlink, tag, out),
  );
}

export function treadlink(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  return andThen(c.fs.readlink(fid.node), (r) => {
    if (r instanceof FsError) return c.error(out, tag, r.errno);
    const e = c.begin(P9.Rreadlink, tag, out);
    e.str(r);
    return c.send(tag, out);
  });
}

export function tlink(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const dfidNo = d.u32();
  const fidNo = d.u32();
  const name = d.str();
  if (d.bad) return c.error(out, tag, EINVAL);
  const dfid = c.session.fid(dfidNo);
  const fid = c.session.fid(fidNo);
  if (dfid === undefined || fid === undefined) return c.noFid(out, tag, dfidNo, fidNo);
  const bad = checkNewName(name);
  if (bad !== 0) return c.error(out, tag, bad);
  if (c.fs.readOnly) return c.error(out, tag, EROFS);
  if ((fid.node.mode & S_IFMT) === S_IFDIR) return c.error(out, tag, EPERM_LINK);
  return andThen(c.fs.link(dfid.node, name, fid.node), (r) => c.simple(r, P9.Rlink, tag, out));
}

export function trename(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  const dfidNo = d.u32();
  const name = d.str();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  const dfid = c.session.fid(dfidNo);
  if (fid === undefined || dfid === undefined) return c.noFid(out, tag, fidNo, dfidNo);
  const bad = checkNewName(name);
  if (bad !== 0) return c.error(out, tag, bad === EEXIST ? EINVAL : bad);
  if (fid.parent === null || fid.name === '') return c.error(out, tag, EBUSY);
  return doRename(c, fid.parent, fid.name, dfid.node, name, P9.Rrename, tag, out);
}

export function trenameat(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const oldNo = d.u32();
  const oldName = d.str();
  const newNo = d.u32();
  const newName = d.str();
  if (d.bad) return c.error(out, tag, EINVAL);
  const od = c.session.fid(oldNo);
  const nd = c.session.fid(newNo);
  if (od === undefined || nd === undefined) return c.noFid(out, tag, oldNo, newNo);
  const bad = checkOldName(oldName) || checkOldName(newName);
  if (bad !== 0) return c.error(out, tag, bad);
  return doRename(c, od.node, oldName, nd.node, newName, P9.Rrenameat, tag, out);
}

function doRename(c: P9Context, od: FsNode, on: string, nd: FsNode, nn: string, type: number, tag: number, out: P9Output): Reply {
  if (c.fs.readOnly) return c.error(out, tag, EROFS);
  return andThen(c.fs.rename(od, on, nd, nn), (r) => {
    if (!(r instanceof FsError)) c.session.renamed(od, on, nd, nn);
    return c.simple(r, type, tag, out);
  });
}

export function tunlinkat(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const dfidNo = d.u32();
  const name = d.str();
  const flags = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const dfid = c.session.fid(dfidNo);
  if (dfid === undefined) return c.noFid(out, tag, dfidNo);
  const bad = checkOldName(name);
  if (bad !== 0) return c.error(out, tag, bad);
  if (c.fs.readOnly) return c.error(out, tag, EROFS);
  const dir = dfid.node;
  return andThen(c.fs.unlink(dir, name, (flags & AT_REMOVEDIR) !== 0), (r) => {
    if (!(r instanceof FsError)) c.session.forgetName(dir, name);
    return c.simple(r, P9.Runlinkat, tag, out);
  });
}
