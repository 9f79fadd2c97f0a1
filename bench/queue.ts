/**
 * bench/queue.ts — split-queue round trips through the driver harness.
 *
 * Each round the driver publishes a batch of prebuilt chains and kicks; the device pops each
 * chain, reads a 16-byte header, writes one status byte, adds it to the used ring and decides on
 * the notification once per batch; the driver then collects the used entries. Reports chains per
 * second, the median of 5 runs (or R), for several chain shapes, through three transports whose runs
 * alternate: virtio-mmio over a FlatRam (the baseline), the host-call transport over a FlatRam,
 * and the host-call transport behind the virtio,wasm binding over a WebAssembly.Memory, kicked
 * from a wasm module.
 *
 *   npx tsx bench/queue.ts [--batch N] [--seconds S] [--runs R] [--wall]
 *
 * Rates are per CPU second of the measuring process (each transport runs in a process of its
 * own), so other jobs on the machine don't shift them much; --wall counts wall time instead.
 */
import type { GuestMemory } from '../src/memory/guest-memory.js';
import { FlatRam } from '../src/memory/flat-ram.js';
import type { DescriptorChain } from '../src/virtio/chain.js';
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE } from '../src/virtio/constants.js';
import { COMMON_FEATURES, QueueDevice } from '../src/virtio/device.js';
import { HostCallTransport } from '../src/virtio/host-call.js';
import { DriverQueue, GuestAllocator, TestDriver } from '../src/testing/index.js';
import { Kernel } from '../test/support/wasm-kernel.js';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

class BenchDevice extends QueueDevice {
  readonly deviceId = 0x3f;
  readonly features = COMMON_FEATURES;
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

const BATCH = arg('--batch', 128);
const SECONDS = arg('--seconds', 1);
const RUNS = arg('--runs', 5);
/** `--child <shape> <kind>`: this process measures one transport and shape when asked. */
const CHILD = process.argv.indexOf('--child');
const WALL = process.argv.includes('--wall');

/** A driver queue of 1024 entries on one transport, and what the driver does after each batch. */
interface Rig {
  q: DriverQueue;
  mem: GuestMemory;
  allocator: GuestAllocator;
  /** The driver's interrupt handling after a batch. */
  ack(): void;
}

type TransportKind = 'mmio' | 'host-call' | 'virtio,wasm';
const KINDS: Array<[TransportKind, string]> = [
  ['mmio', 'mmio'],
  ['host-call', 'host-call'],
  ['virtio,wasm', 'wasm mem'],
];

function rig(kind: TransportKind): Rig {
  const dev = new BenchDevice();
  if (kind === 'mmio') {
    const drv = new TestDriver(dev).init({ queueSizes: [1024] });
    return { q: drv.queues[0]!, mem: drv.mem, allocator: drv.allocator, ack: () => drv.ackInterrupt() };
  }
  if (kind === 'host-call') {
    const mem = new FlatRam(0x8000_0000, 16 << 20);
    const t = new HostCallTransport(dev, mem, { raiseIrq: () => {} });
    const allocator = new GuestAllocator(mem);
    const host = { mem, allocator, notify: (i: number) => void t.notify(i), idle: () => t.idle() };
    const desc = allocator.alloc(3 * 4096 * 8, 4096);
    t.setFeatures(t.offeredFeatures);
    if (!t.enableVring(0, 1024, desc, 1)) throw new Error('ring refused');
    const l = t.queues[0]!;
    return { q: new DriverQueue(host, 0, 1024, { desc: l.descAddr, avail: l.driverAddr, used: l.deviceAddr }), mem, allocator, ack: () => {} };
  }
  const k = new Kernel([dev], { pages: 256 });
  const d = k.drivers[0]!.init({ queueSize: 1024 });
  return { q: d.queues[0]!, mem: k.mem, allocator: k.allocator, ack: () => {} };
}

/** Builds the batch for `shape` on a fresh rig and answers a function that runs one round. */
function prepare(shape: Shape, kind: TransportKind): () => void {
  const { q, mem, allocator: a, ack } = rig(kind);
  // Prebuild BATCH chains in the descriptor table; each round republishes their heads.
  const heads: number[] = [];
  let next = 0;
  for (let c = 0; c < BATCH; c++) {
    const descs = shape.bufs.map(([len, w]) => ({ addr: a.alloc(len, 16), len, flags: w ? DESC_F_WRITE : 0 }));
    const link = (table: number, first: number) =>
      descs.forEach((d, i) => {
        const last = i === descs.length - 1;
        q.writeDesc(first + i, { ...d, flags: d.flags | (last ? 0 : DESC_F_NEXT), next: last ? 0 : first + i + 1 }, table);
      });
    if (shape.indirect) {
      const table = a.alloc(16 * descs.length, 16);
      link(table, 0);
      q.writeDesc(next, { addr: table, len: 16 * descs.length, flags: DESC_F_INDIRECT, next: 0 });
      heads.push(next++);
    } else {
      link(q.desc, next);
      heads.push(next);
      next += descs.length;
    }
  }
  const availRing = q.avail + 4;
  const size = q.size;
  let availIdx = 0;
  let usedSeen = 0;
  const round = () => {
    for (let i = 0; i < BATCH; i++) {
      mem.writeU16(availRing + 2 * ((availIdx + i) & (size - 1)), heads[i]!);
    }
    availIdx = (availIdx + BATCH) & 0xffff;
    mem.writeU16(q.avail + 2, availIdx);
    q.setUsedEvent(availIdx - 1); // interrupt once per batch, as a busy Linux driver asks
    q.kick();
    const used = mem.readU16(q.used + 2);
    if (((used - usedSeen) & 0xffff) !== BATCH) throw new Error('device did not complete the batch');
    usedSeen = used;
    ack();
  };
  for (let i = 0; i < 2000; i++) round(); // warm up
  return round;
}

/** Chains per second of one timed run: per CPU second of this process, or of wall time with --wall. */
function measure(round: () => void): number {
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
  const seconds = WALL ? Number(now - t0) / 1e9 : (cpu.user + cpu.system) / 1e6;
  return (rounds * BATCH) / seconds;
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const m = (x: number) => `${(x / 1e6).toFixed(2)} M`;

if (CHILD >= 0) {
  const round = prepare(SHAPES[Number(process.argv[CHILD + 1])]!, process.argv[CHILD + 2] as TransportKind);
  process.on('message', () => process.send!(measure(round)));
  process.send!('ready');
} else {
  console.log(`storvm queue bench — node ${process.version}, batch ${BATCH}, ${SECONDS}s per run, median of ${RUNS}, runs alternate, chains per ${WALL ? 'wall' : 'CPU'} second`);
  console.log(`${'chain shape'.padEnd(48)} ${KINDS.map(([, label]) => label.padStart(9)).join(' ')}   host-call/mmio  wasm mem/mmio`);
  // One process per transport and shape: none makes the others' call sites polymorphic (a real
  // process uses one kind of guest memory), and each can count its own CPU time.
  const self = fileURLToPath(import.meta.url);
  const next = (c: ChildProcess) =>
    new Promise<number>((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`bench child exited with ${code}`));
      c.once('exit', onExit).once('message', (v) => {
        c.off('exit', onExit);
        resolve(v as number);
      });
    });
  for (let shape = 0; shape < SHAPES.length; shape++) {
    const args = ['--batch', String(BATCH), '--seconds', String(SECONDS), ...(WALL ? ['--wall'] : [])];
    const children = KINDS.map(([kind]) => fork(self, [...args, '--child', String(shape), kind], { execArgv: ['--import', 'tsx'] }));
    await Promise.all(children.map(next)); // built and warmed up
    const rates: number[][] = KINDS.map(() => []);
    for (let run = 0; run < RUNS; run++) {
      for (let i = 0; i < children.length; i++) {
        const result = next(children[i]!);
        children[i]!.send('run');
        rates[i]!.push(await result);
      }
    }
    for (const c of children) c.kill();
    const med = rates.map(median);
    const ratio = (i: number) => `${((100 * med[i]!) / med[0]!).toFixed(0)}%`.padStart(14);
    console.log(`${SHAPES[shape]!.name.padEnd(48)} ${med.map((r) => m(r).padStart(9)).join(' ')}   ${ratio(1)} ${ratio(2)}`);
  }
}
