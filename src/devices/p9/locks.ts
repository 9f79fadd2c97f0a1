/**
 * POSIX byte-range locks (fcntl F_SETLK / F_GETLK semantics) as Tlock and Tgetlock need them:
 * per inode, per owner (client id + process id). Ranges of one owner never overlap: a new lock
 * replaces the owner's overlapping parts, unlocking splits them. Locks of different owners
 * conflict when they overlap and either is a write lock.
 */
import { LOCK_TYPE_RDLCK, LOCK_TYPE_UNLCK, LOCK_TYPE_WRLCK } from './wire.js';

export interface LockRange {
  /** First byte. */
  start: number;
  /** One past the last byte; Infinity for "to the end of file". */
  end: number;
  type: number;
  procId: number;
  clientId: string;
}

/** What a request looks like: the range plus its owner. */
export type LockRequest = LockRange;

export class LockTable {
  private readonly byInode = new Map<bigint, LockRange[]>();
  private count = 0;

  constructor(
    /** Most ranges held over all inodes; more answers "no lock" (ENOLCK) instead of growing. */
    readonly maxRanges = 65536,
  ) {}

  /** Ranges held in total. */
  get size(): number {
    return this.count;
  }

  /** Every range held, by inode (for a snapshot). */
  entries(): Array<[bigint, LockRange[]]> {
    return [...this.byInode].map(([ino, list]) => [ino, list.map((l) => ({ ...l }))]);
  }

  /** Replaces the table with saved entries (a snapshot restore). */
  load(entries: ReadonlyArray<readonly [bigint, readonly LockRange[]]>): void {
    this.clear();
    for (const [ino, list] of entries) {
      if (list.length === 0) continue;
      this.byInode.set(ino, list.map((l) => ({ ...l })));
      this.count += list.length;
    }
  }

  clear(): void {
    this.byInode.clear();
    this.count = 0;
  }

  /** The first lock of another owner that conflicts with `req`, if any (F_GETLK). */
  conflict(ino: bigint, req: LockRequest): LockRange | undefined {
    const list = this.byInode.get(ino);
    if (list === undefined) return undefined;
    for (const l of list) {
      if (sameOwner(l, req)) continue;
      if (l.start >= req.end || req.start >= l.end) continue;
      if (l.type === LOCK_TYPE_WRLCK || req.type === LOCK_TYPE_WRLCK) return l;
    }
    return undefined;
  }

  /**
   * Sets or clears a lock (F_SETLK). Answers 'ok', 'blocked' when another owner holds a
   * conflicting lock, or 'full' when the table is at its cap.
   */
  set(ino: bigint, req: LockRequest): 'ok' | 'blocked' | 'full' {
    if (req.type !== LOCK_TYPE_UNLCK && this.conflict(ino, req) !== undefined) return 'blocked';
    const list = this.byInode.get(ino) ?? [];
    const kept: LockRange[] = [];
    for (const l of list) {
      if (!sameOwner(l, req) || l.start >= req.end || req.start >= l.end) {
        kept.push(l);
        continue;
      }
      // Keep the parts of the owner's old range outside the new one.
      if (l.start < req.start) kept.push({ ...l, end: req.start });
      if (l.end > req.end) kept.push({ ...l, start: req.end });
    }
    if (req.type === LOCK_TYPE_RDLCK || req.type === LOCK_TYPE_WRLCK) kept.push({ ...req });
    const delta = kept.length - list.length;
    if (delta > 0 && this.count + delta > this.maxRanges) return 'full';
    this.count += delta;
    if (kept.length === 0) this.byInode.delete(ino);
    else this.byInode.set(ino, kept);
    return 'ok';
  }
}

function sameOwner(a: LockRange, b: LockRange): boolean {
  return a.procId === b.procId && a.clientId === b.clientId;
}
