/** Names to node ids and back: LOOKUP, FORGET, BATCH_FORGET. */
import { type FsNode, S_IFDIR, S_IFMT } from '../../../backends/fs/backend.js';
import { ENOENT, ENOTDIR, FsError } from '../../../backends/fs/errno.js';
import { type FuseContext, type Req } from '../context.js';
import { type Reply, andThen } from '../../serve.js';
import { type FuseReader, IN_HEADER_SIZE } from '../fuse.js';

export function lookup(c: FuseContext, q: Req, r: FuseReader): Reply {
  const dir = c.session.node(q.nodeid);
  const name = c.name(r, 'lookup');
  if (dir === undefined) return c.error(q, ENOENT);
  if (typeof name === 'number') return name === 0 ? lookupDots(c, q, dir, r) : c.error(q, name);
  if ((dir.mode & S_IFMT) !== S_IFDIR) return c.error(q, ENOTDIR);
  return andThen(c.fs.lookup(dir, name), (node) => (node instanceof FsError ? c.error(q, node.errno) : c.entryReply(q, node)));
}

/** LOOKUP of '.' or '..' (the kernel sends them only for exported file handles). */
function lookupDots(c: FuseContext, q: Req, dir: FsNode, r: FuseReader): Reply {
  r.pos = IN_HEADER_SIZE;
  const name = r.cstr();
  return andThen(c.fs.lookup(dir, name), (node) => (node instanceof FsError ? c.error(q, node.errno) : c.entryReply(q, node)));
}

export function forget(c: FuseContext, q: Req, r: FuseReader): number {
  const n = r.u64();
  if (!r.bad) c.session.drop(q.nodeid, n);
  return 0;
}

export function batchForget(c: FuseContext, r: FuseReader): number {
  const count = r.u32();
  r.u32();
  // A count the message can't hold is refused whole: nothing is forgotten.
  if (r.bad || count > Math.floor(r.remaining / 16)) return 0;
  for (let i = 0; i < count; i++) {
    const id = r.u64big();
    const n = r.u64();
    c.session.drop(id, n);
  }
  return 0;
}
