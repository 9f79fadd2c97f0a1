/**
 * bench/queue.ts — split-queue round trips through the driver harness.
 *
 * Each round the driver publishes a batch of prebuilt chains and kicks; the device pops each
 * chain, reads a 16-byte header, writes one status byte, adds it to the used ring and decides on
 * the notification once per batch; the driver then collects the used entries. Reports chains per
 * second, the median of 5 runs, for several chain shapes.
 *
 *   npx tsx bench/queue.ts [--batch N] [--seconds S]
 */
import type { GuestMemory } from '../src/memory/guest-memory.js';
import type { DescriptorChain } from '../src/virtio/chain.js';
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE } from '../src/virtio/constants.js';
import { COMMON_FEATURES, QueueDevice } from '../src/virtio/device.js';
import { TestDriver } from '../test/support/driver.js';

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

function runShape(shape: Shape): number[] {
  const dev = new BenchDevice();
  const drv = new TestDriver(dev).init({ queueSizes: [1024] });
  const q = drv.queues[0]!;
  const mem = drv.mem;
  const a = drv.allocator;
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
    drv.ackInterrupt();
  };
  // Warm up, then 5 timed runs.
  for (let i = 0; i < 2000; i++) round();
  const rates: number[] = [];
  for (let run = 0; run < 5; run++) {
    let rounds = 0;
    const t0 = process.hrtime.bigint();
    const deadline = t0 + BigInt(Math.round(SECONDS * 1e9));
    let now = t0;
    while (now < deadline) {
      for (let i = 0; i < 50; i++) round();
      rounds += 50;
      now = process.hrtime.bigint();
    }
    rates.push((rounds * BATCH) / (Number(now - t0) / 1e9));
  }
  return rates;
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

console.log(`storvm queue bench — node ${process.version}, batch ${BATCH}, ${SECONDS}s per run, median of 5`);
for (const shape of SHAPES) {
  const rates = runShape(shape);
  console.log(`${shape.name.padEnd(48)} ${(median(rates) / 1e6).toFixed(2).padStart(6)} M chains/s   (runs: ${rates.map((r) => (r / 1e6).toFixed(2)).join(' ')})`);
}
