/**
 * A seeded randomized hostile guest for FUSE: 100,000 mutated FUSE messages straight into the
 * server, and a smaller run through the virtio-fs device with split descriptors. No exception may
 * escape, every reply must be a well-formed fuse_out_header for the request's unique within the
 * reply space, the tables stay under their caps, and a clean session still works.
 */
import { describe, expect, it } from 'vitest';
import { MemFs } from '../../src/backends/fs/mem-fs.js';
import { VirtioFs } from '../../src/devices/fs/device.js';
import { FUSE, IN_HEADER_SIZE } from '../../src/devices/fs/fuse.js';
import { FuseServer } from '../../src/devices/fs/server.js';
import { BytesIn, BytesOut } from '../../src/devices/p9/io.js';
import { Args, FuseClient } from '../support/fuse.js';
import { mulberry32 } from '../support/prng.js';

const NAMES = ['a', 'b', 'dir', '.', '..', 'x'.repeat(300), 'ln', 'f', ''];
const NO_REPLY = new Set<number>([FUSE.FORGET, FUSE.BATCH_FORGET, FUSE.INTERRUPT]);

/** Valid-looking requests of every opcode, with small node ids, handles and names. */
function corpus(rand: () => number): { next: () => Uint8Array; learn: (op: number, reply: Uint8Array) => void } {
  const int = (n: number): number => Math.floor(rand() * n);
  // Node ids and handles the server handed out lately, so requests reach open files.
  const nodes: bigint[] = [];
  const fhs: bigint[] = [];
  const node = (): bigint => (rand() < 0.3 ? 1n : rand() < 0.7 && nodes.length > 0 ? nodes[int(nodes.length)]! : BigInt(int(14)));
  const fh = (): bigint => (rand() < 0.8 && fhs.length > 0 ? fhs[int(fhs.length)]! : BigInt(int(14)));
  const keep = (list: bigint[], v: bigint) => {
    list.push(v);
    if (list.length > 12) list.shift();
  };
  const learn = (op: number, reply: Uint8Array): void => {
    const dv = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
    if (reply.length < 16 || dv.getInt32(4, true) !== 0) return;
    if ((op === FUSE.LOOKUP || op === FUSE.MKDIR || op === FUSE.CREATE || op === FUSE.MKNOD || op === FUSE.SYMLINK) && reply.length >= 24) keep(nodes, dv.getBigUint64(16, true));
    if ((op === FUSE.OPEN || op === FUSE.OPENDIR) && reply.length >= 24) keep(fhs, dv.getBigUint64(16, true));
    if (op === FUSE.CREATE && reply.length >= 152) keep(fhs, dv.getBigUint64(16 + 128, true));
  };
  const name = (): string => NAMES[int(NAMES.length)]!;
  const readIn = (a: Args) => a.u64(fh()).u64(int(3) * 1000).u32([0, 8, 100, 4096, 9000][int(5)]!).u32(0).u64(0).u32(0).u32(0);
  const builders: Array<() => [number, Args]> = [
    () => [FUSE.INIT, new Args().u32(7).u32(31 + int(12)).u32(65536).u32(int(2 ** 31)).zeros(int(2) * 48)],
    () => [FUSE.LOOKUP, new Args().str(name())],
    () => [FUSE.FORGET, new Args().u64(int(4))],
    () => {
      const n = int(4);
      const a = new Args().u32(n).u32(0);
      for (let i = 0; i < n; i++) a.u64(node()).u64(int(3));
      return [FUSE.BATCH_FORGET, a];
    },
    () => [FUSE.GETATTR, new Args().u32(int(2)).u32(0).u64(fh())],
    () => [FUSE.SETATTR, new Args().u32(int(0x800)).u32(0).u64(fh()).u64(int(100000)).u64(0).u64(int(1000)).u64(int(1000)).u64(0).u32(int(10)).u32(0).u32(0).u32(0o755).u32(0).u32(0).u32(0).u32(0)],
    () => [FUSE.READLINK, new Args()],
    () => [FUSE.SYMLINK, new Args().str(name()).str('../../t')],
    () => [FUSE.MKNOD, new Args().u32([0o10644, 0o100644, 0o20644][int(3)]!).u32(int(300)).u32(0).u32(0).str(name())],
    () => [FUSE.MKDIR, new Args().u32(0o755).u32(0).str(name())],
    () => [FUSE.UNLINK, new Args().str(name())],
    () => [FUSE.RMDIR, new Args().str(name())],
    () => [FUSE.RENAME, new Args().u64(node()).str(name()).str(name())],
    () => [FUSE.RENAME2, new Args().u64(node()).u32(int(3)).u32(0).str(name()).str(name())],
    () => [FUSE.LINK, new Args().u64(node()).str(name())],
    () => [FUSE.OPEN, new Args().u32([0, 1, 2, 0o1002, 0o2001][int(5)]!).u32(0)],
    () => [FUSE.OPENDIR, new Args().u32(0).u32(0)],
    () => [FUSE.READ, readIn(new Args())],
    () => {
      const n = int(3000);
      return [FUSE.WRITE, new Args().u64(fh()).u64(int(4) * 4096).u32(n).u32(0).u64(0).u32(0).u32(0).bytes(new Uint8Array(n).fill(0x61))];
    },
    () => [FUSE.STATFS, new Args()],
    () => [FUSE.RELEASE, new Args().u64(fh()).u32(0).u32(0).u64(0)],
    () => [FUSE.RELEASEDIR, new Args().u64(fh()).u32(0).u32(0).u64(0)],
    () => [FUSE.FSYNC, new Args().u64(fh()).u32(int(2)).u32(0)],
    () => [FUSE.FSYNCDIR, new Args().u64(fh()).u32(0).u32(0)],
    () => [FUSE.FLUSH, new Args().u64(fh()).u32(0).u32(0).u64(0)],
    () => [FUSE.SETXATTR, new Args().u32(3).u32(int(3)).str(rand() < 0.5 ? '' : 'user.a').bytes(new Uint8Array([1, 2, 3]))],
    () => [FUSE.GETXATTR, new Args().u32(int(2) * 64).u32(0).str('user.a')],
    () => [FUSE.LISTXATTR, new Args().u32(int(2) * 64).u32(0)],
    () => [FUSE.REMOVEXATTR, new Args().str('user.a')],
    () => [FUSE.ACCESS, new Args().u32(int(8)).u32(0)],
    () => [FUSE.CREATE, new Args().u32([2, 0o102, 0o302][int(3)]!).u32(0o100644).u32(0).u32(0).str(name())],
    () => [FUSE.READDIR, readIn(new Args())],
    () => [FUSE.READDIRPLUS, readIn(new Args())],
    () => [FUSE.FALLOCATE, new Args().u64(fh()).u64(int(5000)).u64(int(5000)).u32(int(3)).u32(0)],
    () => [FUSE.LSEEK, new Args().u64(fh()).u64(int(100)).u32(int(5)).u32(0)],
    () => [FUSE.COPY_FILE_RANGE, new Args().u64(fh()).u64(int(100)).u64(node()).u64(fh()).u64(int(100)).u64(int(5000)).u64(0)],
    () => [FUSE.INTERRUPT, new Args().u64(int(100))],
    () => [FUSE.GETLK, new Args().zeros(48)],
    () => [FUSE.GETLK, new Args().u64(fh()).u64(int(3)).u64(int(100)).u64([int(200), 2 ** 63 - 1][int(2)]!).u32(int(4)).u32(int(9)).u32(int(2)).u32(0)],
    () => [FUSE.SETLK, new Args().u64(fh()).u64(int(3)).u64(int(100)).u64([int(200), 2 ** 63 - 1][int(2)]!).u32(int(4)).u32(int(9)).u32(int(2)).u32(0)],
    () => [FUSE.DESTROY, new Args()],
  ];
  let unique = 1n;
  const next = () => {
    // INIT and DESTROY (which drop everything) are rare, so state builds up between them.
    const pick = rand();
    const b = pick < 0.003 ? builders[0]! : pick < 0.005 ? builders[builders.length - 1]! : builders[1 + int(builders.length - 2)]!;
    const [op, args] = b();
    const body = args.done();
    const m = new Uint8Array(IN_HEADER_SIZE + body.length);
    const dv = new DataView(m.buffer);
    dv.setUint32(0, m.length, true);
    dv.setUint32(4, op, true);
    dv.setBigUint64(8, unique++, true);
    dv.setBigUint64(16, node(), true);
    dv.setUint32(24, rand() < 0.8 ? 0 : 1000, true);
    m.set(body, IN_HEADER_SIZE);
    return m;
  };
  return { next, learn };
}

function mutate(msg: Uint8Array, rand: () => number): Uint8Array {
  const int = (n: number): number => Math.floor(rand() * n);
  const r = rand();
  if (r < 0.3) return msg; // valid: the state moves on
  const m = msg.slice();
  const dv = new DataView(m.buffer);
  if (r < 0.55) {
    for (let i = int(4) + 1; i > 0 && m.length > 0; i--) m[int(m.length)] = int(256);
    return m;
  }
  if (r < 0.63) return m.subarray(0, int(m.length));
  if (r < 0.7) {
    const ext = new Uint8Array(m.length + int(40));
    ext.set(m);
    for (let i = m.length; i < ext.length; i++) ext[i] = int(256);
    new DataView(ext.buffer).setUint32(0, ext.length, true);
    return ext;
  }
  if (r < 0.78) {
    dv.setUint32(0, [m.length + 1, m.length - 1, 0, 0xffffffff, int(1 << 20)][int(5)]!, true);
    return m;
  }
  if (r < 0.88) {
    // Rewrite a count, size or offset somewhere in the arguments.
    if (m.length >= IN_HEADER_SIZE + 8) {
      const at = IN_HEADER_SIZE + int(m.length - IN_HEADER_SIZE - 7);
      dv.setBigUint64(at, [0n, 1n, 2n ** 64n - 1n, 2n ** 63n, 2n ** 53n, BigInt(int(2 ** 32))][int(6)]!, true);
    }
    return m;
  }
  if (r < 0.92) {
    dv.setUint32(4, int(60), true);
    return m;
  }
  if (r < 0.96) {
    dv.setBigUint64(16, BigInt(int(2 ** 32)) * BigInt(int(2 ** 32)), true);
    return m;
  }
  return new Uint8Array(int(80)).map(() => int(256));
}

/** Checks a reply's framing; answers an error text or ''. */
function checkReply(req: Uint8Array, out: Uint8Array, len: number, room: number): string {
  if (len === 0) return '';
  if (len < 16 || len > room) return `reply length ${len} (room ${room})`;
  const dv = new DataView(out.buffer, out.byteOffset, len);
  if (dv.getUint32(0, true) !== len) return `out.len ${dv.getUint32(0, true)} vs ${len}`;
  const error = dv.getInt32(4, true);
  if (error > 0 || error < -4095) return `error ${error}`;
  if (error !== 0 && len !== 16) return 'an error reply with a body';
  if (req.length >= 16 && dv.getBigUint64(8, true) !== new DataView(req.buffer, req.byteOffset).getBigUint64(8, true)) return 'unique';
  if (req.length >= 40 && NO_REPLY.has(new DataView(req.buffer, req.byteOffset).getUint32(4, true)) && dv.getUint32(0, true) === len && len > 0) {
    const lenField = new DataView(req.buffer, req.byteOffset).getUint32(0, true);
    if (lenField === req.length) return 'a reply to a request that has none';
  }
  return '';
}

function initMsg(): Uint8Array {
  const body = new Args().u32(7).u32(41).u32(65536).u32(0xffffffff).zeros(48).done();
  const m = new Uint8Array(IN_HEADER_SIZE + body.length);
  new DataView(m.buffer).setUint32(0, m.length, true);
  new DataView(m.buffer).setUint32(4, FUSE.INIT, true);
  m.set(body, IN_HEADER_SIZE);
  return m;
}

describe('FUSE randomized hostile guest', () => {
  it('survives 100,000 mutated messages with bounded tables, then serves a clean session', () => {
    const rand = mulberry32(0x2545f491);
    const fs = new MemFs({ capacity: 8 << 20, maxInodes: 4096 });
    const server = new FuseServer(fs, { maxNodes: 1024, maxHandles: 256, maxWrite: 65536, posixLocks: true, maxLocks: 512 });
    const { next, learn } = corpus(rand);
    const outBuf = new Uint8Array(80_000);
    const seen = new Map<number, number>();
    let first = '';
    let errors = 0;
    let replies = 0;
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < 100_000; i++) {
      const req = !server.initialized && rand() < 0.3 ? initMsg() : mutate(next(), rand);
      const room = rand() < 0.05 ? Math.floor(rand() * 200) : outBuf.length;
      const out = new BytesOut(outBuf.subarray(0, room));
      let len: number;
      try {
        const r = server.handle(new BytesIn(req), out);
        if (typeof r !== 'number') {
          // Only a SETLKW waiting for its range answers later (MemFs itself is synchronous).
          if (req.length < 8 || new DataView(req.buffer, req.byteOffset).getUint32(4, true) !== FUSE.SETLKW) throw new Error('MemFs is synchronous');
          continue;
        }
        len = r;
      } catch (e) {
        errors++;
        first ||= `message ${i}: threw ${String(e)}`;
        continue;
      }
      if (len > 0) {
        replies++;
        if (req.length >= 8 && new DataView(outBuf.buffer).getInt32(4, true) === 0) {
          const op = new DataView(req.buffer, req.byteOffset).getUint32(4, true);
          seen.set(op, (seen.get(op) ?? 0) + 1);
          learn(op, outBuf.subarray(0, len));
        }
      }
      const bad = checkReply(req, outBuf, len, room);
      if (bad !== '') {
        errors++;
        first ||= `message ${i} (${[...req.subarray(0, 8)]}): ${bad}`;
      }
    }
    expect(first).toBe('');
    expect(errors).toBe(0);
    expect(replies).toBeGreaterThan(70_000);
    // The run reached deep state: most opcodes succeeded a few times.
    if (process.env.FUZZ_DEBUG) console.log([...seen].sort((a, b) => a[0] - b[0]));
    const successes = [...seen].filter(([, n]) => n >= 3).length;
    expect(successes).toBeGreaterThanOrEqual(32);
    expect(server.nodeCount).toBeLessThanOrEqual(1024);
    expect(server.handleCount).toBeLessThanOrEqual(256);
    expect(server.session.locks.size).toBeLessThanOrEqual(512);
    expect(fs.used).toBeLessThanOrEqual(8 << 20);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(256 << 20);

    // A clean session on the same server.
    const call = (op: number, nodeid: bigint, body: Uint8Array): DataView => {
      const m = new Uint8Array(IN_HEADER_SIZE + body.length);
      const dv = new DataView(m.buffer);
      dv.setUint32(0, m.length, true);
      dv.setUint32(4, op, true);
      dv.setBigUint64(16, nodeid, true);
      m.set(body, IN_HEADER_SIZE);
      const out = new BytesOut(new Uint8Array(8192));
      const n = server.handle(new BytesIn(m), out) as number;
      const r = new DataView(out.buf.buffer, 0, n);
      if (r.getInt32(4, true) !== 0) throw new Error(`op ${op}: errno ${-r.getInt32(4, true)}`);
      return new DataView(out.buf.buffer, 16, n - 16);
    };
    call(FUSE.DESTROY, 0n, new Uint8Array(0));
    expect(server.nodeCount).toBe(0);
    call(FUSE.INIT, 0n, new Args().u32(7).u32(41).u32(65536).u32(0xffffffff).zeros(48).done());
    const cr = call(FUSE.CREATE, 1n, new Args().u32(0o302).u32(0o100644).u32(0).u32(0).str('after-fuzz').done());
    const nodeid = cr.getBigUint64(0, true);
    const fh = cr.getBigUint64(128, true);
    const w = call(FUSE.WRITE, nodeid, new Args().u64(fh).u64(0).u32(3).u32(0).u64(0).u32(0).u32(0).bytes(new Uint8Array([1, 2, 3])).done());
    expect(w.getUint32(0, true)).toBe(3);
    const rd = call(FUSE.READ, nodeid, new Args().u64(fh).u64(0).u32(10).u32(0).u64(0).u32(0).u32(0).done());
    expect([...new Uint8Array(rd.buffer, rd.byteOffset, rd.byteLength)]).toEqual([1, 2, 3]);
  });

  it('survives mutated messages through the virtio-fs device with split descriptors', async () => {
    const rand = mulberry32(4321);
    const dev = new VirtioFs(new MemFs({ capacity: 4 << 20 }), { maxWrite: 65536 });
    const c = new FuseClient(dev);
    await c.init();
    const { next, learn } = corpus(rand);
    for (let i = 0; i < 3000; i++) {
      const req = mutate(next(), rand);
      if (req.length === 0) continue;
      const replyBytes = Math.floor(rand() * 9000);
      let piece = 1 + Math.floor(rand() * 700);
      let requestPiece = 1 + Math.floor(rand() * 300);
      if (Math.ceil(req.length / requestPiece) + Math.ceil(replyBytes / piece) > 120) {
        piece = Math.max(1, replyBytes);
        requestPiece = req.length;
      }
      const r = await c.raw(req, { replyBytes, piece, requestPiece });
      expect(checkReply(req, r.raw, r.used, replyBytes)).toBe('');
      if (req.length >= 8) learn(new DataView(req.buffer, req.byteOffset).getUint32(4, true), r.raw);
    }
    expect(c.drv.status & 0x40).toBe(0);
    await c.init();
    const { entry, fh } = await c.create(1n, 'ok');
    expect(await c.write(entry.nodeid, fh, 0, new TextEncoder().encode('fine'))).toBe(4);
  });
});
