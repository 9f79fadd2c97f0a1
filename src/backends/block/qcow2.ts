/**
 * Read-only qcow2 images (QEMU's format, docs/interop/qcow2.txt), versions 2 and 3: a two-level
 * L1/L2 table maps each guest cluster to a host cluster in the image file, or marks it
 * unallocated (read from the backing image, or zeros), zero (v3), or compressed (raw deflate,
 * inflated with fflate). Put an {@link OverlayDisk} on top to make it writable.
 *
 * Refused on open, with an {@link UnsupportedFeatureError} naming the feature: encryption, an
 * external data file, extended L2 entries, zstd compression, any unknown incompatible feature.
 * The image file itself is any {@link BlockBackend} (a MemoryDisk of its bytes, a FileDisk, an
 * HTTP-range disk later), so this code stays environment-free.
 */
import { inflateSync } from 'fflate';
import { type BlockBackend, BlockError, BlockIoError, checkRange, ImageFormatError, ReadOnlyError, UnsupportedFeatureError } from './backend.js';

export interface Qcow2OpenOptions {
  /**
   * Opens the backing image the header names (`format` from the backing-format header extension,
   * when present). Required for images with a backing file; the caller decides how names
   * resolve (storvm/node resolves them next to the image).
   */
  openBacking?: (name: string, format: string | undefined) => BlockBackend | Promise<BlockBackend>;
  /** Bytes of L2 tables kept in memory; default 8 MiB (at least 4 tables). */
  l2CacheBytes?: number;
}

/** What backs one guest cluster. */
export type Qcow2ClusterKind = 'data' | 'compressed' | 'zero' | 'unallocated';

/** One decoded L2 entry. */
interface Qcow2Entry {
  kind: Qcow2ClusterKind;
  /** Host offset of the cluster (data, zero with preallocation) or of the compressed bytes. */
  host: number;
  /** Bytes to read for a compressed cluster. */
  compressedLen: number;
}

const MAGIC = 0x514649fb; // "QFI\xfb"
/** QEMU's own limit on the L1 table (QCOW_MAX_L1_SIZE). */
const MAX_L1_BYTES = 32 * 1024 * 1024;
const INCOMPAT_DIRTY = 1;
const INCOMPAT_CORRUPT = 2;
const INCOMPAT_DATA_FILE = 4;
const INCOMPAT_COMPRESSION = 8;
const INCOMPAT_EXTL2 = 16;
const EXT_END = 0;
const EXT_BACKING_FORMAT = 0xe2792aca;

export class Qcow2Disk implements BlockBackend {
  readonly readOnly = true;
  readonly clusterSize: number;
  private readonly l2Entries: number;
  private readonly l2Cache = new Map<number, Uint8Array | Promise<Uint8Array>>();
  private readonly l2CacheMax: number;
  private compressedCache: { host: number; data: Uint8Array } | undefined;

  private constructor(
    private readonly file: BlockBackend,
    readonly size: number,
    readonly version: number,
    private readonly clusterBits: number,
    /** Host offset of each L2 table, 0 when unallocated. */
    private readonly l1: Float64Array,
    /** The backing file name from the header, if any. */
    readonly backingFile: string | undefined,
    readonly backingFormat: string | undefined,
    private readonly backing: BlockBackend | undefined,
    l2CacheBytes: number,
  ) {
    this.clusterSize = 2 ** clusterBits;
    this.l2Entries = this.clusterSize / 8;
    this.l2CacheMax = Math.max(4, Math.floor(l2CacheBytes / this.clusterSize));
  }

  /** Reads and checks the header and L1 table of the qcow2 image in `file`. */
  static async open(file: BlockBackend, opts: Qcow2OpenOptions = {}): Promise<Qcow2Disk> {
    const bad = (why: string): never => {
      throw new ImageFormatError(`qcow2: ${why}`);
    };
    if (file.size < 72) bad('file too short for a header');
    const head = new Uint8Array(Math.min(file.size, 512));
    await file.read(0, head);
    const h = new DataView(head.buffer);
    if (h.getUint32(0) !== MAGIC) bad('not a qcow2 image (bad magic)');
    const version = h.getUint32(4);
    if (version !== 2 && version !== 3) throw new UnsupportedFeatureError('qcow2', `version ${version}`);
    const backingOffset = u64(h, 8, bad);
    const backingSize = h.getUint32(16);
    const clusterBits = h.getUint32(20);
    if (clusterBits < 9 || clusterBits > 21) bad(`cluster_bits ${clusterBits} outside 9..21`);
    const size = u64(h, 24, bad);
    const cryptMethod = h.getUint32(32);
    if (cryptMethod !== 0) throw new UnsupportedFeatureError('qcow2', `encryption (${cryptMethod === 1 ? 'AES' : cryptMethod === 2 ? 'LUKS' : `method ${cryptMethod}`})`);
    const l1Size = h.getUint32(36);
    const l1Offset = u64(h, 40, bad);

    let headerLength = 72;
    if (version === 3) {
      if (head.length < 104) bad('file too short for a version 3 header');
      const incompatHi = h.getUint32(72);
      const incompat = h.getUint32(76);
      headerLength = h.getUint32(100);
      if (headerLength < 104 || headerLength > head.length) bad(`header_length ${headerLength}`);
      if (incompat & INCOMPAT_CORRUPT) bad('image is marked corrupt (run qemu-img check -r all)');
      if (incompat & INCOMPAT_DATA_FILE) throw new UnsupportedFeatureError('qcow2', 'external data file');
      if (incompat & INCOMPAT_EXTL2) throw new UnsupportedFeatureError('qcow2', 'extended L2 entries');
      if (incompat & INCOMPAT_COMPRESSION) {
        const type = headerLength > 104 ? head[104]! : 0;
        if (type === 1) throw new UnsupportedFeatureError('qcow2', 'zstd compression');
        if (type !== 0) throw new UnsupportedFeatureError('qcow2', `compression type ${type}`);
      }
      const known = INCOMPAT_DIRTY | INCOMPAT_COMPRESSION;
      if (incompatHi !== 0 || (incompat & ~known) !== 0) {
        const bits = (BigInt(incompatHi) << 32n) | BigInt(incompat & ~known);
        throw new UnsupportedFeatureError('qcow2', `unknown incompatible feature bits 0x${bits.toString(16)}`);
      }
      // A dirty image has refcounts that may be stale; reading does not use them.
    }
    if (!Number.isSafeInteger(size)) bad(`virtual size ${size} too large`);

    const clusterSize = 2 ** clusterBits;
    const l2Entries = clusterSize / 8;
    const needL1 = Math.ceil(size / (clusterSize * l2Entries));
    if (l1Size < needL1) bad(`L1 table of ${l1Size} entries is too small for ${size} bytes`);
    if (l1Size * 8 > MAX_L1_BYTES) bad(`L1 table of ${l1Size} entries is too large`);
    if (l1Size > 0 && (l1Offset % clusterSize !== 0 || l1Offset + l1Size * 8 > file.size)) bad('L1 table outside the file');
    const l1Raw = new Uint8Array(needL1 * 8);
    if (needL1 > 0) await file.read(l1Offset, l1Raw);
    const l1 = new Float64Array(needL1);
    const l1v = new DataView(l1Raw.buffer);
    for (let i = 0; i < needL1; i++) {
      const off = (l1v.getUint32(8 * i) & 0x00ff_ffff) * 2 ** 32 + (l1v.getUint32(8 * i + 4) & 0xffff_fe00);
      if (off % clusterSize !== 0) bad(`L1 entry ${i} points at an unaligned L2 table`);
      l1[i] = off;
    }

    // Header extensions: only the backing format matters here.
    let backingFormat: string | undefined;
    const ext = new Uint8Array(Math.max(0, Math.min(clusterSize, file.size) - headerLength));
    if (ext.length > 0) await file.read(headerLength, ext);
    const ev = new DataView(ext.buffer);
    for (let at = 0; at + 8 <= ext.length; ) {
      const type = ev.getUint32(at);
      const len = ev.getUint32(at + 4);
      if (type === EXT_END) break;
      if (at + 8 + len > ext.length) bad('header extension runs past the first cluster');
      if (type === EXT_BACKING_FORMAT) backingFormat = ascii(ext.subarray(at + 8, at + 8 + len));
      at += 8 + Math.ceil(len / 8) * 8;
    }

    let backingFile: string | undefined;
    let backing: BlockBackend | undefined;
    if (backingOffset !== 0) {
      if (backingSize === 0 || backingSize > 1023 || backingOffset + backingSize > file.size) bad('bad backing file name field');
      const name = new Uint8Array(backingSize);
      await file.read(backingOffset, name);
      backingFile = utf8(name);
      if (opts.openBacking === undefined) {
        throw new BlockError(`qcow2: image has backing file "${backingFile}"; pass openBacking to open it`);
      }
      backing = await opts.openBacking(backingFile, backingFormat);
    }
    return new Qcow2Disk(file, size, version, clusterBits, l1, backingFile, backingFormat, backing, opts.l2CacheBytes ?? 8 << 20);
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    checkRange(offset, dst.length, this.size);
    const cs = this.clusterSize;
    const pending: Array<void | Promise<void>> = [];
    // Data clusters that also follow each other in the file are read with one file read.
    let runHost = 0;
    let runStart = 0;
    let runLen = 0;
    const endRun = (): void => {
      if (runLen === 0) return;
      if (runHost + runLen > this.file.size) throw new BlockIoError('qcow2: data cluster past the end of the file');
      pending.push(this.file.read(runHost, dst.subarray(runStart, runStart + runLen)));
      runLen = 0;
    };
    try {
      for (let done = 0; done < dst.length; ) {
        const at = offset + done;
        const vcluster = Math.floor(at / cs);
        const inCluster = at - vcluster * cs;
        const n = Math.min(cs - inCluster, dst.length - done);
        const e = await this.l2Entry(vcluster);
        if (e !== undefined && e.kind === 'data') {
          const host = e.host + inCluster;
          if (runLen === 0 || runHost + runLen !== host) {
            endRun();
            runHost = host;
            runStart = done;
          }
          runLen += n;
        } else {
          endRun();
          pending.push(this.readOther(e, vcluster, inCluster, dst.subarray(done, done + n)));
        }
        done += n;
      }
      endRun();
    } catch (err) {
      // Let reads already started finish before the caller gets its buffer back.
      await Promise.allSettled(pending);
      throw err;
    }
    await Promise.all(pending);
  }

  write(): never {
    throw new ReadOnlyError('Qcow2Disk');
  }

  flush(): void {}

  /** How guest cluster `index` is stored (for tools and tests). */
  async clusterKind(index: number): Promise<Qcow2ClusterKind> {
    const e = await this.l2Entry(index);
    return e === undefined ? 'unallocated' : e.kind;
  }

  /** A cluster that is not plain data: unallocated, zero or compressed. */
  private async readOther(
    e: Qcow2Entry | undefined,
    vcluster: number,
    inCluster: number,
    dst: Uint8Array,
  ): Promise<void> {
    if (e === undefined || e.kind === 'unallocated') return this.readBacking(vcluster * this.clusterSize + inCluster, dst);
    if (e.kind === 'zero') {
      dst.fill(0);
      return;
    }
    const cluster = await this.inflateCluster(e.host, e.compressedLen);
    dst.set(cluster.subarray(inCluster, inCluster + dst.length));
  }

  private async readBacking(offset: number, dst: Uint8Array): Promise<void> {
    const b = this.backing;
    const have = b === undefined ? 0 : Math.max(0, Math.min(dst.length, b.size - offset));
    if (have < dst.length) dst.fill(0, have);
    if (have > 0) await b!.read(offset, dst.subarray(0, have));
  }

  private async inflateCluster(host: number, len: number): Promise<Uint8Array> {
    const c = this.compressedCache;
    if (c !== undefined && c.host === host) return c.data;
    const avail = Math.min(len, this.file.size - host);
    if (avail <= 0) throw new BlockIoError('qcow2: compressed cluster past the end of the file');
    const raw = new Uint8Array(avail);
    await this.file.read(host, raw);
    const out = new Uint8Array(this.clusterSize);
    let got: Uint8Array;
    try {
      got = inflateSync(raw, { out });
    } catch (e) {
      throw new BlockIoError(`qcow2: bad compressed cluster at ${host}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (got.length !== this.clusterSize) throw new BlockIoError(`qcow2: compressed cluster at ${host} inflates to ${got.length} bytes`);
    this.compressedCache = { host, data: out };
    return out;
  }

  /** The L2 entry of guest cluster `vcluster`, decoded; undefined when its L2 table is unallocated. */
  private async l2Entry(vcluster: number): Promise<Qcow2Entry | undefined> {
    const l1Index = Math.floor(vcluster / this.l2Entries);
    const l2Offset = this.l1[l1Index] ?? 0;
    if (l2Offset === 0) return undefined;
    const cached = this.l2Table(l2Offset);
    const table = cached instanceof Uint8Array ? cached : await cached;
    const at = 8 * (vcluster - l1Index * this.l2Entries);
    const hi = be32(table, at);
    const lo = be32(table, at + 4);
    if (hi & 0x4000_0000) {
      // Compressed cluster descriptor (qcow2.txt): x = 62 - (cluster_bits - 8) offset bits,
      // then the number of additional 512-byte sectors.
      const x = 62 - (this.clusterBits - 8);
      const e = (BigInt(hi & 0x3fff_ffff) << 32n) | BigInt(lo);
      const host = Number(e & ((1n << BigInt(x)) - 1n));
      const sectors = Number(e >> BigInt(x));
      return { kind: 'compressed', host, compressedLen: (sectors + 1) * 512 - (host % 512) };
    }
    const host = (hi & 0x00ff_ffff) * 2 ** 32 + (lo & 0xffff_fe00);
    if (this.version >= 3 && lo & 1) return { kind: 'zero', host, compressedLen: 0 };
    if (host === 0) return { kind: 'unallocated', host, compressedLen: 0 };
    if (host % this.clusterSize !== 0) throw new BlockIoError(`qcow2: unaligned data cluster for guest cluster ${vcluster}`);
    return { kind: 'data', host, compressedLen: 0 };
  }

  private l2Table(offset: number): Promise<Uint8Array> | Uint8Array {
    const hit = this.l2Cache.get(offset);
    if (hit !== undefined) {
      // Most recently used last.
      this.l2Cache.delete(offset);
      this.l2Cache.set(offset, hit);
      return hit;
    }
    if (offset + this.clusterSize > this.file.size) throw new BlockIoError('qcow2: L2 table past the end of the file');
    const table = new Uint8Array(this.clusterSize);
    const loading = Promise.resolve(this.file.read(offset, table)).then(() => {
      if (this.l2Cache.has(offset)) this.l2Cache.set(offset, table);
      return table;
    });
    loading.catch(() => this.l2Cache.delete(offset));
    this.l2Cache.set(offset, loading);
    while (this.l2Cache.size > this.l2CacheMax) this.l2Cache.delete(this.l2Cache.keys().next().value!);
    return loading;
  }
}

function u64(v: DataView, at: number, bad: (why: string) => never): number {
  const hi = v.getUint32(at);
  const lo = v.getUint32(at + 4);
  if (hi >= 0x20_0000) bad(`64-bit field at ${at} too large`);
  return hi * 2 ** 32 + lo;
}

function be32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function ascii(b: Uint8Array): string {
  let s = '';
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

/** Decodes UTF-8 without TextDecoder (not part of the environment-free core's baseline). */
function utf8(b: Uint8Array): string {
  let s = ascii(b);
  try {
    s = decodeURIComponent(escape(s));
  } catch {
    // not valid UTF-8: keep the bytes as Latin-1
  }
  return s;
}
