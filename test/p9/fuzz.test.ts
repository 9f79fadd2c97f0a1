/**
 * A seeded randomized hostile guest: 100,000 mutated 9P messages straight into the server, and a
 * smaller run through the virtio device. No exception may escape, every reply must be a well-formed
 * message for the request's tag within msize, memory stays bounded, and a clean session still works.
 */
import { describe, expect, it } from 'vitest';
import { MemFs } from '../../src/backends/fs/mem-fs.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { BytesIn, BytesOut, P9Server } from '../../src/devices/p9/server.js';
import { Decoder, Encoder, P9 } from '../../src/devices/p9/wire.js';
import { P9Client } from '../../src/testing/index.js';
import { mulberry32 } from '../support/prng.js';

const NAMES = ['a', 'b', 'dir', '.', '..', 'x'.repeat(300), 'ln', 'f'];

/** Valid-looking messages of every type, with small fids and names from a small set. */
function corpus(rand: () => number): (tag: number) => Uint8Array {
  const enc = new Encoder(new Uint8Array(70_000));
  const int = (n: number): number => Math.floor(rand() * n);
  const fid = (): number => int(8);
  const name = (): string => NAMES[int(NAMES.length)]!;
  const builders: Array<(e: Encoder) => number> = [
    (e) => (e.u32([4096, 8192, 65536, 100, 0xffffffff][int(5)]!), e.str(rand() < 0.9 ? '9P2000.L' : '9P2000'), P9.Tversion),
    (e) => (e.u32(fid()), e.u32(0xffffffff), e.str('u'), e.str(''), e.u32(0), P9.Tattach),
    (e) => {
      e.u32(fid());
      e.u32(fid());
      const n = int(4);
      e.u16(n);
      for (let i = 0; i < n; i++) e.str(name());
      return P9.Twalk;
    },
    (e) => (e.u32(fid()), e.u32([0, 1, 2, 0o1002, 0o2001][int(5)]!), P9.Tlopen),
    (e) => (e.u32(fid()), e.str(name()), e.u32(2), e.u32(0o644), e.u32(0), P9.Tlcreate),
    (e) => (e.u32(fid()), e.u64(int(3) * 1000), e.u32(int(9000)), P9.Tread),
    (e) => {
      e.u32(fid());
      e.u64(int(4) * 4096);
      const n = int(3000);
      e.u32(n);
      e.bytes(new Uint8Array(n).fill(0x61));
      return P9.Twrite;
    },
    (e) => (e.u32(fid()), P9.Tclunk),
    (e) => (e.u32(fid()), P9.Tremove),
    (e) => (e.u32(fid()), e.u64(0x3fff), P9.Tgetattr),
    (e) => {
      e.u32(fid());
      e.u32(int(0x200));
      e.u32(0o755);
      e.u32(0);
      e.u32(0);
      e.u64(int(100000));
      for (let i = 0; i < 4; i++) e.u64(int(1000));
      return P9.Tsetattr;
    },
    (e) => (e.u32(fid()), e.u64(int(6)), e.u32([0, 24, 128, 512, 8192][int(5)]!), P9.Treaddir),
    (e) => (e.u32(fid()), e.str(name()), e.u32(0o755), e.u32(0), P9.Tmkdir),
    (e) => (e.u32(fid()), e.str(name()), e.u32(0o10644), e.u32(1), e.u32(3), e.u32(0), P9.Tmknod),
    (e) => (e.u32(fid()), e.str(name()), e.str('../../t'), e.u32(0), P9.Tsymlink),
    (e) => (e.u32(fid()), P9.Treadlink),
    (e) => (e.u32(fid()), e.u32(fid()), e.str(name()), P9.Tlink),
    (e) => (e.u32(fid()), e.u32(fid()), e.str(name()), P9.Trename),
    (e) => (e.u32(fid()), e.str(name()), e.u32(fid()), e.str(name()), P9.Trenameat),
    (e) => (e.u32(fid()), e.str(name()), e.u32(rand() < 0.5 ? 0 : 0x200), P9.Tunlinkat),
    (e) => (e.u32(fid()), P9.Tstatfs),
    (e) => (e.u32(fid()), e.u32(0), P9.Tfsync),
    (e) => (e.u32(fid()), e.u8(int(4)), e.u32(0), e.u64(int(100)), e.u64(int(50)), e.u32(int(3)), e.str('c'), P9.Tlock),
    (e) => (e.u32(fid()), e.u8(int(3)), e.u64(int(100)), e.u64(int(50)), e.u32(int(3)), e.str('c'), P9.Tgetlock),
    (e) => (e.u32(fid()), e.u32(fid()), e.str(rand() < 0.5 ? '' : 'user.a'), P9.Txattrwalk),
    (e) => (e.u32(fid()), e.str('user.a'), e.u64(int(70000)), e.u32(int(4)), P9.Txattrcreate),
    (e) => (e.u16(int(4)), P9.Tflush),
  ];
  return (tag) => {
    // Tversion (which drops every fid) and Tattach are rare, so state builds up between them.
    const pick = rand();
    const b = pick < 0.002 ? builders[0]! : pick < 0.02 ? builders[1]! : builders[2 + int(builders.length - 2)]!;
    // Build the body first to learn the type, then the header.
    enc.begin(0, tag, enc.buf.length);
    const type = b(enc);
    enc.buf[4] = type;
    return enc.buf.slice(0, enc.finish());
  };
}

function mutate(msg: Uint8Array, rand: () => number): Uint8Array {
  const int = (n: number): number => Math.floor(rand() * n);
  const r = rand();
  if (r < 0.25) return msg; // valid: the state moves on
  const m = msg.slice();
  if (r < 0.55) {
    for (let i = int(4) + 1; i > 0 && m.length > 0; i--) m[int(m.length)] = int(256);
    return m;
  }
  if (r < 0.65) return m.subarray(0, int(m.length));
  if (r < 0.72) {
    const ext = new Uint8Array(m.length + int(40));
    ext.set(m);
    for (let i = m.length; i < ext.length; i++) ext[i] = int(256);
    return ext;
  }
  if (r < 0.82) {
    if (m.length >= 4) new DataView(m.buffer).setUint32(0, [m.length + 1, m.length - 1, 0, 0xffffffff, int(1 << 20)][int(5)]!, true);
    return m;
  }
  if (r < 0.9) {
    // Rewrite a string length or count somewhere after the header.
    if (m.length > 9) new DataView(m.buffer).setUint16(7 + int(m.length - 9), [0, 1, 0xffff, int(0x10000)][int(4)]!, true);
    return m;
  }
  if (r < 0.95) {
    m[4] = int(256);
    return m;
  }
  return new Uint8Array(int(64)).map(() => int(256));
}

/** Checks a reply's framing; answers an error text or ''. */
function checkReply(req: Uint8Array, out: Uint8Array, len: number, limit: number): string {
  if (len === 0) return '';
  if (len < 7 || len > out.length) return `reply length ${len}`;
  const d = new Decoder(out.subarray(0, len));
  const size = d.u32();
  const type = d.u8();
  const tag = d.u16();
  if (size !== len) return `size field ${size} vs ${len}`;
  if (len > limit) return `reply of ${len} bytes over msize ${limit}`;
  if (req.length >= 7 && tag !== (req[5]! | (req[6]! << 8))) return `tag ${tag}`;
  if (type % 2 !== 1) return `type ${type}`;
  if (type === P9.Rlerror && len !== 11) return 'Rlerror size';
  return '';
}

function version(tag: number): Uint8Array {
  const e = new Encoder(new Uint8Array(64));
  e.begin(P9.Tversion, tag, 64);
  e.u32(65536);
  e.str('9P2000.L');
  return e.buf.slice(0, e.finish());
}

describe('9P randomized hostile guest', () => {
  it('survives 100,000 mutated messages with bounded memory, then serves a clean session', () => {
    const rand = mulberry32(0x9e3779b9);
    const fs = new MemFs({ capacity: 8 << 20, maxInodes: 4096 });
    const seen = new Map<number, number>();
    const server = new P9Server(fs, { maxMsize: 65536, maxFids: 1024, xattrBudget: 1 << 20, maxLocks: 1024 });
    const next = corpus(rand);
    const outBuf = new Uint8Array(70_000);
    const heapBefore = process.memoryUsage().heapUsed;
    let errors = 0;
    let replies = 0;
    let first = '';
    for (let i = 0; i < 100_000; i++) {
      const tag = i & 0xffff;
      // After a refused Tversion the session needs a good one.
      const req = server.msize === 0 && rand() < 0.3 ? version(tag) : mutate(next(tag), rand);
      const out = new BytesOut(rand() < 0.05 ? outBuf.subarray(0, Math.floor(rand() * 200)) : outBuf);
      let len: number;
      try {
        const r = server.handle(new BytesIn(req), out);
        if (typeof r !== 'number') throw new Error('MemFs is synchronous');
        len = r;
      } catch (e) {
        errors++;
        first ||= `message ${i}: threw ${String(e)}`;
        continue;
      }
      if (len > 0) {
        replies++;
        seen.set(out.buf[4]!, (seen.get(out.buf[4]!) ?? 0) + 1);
      }
      const bad = checkReply(req, out.buf, len, Math.max(server.msize, 65536));
      if (bad !== '') {
        errors++;
        first ||= `message ${i} (${[...req.subarray(0, 16)]}): ${bad}`;
      }
    }
    expect(first).toBe('');
    // The run reached deep state: most reply types were successes at least a few times.
    const successes = [...seen].filter(([t, n]) => t !== P9.Rlerror && n >= 3).length;
    expect(successes).toBeGreaterThanOrEqual(20);
    expect(errors).toBe(0);
    expect(replies).toBeGreaterThan(90_000);
    // Everything the guest can make grow stayed under its cap.
    expect(server.fidCount).toBeLessThanOrEqual(1024);
    expect(server.lockCount).toBeLessThanOrEqual(1024);
    expect(server.xattrBytes).toBeLessThanOrEqual(1 << 20);
    expect(fs.used).toBeLessThanOrEqual(8 << 20);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(256 << 20);

    // A clean session on the same server.
    const enc = new Encoder(new Uint8Array(8192));
    const rpc = (type: number, body: (e: Encoder) => void): Decoder => {
      enc.begin(type, 1, 8192);
      body(enc);
      const req = enc.buf.slice(0, enc.finish());
      const out = new BytesOut(new Uint8Array(8192));
      const n = server.handle(new BytesIn(req), out) as number;
      const d = new Decoder(out.buf.subarray(0, n));
      d.u32();
      const t = d.u8();
      d.u16();
      if (t !== type + 1) throw new Error(`type ${t} for ${type}: errno ${d.u32()}`);
      return d;
    };
    expect(rpc(P9.Tversion, (e) => (e.u32(8192), e.str('9P2000.L'))).u32()).toBe(8192);
    expect(server.fidCount).toBe(0);
    rpc(P9.Tattach, (e) => (e.u32(0), e.u32(0xffffffff), e.str(''), e.str(''), e.u32(0)));
    rpc(P9.Twalk, (e) => (e.u32(0), e.u32(1), e.u16(0)));
    rpc(P9.Tlcreate, (e) => (e.u32(1), e.str('after-fuzz'), e.u32(2), e.u32(0o644), e.u32(0)));
    expect(rpc(P9.Twrite, (e) => (e.u32(1), e.u64(0), e.u32(3), e.bytes(new Uint8Array([1, 2, 3])))).u32()).toBe(3);
    const rd = rpc(P9.Tread, (e) => (e.u32(1), e.u64(0), e.u32(10)));
    expect(rd.u32()).toBe(3);
    expect([...rd.bytes(3)]).toEqual([1, 2, 3]);
  });

  it('survives mutated messages through the virtio device with split descriptors', async () => {
    const rand = mulberry32(1234);
    const dev = new Virtio9p(new MemFs({ capacity: 4 << 20 }), { maxMsize: 65536 });
    const c = new P9Client(dev);
    await c.mount(65536);
    const next = corpus(rand);
    for (let i = 0; i < 3000; i++) {
      const tag = (i % 0xfff0) + 1;
      const req = mutate(next(tag), rand);
      const opts = {
        replySize: 16 + Math.floor(rand() * 9000),
        pieceSize: 1 + Math.floor(rand() * 700),
        requestPiece: 1 + Math.floor(rand() * 300),
      };
      if (req.length === 0) continue;
      const pieces = Math.ceil(req.length / opts.requestPiece) + Math.ceil(opts.replySize / opts.pieceSize);
      if (pieces > 250) opts.pieceSize = opts.replySize;
      if (pieces > 250) opts.requestPiece = req.length;
      const raw = await c.raw(req, { ...opts, indirect: rand() < 0.5 || pieces > 30 });
      const bad = checkReply(req, raw, raw.length, 65536);
      expect(bad).toBe('');
    }
    expect(c.drv.status & 0x40).toBe(0);
    await c.version(8192);
    await c.attach(0);
    await c.walk(0, 1, []);
    await c.lcreate(1, 'ok', 2);
    expect(await c.write(1, 0, 'fine')).toBe(4);
  });
});
