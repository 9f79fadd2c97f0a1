/**
 * Directories and names: MKDIR, MKNOD, SYMLINK, LINK, UNLINK, RMDIR, RENAME(2), READLINK,
 * READDIR and READDIRPLUS.
 */
import {
  type Async,
  type FsDirEntry,
  type FsNode,
  type FsResult,
  type FsStat,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
} from '../../../backends/fs/backend.js';
import { EEXIST, EINVAL, ENAMETOOLONG, ENOENT, ENOTDIR, EROFS, FsError } from '../../../backends/fs/errno.js';
import { type FuseContext, type Req, MAX_BUILT_REPLY } from '../context.js';
import { type Reply, andThen } from '../../serve.js';
import {
  type FuseReader,
  direntSize,
  ENTRY_OUT_SIZE,
  OUT_HEADER_SIZE,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  RENAME_WHITEOUT,
  utf8Length,
} from '../fuse.js';

/** A READDIRPLUS entry looked up and stat'ed, or undefined when that failed. */
type Found = { node: FsNode; st: FsStat } | undefined;

/** link(2) of a directory. */
const EPERM_LINK = 1;

export function mkdir(c: FuseContext, q: Req, r: FuseReader): Reply {
  const mode = r.u32();
  r.u32(); // umask: the kernel already applied it (DONT_MASK is not offered)
  return make(c, q, r, (dir, name) => c.fs.mkdir(dir, name, mode & 0o7777, c.creds(q)));
}

export function mknod(c: FuseContext, q: Req, r: FuseReader): Reply {
  const mode = r.u32();
  const rdev = r.u32();
  r.u32();
  r.u32();
  return make(c, q, r, (dir, name) => c.fs.mknod(dir, name, mode, rdev, c.creds(q)));
}

export function symlink(c: FuseContext, q: Req, r: FuseReader): Reply {
  // fuse_symlink: the new name, then the target, each NUL-terminated.
  return make(c, q, r, (dir, name) => {
    const target = r.cstr();
    if (r.bad) return new FsError(EINVAL);
    if (target === '' || r.lastBytes >= 4096) return new FsError(target === '' ? ENOENT : ENAMETOOLONG);
    return c.fs.symlink(dir, name, target, c.creds(q));
  });
}

/**
 * The checks MKDIR, MKNOD, SYMLINK and CREATE share: the request's node id is a directory, the
 * name read next is a valid new name, the share is writable. A number is the error reply, sent.
 */
export function newEntry(c: FuseContext, q: Req, r: FuseReader): { dir: FsNode; name: string } | number {
  if (r.bad) return c.error(q, EINVAL);
  const dir = c.session.node(q.nodeid);
  const name = c.name(r, 'new');
  if (dir === undefined) return c.error(q, ENOENT);
  if (typeof name === 'number') return c.error(q, name);
  if ((dir.mode & S_IFMT) !== S_IFDIR) return c.error(q, ENOTDIR);
  if (c.fs.readOnly) return c.error(q, EROFS);
  return { dir, name };
}

/** The common part of MKDIR, MKNOD, SYMLINK: a directory node id and a new name. */
function make(c: FuseContext, q: Req, r: FuseReader, op: (dir: FsNode, name: string) => Async<FsResult<FsNode>>): Reply {
  const at = newEntry(c, q, r);
  if (typeof at === 'number') return at;
  return andThen(op(at.dir, at.name), (node) => (node instanceof FsError ? c.error(q, node.errno) : c.entryReply(q, node)));
}

export function link(c: FuseContext, q: Req, r: FuseReader): Reply {
  const old = c.session.node(r.u64big());
  if (r.bad) return c.error(q, EINVAL);
  const dir = c.session.node(q.nodeid);
  const name = c.name(r, 'new');
  if (dir === undefined || old === undefined) return c.error(q, ENOENT);
  if (typeof name === 'number') return c.error(q, name);
  if ((old.mode & S_IFMT) === S_IFDIR) return c.error(q, EPERM_LINK);
  if (c.fs.readOnly) return c.error(q, EROFS);
  return andThen(c.fs.link(dir, name, old), (res) => {
    if (res instanceof FsError) return c.error(q, res.errno);
    return andThen(c.fs.lookup(dir, name), (node) => (node instanceof FsError ? c.error(q, node.errno) : c.entryReply(q, node)));
  });
}

export function unlink(c: FuseContext, q: Req, r: FuseReader, rmdir: boolean): Reply {
  const dir = c.session.node(q.nodeid);
  const name = c.name(r, 'old');
  if (dir === undefined) return c.error(q, ENOENT);
  if (typeof name === 'number') return c.error(q, name);
  if (c.fs.readOnly) return c.error(q, EROFS);
  return andThen(c.fs.unlink(dir, name, rmdir), (res) => c.simple(q, res));
}

export function rename(c: FuseContext, q: Req, r: FuseReader, v2: boolean): Reply {
  const newDirId = r.u64big();
  const flags = v2 ? r.u32() : 0;
  if (v2) r.u32();
  if (r.bad) return c.error(q, EINVAL);
  const oldName = c.name(r, 'old');
  const newName = typeof oldName === 'number' ? oldName : c.name(r, 'old');
  const od = c.session.node(q.nodeid);
  const nd = c.session.node(newDirId);
  if (od === undefined || nd === undefined) return c.error(q, ENOENT);
  if (typeof oldName === 'number') return c.error(q, oldName);
  if (typeof newName === 'number') return c.error(q, newName);
  if ((flags & (RENAME_EXCHANGE | RENAME_WHITEOUT)) !== 0 || (flags & ~7) !== 0) return c.error(q, EINVAL);
  if (c.fs.readOnly) return c.error(q, EROFS);
  const go = (): Reply => andThen(c.fs.rename(od, oldName, nd, newName), (res) => c.simple(q, res));
  if ((flags & RENAME_NOREPLACE) === 0) return go();
  return andThen(c.fs.lookup(nd, newName), (hit) => {
    if (!(hit instanceof FsError)) return c.error(q, EEXIST);
    return hit.errno === ENOENT ? go() : c.error(q, hit.errno);
  });
}

export function readlink(c: FuseContext, q: Req): Reply {
  const node = c.session.node(q.nodeid);
  if (node === undefined) return c.error(q, ENOENT);
  if ((node.mode & S_IFMT) !== S_IFLNK) return c.error(q, EINVAL);
  return andThen(c.fs.readlink(node), (target) => {
    if (target instanceof FsError) return c.error(q, target.errno);
    const w = c.begin(q);
    w.str(target);
    return c.send(q);
  });
}

export function readdir(c: FuseContext, q: Req, r: FuseReader, plus: boolean): Reply {
  const fh = r.u64big();
  const offset = r.u64();
  const size = r.u32();
  if (r.bad) return c.error(q, EINVAL);
  const h = c.session.handleOf(fh, true);
  if (typeof h === 'number') return c.error(q, h);
  const room = Math.min(size, q.out.remaining - OUT_HEADER_SIZE, MAX_BUILT_REPLY - OUT_HEADER_SIZE);
  if (room < 0) return 0;
  // A forged offset past any cookie simply lists nothing.
  if (offset > Number.MAX_SAFE_INTEGER) return dirReply(c, q, [], [], room, plus);
  const max = Math.floor(room / direntSize(1, plus)) + 1;
  return andThen(c.fs.readdir(h.file, offset, max), (entries) => {
    if (entries instanceof FsError) return c.error(q, entries.errno);
    if (!plus) return dirReply(c, q, entries, [], room, false);
    return plusLookups(c, q, h.file.node, entries, room);
  });
}

/** READDIRPLUS: looks every entry up (not '.' and '..') and stats it, in order. */
function plusLookups(c: FuseContext, q: Req, dir: FsNode, entries: FsDirEntry[], room: number): Reply {
  const found: Found[] = [];
  // Only as many entries as can fit are looked up.
  let budget = 0;
  let count = 0;
  for (const e of entries) {
    budget += direntSize(utf8Length(e.name), true);
    if (budget > room) break;
    count++;
  }
  const step = (i: number): Reply => {
    for (; i < count; i++) {
      const e = entries[i]!;
      if (e.name === '.' || e.name === '..') {
        found.push(undefined);
        continue;
      }
      const hit = andThen(c.fs.lookup(dir, e.name), (node) =>
        node instanceof FsError ? undefined : andThen(c.fs.getattr(node), (st) => (st instanceof FsError ? undefined : { node, st })),
      );
      if (hit instanceof Promise) {
        const next = i + 1;
        return hit.then((v) => {
          found.push(v);
          return step(next);
        });
      }
      found.push(hit);
    }
    return dirReply(c, q, entries.slice(0, count), found, room, true);
  };
  return step(0);
}

function dirReply(c: FuseContext, q: Req, entries: FsDirEntry[], found: Found[], room: number, plus: boolean): number {
  const w = c.begin(q);
  w.limit = Math.min(w.limit, OUT_HEADER_SIZE + room);
  const taken: bigint[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const before = w.pos;
    if (w.pos + direntSize(utf8Length(e.name), plus) > w.limit) break;
    if (plus) {
      const f = found[i];
      if (f === undefined) w.zeros(ENTRY_OUT_SIZE);
      else {
        const id = c.session.remember(f.node);
        if (id === 0n) w.zeros(ENTRY_OUT_SIZE);
        else {
          taken.push(id);
          c.putEntry(w, id, f.st);
        }
      }
    }
    w.u64(e.ino);
    w.u64(e.next);
    const namelenAt = w.pos;
    w.u32(0);
    w.u32((e.type & S_IFMT) >>> 12);
    const n = w.str(e.name);
    new DataView(w.buf.buffer, w.buf.byteOffset).setUint32(namelenAt, n, true);
    w.align8();
    if (w.overflow) {
      w.pos = before;
      w.overflow = false;
      break;
    }
  }
  const sent = c.send(q);
  // Entries the guest never received hold no lookups.
  if (sent <= OUT_HEADER_SIZE) for (const id of taken) c.session.drop(id, 1);
  return sent;
}
