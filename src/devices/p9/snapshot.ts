/**
 * A 9P session in a snapshot: msize, the fids by the path that reaches each one from the export
 * root (and the flags it was opened with), and the lock table. Restoring looks every path up
 * again and reopens what was open; a fid whose file is gone meanwhile becomes stale (ESTALE to
 * the guest, clunk lets it go) instead of failing the restore.
 */
import type { FsBackend } from '../../backends/fs/backend.js';
import { O_ACCMODE, O_APPEND, O_RDONLY } from '../../backends/fs/backend.js';
import { FsError } from '../../backends/fs/errno.js';
import { lookupPath, parseLocks, type SavedLocks, saveLocks, validPath } from '../session-snapshot.js';
import { p9LockOwner } from './ops/locks.js';
import { Fid, type P9Session } from './session.js';

export interface P9SessionSnapshot {
  msize: number;
  rootIno: string | null;
  fids: Array<{ no: number; uid: number; path: string[] | null; open: number | null }>;
  /** Lock ranges; `end` null for "to the end of the file" (JSON has no Infinity). */
  locks: SavedLocks;
}


export function saveSession(session: P9Session, fs: FsBackend): P9SessionSnapshot {
  const fids: P9SessionSnapshot['fids'] = [];
  for (const [no, fid] of session.fids) {
    const channel = fid.xattrValue !== undefined || fid.xattrWrite !== undefined;
    fids.push({ no, uid: fid.uid, path: channel ? null : (fs.nodePath(fid.node) ?? null), open: fid.file !== undefined ? fid.openFlags : null });
  }
  for (const no of session.stale) fids.push({ no, uid: 0, path: null, open: null });
  return {
    msize: session.msize,
    rootIno: session.rootIno === undefined ? null : session.rootIno.toString(),
    fids,
    locks: saveLocks(session.locks),
  };
}

/** Puts a saved session back on a fresh one (after reset). Throws Error for a malformed state. */
export async function loadSession(session: P9Session, fs: FsBackend, raw: unknown, maxMsize: number): Promise<void> {
  const s = raw as Partial<P9SessionSnapshot> | null;
  const bad = (why: string): never => {
    throw new Error(`9P session: ${why}`);
  };
  if (typeof s !== 'object' || s === null || !Array.isArray(s.fids) || !Array.isArray(s.locks)) return bad('malformed');
  if (!Number.isInteger(s.msize) || s.msize! < 0 || s.msize! > maxMsize) bad(`msize ${String(s.msize)}`);
  if (s.fids.length > session.maxFids) bad(`${s.fids.length} fids, at most ${session.maxFids}`);
  session.reset();
  session.msize = s.msize!;
  session.rootIno = typeof s.rootIno === 'string' && /^\d+$/.test(s.rootIno) ? BigInt(s.rootIno) : undefined;
  const root = await fs.root();
  if (root instanceof FsError) throw new Error(`9P share root: errno ${root.errno}`);
  for (const f of s.fids) {
    if (typeof f !== 'object' || f === null || !Number.isInteger(f.no) || f.no < 0 || f.no > 0xfffffffe || session.fids.has(f.no) || session.stale.has(f.no)) bad('fid entry');
    if (!Number.isInteger(f.uid) || f.uid < 0 || f.uid > 0xffffffff) bad(`fid ${f.no} uid`);
    const path = f.path;
    if (path !== null && !validPath(path)) {
      bad(`fid ${f.no} path`);
    }
    const found = path === null ? undefined : await lookupPath(fs, root, path);
    if (found === undefined) {
      session.stale.add(f.no);
      continue;
    }
    const fid = new Fid(found.node, found.parent, path!.length === 0 ? '' : path![path!.length - 1]!, f.uid);
    if (f.open !== null) {
      if (!Number.isInteger(f.open) || (f.open & ~(O_ACCMODE | O_APPEND)) !== 0) bad(`fid ${f.no} open flags`);
      if (fs.readOnly && (f.open & O_ACCMODE) !== O_RDONLY) bad(`fid ${f.no} was open for writing; the share is read-only now`);
      const file = await fs.open(found.node, f.open);
      if (file instanceof FsError) {
        session.stale.add(f.no);
        continue;
      }
      fid.file = file;
      fid.openFlags = f.open;
    }
    session.addFid(f.no, fid);
  }
  session.locks.load(parseLocks(s.locks, '9P session', p9LockOwner));
}
