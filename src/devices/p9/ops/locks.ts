/**
 * POSIX byte-range locks: Tlock, Tgetlock, over the session's LockTable. A blocking Tlock that
 * conflicts answers BLOCKED and the client retries (as QEMU does).
 */
import { EINVAL, ENOLCK } from '../../../backends/fs/errno.js';
import { type P9Context } from '../context.js';
import { type Reply } from '../../serve.js';
import { type P9Output } from '../io.js';
import {
  type Decoder,
  LOCK_BLOCKED,
  LOCK_ERROR,
  LOCK_SUCCESS,
  LOCK_TYPE_RDLCK,
  LOCK_TYPE_UNLCK,
  LOCK_TYPE_WRLCK,
  P9,
} from '../wire.js';

/** A 9P lock owner is the pair (client id, process id) the client sends. */
export function p9LockOwner(procId: number, clientId: string): string {
  return procId + ':' + clientId;
}

export function tlock(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  const type = d.u8();
  d.u32(); // flags: a blocking request is answered BLOCKED; the client retries
  const start = d.u64();
  const length = d.u64();
  const procId = d.u32();
  const clientId = d.str();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  if (type !== LOCK_TYPE_RDLCK && type !== LOCK_TYPE_WRLCK && type !== LOCK_TYPE_UNLCK) {
    return c.error(out, tag, EINVAL);
  }
  let status = LOCK_ERROR;
  if (start <= Number.MAX_SAFE_INTEGER) {
    const r = c.session.locks.set(fid.node.ino, { start, end: lockEnd(start, length), type, owner: p9LockOwner(procId, clientId), pid: procId, clientId });
    if (r === 'full') return c.error(out, tag, ENOLCK);
    status = r === 'ok' ? LOCK_SUCCESS : r === 'blocked' ? LOCK_BLOCKED : LOCK_ERROR;
  }
  const e = c.begin(P9.Rlock, tag, out);
  e.u8(status);
  return c.send(tag, out);
}

export function tgetlock(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  const type = d.u8();
  const start = d.u64();
  const length = d.u64();
  const procId = d.u32();
  const clientId = d.str();
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  if (type !== LOCK_TYPE_RDLCK && type !== LOCK_TYPE_WRLCK) return c.error(out, tag, EINVAL);
  if (start > Number.MAX_SAFE_INTEGER) return c.error(out, tag, EINVAL);
  const req = { start, end: lockEnd(start, length), type, owner: p9LockOwner(procId, clientId), pid: procId, clientId };
  const held = c.session.locks.conflict(fid.node.ino, req);
  const e = c.begin(P9.Rgetlock, tag, out);
  if (held === undefined) {
    e.u8(LOCK_TYPE_UNLCK);
    e.u64(start);
    e.u64(length);
    e.u32(procId);
    e.str(clientId);
  } else {
    e.u8(held.type);
    e.u64(held.start);
    e.u64(held.end === Infinity ? 0 : held.end - held.start);
    e.u32(held.pid);
    e.str(held.clientId);
  }
  return c.send(tag, out);
}

/** One past a 9P lock range's last byte: length 0 (or a range past 2^53) runs to the end of the file. */
function lockEnd(start: number, length: number): number {
  return length === 0 || start + length > Number.MAX_SAFE_INTEGER ? Infinity : start + length;
}
