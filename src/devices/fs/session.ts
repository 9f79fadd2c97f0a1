/**
 * The state of one FUSE session, in one place: the node-id table (inodes the guest kernel holds,
 * each with the lookup count FUSE defines: every entry reply adds one, FORGET takes them back),
 * the file-handle table (open files and directories), the POSIX locks the server keeps, and what
 * INIT agreed. Both tables are
 * capped, ids are never reused, and the root (node id 1) is never forgotten. The message modules
 * (ops/) read and change it only through here; INIT, DESTROY and a device reset start it afresh.
 */
import type { Async, FsBackend, FsFile, FsNode, FsResult } from '../../backends/fs/backend.js';
import { EBADF, EISDIR, ENOTDIR } from '../../backends/fs/errno.js';
import { LockTable } from '../locks.js';
import { FUSE_ROOT_ID } from './fuse.js';

/** An inode the guest holds by node id. */
export class Inode {
  nlookup = 0;
  constructor(
    readonly id: bigint,
    readonly node: FsNode,
  ) {}
}

/** An open file or directory. */
export class Handle {
  constructor(
    readonly file: FsFile,
    readonly dir: boolean,
    /** The backend flags it was opened with (O_TRUNC left out), to open it again after a snapshot restore. */
    readonly flags = 0,
  ) {}
}

export class FuseSession {
  /** Whether FUSE_INIT was answered (and no DESTROY since). */
  initialized = false;
  /** The flags agreed at INIT. */
  flags = 0;
  /** The protocol minor agreed at INIT. */
  minor = 0;
  readonly nodes = new Map<bigint, Inode>();
  private readonly byNode = new Map<FsNode, Inode>();
  private nextId = 2n;
  readonly handles = new Map<bigint, Handle>();
  private nextFh = 1n;
  /** POSIX locks, when INIT agreed POSIX_LOCKS (see ops/locks.ts). */
  readonly locks: LockTable;

  constructor(
    private readonly fs: FsBackend,
    readonly maxNodes: number,
    readonly maxHandles: number,
    maxLocks: number,
  ) {
    this.locks = new LockTable(maxLocks);
  }

  /** Drops every node id, handle (closing files) and lock, and what INIT agreed; waiting SETLKWs end. */
  reset(): void {
    this.locks.clear();
    for (const h of this.handles.values()) this.fs.close(h.file);
    this.handles.clear();
    for (const n of this.nodes.values()) this.fs.release(n.node);
    this.nodes.clear();
    this.byNode.clear();
    this.initialized = false;
    this.flags = 0;
    this.minor = 0;
  }

  /** Makes `root` node id 1, with one lookup that is never given back. */
  addRoot(root: FsNode): void {
    const ino = new Inode(FUSE_ROOT_ID, root);
    ino.nlookup = 1;
    this.nodes.set(FUSE_ROOT_ID, ino);
    this.byNode.set(root, ino);
    this.fs.retain(root);
  }

  node(id: bigint): FsNode | undefined {
    return this.nodes.get(id)?.node;
  }

  /** Takes one lookup reference on `node` for the guest; answers its id, or 0n when full. */
  remember(node: FsNode): bigint {
    let n = this.byNode.get(node);
    if (n === undefined) {
      if (this.nodes.size >= this.maxNodes) return 0n;
      n = new Inode(this.nextId++, node);
      this.nodes.set(n.id, n);
      this.byNode.set(node, n);
      this.fs.retain(node);
    }
    n.nlookup++;
    return n.id;
  }

  /** Gives back `count` lookups of a node id; at 0 the id is gone. Unknown ids change nothing. */
  drop(id: bigint, count: number): void {
    if (id === FUSE_ROOT_ID) return;
    const n = this.nodes.get(id);
    if (n === undefined) return;
    n.nlookup -= Math.min(count, n.nlookup);
    if (n.nlookup > 0) return;
    this.nodes.delete(id);
    this.byNode.delete(n.node);
    this.fs.release(n.node);
  }

  /** The handle `fh` of the right kind, or the errno to answer. */
  handleOf(fh: bigint, dir: boolean): Handle | number {
    const h = this.handles.get(fh);
    if (h === undefined) return EBADF;
    if (h.dir !== dir) return dir ? ENOTDIR : EISDIR;
    return h;
  }

  addHandle(file: FsFile, dir: boolean, flags = 0): bigint {
    const fh = this.nextFh++;
    this.handles.set(fh, new Handle(file, dir, flags));
    return fh;
  }

  /** Snapshots: the next node id and file handle to give out (ids are never reused). */
  get counters(): { nextId: bigint; nextFh: bigint } {
    return { nextId: this.nextId, nextFh: this.nextFh };
  }

  /** Snapshot restore: a node id as the guest holds it, with its lookup count. */
  restoreNode(id: bigint, node: FsNode, nlookup: number): void {
    const n = new Inode(id, node);
    n.nlookup = nlookup;
    this.nodes.set(id, n);
    this.byNode.set(node, n);
    this.fs.retain(node);
  }

  /** Snapshot restore: an open handle under the number the guest holds, and the counters. */
  restoreHandle(fh: bigint, file: FsFile, dir: boolean, flags: number): void {
    this.handles.set(fh, new Handle(file, dir, flags));
  }

  restoreCounters(nextId: bigint, nextFh: bigint): void {
    this.nextId = nextId;
    this.nextFh = nextFh;
  }

  /** An open file of `node` through any handle (a rare path: it looks at every handle). */
  openFileOf(node: FsNode): FsFile | undefined {
    for (const h of this.handles.values()) if (h.file.node === node) return h.file;
    return undefined;
  }

  /** Forgets a handle and closes its file; an unknown handle changes nothing. */
  closeHandle(fh: bigint): Async<FsResult<void>> {
    const h = this.handles.get(fh);
    if (h === undefined) return undefined;
    this.handles.delete(fh);
    return this.fs.close(h.file);
  }
}
