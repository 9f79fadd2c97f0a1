/**
 * virtio-9p throughput through the driver harness at msize 512000 on MemFs:
 * - sequential Tread of a 64 MiB file, replies laid out as Linux's zero-copy path does (an 11-byte
 *   header buffer, then 4 KiB pages, in an indirect table), in MB/s against the memcpy ceiling
 *   measured in the same run (the same 64 MiB copied in 512000-byte pieces);
 * - metadata rates: walk+getattr+clunk and lcreate+clunk+unlinkat per second.
 * Medians of 5 runs. Run: npx tsx bench/p9.ts
 */
import { MemFs } from '../src/backends/fs/mem-fs.js';
import { Virtio9p } from '../src/devices/p9/device.js';
import { Encoder, P9 } from '../src/devices/p9/wire.js';
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE } from '../src/virtio/constants.js';
import { P9Client } from '../src/testing/index.js';

const MSIZE = 512000;
const FILE = 64 << 20;
const RUNS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function msg(type: number, tag: number, body: (e: Encoder) => void): Uint8Array {
  const e = new Encoder(new Uint8Array(4096));
  e.begin(type, tag, 4096);
  body(e);
  return e.buf.slice(0, e.finish());
}

async function main(): Promise<void> {
  const fs = new MemFs({ capacity: 256 << 20 });
  const dev = new Virtio9p(fs, { maxMsize: MSIZE });
  const c = new P9Client(dev, 32 << 20);
  await c.mount(MSIZE);
  await c.walk(0, 1, []);
  await c.lcreate(1, 'big', 2);
  const chunk = new Uint8Array(500_000).map((_, i) => i & 0xff);
  for (let off = 0; off < FILE; off += chunk.length) {
    await c.write(1, off, chunk.subarray(0, Math.min(chunk.length, FILE - off)));
  }
  const q = c.q;
  const mem = c.mem;
  const a = c.drv.allocator;

  // ---- sequential read -----------------------------------------------------------------------
  const count = MSIZE - 11;
  const req = a.alloc(64, 8);
  mem.write(req, msg(P9.Tread, 1, (e) => (e.u32(1), e.u64(0), e.u32(count))));
  const pages = Math.ceil(count / 4096);
  const reply = a.alloc(11 + pages * 4096, 4096);
  const table = a.alloc(16 * (pages + 2), 16);
  q.writeDesc(0, { addr: req, len: 23, flags: DESC_F_NEXT, next: 1 }, table);
  q.writeDesc(1, { addr: reply, len: 11, flags: DESC_F_WRITE | DESC_F_NEXT, next: 2 }, table);
  for (let i = 0; i < pages; i++) {
    const last = i === pages - 1;
    q.writeDesc(2 + i, { addr: reply + 11 + i * 4096, len: 4096, flags: DESC_F_WRITE | (last ? 0 : DESC_F_NEXT), next: last ? 0 : 3 + i }, table);
  }
  q.writeDesc(0, { addr: table, len: 16 * (pages + 2), flags: DESC_F_INDIRECT, next: 0 });
  const readOnce = (): number => {
    let total = 0;
    for (let off = 0; off < FILE; off += count) {
      mem.writeU32(req + 11, off % 2 ** 32);
      q.publish(0);
      q.kick();
      const used = q.takeUsed();
      const len = used[0]!.len;
      if (mem.readU8(reply + 4) !== P9.Rread) throw new Error('read failed');
      total += len - 11;
    }
    if (total !== FILE) throw new Error(`read ${total} bytes`);
    return total;
  };
  const src = new Uint8Array(FILE).fill(1);
  const dst = new Uint8Array(count);
  const copyOnce = (): void => {
    for (let off = 0; off < FILE; off += count) dst.set(src.subarray(off, Math.min(FILE, off + count)));
  };
  const readMBs: number[] = [];
  const copyMBs: number[] = [];
  readOnce();
  copyOnce();
  for (let r = 0; r < RUNS; r++) {
    let t = performance.now();
    readOnce();
    readMBs.push(FILE / 1e6 / ((performance.now() - t) / 1000));
    t = performance.now();
    copyOnce();
    copyMBs.push(FILE / 1e6 / ((performance.now() - t) / 1000));
  }

  // ---- metadata -------------------------------------------------------------------------------
  await c.walk(0, 2, []);
  await c.mkdir(2, 'd');
  await c.walk(2, 2, ['d']);
  await c.lcreate(2, 'target', 2);
  await c.clunk(2);
  const slot = (i: number, bytes: Uint8Array): void => {
    const r = a.alloc(bytes.length, 8);
    mem.write(r, bytes);
    const w = a.alloc(8192, 8);
    q.writeDesc(10 + 2 * i, { addr: r, len: bytes.length, flags: DESC_F_NEXT, next: 11 + 2 * i });
    q.writeDesc(11 + 2 * i, { addr: w, len: 8192, flags: DESC_F_WRITE, next: 0 });
  };
  const triple = (msgs: Uint8Array[], iters: number): number => {
    msgs.forEach((m, i) => slot(i, m));
    const t = performance.now();
    for (let k = 0; k < iters; k++) {
      for (let i = 0; i < msgs.length; i++) q.publish(10 + 2 * i);
      q.kick();
      const used = q.takeUsed();
      for (const u of used) if (u.len === 11) throw new Error('Rlerror in the metadata loop');
    }
    return iters / ((performance.now() - t) / 1000);
  };
  const walkSet = [
    msg(P9.Twalk, 1, (e) => (e.u32(0), e.u32(5), e.u16(2), e.str('d'), e.str('target'))),
    msg(P9.Tgetattr, 2, (e) => (e.u32(5), e.u64(0x7ff))),
    msg(P9.Tclunk, 3, (e) => e.u32(5)),
  ];
  const createSet = [
    msg(P9.Twalk, 1, (e) => (e.u32(0), e.u32(6), e.u16(1), e.str('d'))),
    msg(P9.Tlcreate, 2, (e) => (e.u32(6), e.str('tmp'), e.u32(2), e.u32(0o644), e.u32(0))),
    msg(P9.Tclunk, 3, (e) => e.u32(6)),
    msg(P9.Twalk, 4, (e) => (e.u32(0), e.u32(7), e.u16(1), e.str('d'))),
    msg(P9.Tunlinkat, 5, (e) => (e.u32(7), e.str('tmp'), e.u32(0))),
    msg(P9.Tclunk, 6, (e) => e.u32(7)),
  ];
  triple(walkSet, 20000);
  const walkRates: number[] = [];
  const createRates: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    walkRates.push(triple(walkSet, 100_000));
    createRates.push(triple(createSet, 50_000));
  }
  const rm = median(readMBs);
  const cm = median(copyMBs);
  console.log(`date: ${new Date().toISOString().slice(0, 10)}  node ${process.version}`);
  console.log(`sequential Tread, 64 MiB, msize ${MSIZE}: ${rm.toFixed(0)} MB/s (median of ${RUNS})`);
  console.log(`memcpy ceiling, same pieces:          ${cm.toFixed(0)} MB/s`);
  console.log(`ratio: ${((100 * rm) / cm).toFixed(1)}% of memcpy (target >= 30%)`);
  console.log(`walk+getattr+clunk:        ${median(walkRates).toFixed(0)} /s (target >= 200,000)`);
  console.log(`walk+lcreate+clunk+walk+unlinkat+clunk: ${median(createRates).toFixed(0)} /s`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
