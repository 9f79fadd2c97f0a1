/**
 * POSIX byte-range locks kept by the server: GETLK, SETLK, SETLKW, over the session's LockTable
 * (the same table the 9P server keeps). Only when the server was made with `posixLocks` and INIT
 * agreed POSIX_LOCKS; otherwise the guest kernel keeps its locks itself and these answer ENOSYS.
 *
 * A lock's owner is fuse_lk_in.owner (the kernel's id for the process's files table); close(2)
 * drops the owner's locks through FLUSH, which is why files are then opened without NOFLUSH.
 * SETLKW waits in the table until its range is free; INTERRUPT, DESTROY or a device reset end
 * the wait with EINTR.
 */
import { EAGAIN, EBADF, EDEADLK, EINTR, EINVAL, ENOLCK, ENOSYS } from '../../../backends/fs/errno.js';
import { F_RDLCK, F_UNLCK, F_WRLCK, type LockRequest } from '../../locks.js';
import { type FuseContext, type Req } from '../context.js';
import { type Reply } from '../../serve.js';
import { type FuseReader, FUSE_LK_FLOCK, INIT, OFFSET_MAX } from '../fuse.js';

/** The table key of a FUSE lock owner. */
export function lockOwner(owner: bigint): string {
  return 'f' + owner.toString(16);
}

/** fuse_lk_in, checked: the inode and the request, or the errno to answer. */
function lockIn(c: FuseContext, q: Req, r: FuseReader, getlk: boolean): { ino: bigint; req: LockRequest } | number {
  const fh = r.u64big();
  const owner = r.u64big();
  const start = r.u64();
  const endIncl = r.u64();
  const type = r.u32();
  const pid = r.u32();
  const lkFlags = r.u32();
  if (r.bad) return EINVAL;
  if ((c.session.flags & INIT.POSIX_LOCKS) === 0) return ENOSYS;
  const h = c.session.handles.get(fh);
  if (h === undefined) return EBADF;
  // flock(2) stays in the guest kernel: FLOCK_LOCKS is never offered.
  if ((lkFlags & FUSE_LK_FLOCK) !== 0) return EINVAL;
  if (type !== F_RDLCK && type !== F_WRLCK && (getlk || type !== F_UNLCK)) return EINVAL;
  // u64() answers Infinity past 2^53: a start there is refused, an end there runs to EOF.
  if (start > Number.MAX_SAFE_INTEGER || endIncl < start) return EINVAL;
  const end = endIncl >= Number.MAX_SAFE_INTEGER ? Infinity : endIncl + 1;
  return { ino: h.file.node.ino, req: { start, end, type, owner: lockOwner(owner), pid, clientId: '' } };
}

export function getlk(c: FuseContext, q: Req, r: FuseReader): Reply {
  const lk = lockIn(c, q, r, true);
  if (typeof lk === 'number') return c.error(q, lk);
  const held = c.session.locks.conflict(lk.ino, lk.req);
  const w = c.begin(q);
  if (held === undefined) {
    w.u64(lk.req.start);
    w.u64(lk.req.end === Infinity ? OFFSET_MAX : lk.req.end - 1);
    w.u32(F_UNLCK);
    w.u32(0);
  } else {
    w.u64(held.start);
    w.u64(held.end === Infinity ? OFFSET_MAX : held.end - 1);
    w.u32(held.type);
    w.u32(held.pid);
  }
  return c.send(q);
}

export function setlk(c: FuseContext, q: Req, r: FuseReader, wait: boolean): Reply {
  const lk = lockIn(c, q, r, false);
  if (typeof lk === 'number') return c.error(q, lk);
  const locks = c.session.locks;
  if (!wait) {
    const res = locks.set(lk.ino, lk.req);
    return res === 'ok' ? c.empty(q) : c.error(q, res === 'blocked' ? EAGAIN : ENOLCK);
  }
  const res = locks.setWait(lk.ino, lk.req, q.unique);
  if (res instanceof Promise) {
    return res.then((v) => (v === 'ok' ? c.empty(q) : c.error(q, v === 'full' ? ENOLCK : EINTR)));
  }
  if (res === 'ok') return c.empty(q);
  return c.error(q, res === 'deadlock' ? EDEADLK : ENOLCK);
}

/** INTERRUPT: a waiting SETLKW answers EINTR; anything else finishes on its own (no reply). */
export function interrupt(c: FuseContext, r: FuseReader): number {
  const unique = r.u64big();
  if (!r.bad) c.session.locks.cancel(unique);
  return 0;
}
