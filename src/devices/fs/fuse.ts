/**
 * The FUSE wire format as virtio-fs carries it (Linux include/uapi/linux/fuse.h, protocol 7.x):
 * opcodes, flags, struct sizes, and a bounded little-endian reader and writer. Every read stays
 * inside its message; a field that runs past the end sets `bad` instead of throwing.
 */
import { BoundedReader, BoundedWriter } from '../bounded.js';

/** Protocol version storvm speaks: 7.31 is the last minor whose structs this server needs. */
export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 31;
/** The root directory's node id. */
export const FUSE_ROOT_ID = 1n;

/** Opcodes (enum fuse_opcode). */
export const FUSE = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  GETLK: 31,
  SETLK: 32,
  SETLKW: 33,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  BMAP: 37,
  DESTROY: 38,
  IOCTL: 39,
  POLL: 40,
  NOTIFY_REPLY: 41,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SETUPMAPPING: 48,
  REMOVEMAPPING: 49,
  SYNCFS: 50,
} as const;

/** FUSE_INIT flags (fuse_init_in.flags / fuse_init_out.flags). */
export const INIT = {
  ASYNC_READ: 1 << 0,
  POSIX_LOCKS: 1 << 1,
  ATOMIC_O_TRUNC: 1 << 3,
  EXPORT_SUPPORT: 1 << 4,
  BIG_WRITES: 1 << 5,
  DONT_MASK: 1 << 6,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  ASYNC_DIO: 1 << 15,
  WRITEBACK_CACHE: 1 << 16,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  HANDLE_KILLPRIV_V2: 1 << 28,
} as const;

/** fuse_open_out.open_flags. */
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_CACHE_DIR = 1 << 3;
/** Don't send FLUSH at close (the kernel still writes its writeback cache back first). */
export const FOPEN_NOFLUSH = 1 << 5;

/** fuse_setattr_in.valid bits. */
export const FATTR = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
  LOCKOWNER: 1 << 9,
  CTIME: 1 << 10,
  KILL_SUIDGID: 1 << 11,
} as const;

/** fuse_lk_in.lk_flags: the request is a flock(2), not a POSIX lock (only with FLOCK_LOCKS). */
export const FUSE_LK_FLOCK = 1;
/** fuse_file_lock.end of a lock that runs to the end of the file (Linux OFFSET_MAX). */
export const OFFSET_MAX = 0x7fffffffffffffffn;

/** fuse_write_in.write_flags: clear set-user-ID and set-group-ID (HANDLE_KILLPRIV_V2). */
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2;
/** fuse_open_in.open_flags / fuse_create_in.open_flags: the same for an O_TRUNC open. */
export const FUSE_OPEN_KILL_SUIDGID = 1 << 0;

export const FUSE_GETATTR_FH = 1;
export const FUSE_FSYNC_FDATASYNC = 1;
/** renameat2(2) flags. */
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;
/** fallocate(2) mode bits. */
export const FALLOC_FL_KEEP_SIZE = 1;
export const FALLOC_FL_PUNCH_HOLE = 2;
/** lseek(2) whence values the kernel forwards. */
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

/** Struct sizes in bytes. */
export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
export const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
export const OPEN_OUT_SIZE = 16;
export const INIT_IN_SIZE = 16;
export const INIT_OUT_SIZE = 64;
export const READ_IN_SIZE = 40;
export const WRITE_IN_SIZE = 40;
export const SETATTR_IN_SIZE = 88;
export const STATFS_OUT_SIZE = 80;
export const DIRENT_HEADER_SIZE = 24;

/** A dirent's size: header plus name, padded to 8 bytes (FUSE_DIRENT_SIZE). */
export function direntSize(nameBytes: number, plus: boolean): number {
  return (((plus ? ENTRY_OUT_SIZE : 0) + DIRENT_HEADER_SIZE + nameBytes + 7) & ~7) >>> 0;
}

const utf8 = new TextDecoder();
const utf8Enc = new TextEncoder();

/** Reads fields of one request; past the end it answers zeros and sets `bad`. */
export class FuseReader extends BoundedReader {
  reset(end: number, pos: number): void {
    this.end = end;
    this.pos = pos;
    this.bad = false;
  }
  /** A u64 as a number; values above 2^53 come back as Infinity so range checks catch them. */
  u64(): number {
    const at = this.take(8);
    if (at < 0) return 0;
    const hi = this.dv.getUint32(at + 4, true);
    if (hi >= 0x200000) return Infinity;
    return hi * 2 ** 32 + this.dv.getUint32(at, true);
  }
  skip(n: number): void {
    this.take(n);
  }
  /**
   * A NUL-terminated name. Without a NUL before the end of the message the reader goes bad; the
   * name's byte length is kept in `lastBytes` for the NAME_MAX check.
   */
  cstr(): string {
    if (this.bad) return '';
    const b = this.buf;
    let i = this.pos;
    while (i < this.end && b[i] !== 0) i++;
    if (i >= this.end) {
      this.bad = true;
      return '';
    }
    const start = this.pos;
    this.pos = i + 1;
    this.lastBytes = i - start;
    for (let k = start; k < i; k++) if (b[k]! > 0x7f) return utf8.decode(b.subarray(start, i));
    return String.fromCharCode.apply(null, b.subarray(start, i) as unknown as number[]);
  }
  lastBytes = 0;
}

/** Builds one reply; writes past the limit set `overflow` and change nothing. */
export class FuseWriter extends BoundedWriter {
  constructor(buf: Uint8Array) {
    super(buf);
    this.limit = 0;
  }
  /** Starts a reply for request `unique` with room for `limit` bytes in all. */
  begin(unique: bigint, limit: number): void {
    this.limit = Math.min(limit, this.buf.length);
    this.overflow = this.limit < OUT_HEADER_SIZE;
    this.pos = OUT_HEADER_SIZE;
    if (!this.overflow) {
      this.dv.setInt32(4, 0, true);
      this.dv.setBigUint64(8, unique, true);
    }
  }
  u64(v: number | bigint): void {
    const at = this.room(8);
    if (at < 0) return;
    if (typeof v === 'bigint') this.dv.setBigUint64(at, BigInt.asUintN(64, v), true);
    else {
      const n = v < 0 || !Number.isFinite(v) ? 0 : Math.floor(v);
      this.dv.setUint32(at, n % 2 ** 32, true);
      this.dv.setUint32(at + 4, Math.floor(n / 2 ** 32), true);
    }
  }
  /** A string's UTF-8 bytes (no NUL); answers their count, or -1 when they did not fit. */
  str(s: string): number {
    let ascii = true;
    for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) ascii = false;
    if (!ascii) {
      const b = utf8Enc.encode(s);
      const before = this.overflow;
      this.bytes(b);
      return this.overflow && !before ? -1 : b.length;
    }
    const at = this.room(s.length);
    if (at < 0) return -1;
    for (let i = 0; i < s.length; i++) this.buf[at + i] = s.charCodeAt(i);
    return s.length;
  }
  /** Pads with zeros to a multiple of 8. */
  align8(): void {
    const pad = (8 - (this.pos & 7)) & 7;
    if (pad > 0) this.zeros(pad);
  }
}

/** UTF-8 byte length of a string. */
export function utf8Length(s: string): number {
  let ascii = true;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) ascii = false;
  return ascii ? s.length : utf8Enc.encode(s).length;
}
