/**
 * MemFs to bytes and back: a self-contained image of every inode reachable from the root, hard
 * links kept (one record per inode), xattrs and times included. Loading checks every length and
 * reference and throws MemFsImageError for anything malformed — a host API error, not a guest one.
 *
 * Layout (little-endian): "STVMMEMF", u32 version = 2, u32 inode count, then per inode:
 * mode uid gid rdev (u32 each), atime mtime ctime (u64 sec + u32 nsec each), then by type —
 * regular: u64 size, u32 piece count, each u64 offset + u32 length + bytes (pieces in offset
 * order, not overlapping, inside the size; what no piece covers is a hole and reads as zeros);
 * symlink: u32 length + UTF-8; directory: u32 entries, each u32 name length + UTF-8 + u32
 * inode index; others: nothing — then u32 xattr count, each u32 name length + UTF-8 + u32 value
 * length + bytes. Inode 0 is the root.
 *
 * Version 1 (before sparse files) is the same but for regular files, which are u64 size + bytes;
 * such images still load. Any other version is refused.
 *
 * This module knows MemFs only through the small interfaces below, so it does not import the
 * filesystem it serves (MemFs imports it for its snapshot hooks).
 */
import { type FsCreds, type FsTime, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from './backend.js';
import { CHUNK, type FileData } from './mem-data.js';
import { badEntryName } from './names.js';

const MAGIC = 'STVMMEMF';
const VERSION = 2;

/** What an image holds of an inode. */
export interface ImageNode {
  mode: number;
  uid: number;
  gid: number;
  rdev: number;
  atime: FsTime;
  mtime: FsTime;
  ctime: FsTime;
  size: number;
  readonly data: FileData;
  target: string;
  xattrs: Map<string, Uint8Array> | undefined;
  readonly isDir: boolean;
}

/** What saving and loading an image need of a MemFs (MemFs has all of it). */
export interface MemFsLoader<N extends ImageNode> {
  readonly rootNode: N;
  readonly maxInodes: number;
  newNode(mode: number, creds: FsCreds): N | undefined;
  entries(dir: N): Array<[string, N]>;
  attach(dir: N, name: string, node: N): void;
  setContent(node: N, data: string): void;
  setChunk(node: N, offset: number, data: Uint8Array): void;
  setXattrRaw(node: N, name: string, value: Uint8Array): void;
}

/** A MemFs image that can't be loaded. */
export class MemFsImageError extends Error {
  override name = 'MemFsImageError';
}

class Writer {
  buf = new Uint8Array(1 << 16);
  dv = new DataView(this.buf.buffer);
  pos = 0;
  need(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.need(4);
    this.dv.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
  }
  u64(v: number): void {
    this.need(8);
    this.dv.setUint32(this.pos, v % 2 ** 32, true);
    this.dv.setUint32(this.pos + 4, Math.floor(v / 2 ** 32), true);
    this.pos += 8;
  }
  bytes(b: Uint8Array): void {
    this.need(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  str(s: string): void {
    const b = utf8.encode(s);
    this.u32(b.length);
    this.bytes(b);
  }
  time(t: FsTime): void {
    this.u64(t.sec);
    this.u32(t.nsec);
  }
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

/** Saves every inode reachable from the root. */
export function saveMemFs<N extends ImageNode>(fs: MemFsLoader<N>): Uint8Array {
  const index = new Map<N, number>();
  const order: N[] = [];
  const visit = (n: N): void => {
    if (index.has(n)) return;
    index.set(n, order.length);
    order.push(n);
  };
  visit(fs.rootNode);
  for (let i = 0; i < order.length; i++) {
    const n = order[i]!;
    if (n.isDir) for (const [, child] of fs.entries(n)) visit(child);
  }
  const w = new Writer();
  w.bytes(utf8.encode(MAGIC));
  w.u32(VERSION);
  w.u32(order.length);
  for (const n of order) {
    w.u32(n.mode);
    w.u32(n.uid);
    w.u32(n.gid);
    w.u32(n.rdev);
    w.time(n.atime);
    w.time(n.mtime);
    w.time(n.ctime);
    const type = n.mode & S_IFMT;
    if (type === S_IFREG) {
      w.u64(n.size);
      const pieces = n.data.pieces();
      w.u32(pieces.length);
      for (const [idx, bytes] of pieces) {
        w.u64(idx * CHUNK);
        w.u32(bytes.length);
        w.bytes(bytes);
      }
    } else if (type === S_IFLNK) {
      w.str(n.target);
    } else if (type === S_IFDIR) {
      const ents = fs.entries(n);
      w.u32(ents.length);
      for (const [name, child] of ents) {
        w.str(name);
        w.u32(index.get(child)!);
      }
    }
    const xs = n.xattrs === undefined ? [] : [...n.xattrs];
    w.u32(xs.length);
    for (const [k, v] of xs) {
      w.str(k);
      w.u32(v.length);
      w.bytes(v);
    }
  }
  return w.buf.slice(0, w.pos);
}

class Reader {
  pos = 0;
  private readonly dv: DataView;
  constructor(readonly buf: Uint8Array) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private take(n: number): number {
    if (!(n >= 0) || this.pos + n > this.buf.length) throw new MemFsImageError(`truncated image at byte ${this.pos}`);
    const at = this.pos;
    this.pos += n;
    return at;
  }
  u32(): number {
    return this.dv.getUint32(this.take(4), true);
  }
  u64(): number {
    const at = this.take(8);
    const v = this.dv.getUint32(at, true) + this.dv.getUint32(at + 4, true) * 2 ** 32;
    if (v > Number.MAX_SAFE_INTEGER) throw new MemFsImageError(`number too large at byte ${at}`);
    return v;
  }
  bytes(n: number): Uint8Array {
    const at = this.take(n);
    return this.buf.slice(at, at + n);
  }
  str(): string {
    const n = this.u32();
    const at = this.take(n);
    try {
      return utf8d.decode(this.buf.subarray(at, at + n));
    } catch {
      throw new MemFsImageError(`bad UTF-8 at byte ${at}`);
    }
  }
  time(): FsTime {
    const sec = this.u64();
    const nsec = this.u32();
    if (nsec >= 1e9) throw new MemFsImageError('bad nanoseconds');
    return { sec, nsec };
  }
}

/**
 * Loads an image into `fs`, which must be empty (a fresh MemFs, nothing under its root): a share
 * whose files come back from a snapshot, or `loadMemFs`. Throws MemFsImageError for anything
 * malformed.
 */
export function fillMemFs<N extends ImageNode>(fs: MemFsLoader<N>, image: Uint8Array): void {
  if (fs.entries(fs.rootNode).length > 0) throw new MemFsImageError('the filesystem to load into is not empty');
  const { r, count, version } = readHeader(image);
  fillFromImage(fs, r, count, version, image.length);
}

/** Magic, version and inode count, checked; the reader is left at the first inode. */
function readHeader(image: Uint8Array): { r: Reader; count: number; version: number } {
  const r = new Reader(image);
  if (new TextDecoder().decode(r.bytes(8)) !== MAGIC) throw new MemFsImageError('not a storvm MemFs image');
  const version = r.u32();
  if (version !== 1 && version !== VERSION) throw new MemFsImageError(`unsupported image version ${version} (this storvm reads versions 1 and ${VERSION})`);
  const count = r.u32();
  // Every record takes at least 56 bytes: a count the image can't hold is refused up front.
  if (count === 0 || count > (image.length - r.pos) / 56) throw new MemFsImageError(`bad inode count ${count}`);
  return { r, count, version };
}

function fillFromImage<N extends ImageNode>(fs: MemFsLoader<N>, r: Reader, count: number, version: number, length: number): void {
  if (count > fs.maxInodes) throw new MemFsImageError(`${count} inodes exceed maxInodes ${fs.maxInodes}`);
  const nodes: N[] = [];
  const links: Array<Array<[string, number]>> = [];
  for (let i = 0; i < count; i++) {
    const mode = r.u32();
    const uid = r.u32();
    const gid = r.u32();
    const rdev = r.u32();
    const type = mode & S_IFMT;
    if (i === 0 && type !== S_IFDIR) throw new MemFsImageError('the root is not a directory');
    const n = i === 0 ? fs.rootNode : fs.newNode(mode, { uid, gid });
    if (n === undefined) throw new MemFsImageError('too many inodes');
    n.mode = mode;
    n.uid = uid;
    n.gid = gid;
    n.rdev = rdev;
    n.atime = r.time();
    n.mtime = r.time();
    n.ctime = r.time();
    const ents: Array<[string, number]> = [];
    if (type === S_IFREG) {
      const size = r.u64();
      try {
        if (version === 1) fs.setChunk(n, 0, r.bytes(size));
        else readPieces(fs, n, r, size);
      } catch (e) {
        if (e instanceof MemFsImageError) throw e;
        throw new MemFsImageError(String((e as Error).message));
      }
    } else if (type === S_IFLNK) {
      fs.setContent(n, r.str());
    } else if (type === S_IFDIR) {
      const m = r.u32();
      for (let j = 0; j < m; j++) {
        const name = r.str();
        const child = r.u32();
        if (badEntryName(name)) {
          throw new MemFsImageError(`bad name ${JSON.stringify(name)}`);
        }
        if (child === 0 || child >= count) throw new MemFsImageError(`bad inode reference ${child}`);
        ents.push([name, child]);
      }
    }
    const xc = r.u32();
    for (let j = 0; j < xc; j++) {
      const name = r.str();
      const value = r.bytes(r.u32());
      try {
        fs.setXattrRaw(n, name, value);
      } catch (e) {
        throw new MemFsImageError(String((e as Error).message));
      }
    }
    nodes.push(n);
    links.push(ents);
  }
  if (r.pos !== length) throw new MemFsImageError('trailing bytes after the last inode');
  // Link breadth-first from the root: each directory exactly once, every inode reached.
  const reached = new Uint8Array(count);
  reached[0] = 1;
  const queue = [0];
  for (let qi = 0; qi < queue.length; qi++) {
    const i = queue[qi]!;
    for (const [name, c] of links[i]!) {
      const child = nodes[c]!;
      if (child.isDir && reached[c]) throw new MemFsImageError('a directory is linked twice');
      try {
        fs.attach(nodes[i]!, name, child);
      } catch (e) {
        throw new MemFsImageError(String((e as Error).message));
      }
      if (!reached[c]) {
        reached[c] = 1;
        queue.push(c);
      }
    }
  }
  if (queue.length !== count) throw new MemFsImageError('the image holds unreachable inodes');
}

/** A version-2 file's pieces, checked: in order, not overlapping, none empty or past the size. */
function readPieces<N extends ImageNode>(fs: MemFsLoader<N>, n: N, r: Reader, size: number): void {
  const pieces = r.u32();
  // Each piece takes at least 13 bytes.
  if (pieces > (r.buf.length - r.pos) / 13) throw new MemFsImageError(`bad piece count ${pieces} at byte ${r.pos}`);
  let end = 0;
  for (let k = 0; k < pieces; k++) {
    const at = r.pos;
    const offset = r.u64();
    const len = r.u32();
    if (len === 0 || len > CHUNK || offset < end || offset + len > size) throw new MemFsImageError(`bad file piece at byte ${at}`);
    fs.setChunk(n, offset, r.bytes(len));
    end = offset + len;
  }
  n.size = size;
}
