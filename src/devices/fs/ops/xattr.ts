/** Extended attributes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR. */
import { E2BIG, EINVAL, ENODATA, ENOENT, ERANGE, EROFS, FsError } from '../../../backends/fs/errno.js';
import { type FuseContext, type Req } from '../context.js';
import { type Reply, XATTR_LIST_MAX, XATTR_SIZE_MAX, andThen, joinNames } from '../../serve.js';
import type { FuseReader } from '../fuse.js';

export function setxattr(c: FuseContext, q: Req, r: FuseReader): Reply {
  const size = r.u32();
  const flags = r.u32();
  if (r.bad) return c.error(q, EINVAL);
  const node = c.session.node(q.nodeid);
  const name = c.xattrName(r);
  if (typeof name === 'number') return c.error(q, name);
  if (node === undefined) return c.error(q, ENOENT);
  if (size > XATTR_SIZE_MAX) return c.error(q, E2BIG);
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
  const name = list ? '' : c.xattrName(r);
  if (typeof name === 'number') return c.error(q, name);
  if (node === undefined) return c.error(q, ENOENT);
  const answer = (value: Uint8Array): number => {
    const w = c.begin(q);
    if (size === 0) {
      // The guest asks for the size first.
      w.u32(value.length);
      w.u32(0);
      return c.send(q);
    }
    if (value.length > size) return c.error(q, ERANGE);
    w.bytes(value);
    return c.send(q);
  };
  if (list) {
    return andThen(c.fs.listxattr(node), (v) => {
      if (v instanceof FsError) return c.error(q, v.errno);
      // listxattr(2)'s format: each name and a NUL.
      const names = joinNames(v);
      return names.length > XATTR_LIST_MAX ? c.error(q, E2BIG) : answer(names);
    });
  }
  return andThen(c.fs.getxattr(node, name), (v) => (v instanceof FsError ? c.error(q, v.errno === ENOENT ? ENODATA : v.errno) : answer(v)));
}

export function removexattr(c: FuseContext, q: Req, r: FuseReader): Reply {
  const node = c.session.node(q.nodeid);
  const name = c.xattrName(r);
  if (typeof name === 'number') return c.error(q, name);
  if (node === undefined) return c.error(q, ENOENT);
  if (c.fs.readOnly) return c.error(q, EROFS);
  return andThen(c.fs.removexattr(node, name), (res) => c.simple(q, res));
}
