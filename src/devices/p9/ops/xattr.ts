/**
 * Extended attributes: Txattrwalk (a new fid carrying the value or the name list to read) and
 * Txattrcreate (the fid then takes the value by Twrite and sets it on clunk).
 */
import { E2BIG, EINVAL, ENOMEM, EROFS, FsError } from '../../../backends/fs/errno.js';
import { type P9Context } from '../context.js';
import { XATTR_SIZE_MAX, type Reply, andThen, joinNames } from '../../serve.js';
import { type P9Output } from '../io.js';
import { nameTooLong, illegalXattrName } from '../names.js';
import { Fid } from '../session.js';
import { type Decoder, P9 } from '../wire.js';

export function txattrwalk(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  const newNo = d.u32();
  const name = d.str();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  const bad = c.session.canTake(newNo);
  if (bad !== 0) return c.error(out, tag, bad);
  if (name.includes('\0') || nameTooLong(name)) return c.error(out, tag, EINVAL);
  const node = fid.node;
  const got =
    name === ''
      ? andThen(c.fs.listxattr(node), (l) => (l instanceof FsError ? l : joinNames(l)))
      : c.fs.getxattr(node, name);
  return andThen(got, (v) => {
    if (v instanceof FsError) return c.error(out, tag, v.errno);
    if (v.length > XATTR_SIZE_MAX) return c.error(out, tag, E2BIG);
    if (c.session.xattrHeld + v.length > c.session.xattrBudget) return c.error(out, tag, ENOMEM);
    if (c.session.canTake(newNo) !== 0) return c.error(out, tag, EINVAL);
    const x = new Fid(node, fid.parent, fid.name, fid.uid);
    x.xattrValue = v;
    c.session.xattrHeld += v.length;
    c.session.addFid(newNo, x);
    const e = c.begin(P9.Rxattrwalk, tag, out);
    e.u64(v.length);
    return c.send(tag, out);
  });
}

export function txattrcreate(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  const name = d.str();
  const size = d.u64();
  const flags = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  if (fid.file !== undefined || fid.xattrValue !== undefined || fid.xattrWrite !== undefined) {
    return c.error(out, tag, EINVAL);
  }
  if (illegalXattrName(name)) return c.error(out, tag, EINVAL);
  if (size > XATTR_SIZE_MAX) return c.error(out, tag, E2BIG);
  if ((flags & ~3) !== 0) return c.error(out, tag, EINVAL);
  if (c.fs.readOnly) return c.error(out, tag, EROFS);
  if (c.session.xattrHeld + size > c.session.xattrBudget) return c.error(out, tag, ENOMEM);
  // The value buffer starts zeroed, so nothing uninitialised can ever be stored or read.
  fid.xattrWrite = { name, flags, value: new Uint8Array(size), copied: 0 };
  c.session.xattrHeld += size;
  return c.simple(undefined, P9.Rxattrcreate, tag, out);
}
