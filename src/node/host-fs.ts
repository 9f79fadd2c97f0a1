/**
 * HostFs: a 9P backend that passes through to one host directory and never leaves it.
 *
 * Confinement, checked on every operation rather than trusted from an earlier walk:
 * - An inode is a node in a tree of names under the root (never a path string the guest built),
 *   so '..' can't climb above the root and names never hold '/' or NUL.
 * - Before any host call, every component of the path is lstat'ed: each directory on the way must
 *   be a real directory, never a symlink, so a symlink swapped in later (by the guest or the host)
 *   is not followed. Final components are opened with O_NOFOLLOW and checked again with fstat.
 * - Symlinks the guest creates are stored with any target and read back, never followed.
 * - Device nodes, FIFOs and sockets are never opened (an open can block or have side effects).
 * - A read-only share answers EROFS to every change.
 *
 * Paths: on Linux every host call names its file relative to a directory fd
 * (`/proc/self/fd/N/name`, the *at() calls Node lacks), so a guest path of any length works; the
 * directory fds are cached (a bounded LRU) and each is re-checked against its parent's entry at
 * every use. Elsewhere the host path is the share's absolute path plus the guest's.
 *
 * Two share modes:
 * - `mapped` (the default): the guest's mode, owner, group, device numbers, node types and
 *   xattrs live in a metadata store beside the files (src/backends/fs/mapped-meta.ts, records in
 *   `.storvm` at the share's root, which the guest never sees). The host holds only regular files,
 *   directories and symlinks, owned by whoever runs storvm, with owner rw(x) always set and never a
 *   setuid, setgid or sticky bit; a FIFO, socket or device node is an empty regular file.
 * - `passthrough`: the host's own mode and owners (chown needs storvm to run as root), no xattrs,
 *   regular files only.
 *
 * The host calls are synchronous: one request runs from the first check to the last host call
 * without another guest request in between. A host process racing the checks is outside the
 * guest's reach.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
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
  O_RDWR,
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
  makeDev,
  nextVersion,
} from '../backends/fs/backend.js';
import * as E from '../backends/fs/errno.js';
import { FsError, fsError } from '../backends/fs/errno.js';
import {
  type HostFacts,
  type MetaRecord,
  MetaStore,
  mappedStat,
  newRecord,
  recordFromHost,
  recordSetXattr,
} from '../backends/fs/mapped-meta.js';
import { HostMetaFiles, NEW } from './host-meta.js';
import { systemNow } from '../backends/fs/backend.js';
import { badEntryName } from '../backends/fs/names.js';

export type ShareMode = 'mapped' | 'passthrough';

export interface HostFsOptions {
  /** Refuse every change with EROFS. */
  readOnly?: boolean;
  /** How guest metadata is kept; default 'mapped'. */
  mode?: ShareMode;
  /** Directory fds kept open for path walking; default 128. */
  dirFds?: number;
}

/** The name of the metadata store at the share's root (never shown to the guest). */
export const META_DIR = '.storvm';

/** An inode of the share, named by its place in the tree. */
export class HostNode implements FsNode {
  /** Children some fid still refers to (directly or below); others are not kept. */
  children: Map<string, HostNode> | undefined;
  /** Fids holding this node. */
  refs = 0;
  /** The name went away (unlinked or replaced); only open files still reach the inode. */
  gone = false;
  /** The qid version: from the host's mtime and size, bumped by our own changes; never 0. */
  version = 1;
  /** An open fd of this directory (-1: none), cached for walking. */
  fd = -1;
  constructor(
    public parent: HostNode | null,
    public name: string,
    public ino: bigint,
    public mode: number,
  ) {}
}

/** An open file (fd) or directory (fd -1, with a listing snapshot for stable cookies). */
export class HostFile implements FsFile {
  listing: string[] | undefined;
  constructor(
    readonly node: HostNode,
    public fd: number,
    readonly flags: number,
  ) {}
}

/** Host error codes mapped to Linux errno values (hosts number them differently). */
const CODES: Record<string, number> = {
  EPERM: E.EPERM,
  ENOENT: E.ENOENT,
  EINTR: E.EINTR,
  EIO: E.EIO,
  ENXIO: E.ENXIO,
  E2BIG: E.E2BIG,
  EBADF: E.EBADF,
  EAGAIN: E.EAGAIN,
  ENOMEM: E.ENOMEM,
  EACCES: E.EACCES,
  EBUSY: E.EBUSY,
  EEXIST: E.EEXIST,
  EXDEV: E.EXDEV,
  ENODEV: E.ENODEV,
  ENOTDIR: E.ENOTDIR,
  EISDIR: E.EISDIR,
  EINVAL: E.EINVAL,
  ENFILE: E.ENFILE,
  EMFILE: E.EMFILE,
  ETXTBSY: E.ETXTBSY,
  EFBIG: E.EFBIG,
  ENOSPC: E.ENOSPC,
  ESPIPE: E.ESPIPE,
  EROFS: E.EROFS,
  EMLINK: E.EMLINK,
  ERANGE: E.ERANGE,
  EDEADLK: E.EDEADLK,
  ENAMETOOLONG: E.ENAMETOOLONG,
  ENOLCK: E.ENOLCK,
  ENOSYS: E.ENOSYS,
  ENOTEMPTY: E.ENOTEMPTY,
  ELOOP: E.ELOOP,
  ENODATA: E.ENODATA,
  EOVERFLOW: E.EOVERFLOW,
  ENOTSUP: E.ENOTSUP,
  EOPNOTSUPP: E.EOPNOTSUPP,
  ECANCELED: E.ECANCELED,
};

/** The errno of a failed host call; anything that isn't a host error is a bug and is rethrown. */
export function hostErrno(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') throw err;
  return CODES[code] ?? E.EIO;
}

const C = fs.constants;
const e = fsError;

function fail(err: unknown): FsError {
  return e(hostErrno(err));
}

function time(ns: bigint): FsTime {
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}

/** glibc's dev_t layout to Linux's new_encode_dev. */
function linuxDev(dev: bigint): number {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return makeDev(major, minor);
}


/** Host open flags for Linux access mode, O_TRUNC and O_APPEND. */
function hostFlags(flags: number): number {
  const acc = flags & O_ACCMODE;
  let f = acc === O_WRONLY ? C.O_WRONLY : acc === O_RDWR ? C.O_RDWR : C.O_RDONLY;
  if (flags & O_TRUNC) f |= C.O_TRUNC;
  if (flags & O_APPEND) f |= C.O_APPEND;
  return f | C.O_NOFOLLOW | (C.O_NONBLOCK ?? 0);
}

/** A qid version from a host stat, as QEMU makes one (mtime ^ size << 8), never 0. */
function versionOf(st: fs.BigIntStats): number {
  return Number((st.mtimeNs ^ (st.size << 8n)) & 0xffffffffn) || 1;
}

/** A host stat in Linux's units. */
function facts(st: fs.BigIntStats): HostFacts {
  return {
    ino: st.ino,
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    nlink: Number(st.nlink),
    rdev: linuxDev(st.rdev),
    size: Number(st.size),
    blksize: Number(st.blksize),
    blocks: Number(st.blocks),
    atime: time(st.atimeNs),
    mtime: time(st.mtimeNs),
    ctime: time(st.ctimeNs),
    btime: st.birthtimeNs,
  };
}


/** Seconds as Node's utimes takes them (it keeps microseconds). */
function seconds(t: FsTime): number {
  return t.sec + t.nsec / 1e9;
}

/** The node types the guest may make with mknod in mapped mode. */
const MKNOD_TYPES = new Set([0, S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK]);

/** Whether /proc/self/fd paths reach a process's open directories (Linux). */
function procFdWorks(): boolean {
  try {
    return fs.statSync('/proc/self/fd/.').isDirectory();
  } catch {
    return false;
  }
}

/** Runs `make` at `at`: its stat, or (after `undo`) the errno it failed with. */
function makeAt(at: string, make: (at: string) => fs.BigIntStats, undo: () => void): fs.BigIntStats | FsError {
  try {
    return make(at);
  } catch (err) {
    undo();
    return fail(err);
  }
}

/** Undoes a node `make` made at `at` that is not kept: `undo`, then the node goes. */
function discard(at: string, st: fs.BigIntStats, undo: () => void): void {
  undo();
  try {
    if (st.isDirectory()) fs.rmdirSync(at);
    else fs.unlinkSync(at);
  } catch {
    // already gone
  }
}

export class HostFs extends FsBackend<HostNode, HostFile> {
  /** The real path of the shared directory. */
  readonly dir: string;
  readonly mode: ShareMode;
  private readonly ro: boolean;
  readonly rootNode: HostNode;
  /** The metadata store (mapped mode). */
  readonly store: MetaStore | undefined;
  private readonly meta: HostMetaFiles | undefined;
  /** Walk by directory fds (Linux) rather than absolute host paths. */
  private readonly useFds: boolean;
  private readonly rootFd: number;
  /** Directory nodes holding an fd, least recently used first. */
  private readonly fdNodes = new Set<HostNode>();
  private readonly fdLimit: number;
  private storeFd = -1;
  /** Records of inodes whose last name went away, for fids that still hold them (bounded). */
  private readonly orphans = new Map<bigint, MetaRecord>();
  /** Numbers the store's names of nodes being made. */
  private serial = 0;

  constructor(dir: string, opts: HostFsOptions = {}) {
    super();
    const real = fs.realpathSync(dir);
    const st = fs.lstatSync(real, { bigint: true });
    if (!st.isDirectory()) throw new Error(`HostFs: ${dir} is not a directory`);
    this.dir = real;
    this.ro = opts.readOnly ?? false;
    this.mode = opts.mode ?? 'mapped';
    this.fdLimit = Math.max(8, opts.dirFds ?? 128);
    this.rootNode = new HostNode(null, '', st.ino, Number(st.mode));
    this.rootNode.refs = 1; // the root is never dropped
    this.useFds = procFdWorks();
    this.rootFd = this.useFds ? fs.openSync(real, C.O_RDONLY | C.O_DIRECTORY) : -1;
    if (this.mode === 'mapped') {
      this.meta = new HostMetaFiles((create) => this.storeDir(create), hostErrno);
      this.store = new MetaStore(this.meta);
      if (!this.ro) this.meta.sweep();
    }
  }

  override get readOnly(): boolean {
    return this.ro;
  }

  /** Closes the directory fds the share holds. The backend must not be used afterwards. */
  dispose(): void {
    for (const n of this.fdNodes) this.closeFd(n);
    if (this.storeFd >= 0) fs.closeSync(this.storeFd);
    if (this.rootFd >= 0) fs.closeSync(this.rootFd);
    this.storeFd = -1;
  }

  // ---- paths -----------------------------------------------------------------------------------

  private closeFd(n: HostNode): void {
    if (n.fd >= 0) {
      try {
        fs.closeSync(n.fd);
      } catch {
        // already closed
      }
    }
    n.fd = -1;
    this.fdNodes.delete(n);
  }

  /**
   * Trims the directory fd cache. Called when an operation starts, never in the middle of one, so
   * no path an operation built can name an fd that was closed (and maybe reused) meanwhile.
   */
  private trim(): void {
    for (const n of this.fdNodes) {
      if (this.fdNodes.size <= this.fdLimit) break;
      this.closeFd(n);
    }
  }

  /**
   * An fd of directory `dir`, after checking that its name in its parent (and so on up to the
   * root) is still a real directory, not a symlink: a directory swapped on the host is caught at
   * use. Only with useFds.
   */
  private dirFd(dir: HostNode): number | FsError {
    if (dir.parent === null) return this.rootFd;
    if (dir.gone) return e(E.ENOENT);
    const pfd = this.dirFd(dir.parent);
    if (typeof pfd !== 'number') return pfd;
    const p = `/proc/self/fd/${pfd}/${dir.name}`;
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(p, { bigint: true });
    } catch (err) {
      return fail(err);
    }
    if (st.isSymbolicLink()) return e(E.ELOOP);
    if (!st.isDirectory()) return e(E.ENOTDIR);
    if (dir.fd >= 0) {
      if (fs.fstatSync(dir.fd, { bigint: true }).ino === st.ino) {
        this.fdNodes.delete(dir);
        this.fdNodes.add(dir);
        return dir.fd;
      }
      this.closeFd(dir);
    }
    let fd: number;
    try {
      fd = fs.openSync(p, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
    } catch (err) {
      return fail(err);
    }
    if (fs.fstatSync(fd, { bigint: true }).ino !== st.ino) {
      fs.closeSync(fd);
      return e(E.ENOENT);
    }
    dir.fd = fd;
    this.fdNodes.add(dir);
    return fd;
  }

  /** The absolute host path of a node, every directory on the way checked (no /proc). */
  private absolute(node: HostNode, self: boolean): string | FsError {
    const names: string[] = [];
    for (let n: HostNode | null = node; n !== null && n.parent !== null; n = n.parent) {
      if (n.gone) return e(E.ENOENT);
      names.push(n.name);
    }
    names.reverse();
    let p = this.dir;
    const dirs = self ? names.length : names.length - 1;
    for (let i = 0; i < names.length; i++) {
      p = p + path.sep + names[i]!;
      if (i < dirs) {
        let st: fs.Stats;
        try {
          st = fs.lstatSync(p);
        } catch (err) {
          return fail(err);
        }
        if (st.isSymbolicLink()) return e(E.ELOOP);
        if (!st.isDirectory()) return e(E.ENOTDIR);
      }
    }
    if (self && node.parent === null) {
      try {
        if (!fs.lstatSync(p).isDirectory()) return e(E.ENOTDIR);
      } catch (err) {
        return fail(err);
      }
    }
    return p;
  }

  /** A path naming directory `dir` that names entries in it when '/' + name is added. */
  private dirPath(dir: HostNode): string | FsError {
    if (!this.useFds) return this.absolute(dir, true);
    const fd = this.dirFd(dir);
    return typeof fd === 'number' ? `/proc/self/fd/${fd}` : fd;
  }

  /** The host path of a node (its final component not followed by lstat). */
  private resolve(node: HostNode): string | FsError {
    if (node.gone) return e(E.ENOENT);
    if (node.parent === null) {
      const d = this.dirPath(node);
      return typeof d === 'string' && this.useFds ? d + '/.' : d;
    }
    const d = this.dirPath(node.parent);
    return typeof d === 'string' ? d + '/' + node.name : d;
  }

  /** The checked host path of `name` inside directory `dir`. */
  private inside(dir: HostNode, name: string): string | FsError {
    if (badEntryName(name) || Buffer.byteLength(name) > NAME_MAX) return e(E.EINVAL);
    const p = this.dirPath(dir);
    return typeof p === 'string' ? p + '/' + name : p;
  }

  /** The store's directory, made on the first write; undefined if it is missing or not a real directory. */
  private storeDir(create: boolean): string | undefined {
    if (this.useFds) {
      if (this.storeFd >= 0) {
        // Another HostFs over the same folder (the lab shares one folder over 9p and virtio-fs)
        // removes the store when it empties it: a directory fd left pointing at a removed
        // directory is dropped and the store looked up (or made) again.
        try {
          if (fs.fstatSync(this.storeFd).nlink > 0) return `/proc/self/fd/${this.storeFd}`;
        } catch {
          // a closed or unusable fd: reopen below
        }
        try {
          fs.closeSync(this.storeFd);
        } catch {
          // already closed
        }
        this.storeFd = -1;
      }
      const p = `/proc/self/fd/${this.rootFd}/${META_DIR}`;
      try {
        if (create && !this.ro) {
          try {
            fs.mkdirSync(p, { mode: 0o700 });
          } catch (err) {
            if ((err as { code?: string }).code !== 'EEXIST') throw err;
          }
        }
        this.storeFd = fs.openSync(p, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
        return `/proc/self/fd/${this.storeFd}`;
      } catch {
        return undefined;
      }
    }
    const p = this.dir + path.sep + META_DIR;
    try {
      if (create && !this.ro && !fs.existsSync(p)) fs.mkdirSync(p, { mode: 0o700 });
      const st = fs.lstatSync(p);
      return st.isDirectory() ? p : undefined;
    } catch {
      return undefined;
    }
  }

  /** Whether `name` in `dir` is the metadata store, which the guest can't see or touch. */
  private reserved(dir: HostNode, name: string): boolean {
    return this.store !== undefined && dir.parent === null && name === META_DIR;
  }

  // ---- metadata --------------------------------------------------------------------------------

  /** The record of an inode, if one fits it. */
  private record(node: HostNode | undefined, f: HostFacts): MetaRecord | undefined {
    if (this.store === undefined) return undefined;
    if (node?.gone === true) {
      const kept = this.orphans.get(f.ino);
      if (kept !== undefined) return kept;
    }
    return this.store.get(f) as MetaRecord | undefined; // HostMetaFiles answers at once
  }

  /** The guest's stat of a host stat. */
  private statOf(node: HostNode | undefined, st: fs.BigIntStats): FsStat {
    const f = facts(st);
    return mappedStat(f, this.record(node, f));
  }

  private put(ino: bigint, rec: MetaRecord): FsError | undefined {
    return this.store!.put(ino, rec) as FsError | undefined;
  }

  /** Forgets the record of an inode whose last link went away (kept for fids that hold it). */
  private forget(node: HostNode | undefined, st: fs.BigIntStats): void {
    if (this.store === undefined) return;
    if (st.isDirectory() || Number(st.nlink) <= 1) {
      const rec = this.record(node, facts(st));
      if (rec !== undefined) this.orphan(st.ino, rec);
      this.dropRecord(st.ino);
    }
  }

  private orphan(ino: bigint, rec: MetaRecord): void {
    this.orphans.delete(ino);
    this.orphans.set(ino, rec);
    if (this.orphans.size > 1024) this.orphans.delete(this.orphans.keys().next().value!);
  }

  /** Host permission bits for a node the guest asks for with `mode`. */
  private hostPerms(mode: number, dir: boolean): number {
    if (this.store === undefined) return mode & 0o7777;
    return (mode & 0o777) | (dir ? 0o700 : 0o600);
  }

  // ---- the tree --------------------------------------------------------------------------------

  /** The node for `name` in `dir` with the given stat: the known one if it is the same inode. */
  private child(dir: HostNode, name: string, st: fs.BigIntStats, mode = this.statOf(undefined, st).mode): HostNode {
    const known = dir.children?.get(name);
    if (known !== undefined && known.ino === st.ino) {
      known.mode = mode;
      return known;
    }
    const n = new HostNode(dir, name, st.ino, mode);
    n.version = versionOf(st);
    return n;
  }

  override retain(node: HostNode): void {
    node.refs++;
    // Pin the node and its ancestors in the tree so renames and unlinks reach it.
    for (let n = node; n.parent !== null && !n.gone; n = n.parent) {
      const map = (n.parent.children ??= new Map());
      const cur = map.get(n.name);
      if (cur === n) break;
      map.set(n.name, n);
      if (cur !== undefined) {
        // The name now holds another inode (replaced on the host): the old node is stale.
        cur.gone = true;
        break;
      }
    }
  }

  override release(node: HostNode): void {
    node.refs--;
    for (let n: HostNode = node; n.parent !== null; n = n.parent) {
      if (n.refs > 0 || (n.children !== undefined && n.children.size > 0)) break;
      const map = n.parent.children;
      if (map?.get(n.name) === n) map.delete(n.name);
    }
  }

  override nodePath(node: HostNode): string[] | undefined {
    const names: string[] = [];
    for (let n: HostNode | null = node; n !== null && n !== this.rootNode; n = n.parent) {
      if (n.gone || n.parent === null) return undefined;
      names.push(n.name);
    }
    return names.reverse();
  }

  override root(): HostNode {
    return this.rootNode;
  }

  override lookup(dir: HostNode, name: string): FsReply<HostNode> {
    if (name === '.') return dir;
    if (name === '..') return dir.parent ?? dir;
    if (this.reserved(dir, name)) return e(E.ENOENT);
    this.trim();
    const p = this.inside(dir, name);
    if (typeof p !== 'string') return p;
    try {
      return this.child(dir, name, fs.lstatSync(p, { bigint: true }));
    } catch (err) {
      return fail(err);
    }
  }

  /** The host stat of a node: of its open fd when it has one. */
  private hostStat(node: HostNode, file?: HostFile): fs.BigIntStats | FsError {
    try {
      if (file !== undefined && file.fd >= 0) return fs.fstatSync(file.fd, { bigint: true });
      const p = this.resolve(node);
      if (typeof p !== 'string') return p;
      return fs.lstatSync(p, { bigint: true });
    } catch (err) {
      return fail(err);
    }
  }

  override getattr(node: HostNode, file?: HostFile): FsReply<FsStat> {
    this.trim();
    const st = this.hostStat(node, file);
    if (st instanceof FsError) return st;
    const out = this.statOf(node, st);
    node.mode = out.mode;
    return out;
  }

  override setattr(node: HostNode, a: FsSetAttr, file?: HostFile): FsReply<void> {
    if (this.ro) return e(E.EROFS);
    this.trim();
    const p = this.resolve(node);
    if (typeof p !== 'string') return p;
    const open = file !== undefined && file.fd >= 0 ? file.fd : -1;
    try {
      const st = open >= 0 ? fs.fstatSync(open, { bigint: true }) : fs.lstatSync(p, { bigint: true });
      const before = this.statOf(node, st);
      const type = before.mode & S_IFMT;
      if (a.size !== undefined) {
        if (type === S_IFDIR) return e(E.EISDIR);
        if (type !== S_IFREG || !st.isFile()) return e(E.EINVAL);
        if (open >= 0 && (file!.flags & O_ACCMODE) !== O_RDONLY) {
          fs.ftruncateSync(open, a.size);
        } else {
          const fd = fs.openSync(p, C.O_WRONLY | C.O_NOFOLLOW | (C.O_NONBLOCK ?? 0));
          try {
            fs.ftruncateSync(fd, a.size);
          } finally {
            fs.closeSync(fd);
          }
        }
      }
      const times = a.atime !== undefined || a.mtime !== undefined;
      if (this.store === undefined) {
        this.setHostAttr(p, open, st, a);
      } else if (a.mode !== undefined || a.uid !== undefined || a.gid !== undefined || a.ctime || times) {
        const rec = recordFromHost(facts(st), this.record(node, facts(st)));
        if (a.mode !== undefined) rec.mode = (rec.mode & S_IFMT) | (a.mode & 0o7777);
        if (a.uid !== undefined) rec.uid = a.uid >>> 0;
        if (a.gid !== undefined) rec.gid = a.gid >>> 0;
        const now = systemNow();
        rec.ctime = now;
        if (times) {
          // Node sets host times to the microsecond; the record keeps the guest's nanoseconds for
          // as long as the host still shows what was set.
          const want = (v: FsTime | 'now' | undefined, old: FsTime): FsTime => (v === undefined ? old : v === 'now' ? now : v);
          const at = want(a.atime, before.atime);
          const mt = want(a.mtime, before.mtime);
          if (open >= 0) fs.futimesSync(open, seconds(at), seconds(mt));
          else fs.lutimesSync(p, seconds(at), seconds(mt));
          const after = open >= 0 ? fs.fstatSync(open, { bigint: true }) : fs.lstatSync(p, { bigint: true });
          rec.atime = { host: after.atimeNs, t: at };
          rec.mtime = { host: after.mtimeNs, t: mt };
        }
        const r = this.put(st.ino, rec);
        if (r !== undefined) return r;
        if (node.gone) this.orphan(st.ino, rec);
        node.mode = mappedStat(facts(st), rec).mode;
      }
    } catch (err) {
      return fail(err);
    }
    node.version = nextVersion(node.version);
    return undefined;
  }

  /** setattr in passthrough mode: the host's own calls. */
  private setHostAttr(p: string, open: number, st: fs.BigIntStats, a: FsSetAttr): void {
    const link = st.isSymbolicLink();
    if (a.mode !== undefined && !link) {
      if (open >= 0) fs.fchmodSync(open, a.mode & 0o7777);
      else fs.chmodSync(p, a.mode & 0o7777);
    }
    // chown(-1, -1) changes nothing but ctime, which is what a ctime-only setattr asks.
    if (a.uid !== undefined || a.gid !== undefined || a.ctime) fs.lchownSync(p, a.uid ?? -1, a.gid ?? -1);
    if (a.atime !== undefined || a.mtime !== undefined) {
      const now = Date.now() / 1000;
      const t = (v: FsTime | 'now' | undefined, old: bigint): number =>
        v === undefined ? Number(old) / 1e9 : v === 'now' ? now : seconds(v);
      fs.lutimesSync(p, t(a.atime, st.atimeNs), t(a.mtime, st.mtimeNs));
    }
  }

  override open(node: HostNode, flags: number): FsReply<HostFile> {
    this.trim();
    const p = this.resolve(node);
    if (typeof p !== 'string') return p;
    try {
      const st = fs.lstatSync(p, { bigint: true });
      if (st.ino !== node.ino) return e(E.ENOENT);
      if (st.isDirectory()) {
        if ((flags & O_ACCMODE) !== O_RDONLY) return e(E.EISDIR);
        const again = this.dirPath(node);
        if (typeof again !== 'string') return again;
        return new HostFile(node, -1, flags);
      }
      // Never open anything but a regular file: FIFOs block, device nodes have side effects. A
      // mapped FIFO or device node is a host file, but the guest's, never opened here either.
      if (!st.isFile()) return e(st.isSymbolicLink() ? E.ELOOP : E.EACCES);
      if ((this.statOf(node, st).mode & S_IFMT) !== S_IFREG) return e(E.EACCES);
      if (this.ro && ((flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0)) return e(E.EROFS);
      const fd = fs.openSync(p, hostFlags(flags));
      const fst = fs.fstatSync(fd, { bigint: true });
      if (!fst.isFile() || fst.ino !== node.ino) {
        fs.closeSync(fd);
        return e(E.EACCES);
      }
      return new HostFile(node, fd, flags);
    } catch (err) {
      return fail(err);
    }
  }

  override create(dir: HostNode, name: string, flags: number, mode: number, creds: FsCreds): FsReply<HostFile> {
    if (this.ro) return e(E.EROFS);
    if (this.reserved(dir, name)) return e(E.EPERM);
    this.trim();
    const p = this.inside(dir, name);
    if (typeof p !== 'string') return p;
    let fd = -1;
    const st = this.placeNew(
      p,
      S_IFREG | (mode & 0o7777),
      creds,
      0,
      (at) => {
        fd = fs.openSync(at, hostFlags(flags) | C.O_CREAT | C.O_EXCL, this.hostPerms(mode, false));
        // The host's umask must not apply a second time: the guest already applied its own.
        if (this.store === undefined) fs.fchmodSync(fd, mode & 0o7777);
        return fs.fstatSync(fd, { bigint: true });
      },
      () => {
        if (fd >= 0) fs.closeSync(fd);
        fd = -1;
      },
    );
    if (st instanceof FsError) return st;
    dir.version = nextVersion(dir.version);
    return new HostFile(this.child(dir, name, st), fd, flags);
  }

  /**
   * Makes a new node at `p` with `make` so that a storvm killed at any moment leaves either no
   * node or the node with its record, never a host file without the record that says what it is
   * (mapped mode). The node is made under a `new.` name inside the store, its record is written,
   * and then a non-directory is hard-linked to its name (link(2) fails if the name exists, as
   * O_EXCL would) and its store name removed; a directory or symlink, which can't be linked
   * portably, is renamed there after a check that the name is free. The next mount's sweep
   * removes whatever a kill left in the store. A share whose store is on another filesystem than
   * the directory (a mount inside the share: EXDEV) makes the node in place, as passthrough does.
   * `undo` releases what `make` opened when the node is not kept. Answers the node's host stat.
   */
  private placeNew(
    p: string,
    mode: number,
    creds: FsCreds,
    rdev: number,
    make: (at: string) => fs.BigIntStats,
    undo: () => void = () => {},
  ): fs.BigIntStats | FsError {
    const store = this.store === undefined ? undefined : this.storeDir(true);
    if (store !== undefined) {
      const tmp = `${store}/${NEW}${process.pid}.${this.serial++}`;
      const moves = (mode & S_IFMT) === S_IFDIR || (mode & S_IFMT) === S_IFLNK;
      const st = makeAt(tmp, make, undo);
      if (st instanceof FsError) return st;
      const gone = (): void => discard(tmp, st, undo);
      const r = this.record0(st, mode, creds, rdev);
      if (r !== undefined) {
        gone();
        return r;
      }
      try {
        if (moves) {
          if (fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined) throw Object.assign(new Error('exists'), { code: 'EEXIST' });
          fs.renameSync(tmp, p);
        } else {
          fs.linkSync(tmp, p);
        }
      } catch (err) {
        gone();
        this.dropRecord(st.ino);
        if ((err as { code?: string }).code !== 'EXDEV') return fail(err);
        return this.placeInPlace(p, mode, creds, rdev, make, undo);
      }
      if (!moves) {
        try {
          fs.unlinkSync(tmp);
        } catch {
          // left for the next mount's sweep, which sees two links and keeps the record
        }
      }
      this.tidyStore();
      return moves ? fs.lstatSync(p, { bigint: true }) : st;
    }
    return this.placeInPlace(p, mode, creds, rdev, make, undo);
  }

  /** placeNew without the store: made at its name, then the record (passthrough needs none). */
  private placeInPlace(
    p: string,
    mode: number,
    creds: FsCreds,
    rdev: number,
    make: (at: string) => fs.BigIntStats,
    undo: () => void,
  ): fs.BigIntStats | FsError {
    const st = makeAt(p, make, undo);
    if (st instanceof FsError) return st;
    const r = this.record0(st, mode, creds, rdev);
    if (r === undefined) return st;
    discard(p, st, undo);
    return r;
  }

  /** Stores the record of a node the guest just made (mapped mode). */
  private record0(st: fs.BigIntStats, mode: number, creds: FsCreds, rdev: number): FsError | undefined {
    if (this.store === undefined) return undefined;
    const f = facts(st);
    const rec = newRecord(f, mode, creds, rdev, systemNow());
    const shown = mappedStat(f, undefined);
    if (shown.mode === rec.mode && shown.uid === rec.uid && shown.gid === rec.gid && shown.rdev === rec.rdev) {
      // The host shows the guest's view already (storvm as root, say): no record, and none left
      // over from an earlier inode with this number.
      if (this.record(undefined, f) !== undefined) this.dropRecord(st.ino);
      return undefined;
    }
    return this.put(st.ino, rec);
  }

  /** Removes an inode's record; a store left empty goes too, so a share ends as it began. */
  private dropRecord(ino: bigint): void {
    void this.store!.drop(ino);
    this.tidyStore();
  }

  /** Removes the store if it is empty. */
  private tidyStore(): void {
    if (this.storeFd < 0 && this.useFds) return;
    try {
      fs.rmdirSync(this.useFds ? `/proc/self/fd/${this.rootFd}/${META_DIR}` : this.dir + path.sep + META_DIR);
    } catch {
      return; // not empty (or not ours): kept
    }
    if (this.storeFd >= 0) fs.closeSync(this.storeFd);
    this.storeFd = -1;
  }

  override read(file: HostFile, offset: number, dst: Uint8Array): FsReply<number> {
    if (file.fd < 0) return e(E.EISDIR);
    if ((file.flags & O_ACCMODE) === O_WRONLY) return e(E.EBADF);
    try {
      return fs.readSync(file.fd, dst, 0, dst.length, offset);
    } catch (err) {
      return fail(err);
    }
  }

  override write(file: HostFile, offset: number, src: Uint8Array): FsReply<number> {
    if (file.fd < 0) return e(E.EISDIR);
    if ((file.flags & O_ACCMODE) === O_RDONLY) return e(E.EBADF);
    if (this.ro) return e(E.EROFS);
    try {
      const n = fs.writeSync(file.fd, src, 0, src.length, offset);
      file.node.version = nextVersion(file.node.version);
      return n;
    } catch (err) {
      return fail(err);
    }
  }

  override close(file: HostFile): FsReply<void> {
    if (file.fd >= 0) {
      const fd = file.fd;
      file.fd = -2;
      try {
        fs.closeSync(fd);
      } catch (err) {
        return fail(err);
      }
    }
    file.listing = undefined;
    return undefined;
  }

  override fsync(file: HostFile, datasync: boolean): FsReply<void> {
    if (file.fd < 0) return undefined;
    try {
      if (datasync) fs.fdatasyncSync(file.fd);
      else fs.fsyncSync(file.fd);
    } catch (err) {
      return fail(err);
    }
    return undefined;
  }

  override readdir(file: HostFile, cookie: number, max: number): FsReply<FsDirEntry[]> {
    const dir = file.node;
    if ((dir.mode & S_IFMT) !== S_IFDIR || file.fd !== -1) return e(E.ENOTDIR);
    this.trim();
    const p = this.dirPath(dir);
    if (typeof p !== 'string') return dir.gone ? [] : p;
    // A snapshot taken when a listing starts keeps cookies (indices) stable across reads.
    if (cookie === 0 || file.listing === undefined) {
      try {
        file.listing = fs.readdirSync(p);
      } catch (err) {
        return fail(err);
      }
      if (this.store !== undefined && dir.parent === null) file.listing = file.listing.filter((n) => n !== META_DIR);
    }
    const names = file.listing;
    const out: FsDirEntry[] = [];
    for (let i = cookie; i < names.length + 2 && out.length < max; i++) {
      if (i === 0) out.push({ name: '.', ino: dir.ino, type: S_IFDIR, next: 1 });
      else if (i === 1) out.push({ name: '..', ino: (dir.parent ?? dir).ino, type: S_IFDIR, next: 2 });
      else {
        const name = names[i - 2]!;
        try {
          const st = fs.lstatSync(p + '/' + name, { bigint: true });
          out.push({ name, ino: st.ino, type: this.statOf(undefined, st).mode & S_IFMT, next: i + 1 });
        } catch {
          // Removed since the snapshot: skipped, its cookie stays used.
        }
      }
    }
    return out;
  }

  /** A new node made at `p` by `make` with its record (placeNew), as a child of `dir`. */
  private made(dir: HostNode, name: string, p: string, mode: number, creds: FsCreds, rdev: number, make: (at: string) => fs.BigIntStats): FsReply<HostNode> {
    const st = this.placeNew(p, mode, creds, rdev, make);
    if (st instanceof FsError) return st;
    dir.version = nextVersion(dir.version);
    return this.child(dir, name, st);
  }

  /** The checked path for a new node named `name` in `dir`, or the errno that refuses it. */
  private newPath(dir: HostNode, name: string): string | FsError {
    if (this.ro) return e(E.EROFS);
    if (this.reserved(dir, name)) return e(E.EPERM);
    this.trim();
    return this.inside(dir, name);
  }

  override mkdir(dir: HostNode, name: string, mode: number, creds: FsCreds): FsReply<HostNode> {
    const p = this.newPath(dir, name);
    if (typeof p !== 'string') return p;
    return this.made(dir, name, p, S_IFDIR | (mode & 0o7777), creds, 0, (at) => {
      fs.mkdirSync(at, { mode: this.hostPerms(mode, true) });
      if (this.store === undefined) fs.chmodSync(at, mode & 0o7777);
      return fs.lstatSync(at, { bigint: true });
    });
  }

  override mknod(dir: HostNode, name: string, mode: number, rdev: number, creds: FsCreds): FsReply<HostNode> {
    const p = this.newPath(dir, name);
    if (typeof p !== 'string') return p;
    const type = mode & S_IFMT;
    if (this.store === undefined) {
      // Passthrough: Node has no mknod(2), so regular files only.
      if (type !== 0 && type !== S_IFREG) return e(E.EPERM);
    } else if (!MKNOD_TYPES.has(type)) return e(E.EINVAL);
    const keep = type === S_IFCHR || type === S_IFBLK ? rdev : 0;
    return this.made(dir, name, p, (type === 0 ? S_IFREG : type) | (mode & 0o7777), creds, keep, (at) => {
      const fd = fs.openSync(at, C.O_CREAT | C.O_EXCL | C.O_WRONLY | C.O_NOFOLLOW, this.hostPerms(mode, false));
      try {
        if (this.store === undefined) fs.fchmodSync(fd, mode & 0o7777);
        return fs.fstatSync(fd, { bigint: true });
      } finally {
        fs.closeSync(fd);
      }
    });
  }

  override symlink(dir: HostNode, name: string, target: string, creds: FsCreds): FsReply<HostNode> {
    const p = this.newPath(dir, name);
    if (typeof p !== 'string') return p;
    return this.made(dir, name, p, S_IFLNK | 0o777, creds, 0, (at) => {
      fs.symlinkSync(target, at);
      return fs.lstatSync(at, { bigint: true });
    });
  }

  override readlink(node: HostNode): FsReply<string> {
    if ((node.mode & S_IFMT) !== S_IFLNK) return e(E.EINVAL);
    this.trim();
    const p = this.resolve(node);
    if (typeof p !== 'string') return p;
    try {
      return fs.readlinkSync(p);
    } catch (err) {
      return fail(err);
    }
  }

  override link(dir: HostNode, name: string, target: HostNode): FsReply<void> {
    const to = this.newPath(dir, name);
    if (typeof to !== 'string') return to;
    const from = this.resolve(target);
    if (typeof from !== 'string') return from;
    try {
      const st = fs.lstatSync(from, { bigint: true });
      if (st.ino !== target.ino) return e(E.ENOENT);
      fs.linkSync(from, to); // link(2) never follows a symlink
      // A new link changes the inode's ctime; the host's moved, but a record's may be later.
      const rec = this.record(target, facts(st));
      if (rec?.ctime !== undefined) this.put(st.ino, { ...rec, ctime: systemNow() });
    } catch (err) {
      return fail(err);
    }
    dir.version = nextVersion(dir.version);
    return undefined;
  }

  override rename(oldDir: HostNode, oldName: string, newDir: HostNode, newName: string): FsReply<void> {
    if (this.ro) return e(E.EROFS);
    if (this.reserved(oldDir, oldName) || this.reserved(newDir, newName)) return e(E.EPERM);
    this.trim();
    const from = this.inside(oldDir, oldName);
    if (typeof from !== 'string') return from;
    const to = this.inside(newDir, newName);
    if (typeof to !== 'string') return to;
    const victim = newDir.children?.get(newName);
    try {
      const src = fs.lstatSync(from, { bigint: true });
      let old: fs.BigIntStats | undefined;
      try {
        old = fs.lstatSync(to, { bigint: true });
      } catch {
        old = undefined;
      }
      fs.renameSync(from, to);
      if (old !== undefined && old.ino !== src.ino) this.forget(victim, old);
      // rename changes the moved inode's ctime; so must a record that shows a later one.
      const rec = this.record(undefined, facts(src));
      if (rec?.ctime !== undefined) this.put(src.ino, { ...rec, ctime: systemNow() });
    } catch (err) {
      return fail(err);
    }
    if (victim !== undefined) {
      victim.gone = true;
      newDir.children!.delete(newName);
    }
    const moved = oldDir.children?.get(oldName);
    if (moved !== undefined) {
      oldDir.children!.delete(oldName);
      moved.parent = newDir;
      moved.name = newName;
      (newDir.children ??= new Map()).set(newName, moved);
    }
    oldDir.version = nextVersion(oldDir.version);
    newDir.version = nextVersion(newDir.version);
    return undefined;
  }

  override unlink(dir: HostNode, name: string, rmdir: boolean): FsReply<void> {
    if (this.ro) return e(E.EROFS);
    if (this.reserved(dir, name)) return e(E.ENOENT);
    this.trim();
    const p = this.inside(dir, name);
    if (typeof p !== 'string') return p;
    const gone = dir.children?.get(name);
    try {
      const st = fs.lstatSync(p, { bigint: true });
      const isDir = st.isDirectory();
      if (rmdir && !isDir) return e(E.ENOTDIR);
      if (!rmdir && isDir) return e(E.EISDIR);
      if (rmdir) fs.rmdirSync(p);
      else fs.unlinkSync(p);
      this.forget(gone, st);
      if (!isDir && Number(st.nlink) > 1) {
        // The other links' ctime moves with the inode's.
        const rec = this.record(undefined, facts(st));
        if (rec?.ctime !== undefined) this.put(st.ino, { ...rec, ctime: systemNow() });
      }
    } catch (err) {
      return fail(err);
    }
    if (gone !== undefined) {
      gone.gone = true;
      if (gone.fd >= 0) this.closeFd(gone);
      dir.children!.delete(name);
    }
    dir.version = nextVersion(dir.version);
    return undefined;
  }

  override statfs(node: HostNode): FsReply<FsStatFs> {
    this.trim();
    const p = this.resolve(node);
    if (typeof p !== 'string') return p;
    try {
      const s = fs.statfsSync(p);
      return {
        type: Number(s.type) >>> 0,
        bsize: Number(s.bsize),
        blocks: Number(s.blocks),
        bfree: Number(s.bfree),
        bavail: Number(s.bavail),
        files: Number(s.files),
        ffree: Number(s.ffree),
        fsid: 0n,
        namelen: NAME_MAX,
      };
    } catch (err) {
      return fail(err);
    }
  }

  // ---- xattrs (mapped mode: in the record) ------------------------------------------------------

  /** The host stat and current record of a node for an xattr call. */
  private xattrTarget(node: HostNode): { st: fs.BigIntStats; rec: MetaRecord | undefined } | FsError {
    if (this.store === undefined) return e(E.ENOTSUP);
    this.trim();
    const st = this.hostStat(node);
    if (st instanceof FsError) return st;
    return { st, rec: this.record(node, facts(st)) };
  }

  override getxattr(node: HostNode, name: string): FsReply<Uint8Array> {
    const t = this.xattrTarget(node);
    if (t instanceof FsError) return t;
    return t.rec?.xattrs.get(name) ?? e(E.ENODATA);
  }

  override listxattr(node: HostNode): FsReply<string[]> {
    const t = this.xattrTarget(node);
    if (t instanceof FsError) return t;
    return t.rec === undefined ? [] : [...t.rec.xattrs.keys()];
  }

  private changeXattr(node: HostNode, fn: (rec: MetaRecord) => FsError | undefined): FsReply<void> {
    if (this.ro) return e(E.EROFS);
    const t = this.xattrTarget(node);
    if (t instanceof FsError) return t;
    const rec = recordFromHost(facts(t.st), t.rec);
    const r = fn(rec);
    if (r !== undefined) return r;
    rec.ctime = systemNow();
    const w = this.put(t.st.ino, rec);
    if (w !== undefined) return w;
    if (node.gone) this.orphan(t.st.ino, rec);
    return undefined;
  }

  override setxattr(node: HostNode, name: string, value: Uint8Array, flags: number): FsReply<void> {
    return this.changeXattr(node, (rec) => recordSetXattr(rec, name, value, flags));
  }

  override removexattr(node: HostNode, name: string): FsReply<void> {
    return this.changeXattr(node, (rec) => (rec.xattrs.delete(name) ? undefined : e(E.ENODATA)));
  }
}
