/**
 * A FUSE session in a snapshot: what INIT agreed, every node id the guest kernel holds (by the
 * path that reaches it from the share root, with its lookup count), every open handle (by its
 * node's path and the flags it was opened with), the id counters, and the POSIX locks. Restoring
 * looks the paths up again under the same ids and reopens the handles; an id or handle whose file
 * is gone is left out, so the guest's next use of it answers ENOENT or EBADF instead of failing the
 * restore.
 */
import type { FsBackend } from '../../backends/fs/backend.js';
import { O_ACCMODE, O_CREAT, O_EXCL, O_RDONLY, O_TRUNC } from '../../backends/fs/backend.js';
import { FsError } from '../../backends/fs/errno.js';
import { lookupPath, parseLocks, type SavedLocks, saveLocks, validPath } from '../session-snapshot.js';
import { FUSE_ROOT_ID } from './fuse.js';
import type { FuseSession } from './session.js';

export interface FuseSessionSnapshot {
  initialized: boolean;
  flags: number;
  minor: number;
  nextId: string;
  nextFh: string;
  nodes: Array<{ id: string; nlookup: number; path: string[] | null }>;
  handles: Array<{ fh: string; dir: boolean; flags: number; path: string[] | null }>;
  locks: SavedLocks;
}

export function saveFuseSession(session: FuseSession, fs: FsBackend): FuseSessionSnapshot {
  const { nextId, nextFh } = session.counters;
  return {
    initialized: session.initialized,
    flags: session.flags,
    minor: session.minor,
    nextId: nextId.toString(),
    nextFh: nextFh.toString(),
    nodes: [...session.nodes.values()].filter((n) => n.id !== FUSE_ROOT_ID).map((n) => ({ id: n.id.toString(), nlookup: n.nlookup, path: fs.nodePath(n.node) ?? null })),
    handles: [...session.handles].map(([fh, h]) => ({ fh: fh.toString(), dir: h.dir, flags: h.flags, path: fs.nodePath(h.file.node) ?? null })),
    locks: saveLocks(session.locks),
  };
}

const DIGITS = /^\d{1,20}$/;

/** Puts a saved session back on a fresh one. Throws Error for a malformed state. */
export async function loadFuseSession(session: FuseSession, fs: FsBackend, raw: unknown): Promise<void> {
  const s = raw as Partial<FuseSessionSnapshot> | null;
  const bad = (why: string): never => {
    throw new Error(`FUSE session: ${why}`);
  };
  if (typeof s !== 'object' || s === null || !Array.isArray(s.nodes) || !Array.isArray(s.handles) || !Array.isArray(s.locks)) return bad('malformed');
  if (typeof s.initialized !== 'boolean' || !Number.isInteger(s.flags) || !Number.isInteger(s.minor)) bad('INIT state');
  if (typeof s.nextId !== 'string' || !DIGITS.test(s.nextId) || typeof s.nextFh !== 'string' || !DIGITS.test(s.nextFh)) bad('id counters');
  if (s.nodes.length > session.maxNodes || s.handles.length > session.maxHandles) bad('more node ids or handles than this server keeps');
  const pathOk = (p: unknown): p is string[] | null => p === null || validPath(p);
  session.reset();
  const nextId = BigInt(s.nextId!), nextFh = BigInt(s.nextFh!);
  const root = await fs.root();
  if (root instanceof FsError) throw new Error(`share root: errno ${root.errno}`);
  session.addRoot(root);
  session.initialized = s.initialized!;
  session.flags = s.flags!;
  session.minor = s.minor!;
  for (const n of s.nodes) {
    if (typeof n?.id !== 'string' || !DIGITS.test(n.id) || !Number.isInteger(n.nlookup) || n.nlookup < 1 || !pathOk(n.path)) bad('node entry');
    const id = BigInt(n.id);
    if (id <= FUSE_ROOT_ID || id >= nextId || session.nodes.has(id)) bad(`node id ${n.id}`);
    const node = n.path === null ? undefined : (await lookupPath(fs, root, n.path))?.node;
    if (node !== undefined) session.restoreNode(id, node, n.nlookup);
  }
  for (const h of s.handles) {
    if (typeof h?.fh !== 'string' || !DIGITS.test(h.fh) || typeof h.dir !== 'boolean' || !Number.isInteger(h.flags) || !pathOk(h.path)) bad('handle entry');
    const fh = BigInt(h.fh);
    if (fh < 1n || fh >= nextFh || session.handles.has(fh)) bad(`handle ${h.fh}`);
    const flags = h.dir ? O_RDONLY : h.flags & ~(O_CREAT | O_EXCL | O_TRUNC);
    if (fs.readOnly && (flags & O_ACCMODE) !== O_RDONLY) bad(`handle ${h.fh} was open for writing; the share is read-only now`);
    const node = h.path === null ? undefined : (await lookupPath(fs, root, h.path))?.node;
    if (node === undefined) continue;
    const file = await fs.open(node, flags);
    if (!(file instanceof FsError)) session.restoreHandle(fh, file, h.dir, flags);
  }
  session.restoreCounters(nextId, nextFh);
  session.locks.load(parseLocks(s.locks, 'FUSE session'));
}
