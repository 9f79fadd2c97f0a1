/**
 * bench/packed.ts — split and packed virtqueue round trips over MMIO, side by side (the second
 * part of `npm run bench:queue`; bench/queue.ts compares transports on split rings).
 *
 * Each round the driver makes a batch of chains available and kicks; the device pops each chain,
 * reads a 16-byte header, writes one status byte, gives it back and decides on the interrupt once
 * per batch; the driver then collects the used entries. Reports chains per second, the median of
 * 11 short runs per driver, for several chain shapes.
 *
 * Three drivers:
 * - split, prebuilt (VIRTIO 1.2, 2.7): the chains sit in the descriptor table once; each round
 *   only republishes their heads in the available ring (the figure this bench always reported);
 * - split, written: each round writes every descriptor (addr, len, flags, next) into the table
 *   and then the heads, as Linux's virtqueue_add_split does for every request, and reads every
 *   used element (id, len) as virtqueue_get_buf does;
 * - packed (2.8): each round writes every descriptor (addr, len, id, flags) into the ring, head
 *   flags last, as virtqueue_add_packed does, and reads every used descriptor (flags, id, len).
 * The like-for-like comparison is packed against split, written. All ask for one interrupt per
 * batch (used_event, or the driver event structure in DESC mode).
 *
 *   npx tsx bench/packed.ts [--batch N] [--seconds S] [--runs N] [--wall]
 */
import type { GuestMemory } from '../src/memory/guest-memory.js';
import type { DescriptorChain } from '../src/virtio/chain.js';
import { DESC_F_AVAIL, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_USED, DESC_F_WRITE, RING_EVENT_FLAGS_DESC } from '../src/virtio/constants.js';
import { COMMON_FEATURES, PACKED_FEATURES, QueueDevice } from '../src/virtio/device.js';
import { TestDriver } from '../src/testing/index.js';

class BenchDevice extends QueueDevice {
  readonly deviceId = 0x3f;
  readonly features = COMMON_FEATURES | PACKED_FEATURES;
  readonly queueMaxSizes = [1024];
  private readonly header = new Uint8Array(16);
  readConfig(): number {
    return 0;
  }
  protected handle(_q: number, chain: DescriptorChain, mem: GuestMemory): number {
    if (chain.readableBytes >= 16) chain.reader(mem).readExact(this.header);
    if (chain.writableBytes === 0) return 0;
    const w = chain.writer(mem);
    w.skip(w.remaining - 1);
    w.writeU8(0);
    return w.written;
  }
}

interface Shape {
  name: string;
  /** Descriptors of one request: [length, writable]. */
  bufs: Array<[number, boolean]>;
  indirect?: boolean;
}

const SHAPES: Shape[] = [
  { name: '1 descriptor (16-byte header, no status)', bufs: [[16, false]] },
  { name: '2 descriptors (header + status)', bufs: [[16, false], [1, true]] },
  { name: '3 descriptors (header + 4 KiB data + status)', bufs: [[16, false], [4096, true], [1, true]] },
  { name: '3 descriptors in an indirect table', bufs: [[16, false], [4096, true], [1, true]], indirect: true },
];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Host time spent inside QueueNotify (the device's share of a round), per driver, reset per run. */
let deviceNs = 0n;
function kick(q: { kick(): void }): void {
  const t0 = process.hrtime.bigint();
  q.kick();
  deviceNs += process.hrtime.bigint() - t0;
}

const BATCH = arg('--batch', 128);
const SECONDS = arg('--seconds', 0.3);
const RUNS = arg('--runs', 11);
const WALL = process.argv.includes('--wall');

function splitRound(shape: Shape, rewrite: boolean): () => void {
  const dev = new BenchDevice();
  const drv = new TestDriver(dev).init({ queueSizes: [1024] });
  const q = drv.queues[0]!;
  const mem = drv.mem;
  const a = drv.allocator;
  // Prebuild BATCH chains in the descriptor table; each round republishes their heads.
  const heads: number[] = [];
  // Per chain, the table descriptors a driver writes: [index, addr, len, flags, next].
  const writes: Array<[number, number, number, number, number]> = [];
  let next = 0;
  for (let c = 0; c < BATCH; c++) {
    const descs = shape.bufs.map(([len, w]) => ({ addr: a.alloc(len, 16), len, flags: w ? DESC_F_WRITE : 0 }));
    const link = (table: number, first: number) =>
      descs.forEach((d, i) => {
        const last = i === descs.length - 1;
        const flags = d.flags | (last ? 0 : DESC_F_NEXT);
        q.writeDesc(first + i, { ...d, flags, next: last ? 0 : first + i + 1 }, table);
        if (table === q.desc) writes.push([first + i, d.addr, d.len, flags, last ? 0 : first + i + 1]);
      });
    if (shape.indirect) {
      const table = a.alloc(16 * descs.length, 16);
      link(table, 0);
      q.writeDesc(next, { addr: table, len: 16 * descs.length, flags: DESC_F_INDIRECT, next: 0 });
      writes.push([next, table, 16 * descs.length, DESC_F_INDIRECT, 0]);
      heads.push(next++);
    } else {
      link(q.desc, next);
      heads.push(next);
      next += descs.length;
    }
  }
  // The descriptors as flat columns, each field as the driver writes it.
  const idx = writes.map((w) => w[0]);
  const lo = writes.map((w) => w[1] % 2 ** 32);
  const hi = writes.map((w) => Math.floor(w[1] / 2 ** 32));
  const lens = writes.map((w) => w[2]);
  const flg = writes.map((w) => w[3]);
  const nxt = writes.map((w) => w[4]);
  const n = writes.length;
  const availRing = q.avail + 4;
  const size = q.size;
  let availIdx = 0;
  let usedSeen = 0;
  const table = q.desc;
  return () => {
    if (rewrite) {
      for (let k = 0; k < n; k++) {
        const d = table + 16 * idx[k]!;
        mem.writeU32(d, lo[k]!);
        mem.writeU32(d + 4, hi[k]!);
        mem.writeU32(d + 8, lens[k]!);
        mem.writeU16(d + 12, flg[k]!);
        mem.writeU16(d + 14, nxt[k]!);
      }
    }
    for (let i = 0; i < BATCH; i++) {
      mem.writeU16(availRing + 2 * ((availIdx + i) & (size - 1)), heads[i]!);
    }
    availIdx = (availIdx + BATCH) & 0xffff;
    mem.writeU16(q.avail + 2, availIdx);
    q.setUsedEvent(availIdx - 1); // interrupt once per batch, as a busy Linux driver asks
    kick(q);
    const used = mem.readU16(q.used + 2);
    if (((used - usedSeen) & 0xffff) !== BATCH) throw new Error('device did not complete the batch');
    if (rewrite) {
      // A Linux-like driver reads every used element (virtqueue_get_buf): id and length.
      let sum = 0;
      for (let i = 0; i < BATCH; i++) {
        const e = q.used + 4 + 8 * ((usedSeen + i) & (size - 1));
        sum += mem.readU32(e) + mem.readU32(e + 4);
      }
      if (sum < 0) throw new Error('unreachable');
    }
    usedSeen = used;
    drv.ackInterrupt();
  };
}

function packedRound(shape: Shape): () => void {
  const dev = new BenchDevice();
  const drv = new TestDriver(dev).init({ packed: true, queueSizes: [1024] });
  const q = drv.packedQueues[0]!;
  const mem = drv.mem;
  const a = drv.allocator;
  const size = q.size;
  // Buffers (and indirect tables) are allocated once; ring descriptors are written every round.
  const chains: Array<Array<[addr: number, len: number, flags: number]>> = [];
  for (let c = 0; c < BATCH; c++) {
    const descs = shape.bufs.map(([len, w]): [number, number, number] => [a.alloc(len, 16), len, w ? DESC_F_WRITE : 0]);
    if (shape.indirect) {
      const table = a.alloc(16 * descs.length, 16);
      descs.forEach(([addr, len, flags], i) => q.writeDesc(i, { addr, len, id: 0, flags }, table));
      chains.push([[table, 16 * descs.length, DESC_F_INDIRECT]]);
    } else chains.push(descs);
  }
  const ring = q.ring;
  const slotsPer = chains[0]!.length;
  // The descriptors as flat columns, each field as the driver writes it; the flags without the
  // AVAIL/USED pair, which the driver keeps in one variable and flips at each wrap (as Linux's
  // avail_used_flags).
  const all = chains.flatMap((descs) => descs.map(([addr, len, f], i): [number, number, number] => [addr, len, f | (i < descs.length - 1 ? DESC_F_NEXT : 0)]));
  const lo = all.map((x) => x[0] % 2 ** 32);
  const hi = all.map((x) => Math.floor(x[0] / 2 ** 32));
  const lens = all.map((x) => x[1]);
  const flg = all.map((x) => x[2]);
  const WRAP_FLIP = DESC_F_AVAIL | DESC_F_USED;
  let availUsed = DESC_F_AVAIL; // wrap counter 1: AVAIL set, USED clear
  let avail = 0;
  let wrap = 1;
  let used = 0;
  let usedWrap = 1;
  return () => {
    let k = 0;
    for (let c = 0; c < BATCH; c++) {
      const head = avail;
      let headFlags = 0;
      for (let i = 0; i < slotsPer; i++, k++) {
        const d = ring + 16 * avail;
        mem.writeU32(d, lo[k]!);
        mem.writeU32(d + 4, hi[k]!);
        mem.writeU32(d + 8, lens[k]!);
        mem.writeU16(d + 12, c);
        const flags = flg[k]! | availUsed;
        if (i === 0) headFlags = flags;
        else mem.writeU16(d + 14, flags);
        if (++avail === size) {
          avail = 0;
          wrap ^= 1;
          availUsed ^= WRAP_FLIP;
        }
      }
      mem.writeU16(ring + 16 * head + 14, headFlags); // the head last: the chain is available
    }
    // One interrupt per batch: when the used slot passes the last chain's slot.
    let last = avail - slotsPer;
    let lastWrap = wrap;
    if (last < 0) {
      last += size;
      lastWrap ^= 1;
    }
    q.setDriverEvent(RING_EVENT_FLAGS_DESC, last, lastWrap);
    kick(q);
    let sum = 0;
    let usedBits = usedWrap === 1 ? WRAP_FLIP : 0;
    for (let c = 0; c < BATCH; c++) {
      const d = ring + 16 * used;
      // Used for the driver's wrap counter: AVAIL and USED both equal to it (VIRTIO 1.2, 2.8.1).
      if ((mem.readU16(d + 14) & WRAP_FLIP) !== usedBits) throw new Error('device did not complete the batch');
      sum += mem.readU16(d + 12) + mem.readU32(d + 8); // id and length
      used += slotsPer;
      if (used >= size) {
        used -= size;
        usedWrap ^= 1;
        usedBits ^= WRAP_FLIP;
      }
    }
    if (sum < 0) throw new Error('unreachable');
    if (drv.ackInterrupt() === 0) throw new Error('no interrupt for the batch');
  };
}

/**
 * Chains per second of `round` over one run of SECONDS: the whole round per CPU second of this
 * process (per wall second with --wall), as bench/queue.ts counts, so other jobs on the machine
 * shift it less; and the device alone, per wall second spent inside QueueNotify.
 */
function timed(round: () => void): [number, number] {
  deviceNs = 0n;
  let rounds = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(SECONDS * 1e9));
  let now = t0;
  while (now < deadline) {
    for (let i = 0; i < 50; i++) round();
    rounds += 50;
    now = process.hrtime.bigint();
  }
  const cpu = process.cpuUsage(c0);
  const wholeSeconds = WALL ? Number(now - t0) / 1e9 : (cpu.user + cpu.system) / 1e6;
  return [(rounds * BATCH) / wholeSeconds, (rounds * BATCH) / (Number(deviceNs) / 1e9)];
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]) => `${(median(xs) / 1e6).toFixed(2).padStart(6)} M`;

console.log(`storvm queue bench — node ${process.version}, batch ${BATCH}, ${SECONDS}s per run, median of ${RUNS}, the three drivers in rotating order, ${new Date().toISOString().slice(0, 10)}`);
console.log(`chains/s, whole round (driver + device, per ${WALL ? 'wall' : 'CPU'} second)   | device only (inside QueueNotify, per wall second)`);
console.log(`${'chain shape'.padEnd(46)} split,prebuilt split,written  packed  packed/split | split    packed  packed/split`);
const m = (x: number) => `${(x / 1e6).toFixed(2)} M`.padStart(8);
const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(0)}%`.padStart(6);
for (const shape of SHAPES) {
  const rounds = [splitRound(shape, false), splitRound(shape, true), packedRound(shape)];
  for (let i = 0; i < 2000; i++) for (const r of rounds) r();
  const whole: number[][] = rounds.map(() => []);
  const dev: number[][] = rounds.map(() => []);
  // Short runs, the drivers in rotating order, so load that comes and goes hits all three alike.
  for (let run = 0; run < RUNS; run++) {
    for (let j = 0; j < rounds.length; j++) {
      const k = (run + j) % rounds.length;
      const [w, d] = timed(rounds[k]!);
      whole[k]!.push(w);
      dev[k]!.push(d);
    }
  }
  const [pre, wr, pk] = whole.map(median) as [number, number, number];
  const dSplit = median([...dev[0]!, ...dev[1]!]); // the same device path for both split drivers
  const dPacked = median(dev[2]!);
  console.log(`${shape.name.padEnd(46)} ${m(pre)}     ${m(wr)}  ${m(pk)}  ${pct(pk, wr)}     | ${m(dSplit)} ${m(dPacked)}  ${pct(dPacked, dSplit)}`);
}
