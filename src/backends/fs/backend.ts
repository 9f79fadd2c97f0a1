/**
 * The filesystem backend interface the 9P server runs on. It speaks in inodes, open files, names
 * and plain records — never in 9P messages (the TinyEMU/v86 lesson: a backend that encodes wire
 * entries ties every backend to one protocol). Failures are values: an operation answers an
 * `FsError` (a Linux errno) the guest caused, and throws only for a host bug.
 *
 * Every operation may answer at once or with a Promise; the server copes with both and lets
 * Promise-based requests finish in any order.
 */
import { ENOTSUP, type FsError, fsError } from './errno.js';

/** A value now or later. Backends that answer later must use native Promises. */
export type Async<T> = T | Promise<T>;
/** A value or the errno that stopped it. */
export type FsResult<T> = T | FsError;
/** What every backend operation answers. */
export type FsReply<T> = Async<FsResult<T>>;

/** Runs fn on a value now, or on a Promise's value later: how every layer above chains an Async. */
export function andThen<T, U>(v: Async<T>, fn: (v: T) => Async<U>): Async<U> {
  return v instanceof Promise ? v.then(fn) : fn(v);
}

/** File type bits of a mode (Linux <sys/stat.h>). */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** Linux open(2) flags as 9P2000.L carries them (generic layout, also RISC-V's). */
export const O_ACCMODE = 0o3;
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;

/** setxattr(2) flags. */
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

/** Longest name component a backend has to accept (Linux NAME_MAX). */
export const NAME_MAX = 255;

/** An inode as the server sees it: enough to build a qid without asking the backend. */
export interface FsNode {
  /** Stable identity of the inode for as long as it exists (the qid path). */
  readonly ino: bigint;
  /** Mode bits; at least the file type (S_IFMT) is current. */
  readonly mode: number;
  /**
   * Changes when the content changes (the qid version). Never 0 for a regular file: Linux reads
   * a qid version of 0 as "a synthetic file system" and then does direct I/O on the file even
   * with cache=loose or mmap, page-sized Treads instead of readahead at msize
   * (v9fs_fid_add_modes in fs/9p/fid.h).
   */
  readonly version: number;
}

/** An open file or directory; `node` is the inode it was opened on. */
export interface FsFile {
  readonly node: FsNode;
}

/** Who creates a file. */
export interface FsCreds {
  uid: number;
  gid: number;
}

/** A point in time. */
export interface FsTime {
  sec: number;
  nsec: number;
}

/** getattr's answer, as Linux's struct stat. */
export interface FsStat {
  ino: bigint;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** Device number in Linux's new_encode_dev layout. */
  rdev: number;
  size: number;
  blksize: number;
  /** 512-byte blocks. */
  blocks: number;
  atime: FsTime;
  mtime: FsTime;
  ctime: FsTime;
}

/** What setattr changes; absent fields stay. `'now'` means the backend's current time. */
export interface FsSetAttr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: FsTime | 'now';
  mtime?: FsTime | 'now';
  /** Touch ctime even when nothing else changes. */
  ctime?: boolean;
}

/** One directory entry. `next` is the cookie that resumes the listing after this entry. */
export interface FsDirEntry {
  name: string;
  ino: bigint;
  /** File type bits (S_IFMT) of the entry. */
  type: number;
  next: number;
}

/** statfs's answer, as Linux's struct statfs. */
export interface FsStatFs {
  type: number;
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  fsid: bigint;
  namelen: number;
}

/** The next qid version after `v`: 32 bits, skipping 0 (see FsNode.version). */
/** The host clock as an FsTime (milliseconds, as Date gives them). */
export function systemNow(): FsTime {
  const ms = Date.now();
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1_000_000 };
}

export function nextVersion(v: number): number {
  return (v + 1) >>> 0 || 1;
}

/** Encodes a device number the way Linux's new_encode_dev does. */
export function makeDev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

const notSupported = fsError(ENOTSUP);

/**
 * The base every backend extends: each operation answers ENOTSUP until a backend overrides it, so
 * a backend implements what it has and the guest gets a clear errno for the rest.
 *
 * Names given to the backend were already checked by the server: not empty, no '/', no NUL, at
 * most NAME_MAX bytes, and never '.' or '..' except for `lookup`, where '.' is the directory itself
 * and '..' its parent (the root's parent is the root).
 */
export abstract class FsBackend<N extends FsNode = FsNode, F extends FsFile = FsFile> {
  /** A read-only backend answers EROFS to every change. */
  get readOnly(): boolean {
    return false;
  }

  /**
   * Whether operations may answer with Promises. The server then never hands guest memory to
   * `read` (a late completion must not write into RAM the guest reused after a reset): it reads
   * into its own buffer and copies while the request is still live.
   */
  get asynchronous(): boolean {
    return false;
  }

  /** The root directory of the export. */
  root(): FsReply<N> {
    return notSupported;
  }
  /** The inode `name` names in `dir`. Symlinks are returned, never followed. */
  lookup(_dir: N, _name: string): FsReply<N> {
    return notSupported;
  }
  /** Attributes of `node`; `file` is given when the server holds it open (an unlinked file still answers). */
  getattr(_node: N, _file?: F): FsReply<FsStat> {
    return notSupported;
  }
  setattr(_node: N, _attr: FsSetAttr, _file?: F): FsReply<void> {
    return notSupported;
  }
  /** Opens a regular file or a directory; `flags` are Linux open flags. */
  open(_node: N, _flags: number): FsReply<F> {
    return notSupported;
  }
  /** Creates and opens a regular file. */
  create(_dir: N, _name: string, _flags: number, _mode: number, _creds: FsCreds): FsReply<F> {
    return notSupported;
  }
  /** Reads into dst at offset; answers the bytes read (0 at end of file). */
  read(_file: F, _offset: number, _dst: Uint8Array): FsReply<number> {
    return notSupported;
  }
  /** Writes src at offset (at the end when opened O_APPEND); answers the bytes written. */
  write(_file: F, _offset: number, _src: Uint8Array): FsReply<number> {
    return notSupported;
  }
  close(_file: F): FsReply<void> {
    return undefined;
  }
  /**
   * Makes [offset, offset + length) of an open regular file read as zeros without changing its
   * size (fallocate's PUNCH_HOLE | KEEP_SIZE), freeing what the range held where the backend can.
   */
  punchHole(_file: F, _offset: number, _length: number): FsReply<void> {
    return notSupported;
  }
  fsync(_file: F, _datasync: boolean): FsReply<void> {
    return notSupported;
  }
  /**
   * Up to `max` entries of an open directory, starting at `cookie` (0 for the start, else the
   * `next` of an entry returned before). Cookies are stable: entries added or removed meanwhile
   * don't make others repeat or vanish. '.' and '..' are listed.
   */
  readdir(_dir: F, _cookie: number, _max: number): FsReply<FsDirEntry[]> {
    return notSupported;
  }
  mkdir(_dir: N, _name: string, _mode: number, _creds: FsCreds): FsReply<N> {
    return notSupported;
  }
  /** Creates a device node, FIFO or socket (mode carries the type); `rdev` as from makeDev. */
  mknod(_dir: N, _name: string, _mode: number, _rdev: number, _creds: FsCreds): FsReply<N> {
    return notSupported;
  }
  /** Creates a symlink; any target is stored as given and never followed by the backend. */
  symlink(_dir: N, _name: string, _target: string, _creds: FsCreds): FsReply<N> {
    return notSupported;
  }
  readlink(_node: N): FsReply<string> {
    return notSupported;
  }
  /** Makes `name` in `dir` a new hard link to `target`. */
  link(_dir: N, _name: string, _target: N): FsReply<void> {
    return notSupported;
  }
  rename(_oldDir: N, _oldName: string, _newDir: N, _newName: string): FsReply<void> {
    return notSupported;
  }
  /** Removes a name; `rmdir` asks for an (empty) directory, else a non-directory. */
  unlink(_dir: N, _name: string, _rmdir: boolean): FsReply<void> {
    return notSupported;
  }
  statfs(_node: N): FsReply<FsStatFs> {
    return notSupported;
  }
  getxattr(_node: N, _name: string): FsReply<Uint8Array> {
    return notSupported;
  }
  listxattr(_node: N): FsReply<string[]> {
    return notSupported;
  }
  /** Sets an extended attribute; flags XATTR_CREATE / XATTR_REPLACE. */
  setxattr(_node: N, _name: string, _value: Uint8Array, _flags: number): FsReply<void> {
    return notSupported;
  }
  removexattr(_node: N, _name: string): FsReply<void> {
    return notSupported;
  }
  /** A fid took a reference to `node` (backends that cache inodes may count these). */
  retain(_node: N): void {}
  /** A fid dropped its reference to `node`. */
  release(_node: N): void {}
  /**
   * Snapshots: the names from the root that lead to `node` now, so a restored session can look it
   * up again; undefined when there is none (unlinked) or the backend can't tell (the default).
   */
  nodePath(_node: N): string[] | undefined {
    return undefined;
  }
  /**
   * Snapshots, for backends whose files live only in this process (MemFs): the files as bytes, so
   * the snapshot carries them; and loading them back into a fresh, empty backend.
   */
  saveContents?(): Uint8Array;
  loadContents?(bytes: Uint8Array): void;
}
