/**
 * An in-memory filesystem: inodes (MemNode) hold the data and metadata, directories hold named
 * links to inodes, and an open file (MemFile) pins its inode — so hard links, use after unlink and
 * the 9P qid/fid model fall out of the data structure (memfs's Node / Link / OpenFile split).
 *
 * Device nodes, FIFOs and sockets are metadata only. Everything the guest can make grow is capped:
 * bytes of data (`capacity`) and inode count (`maxInodes`) answer ENOSPC when full.
 */
import { FileData } from './mem-data.js';
import { fillMemFs, saveMemFs } from './mem-fs-image.js';
import {
  FsBackend,
  type FsCreds,
  type FsDirEntry,
  type FsFile,
  type FsNode,
  type FsReply,
  type FsSetAttr,
  type FsStat,
  type FsStatFs,
  type FsTime,
  NAME_MAX,
  O_ACCMODE,
  O_APPEND,
  O_RDONLY,
  O_TRUNC,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  XATTR_CREATE,
  XATTR_REPLACE,
  nextVersion,
} from './backend.js';
import {
  EBADF,
  EEXIST,
  EFBIG,
  EINVAL,
  EISDIR,
  ENODATA,
  ENOENT,
  ENOSPC,
  ENOTDIR,
  ENOTEMPTY,
  EPERM,
  EROFS,
  FsError,
  fsError,
} from './errno.js';
import { systemNow } from './backend.js';
import { badEntryName } from './names.js';

/** Largest file size: offsets are numbers, and the 9P and FUSE servers cap them here too. */
const MAX_FILE = Number.MAX_SAFE_INTEGER;

export interface MemFsOptions {
  /** Bytes of file data, symlink targets and xattrs the tree may hold; default 1 GiB. */
  capacity?: number;
  /** Most inodes; default 1,048,576. */
  maxInodes?: number;
  /** Refuse every change with EROFS (after `tree` was filled in). */
  readOnly?: boolean;
  /** Files to start with. */
  tree?: MemFsTree;
  /** The clock for timestamps; default Date.now(). */
  now?: () => FsTime;
}

/** A directory entry: a name linking to an inode, with the sequence number readdir cookies use. */
interface DirLink {
  name: string;
  node: MemNode;
  seq: number;
  dead: boolean;
}

/**
 * A directory's links. Cookies are sequence numbers that only grow, so a listing resumed at a
 * cookie sees every entry that existed throughout exactly once, whatever changed in between.
 * Cookies 0 and 1 are '.' and '..'; links start at 2.
 */
class MemDir {
  readonly byName = new Map<string, DirLink>();
  /** Links in sequence order; removed ones are marked dead and compacted away lazily. */
  private order: DirLink[] = [];
  private dead = 0;
  private nextSeq = 2;

  constructor(public parent: MemNode) {}

  get size(): number {
    return this.byName.size;
  }

  add(name: string, node: MemNode): void {
    const l: DirLink = { name, node, seq: this.nextSeq++, dead: false };
    this.byName.set(name, l);
    this.order.push(l);
  }

  remove(name: string): MemNode | undefined {
    const l = this.byName.get(name);
    if (l === undefined) return undefined;
    this.byName.delete(name);
    l.dead = true;
    if (++this.dead > 32 && this.dead > this.order.length / 2) {
      this.order = this.order.filter((x) => !x.dead);
      this.dead = 0;
    }
    return l.node;
  }

  /** Live links with seq >= cookie, at most max of them. */
  from(cookie: number, max: number): DirLink[] {
    const o = this.order;
    let lo = 0;
    let hi = o.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (o[mid]!.seq < cookie) lo = mid + 1;
      else hi = mid;
    }
    const out: DirLink[] = [];
    for (let i = lo; i < o.length && out.length < max; i++) if (!o[i]!.dead) out.push(o[i]!);
    return out;
  }

  *links(): IterableIterator<DirLink> {
    for (const l of this.order) if (!l.dead) yield l;
  }
}

/** An inode of a MemFs. */
export class MemNode implements FsNode {
  mode: number;
  uid: number;
  gid: number;
  nlink = 0;
  rdev = 0;
  atime: FsTime;
  mtime: FsTime;
  ctime: FsTime;
  version = 1;
  /** File contents, sparse: bytes below `size` that `data` does not hold read as zeros. */
  data = new FileData();
  size = 0;
  /** Directory links, for directories. */
  dir: MemDir | undefined;
  /** Symlink target, for symlinks. */
  target = '';
  xattrs: Map<string, Uint8Array> | undefined;
  /** Open files on this inode; its data is dropped once unlinked and closed. */
  opens = 0;

  constructor(
    readonly ino: bigint,
    mode: number,
    creds: FsCreds,
    now: FsTime,
  ) {
    this.mode = mode;
    this.uid = creds.uid;
    this.gid = creds.gid;
    this.atime = now;
    this.mtime = now;
    this.ctime = now;
  }

  get isDir(): boolean {
    return (this.mode & S_IFMT) === S_IFDIR;
  }
}

/** An open MemFs file. */
export class MemFile implements FsFile {
  closed = false;
  constructor(
    readonly node: MemNode,
    readonly flags: number,
  ) {}
}

const ROOT_CREDS: FsCreds = { uid: 0, gid: 0 };


const e = fsError;

/** Where a tree spec says "symlink". */
export class SymlinkSpec {
  constructor(readonly target: string) {}
}
/** Where a tree spec says "file with these attributes". */
export class FileSpec {
  constructor(
    readonly data: Uint8Array | string,
    readonly mode = 0o644,
  ) {}
}
/** A tree to fill a MemFs with: strings and bytes are files, plain objects directories. */
export interface MemFsTree {
  [name: string]: string | Uint8Array | MemFsTree | SymlinkSpec | FileSpec;
}

/** The in-memory filesystem backend. */
export class MemFs extends FsBackend<MemNode, MemFile> {
  readonly capacity: number;
  readonly maxInodes: number;
  private ro = false;
  private readonly now: () => FsTime;
  private nextIno = 1n;
  private inodes = 0;
  /** Bytes charged against capacity. */
  used = 0;
  readonly rootNode: MemNode;

  constructor(opts: MemFsOptions = {}) {
    super();
    this.capacity = opts.capacity ?? 2 ** 30;
    this.maxInodes = opts.maxInodes ?? 1 << 20;
    this.now = opts.now ?? systemNow;
    this.rootNode = this.newNode(S_IFDIR | 0o755, ROOT_CREDS)!;
    this.rootNode.dir = new MemDir(this.rootNode);
    this.rootNode.nlink = 2;
    if (opts.tree !== undefined) this.fill(opts.tree);
    this.ro = opts.readOnly ?? false;
  }

  override get readOnly(): boolean {
    return this.ro;
  }

  /** Snapshots: a MemFs lives only in memory, so a snapshot carries its files (the MemFs image format). */
  override saveContents(): Uint8Array {
    return saveMemFs(this);
  }

  /** Snapshots: fills this MemFs, which must still be empty, with files a snapshot carried. */
  override loadContents(image: Uint8Array): void {
    fillMemFs(this, image);
  }

  /** The names from the root to `node` (the first found, breadth-first); undefined when unlinked. */
  override nodePath(node: MemNode): string[] | undefined {
    if (node === this.rootNode) return [];
    const queue: Array<[MemNode, string[]]> = [[this.rootNode, []]];
    for (let i = 0; i < queue.length; i++) {
      const [dir, path] = queue[i]!;
      for (const [name, link] of dir.dir!.byName) {
        const child = link.node;
        if (child === node) return [...path, name];
        if (child.dir !== undefined) queue.push([child, [...path, name]]);
      }
    }
    return undefined;
  }

  /** Makes the tree read-only from now on. */
  freeze(): this {
    this.ro = true;
    return this;
  }

  /** A symlink in a tree spec. */
  static symlink(target: string): SymlinkSpec {
    return new SymlinkSpec(target);
  }
  /** A file with a mode in a tree spec. */
  static file(data: Uint8Array | string, mode = 0o644): FileSpec {
    return new FileSpec(data, mode);
  }

  /** Adds a tree of files, directories and symlinks under `at` (default the root). Throws on conflicts. */
  fill(tree: MemFsTree, at: MemNode = this.rootNode): this {
    const enc = new TextEncoder();
    for (const [name, v] of Object.entries(tree)) {
      if (badEntryName(name)) {
        throw new TypeError(`MemFs.fill: bad name ${JSON.stringify(name)}`);
      }
      const existing = at.dir!.byName.get(name)?.node;
      if (v instanceof SymlinkSpec) {
        this.must(this.symlink(at, name, v.target, ROOT_CREDS), name);
      } else if (typeof v === 'string' || v instanceof Uint8Array || v instanceof FileSpec) {
        const data = v instanceof FileSpec ? v.data : v;
        const bytes = typeof data === 'string' ? enc.encode(data) : data;
        const mode = v instanceof FileSpec ? v.mode : 0o644;
        const file = this.must(this.create(at, name, 0o1 | O_TRUNC, mode & 0o7777, ROOT_CREDS), name);
        this.must(this.write(file, 0, bytes), name);
        this.close(file);
      } else {
        const dir = existing?.isDir ? existing : this.must(this.mkdir(at, name, 0o755, ROOT_CREDS), name);
        this.fill(v, dir);
      }
    }
    return this;
  }

  private must<T>(r: FsReply<T>, name: string): T {
    if (r instanceof Promise) throw new Error('unreachable: MemFs is synchronous');
    if (r instanceof FsError) throw new Error(`MemFs.fill: ${name}: errno ${r.errno}`);
    return r;
  }

  /** Makes an inode, charging the inode count; undefined when full. */
  newNode(mode: number, creds: FsCreds): MemNode | undefined {
    if (this.inodes >= this.maxInodes) return undefined;
    this.inodes++;
    return new MemNode(this.nextIno++, mode, creds, this.now());
  }

  /** Charges (or with a negative n, credits) n bytes; false when that would pass capacity. */
  private charge(n: number): boolean {
    if (n > 0 && this.used + n > this.capacity) return false;
    this.used += n;
    return true;
  }

  /** Drops an inode with no links and no open files. */
  private maybeFree(node: MemNode): void {
    if (node.nlink > 0 || node.opens > 0) return;
    this.charge(-(node.data.held + node.target.length + xattrBytes(node)));
    node.data.clear();
    node.size = 0;
    node.xattrs = undefined;
    this.inodes--;
  }

  private touch(node: MemNode, m = true): void {
    const t = this.now();
    if (m) node.mtime = t;
    node.ctime = t;
    node.version = nextVersion(node.version);
  }

  override root(): MemNode {
    return this.rootNode;
  }

  override lookup(dir: MemNode, name: string): FsReply<MemNode> {
    const d = dir.dir;
    if (d === undefined) return e(ENOTDIR);
    if (name === '.') return dir;
    if (name === '..') return d.parent;
    return d.byName.get(name)?.node ?? e(ENOENT);
  }

  override getattr(node: MemNode): FsStat {
    return {
      ino: node.ino,
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      nlink: node.nlink,
      rdev: node.rdev,
      size: (node.mode & S_IFMT) === S_IFLNK ? byteLength(node.target) : node.size,
      blksize: 4096,
      blocks: Math.ceil(node.data.held / 512),
      atime: node.atime,
      mtime: node.mtime,
      ctime: node.ctime,
    };
  }

  override setattr(node: MemNode, a: FsSetAttr): FsReply<void> {
    if (this.ro) return e(EROFS);
    if (a.size !== undefined) {
      if (node.isDir) return e(EISDIR);
      if ((node.mode & S_IFMT) !== S_IFREG) return e(EINVAL);
      const r = this.resize(node, a.size);
      if (r !== 0) return e(r);
      this.touch(node);
    }
    if (a.mode !== undefined) node.mode = (node.mode & S_IFMT) | (a.mode & 0o7777);
    if (a.uid !== undefined) node.uid = a.uid;
    if (a.gid !== undefined) node.gid = a.gid;
    const now = this.now();
    if (a.atime !== undefined) node.atime = a.atime === 'now' ? now : a.atime;
    if (a.mtime !== undefined) node.mtime = a.mtime === 'now' ? now : a.mtime;
    node.ctime = now;
    return undefined;
  }

  /**
   * Sets a file's size; answers 0 or an errno. Growing makes a hole (nothing is allocated);
   * shrinking frees what lay past the new end, so growing again reads zeros there.
   */
  private resize(node: MemNode, size: number): number {
    if (!(size >= 0) || size > MAX_FILE) return EFBIG;
    if (size < node.size) this.charge(node.data.truncate(size));
    node.size = size;
    return 0;
  }

  /** Frees whole chunks inside the range and zeroes the rest of it; the size stays. */
  override punchHole(file: MemFile, offset: number, length: number): FsReply<void> {
    const node = file.node;
    if (file.closed || (file.flags & O_ACCMODE) === O_RDONLY) return e(EBADF);
    if (this.ro) return e(EROFS);
    if ((node.mode & S_IFMT) !== S_IFREG) return e(node.isDir ? EISDIR : EINVAL);
    if (!(offset >= 0) || !(length > 0) || offset + length > MAX_FILE) return e(EINVAL);
    if (offset < node.size) this.charge(node.data.punch(offset, Math.min(length, node.size - offset)));
    this.touch(node);
    return undefined;
  }

  override open(node: MemNode, flags: number): FsReply<MemFile> {
    const type = node.mode & S_IFMT;
    const acc = flags & O_ACCMODE;
    if (type === S_IFDIR) {
      if (acc !== O_RDONLY) return e(EISDIR);
    } else if (type !== S_IFREG) {
      return e(EINVAL);
    } else if (acc !== O_RDONLY || (flags & O_TRUNC) !== 0) {
      if (this.ro) return e(EROFS);
      if ((flags & O_TRUNC) !== 0 && acc !== O_RDONLY && node.size > 0) {
        this.resize(node, 0);
        this.touch(node);
      }
    }
    node.opens++;
    return new MemFile(node, flags);
  }

  override create(dir: MemNode, name: string, flags: number, mode: number, creds: FsCreds): FsReply<MemFile> {
    const made = this.link0(dir, name, S_IFREG | (mode & 0o7777), creds);
    if (!(made instanceof MemNode)) return made;
    made.opens++;
    return new MemFile(made, flags & ~O_TRUNC);
  }

  /** Checks and makes a new inode linked as `name` in `dir`. */
  private link0(dir: MemNode, name: string, mode: number, creds: FsCreds): MemNode | ReturnType<typeof e> {
    const d = dir.dir;
    if (d === undefined) return e(ENOTDIR);
    if (this.ro) return e(EROFS);
    if (dir.nlink === 0) return e(ENOENT);
    if (d.byName.has(name)) return e(EEXIST);
    const node = this.newNode(mode, creds);
    if (node === undefined) return e(ENOSPC);
    node.nlink = 1;
    d.add(name, node);
    this.touch(dir);
    return node;
  }

  override read(file: MemFile, offset: number, dst: Uint8Array): FsReply<number> {
    const node = file.node;
    if (file.closed) return e(EBADF);
    if (node.isDir) return e(EISDIR);
    if ((file.flags & O_ACCMODE) === 0o1) return e(EBADF);
    if (offset >= node.size) return 0;
    const n = Math.min(dst.length, node.size - offset);
    node.data.read(offset, dst, n);
    return n;
  }

  override write(file: MemFile, offset: number, src: Uint8Array): FsReply<number> {
    const node = file.node;
    if (file.closed) return e(EBADF);
    if ((file.flags & O_ACCMODE) === O_RDONLY) return e(EBADF);
    if (this.ro) return e(EROFS);
    if ((file.flags & O_APPEND) !== 0) offset = node.size;
    const end = offset + src.length;
    if (!(offset >= 0) || !(end <= MAX_FILE)) return e(EFBIG);
    if (!this.charge(node.data.growth(offset, src.length))) return e(ENOSPC);
    node.data.write(offset, src);
    if (src.length > 0 && end > node.size) node.size = end;
    this.touch(node);
    return src.length;
  }

  override close(file: MemFile): FsReply<void> {
    if (file.closed) return undefined;
    file.closed = true;
    file.node.opens--;
    this.maybeFree(file.node);
    return undefined;
  }

  override fsync(): FsReply<void> {
    return undefined;
  }

  override readdir(file: MemFile, cookie: number, max: number): FsReply<FsDirEntry[]> {
    const node = file.node;
    const d = node.dir;
    if (d === undefined) return e(ENOTDIR);
    const out: FsDirEntry[] = [];
    if (node.nlink === 0) return out; // removed directory: empty
    if (cookie <= 0 && out.length < max) out.push({ name: '.', ino: node.ino, type: S_IFDIR, next: 1 });
    if (cookie <= 1 && out.length < max) out.push({ name: '..', ino: d.parent.ino, type: S_IFDIR, next: 2 });
    for (const l of d.from(cookie, max - out.length)) {
      out.push({ name: l.name, ino: l.node.ino, type: l.node.mode & S_IFMT, next: l.seq + 1 });
    }
    return out;
  }

  override mkdir(dir: MemNode, name: string, mode: number, creds: FsCreds): FsReply<MemNode> {
    const made = this.link0(dir, name, S_IFDIR | (mode & 0o7777), creds);
    if (!(made instanceof MemNode)) return made;
    made.dir = new MemDir(dir);
    made.nlink = 2;
    dir.nlink++;
    return made;
  }

  override mknod(dir: MemNode, name: string, mode: number, rdev: number, creds: FsCreds): FsReply<MemNode> {
    const type = mode & S_IFMT;
    if (type === S_IFDIR || type === S_IFLNK) return e(EINVAL);
    const made = this.link0(dir, name, (type === 0 ? S_IFREG : type) | (mode & 0o7777), creds);
    if (!(made instanceof MemNode)) return made;
    made.rdev = rdev;
    return made;
  }

  override symlink(dir: MemNode, name: string, target: string, creds: FsCreds): FsReply<MemNode> {
    if (!this.ro && !this.charge(byteLength(target))) return e(ENOSPC);
    const made = this.link0(dir, name, S_IFLNK | 0o777, creds);
    if (!(made instanceof MemNode)) {
      if (!this.ro) this.charge(-byteLength(target));
      return made;
    }
    made.target = target;
    return made;
  }

  override readlink(node: MemNode): FsReply<string> {
    if ((node.mode & S_IFMT) !== S_IFLNK) return e(EINVAL);
    return node.target;
  }

  override link(dir: MemNode, name: string, target: MemNode): FsReply<void> {
    const d = dir.dir;
    if (d === undefined) return e(ENOTDIR);
    if (this.ro) return e(EROFS);
    if (target.isDir) return e(EPERM);
    if (target.nlink === 0 || dir.nlink === 0) return e(ENOENT);
    if (d.byName.has(name)) return e(EEXIST);
    d.add(name, target);
    target.nlink++;
    this.touch(target, false);
    this.touch(dir);
    return undefined;
  }

  override rename(oldDir: MemNode, oldName: string, newDir: MemNode, newName: string): FsReply<void> {
    const od = oldDir.dir;
    const nd = newDir.dir;
    if (od === undefined || nd === undefined) return e(ENOTDIR);
    if (this.ro) return e(EROFS);
    const node = od.byName.get(oldName)?.node;
    if (node === undefined) return e(ENOENT);
    if (newDir.nlink === 0) return e(ENOENT);
    const victim = nd.byName.get(newName)?.node;
    if (victim === node) return undefined;
    if (node.isDir) {
      // A directory may not move below itself.
      for (let p: MemNode = newDir; ; p = p.dir!.parent) {
        if (p === node) return e(EINVAL);
        if (p === this.rootNode) break;
      }
    }
    if (victim !== undefined) {
      if (node.isDir && !victim.isDir) return e(ENOTDIR);
      if (!node.isDir && victim.isDir) return e(EISDIR);
      if (victim.isDir && victim.dir!.size > 0) return e(ENOTEMPTY);
      nd.remove(newName);
      this.dropLink(newDir, victim);
    }
    od.remove(oldName);
    nd.add(newName, node);
    if (node.isDir && oldDir !== newDir) {
      node.dir!.parent = newDir;
      oldDir.nlink--;
      newDir.nlink++;
    }
    this.touch(oldDir);
    this.touch(newDir);
    this.touch(node, false);
    return undefined;
  }

  /** Accounts for one link of `node` in `dir` having gone. */
  private dropLink(dir: MemNode, node: MemNode): void {
    if (node.isDir) {
      node.nlink = 0;
      dir.nlink--;
    } else {
      node.nlink--;
    }
    this.touch(node, false);
    this.maybeFree(node);
  }

  override unlink(dir: MemNode, name: string, rmdir: boolean): FsReply<void> {
    const d = dir.dir;
    if (d === undefined) return e(ENOTDIR);
    if (this.ro) return e(EROFS);
    const node = d.byName.get(name)?.node;
    if (node === undefined) return e(ENOENT);
    if (rmdir) {
      if (!node.isDir) return e(ENOTDIR);
      if (node.dir!.size > 0) return e(ENOTEMPTY);
    } else if (node.isDir) {
      return e(EISDIR);
    }
    d.remove(name);
    this.dropLink(dir, node);
    this.touch(dir);
    return undefined;
  }

  override statfs(): FsReply<FsStatFs> {
    const blocks = Math.floor(this.capacity / 4096);
    const free = Math.max(0, Math.floor((this.capacity - this.used) / 4096));
    return {
      type: 0x01021997, // V9FS_MAGIC
      bsize: 4096,
      blocks,
      bfree: free,
      bavail: free,
      files: this.maxInodes,
      ffree: this.maxInodes - this.inodes,
      fsid: 0n,
      namelen: NAME_MAX,
    };
  }

  override getxattr(node: MemNode, name: string): FsReply<Uint8Array> {
    return node.xattrs?.get(name) ?? e(ENODATA);
  }

  override listxattr(node: MemNode): FsReply<string[]> {
    return node.xattrs === undefined ? [] : [...node.xattrs.keys()];
  }

  override setxattr(node: MemNode, name: string, value: Uint8Array, flags: number): FsReply<void> {
    if (this.ro) return e(EROFS);
    const old = node.xattrs?.get(name);
    if ((flags & XATTR_CREATE) !== 0 && old !== undefined) return e(EEXIST);
    if ((flags & XATTR_REPLACE) !== 0 && old === undefined) return e(ENODATA);
    const delta = value.length + (old === undefined ? byteLength(name) : -old.length);
    if (!this.charge(delta)) return e(ENOSPC);
    (node.xattrs ??= new Map()).set(name, value.slice());
    this.touch(node, false);
    return undefined;
  }

  override removexattr(node: MemNode, name: string): FsReply<void> {
    if (this.ro) return e(EROFS);
    const old = node.xattrs?.get(name);
    if (old === undefined) return e(ENODATA);
    node.xattrs!.delete(name);
    this.charge(-(old.length + byteLength(name)));
    this.touch(node, false);
    return undefined;
  }

  /** Every live link under `dir`, for serialisers. */
  entries(dir: MemNode): Array<[string, MemNode]> {
    const out: Array<[string, MemNode]> = [];
    if (dir.dir !== undefined) for (const l of dir.dir.links()) out.push([l.name, l.node]);
    return out;
  }

  /** Links `node` (already made with newNode) as `name` in `dir`, for loaders. */
  attach(dir: MemNode, name: string, node: MemNode): void {
    const d = dir.dir;
    if (d === undefined || d.byName.has(name)) throw new Error(`MemFs: cannot link ${name}`);
    d.add(name, node);
    if (node.isDir) {
      if (node.dir !== undefined) throw new Error(`MemFs: directory ${name} linked twice`);
      node.dir = new MemDir(dir);
      node.nlink = 2;
      dir.nlink++;
    } else {
      node.nlink++;
    }
  }

  /** Sets a loaded file's contents or symlink target, charging capacity; throws when full. */
  setContent(node: MemNode, data: Uint8Array | string): void {
    if (typeof data === 'string') {
      if (!this.charge(byteLength(data) - byteLength(node.target))) throw new Error('MemFs: capacity exceeded');
      node.target = data;
      return;
    }
    if (data.length > MAX_FILE) throw new Error('MemFs: file too large');
    this.charge(node.data.truncate(0));
    node.size = 0;
    this.setChunk(node, 0, data);
  }

  /** Puts loaded bytes at `offset` of a file, growing its size to cover them; throws when full. */
  setChunk(node: MemNode, offset: number, data: Uint8Array): void {
    if (!this.charge(node.data.growth(offset, data.length))) throw new Error('MemFs: capacity exceeded');
    node.data.write(offset, data);
    node.size = Math.max(node.size, offset + data.length);
  }

  /** Sets a loaded xattr, charging capacity; throws when full. */
  setXattrRaw(node: MemNode, name: string, value: Uint8Array): void {
    if (!this.charge(value.length + byteLength(name))) throw new Error('MemFs: capacity exceeded');
    (node.xattrs ??= new Map()).set(name, value);
  }
}

/**
 * Loads an image made by saveMemFs into a new MemFs (options as for `new MemFs`); throws
 * MemFsImageError for an image it can't load, whole.
 */
export function loadMemFs(image: Uint8Array, opts: MemFsOptions = {}): MemFs {
  const { readOnly, tree: _tree, ...rest } = opts;
  const fs = new MemFs(rest);
  fillMemFs(fs, image);
  if (readOnly === true) fs.freeze();
  return fs;
}

const utf8 = new TextEncoder();
/** UTF-8 length of a string. */
export function byteLength(s: string): number {
  let n = s.length;
  // Fast path for ASCII.
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0x7f) {
      n = utf8.encode(s).length;
      break;
    }
  }
  return n;
}

function xattrBytes(node: MemNode): number {
  let n = 0;
  if (node.xattrs !== undefined) for (const [k, v] of node.xattrs) n += v.length + byteLength(k);
  return n;
}
