/**
 * POSIX byte-range locks (fcntl F_SETLK / F_SETLKW / F_GETLK semantics), kept by a file server
 * for its guest: per inode, per owner. Ranges of one owner never overlap: a new lock replaces the
 * owner's overlapping parts, unlocking splits them. Locks of different owners conflict when they
 * overlap and either is a write lock. The 9P server (Tlock, Tgetlock) and the FUSE server
 * (GETLK, SETLK, SETLKW) each keep one table per session.
 *
 * Blocking requests wait in FIFO order per inode and are retried whenever ranges on that inode are
 * unlocked; a wait that would close a cycle of owners waiting on each other is refused (EDEADLK).
 * Nothing here knows a wire format.
 */

/** Lock types, with Linux's F_RDLCK / F_WRLCK / F_UNLCK values (9P's P9_LOCK_TYPE_* are the same). */
export const F_RDLCK = 0;
export const F_WRLCK = 1;
export const F_UNLCK = 2;

export interface LockRange {
  /** First byte. */
  start: number;
  /** One past the last byte; Infinity for "to the end of file". */
  end: number;
  type: number;
  /** Who holds it: ranges of one owner never conflict with each other. */
  owner: string;
  /** The process id reported to F_GETLK. */
  pid: number;
  /** 9P's client id, reported back by Tgetlock ('' for FUSE). */
  clientId: string;
}

/** What a request looks like: the range plus its owner. */
export type LockRequest = LockRange;

export type LockResult = 'ok' | 'blocked' | 'full';

/** A blocking request waiting for its range; `done` gets 'ok', 'full' or 'cancelled'. */
interface Waiter {
  ino: bigint;
  req: LockRequest;
  tag: unknown;
  done: (r: 'ok' | 'full' | 'cancelled') => void;
}

export class LockTable {
  private readonly byInode = new Map<bigint, LockRange[]>();
  private count = 0;
  private waiters: Waiter[] = [];

  constructor(
    /** Most ranges held over all inodes; more answers 'full' (ENOLCK) instead of growing. */
    readonly maxRanges = 65536,
    /** Most requests waiting at a time; more answer 'full'. */
    readonly maxWaiters = 4096,
  ) {}

  /** Ranges held in total. */
  get size(): number {
    return this.count;
  }

  /** Requests waiting for a range. */
  get waiting(): number {
    return this.waiters.length;
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

  /** Drops every range; every waiting request is told 'cancelled'. */
  clear(): void {
    this.byInode.clear();
    this.count = 0;
    const w = this.waiters;
    this.waiters = [];
    for (const x of w) x.done('cancelled');
  }

  /** The first lock of another owner that conflicts with `req`, if any (F_GETLK). */
  conflict(ino: bigint, req: LockRequest): LockRange | undefined {
    const list = this.byInode.get(ino);
    if (list === undefined) return undefined;
    for (const l of list) {
      if (l.owner === req.owner) continue;
      if (l.start >= req.end || req.start >= l.end) continue;
      if (l.type === F_WRLCK || req.type === F_WRLCK) return l;
    }
    return undefined;
  }

  /**
   * Sets or clears a lock (F_SETLK). Answers 'ok', 'blocked' when another owner holds a
   * conflicting lock, or 'full' when the table is at its cap. Waiters on the inode are retried
   * afterwards.
   */
  set(ino: bigint, req: LockRequest): LockResult {
    const r = this.apply(ino, req);
    if (r === 'ok') this.retry(ino);
    return r;
  }

  /** Drops every range `owner` holds on `ino` (close(2) of any of its descriptors for the file). */
  unlockOwner(ino: bigint, owner: string): void {
    this.set(ino, { start: 0, end: Infinity, type: F_UNLCK, owner, pid: 0, clientId: '' });
  }

  /**
   * F_SETLKW: sets the lock now when it can ('ok' or 'full' come back at once); otherwise
   * answers 'deadlock' when waiting would close a cycle of owners, 'full' when too many wait,
   * or a Promise that settles once the lock was set, or with 'cancelled' by {@link cancel} or
   * {@link clear}. `tag` names the wait for {@link cancel}.
   */
  setWait(ino: bigint, req: LockRequest, tag: unknown): 'ok' | 'full' | 'deadlock' | Promise<'ok' | 'full' | 'cancelled'> {
    const r = this.apply(ino, req);
    if (r !== 'blocked') {
      if (r === 'ok') this.retry(ino);
      return r;
    }
    if (this.deadlock(ino, req)) return 'deadlock';
    if (this.waiters.length >= this.maxWaiters) return 'full';
    return new Promise((done) => this.waiters.push({ ino, req: { ...req }, tag, done }));
  }

  /** Ends the wait named `tag` with 'cancelled' (an interrupted F_SETLKW); false if none. */
  cancel(tag: unknown): boolean {
    const i = this.waiters.findIndex((w) => w.tag === tag);
    if (i < 0) return false;
    const [w] = this.waiters.splice(i, 1);
    w!.done('cancelled');
    return true;
  }

  private apply(ino: bigint, req: LockRequest): LockResult {
    if (req.type !== F_UNLCK && this.conflict(ino, req) !== undefined) return 'blocked';
    const list = this.byInode.get(ino) ?? [];
    const kept: LockRange[] = [];
    for (const l of list) {
      if (l.owner !== req.owner || l.start >= req.end || req.start >= l.end) {
        kept.push(l);
        continue;
      }
      // Keep the parts of the owner's old range outside the new one.
      if (l.start < req.start) kept.push({ ...l, end: req.start });
      if (l.end > req.end) kept.push({ ...l, start: req.end });
    }
    if (req.type === F_RDLCK || req.type === F_WRLCK) kept.push({ ...req });
    const delta = kept.length - list.length;
    if (delta > 0 && this.count + delta > this.maxRanges) return 'full';
    this.count += delta;
    if (kept.length === 0) this.byInode.delete(ino);
    else this.byInode.set(ino, kept);
    return 'ok';
  }

  /** Grants, in arrival order, every waiter on `ino` whose range is now free. */
  private retry(ino: bigint): void {
    if (this.waiters.length === 0) return;
    let granted = true;
    while (granted) {
      granted = false;
      for (let i = 0; i < this.waiters.length; i++) {
        const w = this.waiters[i]!;
        if (w.ino !== ino) continue;
        const r = this.apply(ino, w.req);
        if (r === 'blocked') continue;
        this.waiters.splice(i, 1);
        w.done(r);
        // A granted read lock can't free anything, but a 'full' answer leaves the table as it
        // was; either way later waiters may now fit, so look again from the front.
        granted = true;
        break;
      }
    }
  }

  /**
   * Whether `req` waiting would deadlock: the owner holding the conflicting range waits itself
   * for a range whose holder (or that holder's holder, and so on) is `req`'s owner.
   */
  private deadlock(ino: bigint, req: LockRequest): boolean {
    const seen = new Set<string>();
    let blocker = this.conflict(ino, req)?.owner;
    while (blocker !== undefined && !seen.has(blocker)) {
      if (blocker === req.owner) return true;
      seen.add(blocker);
      const w = this.waiters.find((x) => x.req.owner === blocker);
      blocker = w === undefined ? undefined : this.conflict(w.ino, w.req)?.owner;
    }
    return false;
  }
}
