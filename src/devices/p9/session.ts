/**
 * The state of one 9P session, in one place: the fid table, the lock table, the negotiated msize,
 * the xattr bytes fids hold and the requests still waiting on the backend. The message modules
 * (ops/) read and change it only through here; Tversion and a device reset start it afresh.
 */
import type { FsBackend, FsFile, FsNode } from '../../backends/fs/backend.js';
import { EBADF, EINVAL, EMFILE, ESTALE, FsError } from '../../backends/fs/errno.js';
import { LockTable } from '../locks.js';
import { NOFID } from './wire.js';

/** A fid: a reference to a file the client named, maybe opened, maybe an xattr channel. */
export class Fid {
  file: FsFile | undefined = undefined;
  /** The backend flags `file` was opened with (O_TRUNC left out), to open it again after a snapshot restore. */
  openFlags = 0;
  /** For Txattrwalk fids: the value (or name list) to read. */
  xattrValue: Uint8Array | undefined = undefined;
  /** For Txattrcreate fids: what to set on clunk. */
  xattrWrite: { name: string; flags: number; value: Uint8Array; copied: number } | undefined = undefined;
  constructor(
    public node: FsNode,
    /** The directory and name the fid was reached through (null for the root), for Trename / Tremove. */
    public parent: FsNode | null,
    public name: string,
    readonly uid: number,
  ) {}
}

export class P9Session {
  /** Negotiated msize; 0 until Tversion. */
  msize = 0;
  /** The client's fids by number. */
  readonly fids = new Map<number, Fid>();
  readonly locks: LockTable;
  /** Requests waiting on the backend, by tag (Tflush waits for them). */
  readonly inFlight = new Map<number, Promise<number>>();
  /** Bytes of xattr values held by fids. */
  xattrHeld = 0;
  /** The export root's inode, once attached: '..' there stays there. */
  rootIno: bigint | undefined;
  /**
   * Fids a snapshot restore could not find again (their file went away while the VM was saved):
   * every use answers ESTALE, and clunk lets them go.
   */
  readonly stale = new Set<number>();

  constructor(
    private readonly fs: FsBackend,
    readonly maxFids: number,
    readonly xattrBudget: number,
    maxLocks: number,
  ) {
    this.locks = new LockTable(maxLocks);
  }

  /** Drops every fid (closing open files), lock and pending request; msize goes back to 0. */
  reset(): void {
    for (const fid of this.fids.values()) this.dropFid(fid);
    this.fids.clear();
    this.locks.clear();
    this.inFlight.clear();
    this.xattrHeld = 0;
    this.msize = 0;
    this.stale.clear();
  }

  fid(n: number): Fid | undefined {
    return this.fids.get(n);
  }

  /** The errno for fid numbers that are not (all) in the table: ESTALE when one is stale, else EBADF. */
  missingFid(...nos: number[]): number {
    for (const n of nos) if (!this.fids.has(n) && this.stale.has(n)) return ESTALE;
    return EBADF;
  }

  /** Whether a new fid number may be taken; answers an errno or 0. */
  canTake(n: number): number {
    if (n === NOFID) return EINVAL;
    if (this.fids.has(n) || this.stale.has(n)) return EINVAL;
    if (this.fids.size >= this.maxFids) return EMFILE;
    return 0;
  }

  addFid(n: number, fid: Fid): void {
    this.fs.retain(fid.node);
    this.fids.set(n, fid);
  }

  /** Closes what a fid holds; answers what closing said (xattr commits can fail). */
  dropFid(fid: Fid): unknown {
    let r: unknown = undefined;
    if (fid.file !== undefined) {
      r = this.fs.close(fid.file);
      fid.file = undefined;
    }
    if (fid.xattrValue !== undefined) {
      this.xattrHeld -= fid.xattrValue.length;
      fid.xattrValue = undefined;
    }
    const xw = fid.xattrWrite;
    if (xw !== undefined) {
      this.xattrHeld -= xw.value.length;
      fid.xattrWrite = undefined;
      if (xw.copied !== xw.value.length) r = new FsError(EINVAL);
      else if (xw.value.length === 0) r = this.fs.removexattr(fid.node, xw.name);
      else r = this.fs.setxattr(fid.node, xw.name, xw.value, xw.flags);
    }
    this.fs.release(fid.node);
    return r;
  }

  /** After a rename, fids reached through the old name live under the new one. */
  renamed(od: FsNode, on: string, nd: FsNode, nn: string): void {
    for (const f of this.fids.values()) {
      if (f.parent === od && f.name === on) {
        f.parent = nd;
        f.name = nn;
      }
    }
  }

  /** After a name went away, fids reached through it can't be renamed or removed by it. */
  forgetName(dir: FsNode, name: string): void {
    for (const f of this.fids.values()) {
      if (f.parent === dir && f.name === name) {
        f.parent = null;
        f.name = '';
      }
    }
  }
}
