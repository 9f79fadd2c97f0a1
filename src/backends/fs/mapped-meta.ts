/**
 * The mapped metadata model for shares of a host directory (QEMU's security_model=mapped-file,
 * kept per inode rather than per name): the host holds only regular files, directories and
 * symlinks, and the guest's view of each inode — mode, owner, group, device number, the node type
 * of FIFOs, sockets and device nodes, nanosecond times and extended attributes — lives in a small
 * record beside the files.
 *
 * This file is environment-free: it knows records, host facts (what a host stat said) and a tiny
 * byte-store interface (`MetaFiles`). HostFs (Node) and any later backend over another host API
 * build on it; none of the host calls are here.
 *
 * What a record may change is limited so that a corrupt, forged or missing store can only give
 * wrong attributes, never reach anything outside the share:
 * - The file type comes from the host, except that a host *regular file* may be shown as a FIFO,
 *   socket or device node (which the server never opens). A record can't turn a file into a
 *   directory or a symlink, or a directory into anything else.
 * - A record that doesn't parse, has a wrong field, or was written for an earlier inode with the
 *   same number (its birth time differs) is ignored: the host's own attributes are shown.
 */
import type { Async, FsCreds, FsResult, FsStat, FsTime } from './backend.js';
import { S_IFBLK, andThen, S_IFCHR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK, XATTR_CREATE, XATTR_REPLACE } from './backend.js';
import { ENODATA, ENOSPC, EEXIST, type FsError, fsError } from './errno.js';
import { fromBase64, toBase64 } from '../block/bytes.js';

/** What the host said about an inode (lstat/fstat), in Linux's units: a stat, and its birth time. */
export interface HostFacts extends FsStat {
  /** Birth time in ns; 0n when the host doesn't know it. */
  btime: bigint;
}

/** A time the guest set, with the host's (coarser) time it was stored as. */
export interface SetTime {
  /** The host's time right after the set, in ns: while the host still says this, `t` holds. */
  host: bigint;
  t: FsTime;
}

/** The guest's metadata of one inode. */
export interface MetaRecord {
  /** The host birth time of the inode the record was written for (0n: unknown). */
  btime: bigint;
  /** Type and permission bits as the guest sees them. */
  mode: number;
  uid: number;
  gid: number;
  /** Device number (new_encode_dev) of a character or block device. */
  rdev: number;
  atime?: SetTime;
  mtime?: SetTime;
  /** The last metadata change; the guest sees the later of this and the host's ctime. */
  ctime?: FsTime;
  xattrs: Map<string, Uint8Array>;
}

/** Largest record a store reads; anything bigger is treated as corrupt. */
export const META_MAX_RECORD = 1 << 20;
/** Bytes of xattr names and values one inode may hold (ENOSPC beyond). */
export const META_MAX_XATTR = 256 << 10;

/**
 * The node types a host regular file may stand for. A store whose host has no symlinks of its own
 * (src/backends/fs/path-meta.ts) passes a set that adds S_IFLNK.
 */
export const MAPPABLE: ReadonlySet<number> = new Set([S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK]);

/** ns since the epoch of a time. */
export function timeNs(t: FsTime): bigint {
  return BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec);
}

function later(a: FsTime, b: FsTime): FsTime {
  return a.sec > b.sec || (a.sec === b.sec && a.nsec >= b.nsec) ? a : b;
}

/** Whether a record applies to the inode the host describes (not one with a reused number). */
export function recordFits(host: HostFacts, rec: MetaRecord): boolean {
  return rec.btime === 0n || host.btime === 0n || rec.btime === host.btime;
}

/** The guest's stat of an inode: the host's facts with the record laid over them. */
export function mappedStat(host: HostFacts, rec: MetaRecord | undefined, mappable: ReadonlySet<number> = MAPPABLE): FsStat {
  const st: FsStat = {
    ino: host.ino,
    mode: host.mode,
    uid: host.uid,
    gid: host.gid,
    nlink: host.nlink,
    rdev: host.rdev,
    size: host.size,
    blksize: host.blksize,
    blocks: host.blocks,
    atime: host.atime,
    mtime: host.mtime,
    ctime: host.ctime,
  };
  if (rec === undefined || !recordFits(host, rec)) return st;
  const hostType = host.mode & S_IFMT;
  const recType = rec.mode & S_IFMT;
  const type = hostType === S_IFREG && mappable.has(recType) ? recType : hostType;
  st.mode = type === S_IFLNK ? S_IFLNK | 0o777 : type | (rec.mode & 0o7777);
  st.uid = rec.uid;
  st.gid = rec.gid;
  if (type === S_IFCHR || type === S_IFBLK) st.rdev = rec.rdev;
  else if (hostType === S_IFREG) st.rdev = 0;
  if (rec.atime !== undefined && rec.atime.host === timeNs(host.atime)) st.atime = rec.atime.t;
  if (rec.mtime !== undefined && rec.mtime.host === timeNs(host.mtime)) st.mtime = rec.mtime.t;
  if (rec.ctime !== undefined) st.ctime = later(host.ctime, rec.ctime);
  return st;
}

/** A record that shows what the host shows now (the starting point of a first change). */
export function recordFromHost(host: HostFacts, prev: MetaRecord | undefined, mappable: ReadonlySet<number> = MAPPABLE): MetaRecord {
  const st = mappedStat(host, prev, mappable);
  const fits = prev !== undefined && recordFits(host, prev);
  return {
    btime: host.btime,
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    rdev: st.rdev,
    atime: fits ? prev.atime : undefined,
    mtime: fits ? prev.mtime : undefined,
    ctime: fits ? prev.ctime : undefined,
    xattrs: fits ? new Map(prev.xattrs) : new Map(),
  };
}

/** The record of a node the guest just made. */
export function newRecord(host: HostFacts, mode: number, creds: FsCreds, rdev: number, now: FsTime): MetaRecord {
  return { btime: host.btime, mode, uid: creds.uid >>> 0, gid: creds.gid >>> 0, rdev: rdev >>> 0, ctime: now, xattrs: new Map() };
}

function xattrBytes(x: Map<string, Uint8Array>): number {
  let n = 0;
  for (const [k, v] of x) n += k.length + v.length;
  return n;
}

/** Sets an xattr on a record (a copy of the value), or the errno that refuses it. */
export function recordSetXattr(rec: MetaRecord, name: string, value: Uint8Array, flags: number): FsError | undefined {
  const old = rec.xattrs.get(name);
  if ((flags & XATTR_CREATE) !== 0 && old !== undefined) return fsError(EEXIST);
  if ((flags & XATTR_REPLACE) !== 0 && old === undefined) return fsError(ENODATA);
  const size = xattrBytes(rec.xattrs) - (old === undefined ? 0 : name.length + old.length) + name.length + value.length;
  if (size > META_MAX_XATTR) return fsError(ENOSPC);
  rec.xattrs.set(name, value.slice());
  return undefined;
}

// ---- encoding -----------------------------------------------------------------------------------

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });

/** A record as the bytes a store keeps (JSON, version 1). */
export function encodeRecord(rec: MetaRecord): Uint8Array {
  const t = (v: SetTime | undefined) => (v === undefined ? undefined : [v.host.toString(), v.t.sec, v.t.nsec]);
  const x: Record<string, string> = {};
  for (const [k, v] of rec.xattrs) x[k] = toBase64(v);
  return te.encode(
    JSON.stringify({
      v: 1,
      b: rec.btime.toString(),
      m: rec.mode,
      u: rec.uid,
      g: rec.gid,
      r: rec.rdev,
      a: t(rec.atime),
      t: t(rec.mtime),
      c: rec.ctime === undefined ? undefined : [rec.ctime.sec, rec.ctime.nsec],
      x,
    }),
  );
}

function u32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}
function time(v: unknown): FsTime | undefined {
  if (!Array.isArray(v) || v.length !== 2) return undefined;
  const [sec, nsec] = v as unknown[];
  if (typeof sec !== 'number' || !Number.isSafeInteger(sec) || !u32(nsec) || nsec >= 1e9) return undefined;
  return { sec, nsec };
}
function nsString(v: unknown): bigint | undefined {
  return typeof v === 'string' && /^-?[0-9]{1,20}$/.test(v) ? BigInt(v) : undefined;
}
function setTime(v: unknown): SetTime | undefined | null {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length !== 3) return null;
  const host = nsString(v[0]);
  const t = time(v.slice(1));
  return host === undefined || t === undefined ? null : { host, t };
}

/** Parses a stored record; undefined for anything that isn't exactly a valid record. */
export function decodeRecord(bytes: Uint8Array): MetaRecord | undefined {
  if (bytes.length > META_MAX_RECORD) return undefined;
  let o: unknown;
  try {
    o = JSON.parse(td.decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
  const r = o as Record<string, unknown>;
  const btime = nsString(r.b);
  if (r.v !== 1 || btime === undefined || !u32(r.m) || !u32(r.u) || !u32(r.g) || !u32(r.r)) return undefined;
  const atime = setTime(r.a);
  const mtime = setTime(r.t);
  const ctime = r.c === undefined ? undefined : (time(r.c) ?? null);
  if (atime === null || mtime === null || ctime === null) return undefined;
  const xattrs = new Map<string, Uint8Array>();
  if (typeof r.x !== 'object' || r.x === null || Array.isArray(r.x)) return undefined;
  for (const [k, v] of Object.entries(r.x as Record<string, unknown>)) {
    const b = typeof v === 'string' ? fromBase64(v) : undefined;
    if (b === undefined || k === '' || k.includes('\0')) return undefined;
    xattrs.set(k, b);
  }
  return { btime, mode: r.m, uid: r.u, gid: r.g, rdev: r.r, atime, mtime, ctime, xattrs };
}

// ---- the store ----------------------------------------------------------------------------------

/**
 * Where records live: a flat set of byte blobs by key. `write` must be atomic (the old bytes or
 * the new ones, whatever kills the process in between: write a temporary, then rename it over).
 * `read` answers undefined for a missing, unreadable or oversized blob.
 */
export interface MetaFiles {
  read(key: string): Async<Uint8Array | undefined>;
  write(key: string, data: Uint8Array): Async<FsResult<void>>;
  remove(key: string): Async<void>;
}

/** Records by host inode number over a MetaFiles, with a bounded cache (misses cached too). */
export class MetaStore {
  private readonly cache = new Map<bigint, MetaRecord | null>();

  constructor(
    readonly files: MetaFiles,
    private readonly cacheSize = 4096,
  ) {}

  private remember(ino: bigint, rec: MetaRecord | null): void {
    this.cache.delete(ino);
    this.cache.set(ino, rec);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
  }

  /** The record for the inode the host describes, if one fits it. */
  get(host: HostFacts): Async<MetaRecord | undefined> {
    const known = this.cache.get(host.ino);
    const fit = (r: MetaRecord | null | undefined) => (r != null && recordFits(host, r) ? r : undefined);
    if (known !== undefined) return fit(known);
    return andThen(this.files.read(host.ino.toString()), (bytes) => {
      const rec = bytes === undefined ? undefined : decodeRecord(bytes);
      this.remember(host.ino, rec ?? null);
      return fit(rec);
    });
  }

  /** Stores a record; the cache follows only when the store took it. */
  put(ino: bigint, rec: MetaRecord): Async<FsResult<void>> {
    return andThen(this.files.write(ino.toString(), encodeRecord(rec)), (r) => {
      if (r === undefined) this.remember(ino, rec);
      else this.cache.delete(ino);
      return r;
    });
  }

  /** Forgets an inode that no longer exists on the host. */
  drop(ino: bigint): Async<void> {
    this.remember(ino, null);
    return this.files.remove(ino.toString());
  }
}
