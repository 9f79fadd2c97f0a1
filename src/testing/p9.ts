/**
 * A small 9P2000.L client over the driver harness, for tests and benchmarks. It owns fixed
 * request/reply buffers per slot (so thousands of messages never exhaust test RAM), can split a
 * request or reply over many descriptors and put them in an indirect table, and can keep several
 * requests in flight to test Tflush and out-of-order completion.
 */
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, FlatRam, type GuestMemory, p9wire, type VirtioDevice } from '../index.js';
import { DriverQueue, type PackedDesc, type PackedDriverQueue, type QueueHost, RAM_BASE, TestDriver } from './driver.js';

type Decoder = p9wire.Decoder;
type Encoder = p9wire.Encoder;
type Qid = p9wire.Qid;
const { Decoder, Encoder } = p9wire;
/** 9P message type numbers (Tversion, Rversion, …). */
export const P9 = p9wire.P9;
export type P9 = p9wire.P9;

/** An Rlerror answer. */
export class P9Error extends Error {
  constructor(readonly errno: number) {
    super(`Rlerror ${errno}`);
  }
}

export interface RpcOptions {
  /** Bytes of reply space; default the client's msize. */
  replySize?: number;
  /** Split the reply space: a first piece of this many bytes, then pieces of `pieceSize`. */
  replyFirst?: number;
  /** Size of the pieces after the first (default: one piece). */
  pieceSize?: number;
  /** Split the request into pieces of this size (default one piece). */
  requestPiece?: number;
  /** Use an indirect table. */
  indirect?: boolean;
}

export interface Reply {
  type: number;
  tag: number;
  /** The whole reply message. */
  raw: Uint8Array;
  /** A decoder positioned after the 7-byte header. */
  d: Decoder;
}

export interface Getattr {
  valid: bigint;
  qid: Qid;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  rdev: number;
  size: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  atimeNsec: number;
  mtimeNsec: number;
  ctimeNsec: number;
}

export interface Dirent {
  qid: Qid;
  offset: number;
  type: number;
  name: string;
}

const SLOTS = 8;
const DESCS_PER_SLOT = 32;
const SLOT_REQ = 520 * 1024;
const SLOT_REPLY = 520 * 1024;

interface Slot {
  index: number;
  req: number;
  reply: number;
  table: number;
  busy: boolean;
  head: number;
  replyLen: number;
  resolve: ((r: { len: number }) => void) | undefined;
}

/** A 9P client over any driver queue of 256 entries (about 8.5 MiB of its RAM for buffers). */
export class P9Session {
  readonly host: QueueHost;
  msize = 8192;
  private slots: Slot[] = [];
  private nextTag = 1;
  private readonly enc = new Encoder(new Uint8Array(SLOT_REQ));

  /** The packed queue, when the session runs on one (VIRTIO_F_RING_PACKED). */
  readonly pq: PackedDriverQueue | undefined;
  private readonly sq: DriverQueue | undefined;

  constructor(ring: DriverQueue | PackedDriverQueue) {
    if (ring instanceof DriverQueue) this.sq = ring;
    else this.pq = ring;
    this.host = ring.driver;
    const a = this.host.allocator;
    for (let i = 0; i < SLOTS; i++) {
      this.slots.push({
        index: i,
        req: a.alloc(SLOT_REQ, 4096),
        reply: a.alloc(SLOT_REPLY, 4096),
        table: a.alloc(16 * 256, 16),
        busy: false,
        head: i * DESCS_PER_SLOT,
        replyLen: 0,
        resolve: undefined,
      });
    }
  }

  get mem(): GuestMemory {
    return this.host.mem;
  }

  /** A tag for a new request. */
  tag(): number {
    const t = this.nextTag;
    this.nextTag = (this.nextTag % 0xfffe) + 1;
    return t;
  }

  /** Builds a message: size, type, tag, then what `body` writes. */
  build(type: number, tag: number, body: (e: Encoder) => void): Uint8Array {
    const e = this.enc;
    e.begin(type, tag, SLOT_REQ);
    body(e);
    const n = e.finish();
    if (n < 0) throw new Error('request too large for the test client');
    return e.buf.slice(0, n);
  }

  /**
   * Puts raw request bytes in a free slot and publishes the chain without kicking; answers a
   * handle whose `done` resolves with the used length once collected.
   */
  post(msg: Uint8Array, opts: RpcOptions = {}): { slot: Slot; done: Promise<{ len: number }> } {
    const slot = this.slots.find((s) => !s.busy);
    if (slot === undefined) throw new Error('no free slot');
    if (msg.length > SLOT_REQ) throw new Error('request too large');
    const replyLen = Math.min(opts.replySize ?? this.msize, SLOT_REPLY);
    slot.busy = true;
    slot.replyLen = replyLen;
    this.mem.write(slot.req, msg);
    this.mem.fill(slot.reply, replyLen, 0xee);
    const descs: Array<{ addr: number; len: number; flags: number }> = [];
    const rp = opts.requestPiece ?? Math.max(1, msg.length);
    for (let off = 0; off < Math.max(1, msg.length); off += rp) {
      descs.push({ addr: slot.req + off, len: Math.min(rp, msg.length - off), flags: 0 });
    }
    let off = 0;
    if (opts.replyFirst !== undefined && opts.replyFirst < replyLen) {
      descs.push({ addr: slot.reply, len: opts.replyFirst, flags: DESC_F_WRITE });
      off = opts.replyFirst;
    }
    const piece = opts.pieceSize ?? replyLen;
    for (; off < replyLen; off += piece) {
      descs.push({ addr: slot.reply + off, len: Math.min(piece, replyLen - off), flags: DESC_F_WRITE });
    }
    const indirect = opts.indirect ?? descs.length > DESCS_PER_SLOT;
    if (this.pq !== undefined) return this.postPacked(slot, descs, indirect);
    if (indirect) {
      if (descs.length > 256) throw new Error('too many pieces');
      descs.forEach((d, i) => {
        const last = i === descs.length - 1;
        this.q.writeDesc(i, { ...d, flags: d.flags | (last ? 0 : DESC_F_NEXT), next: last ? 0 : i + 1 }, slot.table);
      });
      this.q.writeDesc(slot.head, { addr: slot.table, len: 16 * descs.length, flags: DESC_F_INDIRECT, next: 0 });
    } else {
      descs.forEach((d, i) => {
        const last = i === descs.length - 1;
        const id = slot.head + i;
        this.q.writeDesc(id, { ...d, flags: d.flags | (last ? 0 : DESC_F_NEXT), next: last ? 0 : id + 1 });
      });
    }
    const done = new Promise<{ len: number }>((resolve) => {
      slot.resolve = resolve;
    });
    this.q.publish(slot.head);
    return { slot, done };
  }

  /** Packed ring: the slot's index is the buffer id; the chain takes consecutive ring slots. */
  private postPacked(slot: Slot, descs: Array<{ addr: number; len: number; flags: number }>, indirect: boolean): { slot: Slot; done: Promise<{ len: number }> } {
    const pq = this.pq!;
    let ring: PackedDesc[] = descs.map((d) => ({ ...d, id: slot.index }));
    if (indirect) {
      if (descs.length > 256) throw new Error('too many pieces');
      descs.forEach((d, i) => pq.writeDesc(i, { ...d, id: 0 }, slot.table));
      ring = [{ addr: slot.table, len: 16 * descs.length, flags: DESC_F_INDIRECT, id: slot.index }];
    }
    const done = new Promise<{ len: number }>((resolve) => {
      slot.resolve = resolve;
    });
    pq.publishRaw(ring);
    return { slot, done };
  }

  /** The split queue (for tests that write descriptors themselves); throws on a packed ring. */
  get q(): DriverQueue {
    if (this.sq === undefined) throw new Error('this 9P session runs on a packed queue: see pq');
    return this.sq;
  }

  /** Notifies the device. */
  kick(): void {
    (this.pq ?? this.q).kick();
  }

  /** Collects used entries published so far and resolves their slots. */
  collect(): number {
    const used = (this.pq ?? this.q).takeUsed();
    for (const u of used) {
      const slot = this.slots.find((s) => s.busy && (this.pq ? s.index : s.head) === u.id);
      if (slot === undefined) throw new Error(`used id ${u.id} is no chain of ours`);
      slot.busy = false;
      const r = slot.resolve!;
      slot.resolve = undefined;
      r({ len: u.len });
    }
    return used.length;
  }

  /** Ids of used entries published since the last collect, in ring order, without taking them. */
  peekUsed(): number[] {
    const out: number[] = [];
    const q = this.q;
    for (let i = q.lastUsed; i !== q.usedIdx; i = (i + 1) & 0xffff) {
      out.push(this.mem.readU32(q.used + 4 + 8 * (i % q.size)));
    }
    return out;
  }

  /** Reads back a slot's reply. */
  replyOf(slot: Slot, len: number): Uint8Array {
    return this.mem.view(slot.reply, Math.min(len, slot.replyLen)).slice();
  }

  /** Sends raw bytes, waits, answers the raw reply (possibly empty). */
  async raw(msg: Uint8Array, opts: RpcOptions = {}): Promise<Uint8Array> {
    const { slot, done } = this.post(msg, opts);
    this.kick();
    await this.host.idle();
    this.collect();
    const { len } = await done;
    return this.replyOf(slot, len);
  }

  /** Sends a message and parses the reply header; Rlerror becomes a thrown P9Error. */
  async rpc(type: number, body: (e: Encoder) => void, opts: RpcOptions = {}): Promise<Reply> {
    const tag = this.tag();
    const raw = await this.raw(this.build(type, tag, body), opts);
    return parseReply(raw, tag, type + 1);
  }

  // ---- messages ------------------------------------------------------------------------------

  async version(msize: number, version = '9P2000.L'): Promise<{ msize: number; version: string }> {
    const r = await this.rpc(P9.Tversion, (e) => {
      e.u32(msize);
      e.str(version);
    });
    const m = r.d.u32();
    const v = r.d.str();
    if (v === '9P2000.L') this.msize = m;
    return { msize: m, version: v };
  }

  async attach(fid: number, uid = 0): Promise<Qid> {
    const r = await this.rpc(P9.Tattach, (e) => {
      e.u32(fid);
      e.u32(0xffffffff);
      e.str('root');
      e.str('');
      e.u32(uid);
    });
    return qid(r.d);
  }

  /** Tversion + Tattach of fid 0. */
  async mount(msize = 8192): Promise<Qid> {
    await this.version(msize);
    return this.attach(0);
  }

  async walk(fid: number, newfid: number, names: string[]): Promise<Qid[]> {
    const r = await this.rpc(P9.Twalk, (e) => {
      e.u32(fid);
      e.u32(newfid);
      e.u16(names.length);
      for (const n of names) e.str(n);
    });
    const n = r.d.u16();
    const out: Qid[] = [];
    for (let i = 0; i < n; i++) out.push(qid(r.d));
    return out;
  }

  async lopen(fid: number, flags: number): Promise<{ qid: Qid; iounit: number }> {
    const r = await this.rpc(P9.Tlopen, (e) => {
      e.u32(fid);
      e.u32(flags);
    });
    return { qid: qid(r.d), iounit: r.d.u32() };
  }

  async lcreate(fid: number, name: string, flags: number, mode = 0o644, gid = 0): Promise<Qid> {
    const r = await this.rpc(P9.Tlcreate, (e) => {
      e.u32(fid);
      e.str(name);
      e.u32(flags);
      e.u32(mode);
      e.u32(gid);
    });
    return qid(r.d);
  }

  async read(fid: number, offset: number, count: number, opts: RpcOptions = {}): Promise<Uint8Array> {
    const r = await this.rpc(
      P9.Tread,
      (e) => {
        e.u32(fid);
        e.u64(offset);
        e.u32(count);
      },
      opts,
    );
    const n = r.d.u32();
    const data = r.d.bytes(n);
    if (r.d.bad) throw new Error('short Rread');
    return data.slice();
  }

  async write(fid: number, offset: number, data: Uint8Array | string, opts: RpcOptions = {}): Promise<number> {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    const r = await this.rpc(
      P9.Twrite,
      (e) => {
        e.u32(fid);
        e.u64(offset);
        e.u32(bytes.length);
        e.bytes(bytes);
      },
      opts,
    );
    return r.d.u32();
  }

  async clunk(fid: number): Promise<void> {
    await this.rpc(P9.Tclunk, (e) => e.u32(fid));
  }

  async remove(fid: number): Promise<void> {
    await this.rpc(P9.Tremove, (e) => e.u32(fid));
  }

  async getattr(fid: number): Promise<Getattr> {
    const r = await this.rpc(P9.Tgetattr, (e) => {
      e.u32(fid);
      e.u64(0x3fff);
    });
    const d = r.d;
    const valid = d.u64big();
    const q = qid(d);
    const mode = d.u32();
    const uid = d.u32();
    const gid = d.u32();
    const nlink = d.u64();
    const rdev = d.u64();
    const size = d.u64();
    d.u64(); // blksize
    const blocks = d.u64();
    const atime = d.u64();
    const atimeNsec = d.u64();
    const mtime = d.u64();
    const mtimeNsec = d.u64();
    const ctime = d.u64();
    const ctimeNsec = d.u64();
    for (let i = 0; i < 4; i++) d.u64();
    if (d.bad || d.remaining !== 0) throw new Error('bad Rgetattr length');
    return { valid, qid: q, mode, uid, gid, nlink, rdev, size, blocks, atime, mtime, ctime, atimeNsec, mtimeNsec, ctimeNsec };
  }

  async setattr(
    fid: number,
    a: {
      valid: number;
      mode?: number;
      uid?: number;
      gid?: number;
      size?: number;
      atime?: number;
      mtime?: number;
      atimeNsec?: number;
      mtimeNsec?: number;
    },
  ): Promise<void> {
    await this.rpc(P9.Tsetattr, (e) => {
      e.u32(fid);
      e.u32(a.valid);
      e.u32(a.mode ?? 0);
      e.u32(a.uid ?? 0);
      e.u32(a.gid ?? 0);
      e.u64(a.size ?? 0);
      e.u64(a.atime ?? 0);
      e.u64(a.atimeNsec ?? 0);
      e.u64(a.mtime ?? 0);
      e.u64(a.mtimeNsec ?? 0);
    });
  }

  async readdir(fid: number, offset: number, count: number, opts: RpcOptions = {}): Promise<Dirent[]> {
    const r = await this.rpc(
      P9.Treaddir,
      (e) => {
        e.u32(fid);
        e.u64(offset);
        e.u32(count);
      },
      opts,
    );
    const n = r.d.u32();
    if (n > count) throw new Error(`Rreaddir of ${n} bytes for a count of ${count}`);
    const end = r.d.pos + n;
    if (end !== r.d.end) throw new Error('Rreaddir count disagrees with its size');
    const out: Dirent[] = [];
    while (r.d.pos < end) {
      out.push({ qid: qid(r.d), offset: r.d.u64(), type: r.d.u8(), name: r.d.str() });
    }
    if (r.d.bad) throw new Error('malformed Rreaddir');
    return out;
  }

  /** Every entry of an open directory, reading `count` bytes at a time. */
  async readdirAll(fid: number, count = 8192): Promise<Dirent[]> {
    const all: Dirent[] = [];
    let off = 0;
    for (;;) {
      const part = await this.readdir(fid, off, count);
      if (part.length === 0) return all;
      all.push(...part);
      off = part[part.length - 1]!.offset;
    }
  }

  async mkdir(dfid: number, name: string, mode = 0o755, gid = 0): Promise<Qid> {
    const r = await this.rpc(P9.Tmkdir, (e) => {
      e.u32(dfid);
      e.str(name);
      e.u32(mode);
      e.u32(gid);
    });
    return qid(r.d);
  }

  async mknod(dfid: number, name: string, mode: number, major = 0, minor = 0): Promise<Qid> {
    const r = await this.rpc(P9.Tmknod, (e) => {
      e.u32(dfid);
      e.str(name);
      e.u32(mode);
      e.u32(major);
      e.u32(minor);
      e.u32(0);
    });
    return qid(r.d);
  }

  async symlink(dfid: number, name: string, target: string): Promise<Qid> {
    const r = await this.rpc(P9.Tsymlink, (e) => {
      e.u32(dfid);
      e.str(name);
      e.str(target);
      e.u32(0);
    });
    return qid(r.d);
  }

  async readlink(fid: number): Promise<string> {
    const r = await this.rpc(P9.Treadlink, (e) => e.u32(fid));
    return r.d.str();
  }

  async link(dfid: number, fid: number, name: string): Promise<void> {
    await this.rpc(P9.Tlink, (e) => {
      e.u32(dfid);
      e.u32(fid);
      e.str(name);
    });
  }

  async rename(fid: number, dfid: number, name: string): Promise<void> {
    await this.rpc(P9.Trename, (e) => {
      e.u32(fid);
      e.u32(dfid);
      e.str(name);
    });
  }

  async renameat(oldDir: number, oldName: string, newDir: number, newName: string): Promise<void> {
    await this.rpc(P9.Trenameat, (e) => {
      e.u32(oldDir);
      e.str(oldName);
      e.u32(newDir);
      e.str(newName);
    });
  }

  async unlinkat(dfid: number, name: string, flags = 0): Promise<void> {
    await this.rpc(P9.Tunlinkat, (e) => {
      e.u32(dfid);
      e.str(name);
      e.u32(flags);
    });
  }

  async statfs(fid: number): Promise<{ type: number; bsize: number; blocks: number; bfree: number; namelen: number }> {
    const r = await this.rpc(P9.Tstatfs, (e) => e.u32(fid));
    const d = r.d;
    const type = d.u32();
    const bsize = d.u32();
    const blocks = d.u64();
    const bfree = d.u64();
    d.u64();
    d.u64();
    d.u64();
    d.u64();
    const namelen = d.u32();
    return { type, bsize, blocks, bfree, namelen };
  }

  async fsync(fid: number): Promise<void> {
    await this.rpc(P9.Tfsync, (e) => {
      e.u32(fid);
      e.u32(0);
    });
  }

  async lock(fid: number, type: number, start: number, length: number, procId: number, client = 'c'): Promise<number> {
    const r = await this.rpc(P9.Tlock, (e) => {
      e.u32(fid);
      e.u8(type);
      e.u32(0);
      e.u64(start);
      e.u64(length);
      e.u32(procId);
      e.str(client);
    });
    return r.d.u8();
  }

  async getlock(
    fid: number,
    type: number,
    start: number,
    length: number,
    procId: number,
    client = 'c',
  ): Promise<{ type: number; start: number; length: number; procId: number; client: string }> {
    const r = await this.rpc(P9.Tgetlock, (e) => {
      e.u32(fid);
      e.u8(type);
      e.u64(start);
      e.u64(length);
      e.u32(procId);
      e.str(client);
    });
    const d = r.d;
    return { type: d.u8(), start: d.u64(), length: d.u64(), procId: d.u32(), client: d.str() };
  }

  async xattrwalk(fid: number, newfid: number, name: string): Promise<number> {
    const r = await this.rpc(P9.Txattrwalk, (e) => {
      e.u32(fid);
      e.u32(newfid);
      e.str(name);
    });
    return r.d.u64();
  }

  async xattrcreate(fid: number, name: string, size: number, flags = 0): Promise<void> {
    await this.rpc(P9.Txattrcreate, (e) => {
      e.u32(fid);
      e.str(name);
      e.u64(size);
      e.u32(flags);
    });
  }
}

/** Parses a reply; throws P9Error for Rlerror and Error for anything malformed. */
/** A 9P client over its own MMIO driver harness and RAM. */
export interface P9ClientOptions {
  /** Guest RAM for the client's buffers; default 24 MiB. */
  ramBytes?: number;
  /** Use a packed virtqueue (VIRTIO_F_RING_PACKED) instead of a split one. */
  packed?: boolean;
}

export class P9Client extends P9Session {
  readonly drv: TestDriver;

  constructor(
    readonly device: VirtioDevice,
    opts: number | P9ClientOptions = {},
  ) {
    const o = typeof opts === 'number' ? { ramBytes: opts } : opts;
    const drv = new TestDriver(device, new FlatRam(RAM_BASE, o.ramBytes ?? 24 << 20)).init({ queueSizes: [256], packed: o.packed ?? false });
    super(o.packed ? drv.packedQueues[0]! : drv.queues[0]!);
    this.drv = drv;
  }
}

export function parseReply(raw: Uint8Array, tag: number, expectType: number): Reply {
  if (raw.length < 7) throw new Error(`reply of ${raw.length} bytes`);
  const d = new Decoder(raw);
  const size = d.u32();
  const type = d.u8();
  const rtag = d.u16();
  if (size !== raw.length) throw new Error(`reply size field ${size} but ${raw.length} bytes used`);
  if (rtag !== tag) throw new Error(`reply tag ${rtag}, wanted ${tag}`);
  if (type === P9.Rlerror) throw new P9Error(d.u32());
  if (type !== expectType) throw new Error(`reply type ${type}, wanted ${expectType}`);
  return { type, tag: rtag, raw, d };
}

export function qid(d: Decoder): Qid {
  return { type: d.u8(), version: d.u32(), path: d.u64big() };
}

/** Runs p and answers the errno it failed with (or throws if it succeeded). */
export async function errnoOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    if (e instanceof P9Error) return e.errno;
    throw e;
  }
  throw new Error('expected an Rlerror');
}
