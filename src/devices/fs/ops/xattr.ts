/** Extended attributes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR. */
import { NAME_MAX } from '../../../backends/fs/backend.js';
import { E2BIG, EINVAL, ENODATA, ENOENT, ERANGE, EROFS, FsError } from '../../../backends/fs/errno.js';
import { type FuseContext, type Req, type Reply, andThen, FUSE_XATTR_SIZE_MAX } from '../context.js';
import { type FuseReader, utf8Length } from '../fuse.js';

/** Largest list of xattr names (Linux XATTR_LIST_MAX). */
const XATTR_LIST_MAX = 65536;

export function setxattr(c: FuseContext, q: Req, r: FuseReader): Reply {
  const size = r.u32();
  const flags = r.u32();
  if (r.bad) return c.error(q, EINVAL);
  const node = c.session.node(q.nodeid);
  const name = r.cstr();
  if (r.bad) return c.error(q, EINVAL);
  if (node === undefined) return c.error(q, ENOENT);
  if (name === '' || r.lastBytes > NAME_MAX) return c.error(q, name === '' ? EINVAL : ERANGE);
  if (size > FUSE_XATTR_SIZE_MAX) return c.error(q, E2BIG);
  if (size !== r.remaining) return c.error(q, EINVAL);
  if (c.fs.readOnly) return c.error(q, EROFS);
  const value = r.bytes(size).slice();
  return andThen(c.fs.setxattr(node, name, value, flags & 3), (res) => c.simple(q, res));
}

export function getxattr(c: FuseContext, q: Req, r: FuseReader, list: boolean): Reply {
  const size = r.u32();
  r.u32();
  if (r.bad) return c.error(q, EINVAL);
  const node = c.session.node(q.nodeid);
  let name = '';
  if (!list) {
    name = r.cstr();
    if (r.bad) return c.error(q, EINVAL);
    if (name === '' || r.lastBytes > NAME_MAX) return c.error(q, name === '' ? EINVAL : ERANGE);
  }
  if (node === undefined) return c.error(q, ENOENT);
  const answer = (value: Uint8Array | string[]): number => {
    let bytes: number;
    if (Array.isArray(value)) {
      bytes = 0;
      for (const n of value) bytes += utf8Length(n) + 1;
      if (bytes > XATTR_LIST_MAX) return c.error(q, E2BIG);
    } else bytes = value.length;
    const w = c.begin(q);
    if (size === 0) {
      // The guest asks for the size first.
      w.u32(bytes);
      w.u32(0);
      return c.send(q);
    }
    if (bytes > size) return c.error(q, ERANGE);
    if (Array.isArray(value)) {
      for (const n of value) {
        w.str(n);
        w.zeros(1);
      }
    } else w.bytes(value);
    return c.send(q);
  };
  if (list) return andThen(c.fs.listxattr(node), (v) => (v instanceof FsError ? c.error(q, v.errno) : answer(v)));
  return andThen(c.fs.getxattr(node, name), (v) => (v instanceof FsError ? c.error(q, v.errno === ENOENT ? ENODATA : v.errno) : answer(v)));
}

export function removexattr(c: FuseContext, q: Req, r: FuseReader): Reply {
  const node = c.session.node(q.nodeid);
  const name = r.cstr();
  if (r.bad) return c.error(q, EINVAL);
  if (node === undefined) return c.error(q, ENOENT);
  if (name === '' || r.lastBytes > NAME_MAX) return c.error(q, name === '' ? EINVAL : ERANGE);
  if (c.fs.readOnly) return c.error(q, EROFS);
  return andThen(c.fs.removexattr(node, name), (res) => c.simple(q, res));
}
