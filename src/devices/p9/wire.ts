/**
 * The 9P2000.L wire format: message numbers, field layouts and a bounded codec. Every decode stays
 * inside its buffer (a short field sets `bad` and yields zeros), every encode stays inside its
 * limit (an overflow sets `overflow`), so a hostile message never becomes an exception.
 *
 * Layouts follow Linux's net/9p/client.c and include/net/9p/9p.h: all integers little-endian,
 * strings as u16 length + UTF-8 bytes, a qid as type[1] version[4] path[8].
 */
import { BoundedReader, BoundedWriter } from '../bounded.js';

/** Message types (include/net/9p/9p.h, enum p9_msg_t). */
export enum P9 {
  Tlerror = 6,
  Rlerror = 7,
  Tstatfs = 8,
  Rstatfs = 9,
  Tlopen = 12,
  Rlopen = 13,
  Tlcreate = 14,
  Rlcreate = 15,
  Tsymlink = 16,
  Rsymlink = 17,
  Tmknod = 18,
  Rmknod = 19,
  Trename = 20,
  Rrename = 21,
  Treadlink = 22,
  Rreadlink = 23,
  Tgetattr = 24,
  Rgetattr = 25,
  Tsetattr = 26,
  Rsetattr = 27,
  Txattrwalk = 30,
  Rxattrwalk = 31,
  Txattrcreate = 32,
  Rxattrcreate = 33,
  Treaddir = 40,
  Rreaddir = 41,
  Tfsync = 50,
  Rfsync = 51,
  Tlock = 52,
  Rlock = 53,
  Tgetlock = 54,
  Rgetlock = 55,
  Tlink = 70,
  Rlink = 71,
  Tmkdir = 72,
  Rmkdir = 73,
  Trenameat = 74,
  Rrenameat = 75,
  Tunlinkat = 76,
  Runlinkat = 77,
  Tversion = 100,
  Rversion = 101,
  Tauth = 102,
  Rauth = 103,
  Tattach = 104,
  Rattach = 105,
  Tflush = 108,
  Rflush = 109,
  Twalk = 110,
  Rwalk = 111,
  Tread = 116,
  Rread = 117,
  Twrite = 118,
  Rwrite = 119,
  Tclunk = 120,
  Rclunk = 121,
  Tremove = 122,
  Rremove = 123,
}

/** size[4] type[1] tag[2]. */
export const HEADER_SIZE = 7;
/** Bytes of an Rread / Rreaddir before its data: header + count[4]. */
export const IO_HEADER_SIZE = 11;
/** Twrite's fixed part: header fid[4] offset[8] count[4]. */
export const TWRITE_HEADER_SIZE = 23;
export const NOTAG = 0xffff;
export const NOFID = 0xffffffff;
/** Most names in one Twalk (9P: MAXWELEM). */
export const MAXWELEM = 16;
export const QID_SIZE = 13;
export const VERSION_9P2000L = '9P2000.L';

/** qid types (P9_QT*). */
export const QT_DIR = 0x80;
export const QT_SYMLINK = 0x02;
export const QT_FILE = 0x00;

/** Tgetattr request_mask / Rgetattr valid bits (P9_STATS_*). */
export const GETATTR_MODE = 0x1;
export const GETATTR_BASIC = 0x7ff;
/** Tsetattr valid bits (P9_ATTR_*). */
export const SETATTR_MODE = 0x1;
export const SETATTR_UID = 0x2;
export const SETATTR_GID = 0x4;
export const SETATTR_SIZE = 0x8;
export const SETATTR_ATIME = 0x10;
export const SETATTR_MTIME = 0x20;
export const SETATTR_CTIME = 0x40;
export const SETATTR_ATIME_SET = 0x80;
export const SETATTR_MTIME_SET = 0x100;

/** Tlock / Tgetlock types and Rlock status (P9_LOCK_*). */
export const LOCK_TYPE_RDLCK = 0;
export const LOCK_TYPE_WRLCK = 1;
export const LOCK_TYPE_UNLCK = 2;
export const LOCK_SUCCESS = 0;
export const LOCK_BLOCKED = 1;
export const LOCK_ERROR = 2;

/** Tunlinkat flag asking for rmdir (AT_REMOVEDIR). */
export const AT_REMOVEDIR = 0x200;

const utf8Decoder = new TextDecoder();
const utf8Encoder = new TextEncoder();

/** A bounded little-endian reader over one message. */
export class Decoder extends BoundedReader {
  constructor(buf: Uint8Array) {
    super(buf);
    this.end = buf.length;
  }

  /** Points the decoder at buf[0, end). */
  reset(buf: Uint8Array, end: number): void {
    if (buf !== this.buf) {
      this.buf = buf;
      this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    this.pos = 0;
    this.end = Math.min(end, buf.length);
    this.bad = false;
  }

  /** A u64 as a number: exact below 2^53, and above it still larger than any safe offset. */
  u64(): number {
    const at = this.take(8);
    return at < 0 ? 0 : this.dv.getUint32(at, true) + this.dv.getUint32(at + 4, true) * 2 ** 32;
  }
  /** A string: u16 length, then that many bytes, which must lie inside the message. */
  str(): string {
    const len = this.u16();
    const at = this.take(len);
    if (at < 0) return '';
    const b = this.buf;
    if (len <= 32) {
      // Short ASCII names (the common case) without a decoder call or a view allocation.
      let s = '';
      for (let i = at; i < at + len; i++) {
        const c = b[i]!;
        if (c > 0x7f) return utf8Decoder.decode(b.subarray(at, at + len));
        s += String.fromCharCode(c);
      }
      return s;
    }
    return utf8Decoder.decode(b.subarray(at, at + len));
  }
}

/** A qid: what the server says identifies a file. */
export interface Qid {
  type: number;
  version: number;
  path: bigint;
}

/** A bounded little-endian writer of one reply into a reusable buffer. */
export class Encoder extends BoundedWriter {
  /** Starts a reply of `type` for `tag`, leaving room for the size. */
  begin(type: number, tag: number, limit: number): void {
    this.pos = 0;
    this.overflow = false;
    this.limit = Math.min(limit, this.buf.length);
    this.u32(0);
    this.u8(type);
    this.u16(tag);
  }

  /** A u64 from a non-negative number (below 2^64). */
  u64(v: number): void {
    const at = this.room(8);
    if (at < 0) return;
    const lo = v % 2 ** 32;
    this.dv.setUint32(at, lo, true);
    this.dv.setUint32(at + 4, Math.floor(v / 2 ** 32) >>> 0, true);
  }
  u64big(v: bigint): void {
    const at = this.room(8);
    if (at >= 0) this.dv.setBigUint64(at, BigInt.asUintN(64, v), true);
  }
  str(s: string): void {
    const lenAt = this.room(2);
    if (lenAt < 0) return;
    // ASCII fast path; else encode straight into the buffer.
    let ascii = s.length <= 256;
    if (ascii) for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) { ascii = false; break; }
    let n: number;
    if (ascii) {
      n = s.length;
      const at = this.room(n);
      if (at < 0) return;
      for (let i = 0; i < n; i++) this.buf[at + i] = s.charCodeAt(i);
    } else {
      const space = Math.min(this.limit - this.pos, 0xffff);
      const r = utf8Encoder.encodeInto(s, this.buf.subarray(this.pos, this.pos + space));
      if (r.read !== s.length) {
        this.overflow = true;
        return;
      }
      n = r.written;
      this.pos += n;
    }
    if (n > 0xffff) {
      this.overflow = true;
      return;
    }
    this.dv.setUint16(lenAt, n, true);
  }
  qidOf(type: number, version: number, path: bigint): void {
    const at = this.room(QID_SIZE);
    if (at < 0) return;
    this.buf[at] = type;
    this.dv.setUint32(at + 1, version >>> 0, true);
    this.dv.setBigUint64(at + 5, BigInt.asUintN(64, path), true);
  }
  /** Patches a u32 written earlier at `at`. */
  patchU32(at: number, v: number): void {
    this.dv.setUint32(at, v >>> 0, true);
  }
}
