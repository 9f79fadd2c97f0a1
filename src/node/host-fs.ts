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
 * The host calls are synchronous: one request runs from the first check to the last host call
 * without another guest request in between. A host process racing the checks is outside the
 * guest's reach. uid/gid/mode are the host's (no mapped-xattr security model yet).
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
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  makeDev,
} from '../backends/fs/backend.js';
import * as E from '../backends/fs/errno.js';
import { type FsError, fsError } from '../backends/fs/errno.js';

export interface HostFsOptions {
  /** Refuse every change with EROFS. */
  readOnly?: boolean;
}

/** An inode of the share, named by its place in the tree. */
export class HostNode implements FsNode {
  /** Children some fid still refers to (directly or below); others are not kept. */
  children: Map<string, HostNode> | undefined;
  /** Fids holding this node. */
  refs = 0;
  /** The name went away (unlinked or replaced); only open files still reach the inode. */
  gone = false;
  version = 0;
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

function badName(name: string): boolean {
  return name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0');
}

/** Host open flags for Linux access mode, O_TRUNC and O_APPEND. */
function hostFlags(flags: number): number {
  const acc = flags & O_ACCMODE;
  let f = acc === O_WRONLY ? C.O_WRONLY : acc === O_RDWR ? C.O_RDWR : C.O_RDONLY;
  if (flags & O_TRUNC) f |= C.O_TRUNC;
  if (flags & O_APPEND) f |= C.O_APPEND;
  return f | C.O_NOFOLLOW | (C.O_NONBLOCK ?? 0);
}

export class HostFs extends FsBackend<HostNode, HostFile> {
  /** The real path of the shared directory. */
  readonly dir: string;
  private readonly ro: boolean;
  readonly rootNode: HostNode;

  constructor(dir: string, opts: HostFsOptions = {}) {
    super();
    const real = fs.realpathSync(dir);
    const st = fs.lstatSync(real, { bigint: true });
    if (!st.isDirectory()) throw new Error(`HostFs: ${dir} is not a directory`);
    this.dir = real;
    this.ro = opts.readOnly ?? false;
    this.rootNode = new HostNode(null, '', st.ino, Number(st.mode));
    this.rootNode.refs = 1; // the root is never dropped
  }

  override get readOnly(): boolean {
    return this.ro;
  }

  /**
   * The host path of a node, after checking that every directory on the way (the node's own
   * parent included) is a real directory and not a symlink. `self` also checks the node itself
   * is a real directory (for operations inside it).
   */
  private resolve(node: HostNode, self = false): string | FsError {
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
      // The root itself may have been replaced on the host.
      try {
        if (!fs.lstatSync(p).isDirectory()) return e(E.ENOTDIR);
      } catch (err) {
        return fail(err);
      }
    }
    return p;
  }

  /** The checked host path of `name` inside directory `dir`. */
  private inside(dir: HostNode, name: string): string | FsError {
    if (badName(name) || Buffer.byteLength(name) > NAME_MAX) return e(E.EINVAL);
    const p = this.resolve(dir, true);
    return typeof p === 'string' ? p + path.sep + name : p;
  }

  /** The node for `name` in `dir` with the given stat: the known one if it is the same inode. */
  private child(dir: HostNode, name: string, st: fs.BigIntStats): HostNode {
    const known = dir.children?.get(name);
    if (known !== undefined && known.ino === st.ino) {
      known.mode = Number(st.mode);
      return known;
    }
    return new HostNode(dir, name, st.ino, Number(st.mode));
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

  override root(): HostNode {
    return this.rootNode;
  }

  override lookup(dir: HostNode, name: string): FsReply<HostNode> {
    if (name === '.') return dir;
    if (name === '..') return dir.parent ?? dir;
    const p = this.inside(dir, name);
    if (typeof p !== 'string') return p;
    try {
      return this.child(dir, name, fs.lstatSync(p, { bigint: true }));
    } catch (err) {
      return fail(err);
    }
  }

  override getattr(node: HostNode, file?: HostFile): FsReply<FsStat> {
    let st: fs.BigIntStats;
    try {
      if (file !== undefined && file.fd >= 0) {
        st = fs.fstatSync(file.fd, { bigint: true });
      } else {
        const p = this.resolve(node);
        if (typeof p !== 'string') return p;
        st = fs.lstatSync(p, { bigint: true });
      }
    } catch (err) {
      return fail(err);
    }
    node.mode = Number(st.mode);
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
    };
  }

  override setattr(node: HostNode, a: FsSetAttr, file?: HostFile): FsReply<void> {
    if (this.ro) return e(E.EROFS);
    const p = this.resolve(node);
    if (typeof p !== 'string') return p;
    try {
      const st = file !== undefined && file.fd >= 0 ? fs.fstatSync(file.fd) : fs.lstatSync(p);
      const link = st.isSymbolicLink();
      if (a.size !== undefined) {
        if (st.isDirectory()) return e(E.EISDIR);
        if (!st.isFile()) return e(E.EINVAL);
        if (file !== undefined && file.fd >= 0 && (file.flags & O_ACCMODE) !== O_RDONLY) {
          fs.ftruncateSync(file.fd, a.size);
        } else {
          const fd = fs.openSync(p, C.O_WRONLY | C.O_NOFOLLOW | (C.O_NONBLOCK ?? 0));
          try {
            fs.ftruncateSync(fd, a.size);
          } finally {
            fs.closeSync(fd);
          }
        }
      }
      if (a.mode !== undefined && !link) {
        if (file !== undefined && file.fd >= 0) fs.fchmodSync(file.fd, a.mode & 0o7777);
        else fs.chmodSync(p, a.mode & 0o7777);
      }
      if (a.uid !== undefined || a.gid !== undefined) {
        fs.lchownSync(p, a.uid ?? -1, a.gid ?? -1);
      }
      if (a.atime !== undefined || a.mtime !== undefined) {
        const now = Date.now() / 1000;
        const t = (v: FsTime | 'now' | undefined, old: number): number =>
          v === undefined ? old / 1000 : v === 'now' ? now : v.sec + v.nsec / 1e9;
        fs.lutimesSync(p, t(a.atime, st.atimeMs), t(a.mtime, st.mtimeMs));
      }
    } catch (err) {
      return fail(err);
    }
    node.version = (node.version + 1) >>> 0;
    return undefined;
  }

  override open(node: HostNode, flags: number): FsReply<HostFile> {
    const p = this.resolve(node);
    if (typeof p !== 'string') return p;
    try {
      const st = fs.lstatSync(p, { bigint: true });
      if (st.ino !== node.ino) return e(E.ENOENT);
      if (st.isDirectory()) {
        if ((flags & O_ACCMODE) !== O_RDONLY) return e(E.EISDIR);
        const again = this.resolve(node, true);
        if (typeof again !== 'string') return again;
        return new HostFile(node, -1, flags);
      }
      // Never open anything but a regular file: FIFOs block, device nodes have side effects.
      if (!st.isFile()) return e(st.isSymbolicLink() ? E.ELOOP : E.EACCES);
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

  override create(dir: HostNode, name: string, flags: number, mode: number, _creds: FsCreds): FsReply<HostFile> {
    if (this.ro) return e(E.EROFS);
    const p = this.inside(dir, name);
    if (typeof p !== 'string') return p;
    try {
      const fd = fs.openSync(p, hostFlags(flags) | C.O_CREAT | C.O_EXCL, mode & 0o7777);
      const st = fs.fstatSync(fd, { bigint: true });
      dir.version = (dir.version + 1) >>> 0;
      return new HostFile(this.child(dir, name, st), fd, flags);
    } catch (err) {
      return fail(err);
    }
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
      file.node.version = (file.node.version + 1) >>> 0;
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
    const p = this.resolve(dir, true);
    if (typeof p !== 'string') return dir.gone ? [] : p;
    // A snapshot taken when a listing starts keeps cookies (indices) stable across reads.
    if (cookie === 0 || file.listing === undefined) {
      try {
        file.listing = fs.readdirSync(p);
      } catch (err) {
        return fail(err);
      }
    }
    const names = file.listing;
    const out: FsDirEntry[] = [];
    for (let i = cookie; i < names.length + 2 && out.length < max; i++) {
      if (i === 0) out.push({ name: '.', ino: dir.ino, type: S_IFDIR, next: 1 });
      else if (i === 1) out.push({ name: '..', ino: (dir.parent ?? dir).ino, type: S_IFDIR, next: 2 });
      else {
        const name = names[i - 2]!;
        try {
          const st = fs.lstatSync(p + path.sep + name, { bigint: true });
          out.push({ name, ino: st.ino, type: Number(st.mode) & S_IFMT, next: i + 1 });
        } catch {
          // Removed since the snapshot: skipped, its cookie stays used.
        }
      }
    }
    return out;
  }

  private made(dir: HostNode, name: string, p: string): FsReply<HostNode> {
    try {
      const st = fs.lstatSync(p, { bigint: true });
      dir.version = (dir.version + 1) >>> 0;
      return this.child(dir, name, st);
    } catch (err) {
      return fail(err);
    }
  }

  override mkdir(dir: HostNode, name: string, mode: number, _creds: FsCreds): FsReply<HostNode> {
    if (this.ro) return e(E.EROFS);
    const p = this.inside(dir, name);
    if (typeof p !== 'string') return p;
    try {
      fs.mkdirSync(p, { mode: mode & 0o7777 });
    } catch (err) {
      return fail(err);
    }
    return this.made(dir, name, p);
  }

  override mknod(dir: HostNode, name: string, mode: number, _rdev: number, _creds: FsCreds): FsReply<HostNode> {
    if (this.ro) return e(E.EROFS);
    const p = this.inside(dir, name);
    if (typeof p !== 'string') return p;
    const type = mode & S_IFMT;
    // Node has no mknod(2): regular files only; FIFOs, sockets and device nodes can't be made here.
    if (type !== 0 && type !== S_IFREG) return e(E.EPERM);
    try {
      fs.closeSync(fs.openSync(p, C.O_CREAT | C.O_EXCL | C.O_WRONLY | C.O_NOFOLLOW, mode & 0o7777));
    } catch (err) {
      return fail(err);
    }
    return this.made(dir, name, p);
  }

  override symlink(dir: HostNode, name: string, target: string, _creds: FsCreds): FsReply<HostNode> {
    if (this.ro) return e(E.EROFS);
    const p = this.inside(dir, name);
    if (typeof p !== 'string') return p;
    try {
      fs.symlinkSync(target, p);
    } catch (err) {
      return fail(err);
    }
    return this.made(dir, name, p);
  }

  override readlink(node: HostNode): FsReply<string> {
    if ((node.mode & S_IFMT) !== S_IFLNK) return e(E.EINVAL);
    const p = this.resolve(node);
    if (typeof p !== 'string') return p;
    try {
      return fs.readlinkSync(p);
    } catch (err) {
      return fail(err);
    }
  }

  override link(dir: HostNode, name: string, target: HostNode): FsReply<void> {
    if (this.ro) return e(E.EROFS);
    const to = this.inside(dir, name);
    if (typeof to !== 'string') return to;
    const from = this.resolve(target);
    if (typeof from !== 'string') return from;
    try {
      if (fs.lstatSync(from, { bigint: true }).ino !== target.ino) return e(E.ENOENT);
      fs.linkSync(from, to); // link(2) never follows a symlink
    } catch (err) {
      return fail(err);
    }
    dir.version = (dir.version + 1) >>> 0;
    return undefined;
  }

  override rename(oldDir: HostNode, oldName: string, newDir: HostNode, newName: string): FsReply<void> {
    if (this.ro) return e(E.EROFS);
    const from = this.inside(oldDir, oldName);
    if (typeof from !== 'string') return from;
    const to = this.inside(newDir, newName);
    if (typeof to !== 'string') return to;
    try {
      fs.renameSync(from, to);
    } catch (err) {
      return fail(err);
    }
    const victim = newDir.children?.get(newName);
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
    oldDir.version = (oldDir.version + 1) >>> 0;
    newDir.version = (newDir.version + 1) >>> 0;
    return undefined;
  }

  override unlink(dir: HostNode, name: string, rmdir: boolean): FsReply<void> {
    if (this.ro) return e(E.EROFS);
    const p = this.inside(dir, name);
    if (typeof p !== 'string') return p;
    try {
      const isDir = fs.lstatSync(p).isDirectory();
      if (rmdir && !isDir) return e(E.ENOTDIR);
      if (!rmdir && isDir) return e(E.EISDIR);
      if (rmdir) fs.rmdirSync(p);
      else fs.unlinkSync(p);
    } catch (err) {
      return fail(err);
    }
    const gone = dir.children?.get(name);
    if (gone !== undefined) {
      gone.gone = true;
      dir.children!.delete(name);
    }
    dir.version = (dir.version + 1) >>> 0;
    return undefined;
  }

  override statfs(node: HostNode): FsReply<FsStatFs> {
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
}
