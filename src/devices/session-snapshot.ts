/**
 * What the 9P and FUSE session snapshots share: finding a node again by the names from the share
 * root, checking such a path, and the lock table as JSON (a range to the end of the file has end
 * null, since JSON has no Infinity).
 */
import type { FsBackend, FsNode } from '../backends/fs/backend.js';
import { FsError } from '../backends/fs/errno.js';
import type { LockRange, LockTable } from './locks.js';

export type SavedRange = Omit<LockRange, 'end'> & { end: number | null };
export type SavedLocks = Array<{ ino: string; ranges: SavedRange[] }>;

const MAX_DEPTH = 4096;

/** A path a snapshot may name: at most 4096 names, none empty, '.', '..', or with '/' or NUL. */
export function validPath(p: unknown): p is string[] {
  return Array.isArray(p) && p.length <= MAX_DEPTH && p.every((n) => typeof n === 'string' && n !== '' && n !== '.' && n !== '..' && !n.includes('/') && !n.includes('\0'));
}

/** Looks a path up from the root, one name at a time: the node and its parent, or undefined. */
export async function lookupPath(fs: FsBackend, root: FsNode, path: readonly string[]): Promise<{ node: FsNode; parent: FsNode | null } | undefined> {
  let node = root;
  let parent: FsNode | null = null;
  for (const name of path) {
    const next = await fs.lookup(node, name);
    if (next instanceof FsError) return undefined;
    parent = node;
    node = next;
  }
  return { node, parent };
}

export function saveLocks(table: LockTable): SavedLocks {
  return table.entries().map(([ino, ranges]) => ({ ino: ino.toString(), ranges: ranges.map((r) => ({ ...r, end: r.end === Infinity ? null : r.end })) }));
}

/**
 * Saved locks back as table entries; `legacyOwner` names the owner of ranges saved before owners
 * were kept (9P's procId form). Throws Error(`${what}: …`) for anything malformed.
 */
export function parseLocks(raw: unknown, what: string, legacyOwner?: (pid: number, clientId: string) => string): Array<[bigint, LockRange[]]> {
  const bad = (why: string): never => {
    throw new Error(`${what}: ${why}`);
  };
  if (!Array.isArray(raw)) return bad('locks');
  const out: Array<[bigint, LockRange[]]> = [];
  for (const l of raw as Array<{ ino?: unknown; ranges?: unknown }>) {
    if (typeof l?.ino !== 'string' || !/^\d{1,20}$/.test(l.ino) || !Array.isArray(l.ranges)) bad('lock entry');
    const ranges: LockRange[] = [];
    for (const r of l.ranges as Array<Partial<SavedRange> & { procId?: number }>) {
      if (typeof r !== 'object' || r === null) bad('lock range');
      const pid = r.pid ?? r.procId;
      const end = r.end === null ? Infinity : r.end;
      const owner = r.owner ?? (legacyOwner && Number.isInteger(pid) && typeof r.clientId === 'string' ? legacyOwner(pid!, r.clientId) : undefined);
      const ok =
        [r.start, pid, r.type].every((v) => Number.isInteger(v) && v! >= 0) &&
        (r.type === 0 || r.type === 1) &&
        (end === Infinity || (Number.isInteger(end) && end! > r.start!)) &&
        typeof r.clientId === 'string' &&
        typeof owner === 'string';
      if (!ok) bad('lock range');
      ranges.push({ start: r.start!, end: end!, type: r.type!, pid: pid!, clientId: r.clientId!, owner: owner! });
    }
    out.push([BigInt(l.ino as string), ranges]);
  }
  return out;
}
