/**
 * `DirectoryHandleFs`: an FsBackend over a FileSystemDirectoryHandle — a folder of the Origin
 * Private File System, or one the visitor picked with `showDirectoryPicker()` — so a 9p share
 * keeps what the guest writes across reloads, and the page can put files in beside it.
 *
 * The host holds only files and directories with names and bytes. Everything else the guest sees
 * — modes, owners, device numbers, FIFOs, sockets, device nodes, symlinks, nanosecond times,
 * xattrs — is the mapped metadata model of HostFs (src/backends/fs/mapped-meta.ts), with records
 * kept by path beside the entries (src/backends/fs/path-meta.ts). A symlink is a file holding its
 * target; a FIFO, socket or device node is an empty file; their records say what they are. A node
 * the guest makes with what the host shows anyway (root's files 0644, directories 0755) gets no
 * record, so a share the guest only writes plain files into stays plain.
 *
 * Data: in OPFS each open file is one FileSystemSyncAccessHandle (dedicated workers only), and
 * reads and writes answer at once. Elsewhere (a picked folder) reads go through `getFile()` and
 * writes through a `createWritable({ keepExistingData: true })` stream kept while the file is
 * written; the stream is committed (the browser swaps it in atomically) before anything reads the
 * file again, on fsync and on the last close. Every other operation is a Promise, one at a time.
 *
 * What the API can't do, and what is done instead:
 * - No inode numbers: the backend numbers nodes as it meets them; a node keeps its number while
 *   the share is mounted. No hard links: link answers EPERM, as on FAT.
 * - Rename of a file is `FileSystemFileHandle.move()`, which replaces an existing target file
 *   atomically. A directory has no move(): renaming one makes the new directory and moves each
 *   file into it (no data is copied), then removes the old one. That is not atomic: a page killed
 *   in the middle leaves some entries under each name, none lost. A rename over an empty
 *   directory removes it first.
 * - A file can't be removed while a sync access handle is open on it, and unlink must leave an
 *   open file readable: an open file that is unlinked is moved to a trash directory and removed
 *   at its last close (or when the share is opened next).
 */
import {
  type Async,
  FsBackend,
  type FsCreds,
  type FsDirEntry,
  type FsFile,
  type FsNode,
  type FsReply,
  type FsResult,
  type FsSetAttr,
  type FsStat,
  type FsStatFs,
  type FsTime,
  O_ACCMODE,
  O_APPEND,
  O_RDONLY,
  O_TRUNC,
  O_WRONLY,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  nextVersion,
} from '../backends/fs/backend.js';
import * as E from '../backends/fs/errno.js';
import { FsError, fsError } from '../backends/fs/errno.js';
import { type HostFacts, META_MAX_RECORD, type MetaRecord, newRecord, recordSetXattr, timeNs } from '../backends/fs/mapped-meta.js';
import { PATH_META_DIR, type PathMetaFiles, PathMetaStore, pathRecordFromHost, pathStat } from '../backends/fs/path-meta.js';
import { systemNow } from '../backends/fs/backend.js';
import { badEntryName } from '../backends/fs/names.js';

// ---- the part of the File System API used here (structural, so tests can stand in for it) ------

export interface FileLike {
  readonly size: number;
  readonly lastModified: number;
  slice(start?: number, end?: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

export interface WritableLike {
  write(data: { type: 'write'; position: number; data: Uint8Array } | Uint8Array): Promise<void>;
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

export interface SyncHandleLike {
  read(buffer: Uint8Array, opts: { at: number }): number;
  write(buffer: Uint8Array, opts: { at: number }): number;
  truncate(size: number): void;
  getSize(): number;
  flush(): void;
  close(): void;
}

export interface FileHandleLike {
  readonly kind: 'file';
  readonly name: string;
  getFile(): Promise<FileLike>;
  createWritable(opts?: { keepExistingData?: boolean }): Promise<WritableLike>;
  createSyncAccessHandle?(): Promise<SyncHandleLike>;
  move?(dir: DirHandleLike, name: string): Promise<void>;
}

export interface DirHandleLike {
  readonly kind: 'directory';
  readonly name: string;
  getFileHandle(name: string, opts?: { create?: boolean }): Promise<FileHandleLike>;
  getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<DirHandleLike>;
  removeEntry(name: string, opts?: { recursive?: boolean }): Promise<void>;
  entries(): AsyncIterable<[string, FileHandleLike | DirHandleLike]>;
}

export interface DirectoryHandleFsOptions {
  /** Refuse every change with EROFS. */
  readOnly?: boolean;
  /**
   * Use sync access handles for file data (OPFS in a dedicated worker). Default: when the first
   * file opened offers them; a folder that refuses them falls back to writable streams.
   */
  syncHandles?: boolean;
  /** Space for statfs (navigator.storage.estimate() by default, where there is one). */
  estimate?: () => Promise<{ quota?: number; usage?: number }>;
}

// ---- nodes and open files --------------------------------------------------------------------

/** Where one open file's bytes go. */
interface Io {
  size(): Async<number>;
  read(at: number, dst: Uint8Array): Async<number>;
  write(at: number, src: Uint8Array): Async<number>;
  truncate(size: number): Async<void>;
  /** Makes every write so far durable (and, for a stream, visible). */
  flush(): Async<void>;
  close(): Async<void>;
}

class SyncIo implements Io {
  constructor(private readonly h: SyncHandleLike) {}
  size(): number {
    return this.h.getSize();
  }
  read(at: number, dst: Uint8Array): number {
    return this.h.read(dst, { at });
  }
  write(at: number, src: Uint8Array): number {
    return this.h.write(src, { at });
  }
  truncate(size: number): void {
    this.h.truncate(size);
  }
  flush(): void {
    this.h.flush();
  }
  close(): void {
    this.h.close();
  }
}

/**
 * Writes through a kept writable stream, committed before the file is read again. A stream write
 * is a round trip to the browser's storage process (about a millisecond), and a guest that writes
 * line by line sends one 9P write per line, so writes that follow each other are gathered here
 * (up to 1 MiB) and go to the stream as one. Nothing is lost by that: a stream's bytes reach the
 * file only when it is committed anyway, and an error then (the quota, say) is the answer to the
 * fsync or close that commits it.
 */
class StreamIo implements Io {
  private w: WritableLike | undefined;
  private length = 0;
  private pending: Uint8Array = new Uint8Array(0);
  private pendingAt = 0;
  private pendingLength = 0;
  constructor(readonly handle: FileHandleLike) {}

  private async stream(): Promise<WritableLike> {
    if (this.w === undefined) {
      this.length = (await this.handle.getFile()).size;
      this.w = await this.handle.createWritable({ keepExistingData: true });
    }
    return this.w;
  }
  /** Writes the gathered bytes to the stream. */
  private async drain(): Promise<void> {
    if (this.pendingLength === 0) return;
    const data = this.pending.slice(0, this.pendingLength);
    this.pendingLength = 0;
    await this.w!.write({ type: 'write', position: this.pendingAt, data });
  }
  async size(): Promise<number> {
    return this.w !== undefined ? this.length : (await this.handle.getFile()).size;
  }
  async read(at: number, dst: Uint8Array): Promise<number> {
    await this.flush();
    const f = await this.handle.getFile();
    const end = Math.min(f.size, at + dst.length);
    if (end <= at) return 0;
    const got = new Uint8Array(await f.slice(at, end).arrayBuffer());
    dst.set(got);
    return got.length;
  }
  async write(at: number, src: Uint8Array): Promise<number> {
    await this.stream();
    if (this.pendingLength > 0 && (at !== this.pendingAt + this.pendingLength || this.pendingLength + src.length > StreamIo.GATHER)) await this.drain();
    if (src.length >= StreamIo.GATHER) {
      await this.w!.write({ type: 'write', position: at, data: src.slice() });
    } else {
      if (this.pendingLength === 0) this.pendingAt = at;
      if (this.pending.length < this.pendingLength + src.length) {
        const grown = new Uint8Array(Math.min(StreamIo.GATHER, Math.max(64 << 10, 2 * (this.pendingLength + src.length))));
        grown.set(this.pending.subarray(0, this.pendingLength));
        this.pending = grown;
      }
      this.pending.set(src, this.pendingLength);
      this.pendingLength += src.length;
    }
    this.length = Math.max(this.length, at + src.length);
    return src.length;
  }
  async truncate(size: number): Promise<void> {
    const w = await this.stream();
    await this.drain();
    await w.truncate(size);
    this.length = size;
  }
  async flush(): Promise<void> {
    const w = this.w;
    if (w === undefined) return;
    try {
      await this.drain();
    } catch (err) {
      this.w = undefined;
      await w.abort().catch(() => {});
      throw err;
    }
    this.w = undefined;
    await w.close();
  }
  close(): Promise<void> {
    return this.flush();
  }
  static readonly GATHER = 1 << 20;
}

type Kind = 'file' | 'directory';

class DirNode implements FsNode {
  version = 1;
  /**
   * Known entries of a directory, so a name keeps its node (and number) while something holds
   * it. Entries nothing holds are trimmed (see DirectoryHandleFs.settle).
   */
  children: Map<string, DirNode> | undefined;
  /** Fids and FUSE node ids on this node (retain/release). */
  refs = 0;
  /** A directory's open handles whose listing was taken: they learn of names removed since. */
  listings: Set<DirFile> | undefined;
  /** Removed from its directory (unlinked, replaced, or found missing on the host). */
  detached = false;
  /** The record, once read: null when there is none. */
  rec: MetaRecord | null | undefined;
  /** Open files on this node, and the one Io they share. */
  opens = 0;
  io: Io | undefined;
  /** Last write while open (ms): the host's lastModified may lag behind an open handle. */
  writtenAt: number | undefined;
  /** Unlinked while open: the node lives on in the trash under this name. */
  trashName: string | undefined;
  /** A directory's own times (the API keeps none): set when its entries change. */
  dirTime: FsTime;

  constructor(
    public parent: DirNode | null,
    public name: string,
    readonly ino: bigint,
    public mode: number,
    public handle: FileHandleLike | DirHandleLike,
    now: FsTime,
  ) {
    this.dirTime = now;
  }

  get kind(): Kind {
    return this.handle.kind;
  }

  get gone(): boolean {
    return this.trashName !== undefined || this.detached;
  }

  /** Whether something holds the node: a fid or node id, an open file, a known entry, an open listing. */
  get held(): boolean {
    return this.refs > 0 || this.opens > 0 || (this.children?.size ?? 0) > 0 || (this.listings?.size ?? 0) > 0;
  }
}

class DirFile implements FsFile {
  /** A directory listing, taken when it is read from the start: cookies index into it. */
  listing: FsDirEntry[] | undefined;
  /** Names removed from the directory since the listing was taken. */
  removed: Set<string> | undefined;
  constructor(
    readonly node: DirNode,
    readonly flags: number,
  ) {}
}

// ---- errors ------------------------------------------------------------------------------------

const e = (errno: number): FsError => fsError(errno);

/** The errno for what the File System API threw. */
export function handleErrno(err: unknown, notDir = E.ENOTDIR): number {
  const name = (err as { name?: unknown } | null)?.name;
  switch (name) {
    case 'NotFoundError':
      return E.ENOENT;
    case 'TypeMismatchError':
      return notDir;
    case 'InvalidModificationError':
      return E.ENOTEMPTY;
    case 'NoModificationAllowedError':
      return E.EBUSY;
    case 'QuotaExceededError':
      return E.ENOSPC;
    case 'NotAllowedError':
    case 'SecurityError':
      return E.EACCES;
    case 'TypeError':
      return E.EINVAL; // "Name is not allowed" (a backslash, say)
    default:
      return E.EIO;
  }
}

const fail = (err: unknown): FsError => {
  if (err instanceof FsError) return err;
  return e(handleErrno(err));
};

const PATH_MAX = 4096;
/** Known nodes nothing holds, kept so that a name met again keeps its number; past this the oldest go. */
export const DIR_FS_LOOSE_NODES = 1024;
const te = new TextEncoder();
const td = new TextDecoder();

/** Private files at the root: a directory no entry can be named, inside the root's record directory. */
const PRIVATE = PATH_META_DIR;
const ROOT_RECORD = 'root';
/** The place of the root's own record: the private directory, where no entry's record can be. */
const ROOT_PLACE = Symbol('the root record place');
type RecordPlace = DirNode | typeof ROOT_PLACE;
const TRASH = 'trash';

function msTime(ms: number): FsTime {
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.round((ms - sec * 1000) * 1_000_000) % 1_000_000_000 };
}

// ---- the backend ---------------------------------------------------------------------------------

export class DirectoryHandleFs extends FsBackend<DirNode, DirFile> {
  readonly rootNode: DirNode;
  private readonly store: PathMetaStore<RecordPlace>;
  private nextIno = 2n;
  private chain: Promise<unknown> = Promise.resolve();
  private sync: boolean | undefined;
  private trashSerial = 0;
  /** Nodes in the tree that nothing holds, oldest first (see settle). */
  private readonly loose = new Set<DirNode>();
  private readonly ro: boolean;
  private readonly estimate: (() => Promise<{ quota?: number; usage?: number }>) | undefined;

  /** A share over `root`; `open()` also empties the trash a killed page left behind. */
  constructor(root: DirHandleLike, opts: DirectoryHandleFsOptions = {}) {
    super();
    this.ro = opts.readOnly ?? false;
    this.sync = opts.syncHandles;
    this.estimate = opts.estimate;
    this.rootNode = new DirNode(null, '', 1n, S_IFDIR | 0o755, root, systemNow());
    this.rootNode.children = new Map();
    this.store = new PathMetaStore<RecordPlace>(this.metaFiles());
  }

  /** Opens a share over `root`: reads the root's record and empties the trash a killed page left. */
  static async open(root: DirHandleLike, opts: DirectoryHandleFsOptions = {}): Promise<DirectoryHandleFs> {
    if (root?.kind !== 'directory') throw new TypeError('DirectoryHandleFs needs a directory handle');
    const fs = new DirectoryHandleFs(root, opts);
    if (!fs.ro) {
      try {
        const priv = await (await root.getDirectoryHandle(PATH_META_DIR)).getDirectoryHandle(PRIVATE);
        await priv.removeEntry(TRASH, { recursive: true });
      } catch {
        // no trash: nothing to empty
      }
    }
    return fs;
  }

  override get readOnly(): boolean {
    return this.ro;
  }

  override get asynchronous(): boolean {
    return true;
  }

  /** Runs host calls one operation at a time (two guest requests never interleave their steps). */
  private op<T>(fn: () => Promise<FsResult<T>>): Promise<FsResult<T>> {
    const run = this.chain.then(async () => {
      try {
        return await fn();
      } catch (err) {
        return fail(err);
      }
    });
    this.chain = run;
    return run;
  }

  // ---- records ---------------------------------------------------------------------------------

  /** Where a node's record is kept: under its name in its directory, the root's as ROOT_RECORD in ROOT_PLACE. */
  private recordKey(node: DirNode): [RecordPlace, string] {
    return node.parent === null ? [ROOT_PLACE, ROOT_RECORD] : [node.parent, node.name];
  }

  /** Records of a directory's entries are in `dir/.storvm/<name>`; ROOT_PLACE's in `/.storvm/.storvm/`. */
  private metaFiles(): PathMetaFiles<RecordPlace> {
    const where = async (place: RecordPlace, name: string, create: boolean): Promise<[DirHandleLike, string]> => {
      const dir = place === ROOT_PLACE ? this.rootNode : place;
      const meta = await (dir.handle as DirHandleLike).getDirectoryHandle(PATH_META_DIR, { create });
      return [place === ROOT_PLACE ? await meta.getDirectoryHandle(PRIVATE, { create }) : meta, name];
    };
    return {
      read: async (dir, name) => {
        try {
          const [d, n] = await where(dir, name, false);
          const f = await (await d.getFileHandle(n)).getFile();
          if (f.size > META_MAX_RECORD) return undefined;
          return new Uint8Array(await f.slice(0, f.size).arrayBuffer());
        } catch {
          return undefined;
        }
      },
      write: async (dir, name, data) => {
        try {
          const [d, n] = await where(dir, name, true);
          const w = await (await d.getFileHandle(n, { create: true })).createWritable();
          try {
            await w.write(data);
          } catch (err) {
            await w.abort();
            throw err;
          }
          await w.close(); // the browser swaps the new bytes in whole
          return undefined;
        } catch (err) {
          return fail(err);
        }
      },
      remove: async (dir, name) => {
        try {
          const [d, n] = await where(dir, name, false);
          await d.removeEntry(n);
        } catch {
          // no record: nothing to forget
        }
      },
    };
  }

  /** The record of a node, read once. */
  private async record(node: DirNode): Promise<MetaRecord | undefined> {
    if (node.rec === undefined) {
      node.rec = (await this.store.get(...this.recordKey(node))) ?? null;
    }
    return node.rec ?? undefined;
  }

  /** Stores a node's record (kept in memory only for a node that was unlinked). */
  private async putRecord(node: DirNode, host: HostFacts, rec: MetaRecord): Promise<FsError | undefined> {
    if (!node.gone) {
      const r = await this.store.put(...this.recordKey(node), host, rec);
      if (r !== undefined) return r;
    }
    node.rec = rec;
    node.mode = pathStat(host, rec).mode;
    return undefined;
  }

  /** What the host says about a node, in the model's terms. */
  private async facts(node: DirNode): Promise<HostFacts> {
    let mode: number;
    let size = 0;
    let t: FsTime;
    if (node.kind === 'directory') {
      // The API keeps no times for a directory. The host's are a fixed 0, so a time the guest set
      // (tar does) holds across mounts; `shown` puts the directory's in-memory time in their place.
      mode = S_IFDIR | 0o755;
      t = { sec: 0, nsec: 0 };
    } else {
      mode = S_IFREG | 0o644;
      const h = node.handle as FileHandleLike;
      if (node.io !== undefined) {
        size = await node.io.size();
        t = msTime(node.writtenAt ?? (await h.getFile()).lastModified);
      } else {
        const f = await h.getFile();
        size = f.size;
        t = msTime(f.lastModified);
      }
    }
    return {
      ino: node.ino,
      mode,
      uid: 0,
      gid: 0,
      nlink: node.kind === 'directory' ? 2 : node.gone ? 0 : 1,
      rdev: 0,
      size,
      blksize: 4096,
      blocks: Math.ceil(size / 512),
      atime: t,
      mtime: t,
      ctime: t,
      btime: 0n,
    };
  }

  private touchDir(dir: DirNode): void {
    dir.dirTime = systemNow();
    dir.version = nextVersion(dir.version);
  }

  // ---- the tree --------------------------------------------------------------------------------

  /** A name the guest may use in `dir`. */
  private check(name: string): FsError | undefined {
    if (badEntryName(name)) return e(E.EINVAL);
    if (name === PATH_META_DIR) return e(E.EPERM);
    return undefined;
  }

  /** The host entry `name` in `dir`, or undefined when there is none. */
  private async entry(dir: DirNode, name: string): Promise<FileHandleLike | DirHandleLike | undefined> {
    const d = dir.handle as DirHandleLike;
    const first = dir.children?.get(name)?.kind ?? 'file';
    for (const kind of first === 'file' ? (['file', 'directory'] as const) : (['directory', 'file'] as const)) {
      try {
        return kind === 'file' ? await d.getFileHandle(name) : await d.getDirectoryHandle(name);
      } catch (err) {
        const n = (err as { name?: string }).name;
        if (n !== 'TypeMismatchError' && n !== 'NotFoundError') throw err;
        if (n === 'NotFoundError') return undefined;
      }
    }
    return undefined;
  }

  /** The node for a host entry: the known one when the entry is still of its kind. */
  private adopt(dir: DirNode, name: string, h: FileHandleLike | DirHandleLike): DirNode {
    const map = (dir.children ??= new Map());
    const known = map.get(name);
    if (known !== undefined && known.kind === h.kind) {
      // Keep the known handle: it follows moves made through it.
      this.settle(known);
      return known;
    }
    const n = new DirNode(dir, name, this.nextIno++, h.kind === 'directory' ? S_IFDIR | 0o755 : S_IFREG | 0o644, h, systemNow());
    if (known !== undefined) this.detach(dir, name);
    map.set(name, n);
    this.settle(n);
    return n;
  }

  /** `name` left `dir`: its node is gone, and open listings of `dir` leave it out. */
  private detach(dir: DirNode, name: string): void {
    const n = dir.children?.get(name);
    if (n !== undefined) {
      n.detached = true;
      dir.children!.delete(name);
      this.loose.delete(n);
    }
    for (const f of dir.listings ?? []) (f.removed ??= new Set()).add(name);
    this.settle(dir);
  }

  /**
   * Keeps the node table bounded. A node nothing holds (no fid or node id, no open file, no
   * known entries, no open listing) stays known only among the newest DIR_FS_LOOSE_NODES such
   * nodes; older ones leave their directory's table, which may leave that directory unheld in
   * turn. A name met again after that gets a new node (and number), as after a remount; nothing
   * the guest holds changes.
   */
  private settle(n: DirNode): void {
    if (n.parent === null || n.detached) return;
    this.loose.delete(n);
    if (n.held) return;
    this.loose.add(n);
    for (const old of this.loose) {
      if (this.loose.size <= DIR_FS_LOOSE_NODES) break;
      this.loose.delete(old);
      if (old.held || old.parent === null) continue;
      const map = old.parent.children;
      if (map?.get(old.name) === old) {
        map.delete(old.name);
        if (old.parent !== n) this.settle(old.parent);
      }
    }
  }

  /** Nodes the backend knows now (the root and every table entry): what trimming bounds. */
  get knownNodes(): number {
    let count = 0;
    const walk = (d: DirNode): void => {
      count++;
      for (const c of d.children?.values() ?? []) walk(c);
    };
    walk(this.rootNode);
    return count;
  }

  override retain(node: DirNode): void {
    node.refs++;
    this.loose.delete(node);
    // Put the node, and its directories, back in the tree if they were trimmed while it was
    // being looked up, so renames and unlinks reach it.
    for (let n = node; n.parent !== null && !n.gone; n = n.parent) {
      const map = (n.parent.children ??= new Map());
      const cur = map.get(n.name);
      if (cur === n) continue;
      if (cur !== undefined && cur.held) break;
      if (cur !== undefined) this.loose.delete(cur);
      map.set(n.name, n);
      this.loose.delete(n.parent);
    }
  }

  override release(node: DirNode): void {
    if (node.refs > 0) node.refs--;
    this.settle(node);
  }

  private async child(dir: DirNode, name: string): Promise<FsResult<DirNode>> {
    const h = await this.entry(dir, name);
    if (h === undefined) {
      if (dir.children?.has(name)) this.detach(dir, name);
      return e(E.ENOENT);
    }
    const n = this.adopt(dir, name, h);
    const rec = await this.record(n);
    n.mode = pathStat(await this.facts(n), rec).mode;
    return n;
  }

  private isDir(n: DirNode): boolean {
    return n.kind === 'directory';
  }

  override root(): DirNode {
    return this.rootNode;
  }

  /** Snapshots: the names from the root to `node`, so a restored session finds it again by path. */
  override nodePath(node: DirNode): string[] | undefined {
    const names: string[] = [];
    for (let n = node; n.parent !== null; n = n.parent) {
      if (n.gone) return undefined;
      names.push(n.name);
    }
    return names.reverse();
  }

  override lookup(dir: DirNode, name: string): FsReply<DirNode> {
    if (name === '.') return dir;
    if (name === '..') return dir.parent ?? dir;
    if (!this.isDir(dir)) return e(E.ENOTDIR);
    const bad = this.check(name);
    if (bad !== undefined) return bad.errno === E.EPERM ? e(E.ENOENT) : bad;
    return this.op(() => this.child(dir, name));
  }

  override getattr(node: DirNode): FsReply<FsStat> {
    return this.op(async () => {
      const st = this.shown(node, pathStat(await this.facts(node), await this.record(node)));
      node.mode = st.mode;
      return st;
    });
  }

  /** A directory's times where the host has none: the last change seen while mounted. */
  private shown(node: DirNode, st: FsStat): FsStat {
    if (node.kind !== 'directory') return st;
    const zero = (t: FsTime) => t.sec === 0 && t.nsec === 0;
    if (zero(st.atime)) st.atime = node.dirTime;
    if (zero(st.mtime)) st.mtime = node.dirTime;
    if (zero(st.ctime)) st.ctime = node.dirTime;
    return st;
  }

  override setattr(node: DirNode, a: FsSetAttr): FsReply<void> {
    if (this.ro) return e(E.EROFS);
    return this.op(async () => {
      const host = await this.facts(node);
      const before = this.shown(node, pathStat(host, await this.record(node)));
      const type = before.mode & S_IFMT;
      if (a.size !== undefined) {
        if (type === S_IFDIR) return e(E.EISDIR);
        if (type !== S_IFREG) return e(E.EINVAL);
        const r = await this.withIo(node, (io) => io.truncate(a.size!));
        if (r !== undefined) return r;
        node.version = nextVersion(node.version);
      }
      const times = a.atime !== undefined || a.mtime !== undefined;
      if (a.mode === undefined && a.uid === undefined && a.gid === undefined && !a.ctime && !times) return undefined;
      if (times && node.io !== undefined) {
        // A set time holds while the host shows the time it had then: make that the host's own
        // (writes committed, not the time of the last write as noted while open).
        await node.io.flush();
        node.writtenAt = undefined;
      }
      const after = a.size !== undefined || times ? await this.facts(node) : host;
      const rec = pathRecordFromHost(after, node.rec ?? undefined);
      if (a.mode !== undefined) rec.mode = (rec.mode & S_IFMT) | (a.mode & 0o7777);
      if (a.uid !== undefined) rec.uid = a.uid >>> 0;
      if (a.gid !== undefined) rec.gid = a.gid >>> 0;
      const now = systemNow();
      rec.ctime = now;
      if (times) {
        // The host's times can't be set: the record keeps the guest's for as long as the host
        // still shows the time it had when they were set.
        const want = (v: FsTime | 'now' | undefined, old: FsTime): FsTime => (v === undefined ? old : v === 'now' ? now : v);
        rec.atime = { host: timeNs(after.atime), t: want(a.atime, before.atime) };
        rec.mtime = { host: timeNs(after.mtime), t: want(a.mtime, before.mtime) };
      }
      return this.putRecord(node, after, rec);
    });
  }

  /** Runs `fn` on the node's open Io, or on one opened for the call. */
  private async withIo(node: DirNode, fn: (io: Io) => Async<void>): Promise<FsError | undefined> {
    const had = node.io !== undefined;
    const io = node.io ?? (await this.openIo(node.handle as FileHandleLike));
    try {
      await fn(io);
      if (!had) await io.close();
    } catch (err) {
      if (!had) await Promise.resolve(io.close()).catch(() => {});
      return fail(err);
    }
    return undefined;
  }

  /** A sync access handle where the folder offers one (retrying while a stopped worker lets go), else a stream. */
  private async openIo(h: FileHandleLike): Promise<Io> {
    if (this.sync !== false && typeof h.createSyncAccessHandle === 'function') {
      for (let attempt = 0; ; attempt++) {
        try {
          const io = new SyncIo(await h.createSyncAccessHandle());
          this.sync = true;
          return io;
        } catch (err) {
          const n = (err as { name?: string }).name;
          if (n === 'NoModificationAllowedError' && attempt < 20) {
            await new Promise((r) => setTimeout(r, 50));
            continue;
          }
          if (this.sync === true || n === 'NoModificationAllowedError' || n === 'QuotaExceededError') throw err;
          this.sync = false; // not OPFS, or not a dedicated worker: streams from now on
          break;
        }
      }
    }
    return new StreamIo(h);
  }

  override open(node: DirNode, flags: number): FsReply<DirFile> {
    const acc = flags & O_ACCMODE;
    if (this.isDir(node)) {
      if (acc !== O_RDONLY) return e(E.EISDIR);
      return new DirFile(node, flags);
    }
    if (node.gone && node.opens === 0) return e(E.ENOENT);
    if (this.ro && (acc !== O_RDONLY || (flags & O_TRUNC) !== 0)) return e(E.EROFS);
    return this.op(async () => {
      const type = pathStat(await this.facts(node), await this.record(node)).mode & S_IFMT;
      // Never open what the guest sees as a symlink, FIFO, socket or device node.
      if (type !== S_IFREG) return e(type === S_IFLNK ? E.ELOOP : E.EACCES);
      return this.openFile(node, flags);
    });
  }

  private async openFile(node: DirNode, flags: number): Promise<FsResult<DirFile>> {
    if (node.io === undefined) node.io = await this.openIo(node.handle as FileHandleLike);
    node.opens++;
    if ((flags & O_TRUNC) !== 0 && (flags & O_ACCMODE) !== O_RDONLY) {
      try {
        await node.io.truncate(0);
        node.writtenAt = Date.now();
        node.version = nextVersion(node.version);
      } catch (err) {
        await this.closeNode(node);
        return fail(err);
      }
    }
    return new DirFile(node, flags);
  }

  /** Makes a file `name` in `dir` and stores its record; undoes the file when the record fails. */
  private async make(dir: DirNode, name: string, mode: number, creds: FsCreds, rdev: number, content?: Uint8Array): Promise<FsResult<DirNode>> {
    if ((await this.entry(dir, name)) !== undefined) return e(E.EEXIST);
    const d = dir.handle as DirHandleLike;
    const dirMade = (mode & S_IFMT) === S_IFDIR;
    const h = dirMade ? await d.getDirectoryHandle(name, { create: true }) : await d.getFileHandle(name, { create: true });
    const undo = async () => {
      await d.removeEntry(name, { recursive: true }).catch(() => {});
      this.detach(dir, name);
    };
    try {
      if (content !== undefined) {
        const w = await (h as FileHandleLike).createWritable();
        await w.write(content);
        await w.close();
      }
      const n = this.adopt(dir, name, h);
      n.rec = null;
      const host = await this.facts(n);
      const r = await this.putRecord(n, host, newRecord(host, mode, creds, rdev, systemNow()));
      if (r !== undefined) {
        await undo();
        return r;
      }
      this.touchDir(dir);
      return n;
    } catch (err) {
      await undo();
      return fail(err);
    }
  }

  private writable(dir: DirNode, name: string): FsError | undefined {
    if (this.ro) return e(E.EROFS);
    if (!this.isDir(dir)) return e(E.ENOTDIR);
    if (dir.gone) return e(E.ENOENT);
    return this.check(name);
  }

  override create(dir: DirNode, name: string, flags: number, mode: number, creds: FsCreds): FsReply<DirFile> {
    const bad = this.writable(dir, name);
    if (bad !== undefined) return bad;
    return this.op(async () => {
      const n = await this.make(dir, name, S_IFREG | (mode & 0o7777), creds, 0);
      if (n instanceof FsError) return n;
      return this.openFile(n, flags & ~O_TRUNC);
    });
  }

  override read(file: DirFile, offset: number, dst: Uint8Array): FsReply<number> {
    const io = file.node.io;
    if (io === undefined) return e(E.EISDIR);
    if ((file.flags & O_ACCMODE) === O_WRONLY) return e(E.EBADF);
    if (io instanceof SyncIo) {
      try {
        return io.read(offset, dst);
      } catch (err) {
        return fail(err);
      }
    }
    return this.op(async () => io.read(offset, dst));
  }

  override write(file: DirFile, offset: number, src: Uint8Array): FsReply<number> {
    const node = file.node;
    const io = node.io;
    if (io === undefined) return e(E.EISDIR);
    if ((file.flags & O_ACCMODE) === O_RDONLY) return e(E.EBADF);
    const done = (n: number): number => {
      node.writtenAt = Date.now();
      node.version = nextVersion(node.version);
      return n;
    };
    if (io instanceof SyncIo) {
      try {
        const at = (file.flags & O_APPEND) !== 0 ? io.size() : offset;
        const n = io.write(at, src);
        if (n < src.length) return n > 0 ? done(n) : e(E.ENOSPC);
        return done(n);
      } catch (err) {
        return fail(err);
      }
    }
    return this.op(async () => done(await io.write((file.flags & O_APPEND) !== 0 ? await io.size() : offset, src)));
  }

  override fsync(file: DirFile): FsReply<void> {
    const io = file.node.io;
    if (io === undefined) return undefined;
    return this.op(async () => {
      await io.flush();
      return undefined;
    });
  }

  override close(file: DirFile): FsReply<void> {
    if (this.isDir(file.node)) {
      if (file.node.listings?.delete(file)) this.settle(file.node);
      return undefined;
    }
    if (file.node.io === undefined) return undefined;
    return this.op(() => this.closeNode(file.node));
  }

  /** One open fewer; the last closes the Io, and a node in the trash goes. */
  private async closeNode(node: DirNode): Promise<FsError | undefined> {
    if (--node.opens > 0) return undefined;
    const io = node.io;
    node.io = undefined;
    node.writtenAt = undefined;
    this.settle(node);
    let r: FsError | undefined;
    try {
      await io?.close();
    } catch (err) {
      r = fail(err);
    }
    if (node.trashName !== undefined) {
      try {
        await (await this.trash(false)).removeEntry(node.trashName);
      } catch {
        // swept when the share is opened next
      }
    }
    return r;
  }

  override readdir(file: DirFile, cookie: number, max: number): FsReply<FsDirEntry[]> {
    const dir = file.node;
    if (!this.isDir(dir)) return e(E.ENOTDIR);
    if (cookie === 0 || file.listing === undefined) {
      return this.op(async () => {
        (dir.listings ??= new Set()).add(file);
        this.loose.delete(dir);
        file.removed = undefined;
        file.listing = await this.list(dir);
        return file.listing.slice(cookie, cookie + max);
      });
    }
    // Entries removed since the listing was taken are left out; the others keep their cookies.
    const out: FsDirEntry[] = [];
    for (let i = cookie; i < file.listing.length && out.length < max; i++) {
      const en = file.listing[i]!;
      if (en.name === '.' || en.name === '..' || !file.removed?.has(en.name)) out.push(en);
    }
    return out;
  }

  /** Every entry of a directory now, '.' and '..' first, each with its cookie. */
  private async list(dir: DirNode): Promise<FsDirEntry[]> {
    const d = dir.handle as DirHandleLike;
    const out: FsDirEntry[] = [
      { name: '.', ino: dir.ino, type: S_IFDIR, next: 1 },
      { name: '..', ino: (dir.parent ?? dir).ino, type: S_IFDIR, next: 2 },
    ];
    const withRecords = new Set<string>();
    try {
      for await (const [name] of (await d.getDirectoryHandle(PATH_META_DIR)).entries()) withRecords.add(name);
    } catch {
      // no records here
    }
    const seen = new Set<string>();
    for await (const [name, h] of d.entries()) {
      if (name === PATH_META_DIR) continue;
      seen.add(name);
      const n = this.adopt(dir, name, h);
      if (n.rec === undefined && !withRecords.has(name)) n.rec = null;
      const rec = await this.record(n);
      const type = rec !== undefined && n.kind === 'file' ? rec.mode & S_IFMT : n.kind === 'directory' ? S_IFDIR : S_IFREG;
      out.push({ name, ino: n.ino, type: n.kind === 'directory' ? S_IFDIR : type === S_IFDIR ? S_IFREG : type, next: out.length + 1 });
    }
    for (const name of [...(dir.children?.keys() ?? [])]) if (!seen.has(name)) this.detach(dir, name);
    return out;
  }

  override mkdir(dir: DirNode, name: string, mode: number, creds: FsCreds): FsReply<DirNode> {
    const bad = this.writable(dir, name);
    if (bad !== undefined) return bad;
    return this.op(() => this.make(dir, name, S_IFDIR | (mode & 0o7777), creds, 0));
  }

  override mknod(dir: DirNode, name: string, mode: number, rdev: number, creds: FsCreds): FsReply<DirNode> {
    const bad = this.writable(dir, name);
    if (bad !== undefined) return bad;
    const type = mode & S_IFMT;
    if (type !== S_IFIFO && type !== S_IFSOCK && type !== S_IFCHR && type !== S_IFBLK && type !== S_IFREG && type !== 0) return e(E.EINVAL);
    return this.op(() => this.make(dir, name, (type === 0 ? S_IFREG : type) | (mode & 0o7777), creds, type === S_IFCHR || type === S_IFBLK ? rdev : 0));
  }

  override symlink(dir: DirNode, name: string, target: string, creds: FsCreds): FsReply<DirNode> {
    const bad = this.writable(dir, name);
    if (bad !== undefined) return bad;
    const bytes = te.encode(target);
    if (bytes.length === 0) return e(E.ENOENT);
    if (bytes.length >= PATH_MAX) return e(E.ENAMETOOLONG);
    return this.op(() => this.make(dir, name, S_IFLNK | 0o777, creds, 0, bytes));
  }

  override readlink(node: DirNode): FsReply<string> {
    if (this.isDir(node)) return e(E.EINVAL);
    return this.op(async () => {
      if ((pathStat(await this.facts(node), await this.record(node)).mode & S_IFMT) !== S_IFLNK) return e(E.EINVAL);
      const f = await (node.handle as FileHandleLike).getFile();
      // A symlink file that grew past PATH_MAX was changed behind the share: not a target.
      if (f.size >= PATH_MAX) return e(E.EIO);
      return td.decode(new Uint8Array(await f.slice(0, f.size).arrayBuffer()));
    });
  }

  override link(): FsReply<void> {
    return this.ro ? e(E.EROFS) : e(E.EPERM);
  }

  override unlink(dir: DirNode, name: string, rmdir: boolean): FsReply<void> {
    const bad = this.writable(dir, name);
    if (bad !== undefined) return bad.errno === E.EPERM ? e(E.ENOENT) : bad;
    return this.op(async () => {
      const n = await this.child(dir, name);
      if (n instanceof FsError) return n;
      if (rmdir !== this.isDir(n)) return e(rmdir ? E.ENOTDIR : E.EISDIR);
      if (rmdir) {
        for await (const [entry] of (n.handle as DirHandleLike).entries()) if (entry !== PATH_META_DIR) return e(E.ENOTEMPTY);
        await (dir.handle as DirHandleLike).removeEntry(name, { recursive: true });
      } else if (n.opens > 0) {
        await this.toTrash(n);
      } else {
        await (dir.handle as DirHandleLike).removeEntry(name);
      }
      await this.store.drop(dir, name);
      this.detach(dir, name);
      this.touchDir(dir);
      return undefined;
    });
  }

  /** The private trash directory for unlinked open files. */
  private async trash(create: boolean): Promise<DirHandleLike> {
    const meta = await (this.rootNode.handle as DirHandleLike).getDirectoryHandle(PATH_META_DIR, { create });
    return (await meta.getDirectoryHandle(PRIVATE, { create })).getDirectoryHandle(TRASH, { create });
  }

  /** Moves an open file out of the guest's tree, keeping it open. */
  private async toTrash(n: DirNode): Promise<void> {
    const h = n.handle as FileHandleLike;
    if (typeof h.move !== 'function') throw fsError(E.EBUSY);
    const name = `${Date.now().toString(36)}-${this.trashSerial++}`;
    const t = await this.trash(true);
    await this.suspended(n, () => h.move!(t, name));
    n.trashName = name;
  }

  /** Runs a host call with the node's Io closed (a sync handle locks the file), then reopens it. */
  private async suspended<T>(n: DirNode, fn: () => Promise<T>): Promise<T> {
    if (n.io === undefined) return fn();
    await n.io.close();
    n.io = undefined;
    try {
      return await fn();
    } finally {
      n.io = await this.openIo(n.handle as FileHandleLike);
    }
  }

  override rename(oldDir: DirNode, oldName: string, newDir: DirNode, newName: string): FsReply<void> {
    const bad = this.writable(oldDir, oldName) ?? this.writable(newDir, newName);
    if (bad !== undefined) return bad;
    if (oldDir === newDir && oldName === newName) return this.op(async () => this.child(oldDir, oldName).then((n) => (n instanceof FsError ? n : undefined)));
    return this.op(async () => {
      const src = await this.child(oldDir, oldName);
      if (src instanceof FsError) return src;
      if (this.isDir(src)) for (let d: DirNode | null = newDir; d !== null; d = d.parent) if (d === src) return e(E.EINVAL);
      const dstHandle = await this.entry(newDir, newName);
      const dst = dstHandle === undefined ? undefined : await this.child(newDir, newName);
      if (dst instanceof FsError) return dst;
      if (dst !== undefined) {
        if (this.isDir(src) && !this.isDir(dst)) return e(E.ENOTDIR);
        if (!this.isDir(src) && this.isDir(dst)) return e(E.EISDIR);
        if (this.isDir(dst)) {
          for await (const [entry] of (dst.handle as DirHandleLike).entries()) if (entry !== PATH_META_DIR) return e(E.ENOTEMPTY);
          await (newDir.handle as DirHandleLike).removeEntry(newName, { recursive: true });
        } else if (dst.opens > 0) {
          await this.toTrash(dst);
        }
      }
      const rec = (await this.record(src)) ?? undefined;
      if (this.isDir(src)) {
        const made = await (newDir.handle as DirHandleLike).getDirectoryHandle(newName, { create: true });
        await this.moveTree(src.handle as DirHandleLike, made, src);
        await (oldDir.handle as DirHandleLike).removeEntry(oldName, { recursive: true });
        src.handle = made;
      } else {
        const h = src.handle as FileHandleLike;
        if (typeof h.move === 'function') await this.suspended(src, () => h.move!(newDir.handle as DirHandleLike, newName));
        else await this.suspended(src, () => this.copyFile(oldDir, oldName, newDir, newName, src));
      }
      // The entry moved; now its record (a stop before this shows the moved entry plain).
      const moved = await this.store.move(oldDir, oldName, newDir, newName, await this.facts(src), rec);
      oldDir.children?.delete(oldName);
      for (const f of oldDir.listings ?? []) (f.removed ??= new Set()).add(oldName);
      if (newDir.children?.get(newName) !== src) this.detach(newDir, newName);
      src.parent = newDir;
      src.name = newName;
      (newDir.children ??= new Map()).set(newName, src);
      this.settle(oldDir);
      this.settle(src);
      if (rec !== undefined) rec.ctime = systemNow();
      this.touchDir(oldDir);
      this.touchDir(newDir);
      return moved;
    });
  }

  /** Without move(): copies a file to its new name and removes the old one (not atomic). */
  private async copyFile(oldDir: DirNode, oldName: string, newDir: DirNode, newName: string, src: DirNode): Promise<void> {
    const f = await (src.handle as FileHandleLike).getFile();
    const to = await (newDir.handle as DirHandleLike).getFileHandle(newName, { create: true });
    const w = await to.createWritable();
    await w.write(new Uint8Array(await f.slice(0, f.size).arrayBuffer()));
    await w.close();
    await (oldDir.handle as DirHandleLike).removeEntry(oldName);
    src.handle = to;
  }

  /**
   * Moves every entry of `from` into `to` (files by move(), directories made anew and filled), the
   * records directory with them. Known nodes keep their handles current.
   */
  private async moveTree(from: DirHandleLike, to: DirHandleLike, known: DirNode | undefined): Promise<void> {
    const entries: Array<[string, FileHandleLike | DirHandleLike]> = [];
    for await (const entry of from.entries()) entries.push(entry);
    for (const [name, h] of entries) {
      const n = known?.children?.get(name);
      if (h.kind === 'file') {
        const fh = n !== undefined && n.kind === 'file' ? (n.handle as FileHandleLike) : h;
        if (typeof fh.move !== 'function') throw fsError(E.EXDEV);
        if (n !== undefined && n.kind === 'file') await this.suspended(n, () => fh.move!(to, name));
        else await fh.move(to, name);
      } else {
        const made = await to.getDirectoryHandle(name, { create: true });
        await this.moveTree(h, made, n !== undefined && n.kind === 'directory' ? n : undefined);
        if (n !== undefined && n.kind === 'directory') n.handle = made;
      }
    }
  }

  override statfs(): FsReply<FsStatFs> {
    return this.op(async () => {
      let quota = 2 ** 40;
      let usage = 0;
      try {
        const est = this.estimate ? await this.estimate() : undefined;
        if (est?.quota !== undefined) quota = est.quota;
        if (est?.usage !== undefined) usage = est.usage;
      } catch {
        // no estimate: a large share
      }
      const blocks = Math.floor(quota / 4096);
      const free = Math.max(0, Math.floor((quota - usage) / 4096));
      return { type: 0x01021997, bsize: 4096, blocks, bfree: free, bavail: free, files: 1 << 24, ffree: 1 << 24, fsid: 0x5354524fn, namelen: 255 };
    });
  }

  // ---- xattrs (in the record) -------------------------------------------------------------------

  override getxattr(node: DirNode, name: string): FsReply<Uint8Array> {
    return this.op(async () => (await this.record(node))?.xattrs.get(name)?.slice() ?? e(E.ENODATA));
  }

  override listxattr(node: DirNode): FsReply<string[]> {
    return this.op(async () => [...((await this.record(node))?.xattrs.keys() ?? [])]);
  }

  override setxattr(node: DirNode, name: string, value: Uint8Array, flags: number): FsReply<void> {
    if (this.ro) return e(E.EROFS);
    return this.changeXattr(node, (rec) => recordSetXattr(rec, name, value, flags));
  }

  override removexattr(node: DirNode, name: string): FsReply<void> {
    if (this.ro) return e(E.EROFS);
    return this.changeXattr(node, (rec) => (rec.xattrs.delete(name) ? undefined : e(E.ENODATA)));
  }

  private changeXattr(node: DirNode, fn: (rec: MetaRecord) => FsError | undefined): FsReply<void> {
    return this.op(async () => {
      const host = await this.facts(node);
      const rec = pathRecordFromHost(host, (await this.record(node)) ?? undefined);
      const r = fn(rec);
      if (r !== undefined) return r;
      rec.ctime = systemNow();
      return this.putRecord(node, host, rec);
    });
  }
}
