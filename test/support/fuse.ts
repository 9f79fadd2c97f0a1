/**
 * A small FUSE client over the driver harness, the way Linux's virtio_fs driver talks to a
 * virtio-fs device: requests on a request queue (queue 1), FORGETs on the hiprio queue (queue 0),
 * each request's readable part the in-header plus arguments, the writable part the reply space.
 * Fixed buffers per queue, so thousands of requests never exhaust test RAM.
 */
import { FlatRam } from '../../src/memory/flat-ram.js';
import { DESC_F_NEXT, DESC_F_WRITE } from '../../src/virtio/constants.js';
import type { VirtioDevice } from '../../src/virtio/device.js';
import { ATTR_SIZE, FUSE, IN_HEADER_SIZE, OUT_HEADER_SIZE } from '../../src/devices/fs/fuse.js';
import { type DriverQueue, RAM_BASE, TestDriver } from '../../src/testing/driver.js';

export { FUSE };

const REQ_BYTES = 1100 * 1024;
const REPLY_BYTES = 1100 * 1024;

/** An error reply. */
export class FuseError extends Error {
  constructor(readonly errno: number) {
    super(`FUSE error ${errno}`);
  }
}

/** Builds request argument bytes. */
export class Args {
  private parts: number[] = [];
  u32(v: number): this {
    this.parts.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
    return this;
  }
  u64(v: number | bigint): this {
    const b = BigInt(v);
    this.u32(Number(b & 0xffffffffn));
    return this.u32(Number((b >> 32n) & 0xffffffffn));
  }
  /** A NUL-terminated string. */
  str(s: string): this {
    for (const c of new TextEncoder().encode(s)) this.parts.push(c);
    this.parts.push(0);
    return this;
  }
  bytes(b: Uint8Array): this {
    for (const c of b) this.parts.push(c);
    return this;
  }
  zeros(n: number): this {
    for (let i = 0; i < n; i++) this.parts.push(0);
    return this;
  }
  done(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export interface Attr {
  ino: bigint;
  size: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
}

export interface Entry {
  nodeid: bigint;
  entryValid: number;
  attr: Attr;
}

export interface Dirent {
  ino: bigint;
  off: number;
  type: number;
  name: string;
  entry?: Entry;
}

/** A reply: its header fields and a reader over the body. */
export interface FuseReply {
  len: number;
  error: number;
  unique: bigint;
  used: number;
  body: DataView;
  raw: Uint8Array;
}

export function readAttr(dv: DataView, at: number): Attr {
  const u64 = (o: number) => Number(dv.getBigUint64(at + o, true));
  const u32 = (o: number) => dv.getUint32(at + o, true);
  return {
    ino: dv.getBigUint64(at, true),
    size: u64(8),
    blocks: u64(16),
    atime: u64(24),
    mtime: u64(32),
    ctime: u64(40),
    mode: u32(60),
    nlink: u32(64),
    uid: u32(68),
    gid: u32(72),
    rdev: u32(76),
    blksize: u32(80),
  };
}

export function readEntry(dv: DataView, at = 0): Entry {
  return { nodeid: dv.getBigUint64(at, true), entryValid: Number(dv.getBigUint64(at + 16, true)), attr: readAttr(dv, at + 40) };
}

export class FuseClient {
  readonly drv: TestDriver;
  private unique = 1n;
  private readonly req: number;
  private readonly reply: number;
  private readonly ram: FlatRam;

  constructor(
    readonly device: VirtioDevice,
    ramBytes = 24 << 20,
  ) {
    this.ram = new FlatRam(RAM_BASE, ramBytes);
    this.drv = new TestDriver(device, this.ram).init({ queueSizes: device.queueMaxSizes.map(() => 128) });
    this.req = this.drv.allocator.alloc(REQ_BYTES, 4096);
    this.reply = this.drv.allocator.alloc(REPLY_BYTES, 4096);
  }

  get mem(): FlatRam {
    return this.ram;
  }

  /** A request's bytes: the in-header (len set to the total unless given) and the arguments. */
  message(opcode: number, nodeid: bigint | number, args: Uint8Array = new Uint8Array(0), o: { len?: number; uid?: number; gid?: number; unique?: bigint } = {}): Uint8Array {
    const m = new Uint8Array(IN_HEADER_SIZE + args.length);
    const dv = new DataView(m.buffer);
    dv.setUint32(0, o.len ?? m.length, true);
    dv.setUint32(4, opcode, true);
    dv.setBigUint64(8, o.unique ?? this.unique++, true);
    dv.setBigUint64(16, BigInt(nodeid), true);
    dv.setUint32(24, o.uid ?? 0, true);
    dv.setUint32(28, o.gid ?? 0, true);
    m.set(args, IN_HEADER_SIZE);
    return m;
  }

  /**
   * Sends raw request bytes on `queue` (default the first request queue) with `replyBytes` of
   * reply space split in pieces of `piece` bytes, and answers the reply.
   */
  async raw(msg: Uint8Array, o: { replyBytes?: number; piece?: number; queue?: number; requestPiece?: number } = {}): Promise<FuseReply> {
    const q: DriverQueue = this.drv.queues[o.queue ?? 1]!;
    const replyBytes = Math.min(o.replyBytes ?? 256 * 1024, REPLY_BYTES);
    if (msg.length > REQ_BYTES) throw new Error('request too large');
    this.mem.write(this.req, msg);
    this.mem.fill(this.reply, replyBytes, 0xee);
    const descs: Array<{ addr: number; len: number; flags: number }> = [];
    const rp = o.requestPiece ?? Math.max(1, msg.length);
    for (let off = 0; off < msg.length; off += rp) descs.push({ addr: this.req + off, len: Math.min(rp, msg.length - off), flags: 0 });
    const piece = o.piece ?? Math.max(1, replyBytes);
    for (let off = 0; off < replyBytes; off += piece) {
      descs.push({ addr: this.reply + off, len: Math.min(piece, replyBytes - off), flags: DESC_F_WRITE });
    }
    descs.forEach((d, i) => {
      const last = i === descs.length - 1;
      q.writeDesc(i, { ...d, flags: d.flags | (last ? 0 : DESC_F_NEXT), next: last ? 0 : i + 1 });
    });
    q.publish(0);
    q.kick();
    await this.drv.transport.idle();
    const used = q.takeUsed();
    if (used.length !== 1) throw new Error(`expected one used entry, got ${used.length}`);
    const n = used[0]!.len;
    const raw = this.mem.view(this.reply, n).slice();
    const dv = new DataView(raw.buffer);
    if (n === 0) return { len: 0, error: 0, unique: 0n, used: 0, body: new DataView(new ArrayBuffer(0)), raw };
    return {
      len: dv.getUint32(0, true),
      error: dv.getInt32(4, true),
      unique: dv.getBigUint64(8, true),
      used: n,
      body: new DataView(raw.buffer, OUT_HEADER_SIZE, n - OUT_HEADER_SIZE),
      raw,
    };
  }

  /** A request that must succeed: answers the reply body; an error reply throws FuseError. */
  async call(opcode: number, nodeid: bigint | number, args?: Uint8Array, o: { replyBytes?: number; piece?: number; uid?: number; gid?: number } = {}): Promise<DataView> {
    const msg = this.message(opcode, nodeid, args, o);
    const unique = new DataView(msg.buffer).getBigUint64(8, true);
    const r = await this.raw(msg, o);
    if (r.used < OUT_HEADER_SIZE) throw new Error(`no reply (used ${r.used})`);
    if (r.len !== r.used) throw new Error(`out.len ${r.len} but ${r.used} bytes written`);
    if (r.unique !== unique) throw new Error(`reply for unique ${r.unique}, asked ${unique}`);
    if (r.error !== 0) {
      if (r.len !== OUT_HEADER_SIZE) throw new Error('an error reply carries a body');
      throw new FuseError(-r.error);
    }
    return r.body;
  }

  /** The errno a request fails with (0 when it succeeds). */
  async errno(opcode: number, nodeid: bigint | number, args?: Uint8Array, o: { replyBytes?: number } = {}): Promise<number> {
    try {
      await this.call(opcode, nodeid, args, o);
      return 0;
    } catch (e) {
      if (e instanceof FuseError) return e.errno;
      throw e;
    }
  }

  /** Sends a message with no reply (FORGET, BATCH_FORGET) on the hiprio queue. */
  async noReply(opcode: number, nodeid: bigint | number, args: Uint8Array): Promise<number> {
    const q = this.drv.queues[0]!;
    const msg = this.message(opcode, nodeid, args);
    this.mem.write(this.req, msg);
    q.writeDesc(0, { addr: this.req, len: msg.length, flags: 0, next: 0 });
    q.publish(0);
    q.kick();
    await this.drv.transport.idle();
    const used = q.takeUsed();
    if (used.length !== 1) throw new Error('the hiprio request was not completed');
    return used[0]!.len;
  }

  // ---- the operations, as the Linux client sends them ------------------------------------------

  async init(flags = 0xffffffff, maxReadahead = 128 * 1024): Promise<DataView> {
    return this.call(FUSE.INIT, 0, new Args().u32(7).u32(41).u32(maxReadahead).u32(flags).u32(0).zeros(44).done());
  }
  async lookup(dir: bigint, name: string): Promise<Entry> {
    return readEntry(await this.call(FUSE.LOOKUP, dir, new Args().str(name).done()));
  }
  async getattr(node: bigint, fh?: bigint): Promise<Attr> {
    const d = await this.call(FUSE.GETATTR, node, new Args().u32(fh === undefined ? 0 : 1).u32(0).u64(fh ?? 0n).done());
    return readAttr(d, 16);
  }
  async mkdir(dir: bigint, name: string, mode = 0o755): Promise<Entry> {
    return readEntry(await this.call(FUSE.MKDIR, dir, new Args().u32(mode).u32(0o22).str(name).done()));
  }
  async create(dir: bigint, name: string, flags = 0o102, mode = 0o100644): Promise<{ entry: Entry; fh: bigint; openFlags: number }> {
    const d = await this.call(FUSE.CREATE, dir, new Args().u32(flags).u32(mode).u32(0o22).u32(0).str(name).done());
    return { entry: readEntry(d), fh: d.getBigUint64(128, true), openFlags: d.getUint32(136, true) };
  }
  async open(node: bigint, flags = 2, dir = false): Promise<{ fh: bigint; openFlags: number }> {
    const d = await this.call(dir ? FUSE.OPENDIR : FUSE.OPEN, node, new Args().u32(flags).u32(0).done());
    return { fh: d.getBigUint64(0, true), openFlags: d.getUint32(8, true) };
  }
  async write(node: bigint, fh: bigint, offset: number, data: Uint8Array): Promise<number> {
    const a = new Args().u64(fh).u64(offset).u32(data.length).u32(0).u64(0).u32(0).u32(0).bytes(data).done();
    return (await this.call(FUSE.WRITE, node, a)).getUint32(0, true);
  }
  async read(node: bigint, fh: bigint, offset: number, size: number, o: { piece?: number } = {}): Promise<Uint8Array> {
    const a = new Args().u64(fh).u64(offset).u32(size).u32(0).u64(0).u32(0).u32(0).done();
    const d = await this.call(FUSE.READ, node, a, { replyBytes: OUT_HEADER_SIZE + size, ...o });
    return new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice();
  }
  async release(node: bigint, fh: bigint, dir = false): Promise<void> {
    await this.call(dir ? FUSE.RELEASEDIR : FUSE.RELEASE, node, new Args().u64(fh).u32(0).u32(0).u64(0).done());
  }
  async readdir(node: bigint, fh: bigint, offset = 0, size = 4096, plus = false): Promise<Dirent[]> {
    const a = new Args().u64(fh).u64(offset).u32(size).u32(0).u64(0).u32(0).u32(0).done();
    const d = await this.call(plus ? FUSE.READDIRPLUS : FUSE.READDIR, node, a, { replyBytes: OUT_HEADER_SIZE + size });
    const out: Dirent[] = [];
    let at = 0;
    while (at < d.byteLength) {
      let entry: Entry | undefined;
      if (plus) {
        entry = readEntry(d, at);
        at += 40 + ATTR_SIZE;
      }
      const namelen = d.getUint32(at + 16, true);
      const name = new TextDecoder().decode(new Uint8Array(d.buffer, d.byteOffset + at + 24, namelen));
      out.push({ ino: d.getBigUint64(at, true), off: Number(d.getBigUint64(at + 8, true)), type: d.getUint32(at + 20, true), name, entry });
      at += (24 + namelen + 7) & ~7;
    }
    return out;
  }
  /** Every entry of a directory through READDIR(PLUS) with `size`-byte replies. */
  async listAll(node: bigint, size = 4096, plus = false): Promise<Dirent[]> {
    const { fh } = await this.open(node, 0, true);
    const all: Dirent[] = [];
    let off = 0;
    for (;;) {
      const page = await this.readdir(node, fh, off, size, plus);
      if (page.length === 0) break;
      all.push(...page);
      off = page[page.length - 1]!.off;
    }
    await this.release(node, fh, true);
    return all;
  }
  async forget(node: bigint, n: number): Promise<number> {
    return this.noReply(FUSE.FORGET, node, new Args().u64(n).done());
  }
}
