/**
 * bench/reset.ts — what a reset that stops all device access to guest memory costs
 * (hostile-guest line 49), two ways:
 *
 * - drain (what storvm does): requests keep their zero-copy views of guest RAM; after a reset the
 *   Status register reads non-zero until the requests in flight have finished. Per request it
 *   costs nothing; a reset costs the wait for the slowest request in flight.
 * - bounce: an async backend gets a host buffer instead of guest RAM, and the device copies
 *   (guest → bounce before a write, bounce → guest after a read, only if still live). Status
 *   could read 0 at once; every async request pays an extra copy. The bounce here is a backend
 *   wrapper with a buffer pool, which is the cheapest a device-side bounce could be.
 *
 * Both run through VirtioBlk and the driver harness at QD32, in alternation, median of 5 runs.
 * Then the reset latency of draining: 32 FileDisk reads of 1 MiB in flight, time until Status
 * reads 0 again.
 *
 * Then the host-call transport, where a reset is one synchronous call and can't drain: it bounces
 * every view (what storvm ships), against the same transport with its queues' bounce turned off
 * (zero-copy; here only, to measure what the bounce costs).
 *
 *   npx tsx bench/reset.ts [--seconds S]
 */
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlockBackend } from '../src/backends/block/backend.js';
import { MemoryDisk } from '../src/backends/block/memory-disk.js';
import { VirtioBlk } from '../src/devices/blk/device.js';
import { FlatRam } from '../src/memory/flat-ram.js';
import { DESC_F_NEXT, DESC_F_WRITE, MMIO } from '../src/virtio/constants.js';
import { FileDisk } from '../src/node/file-disk.js';
import { HostCallTransport } from '../src/virtio/host-call.js';
import { SplitQueue } from '../src/virtio/queue.js';
import { DriverQueue, GuestAllocator, RAM_BASE, TestDriver } from '../src/testing/index.js';

const i = process.argv.indexOf('--seconds');
const SECONDS = i >= 0 ? Number(process.argv[i + 1]) : 0.5;
const RUNS = 5;
const QD = 32;
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

/** A MemoryDisk that answers with a Promise, as a backend on another thread would. */
class AsyncMemoryDisk implements BlockBackend {
  readonly readOnly = false;
  constructor(readonly inner: MemoryDisk) {}
  get size(): number {
    return this.inner.size;
  }
  read(offset: number, dst: Uint8Array): Promise<void> {
    this.inner.read(offset, dst);
    return Promise.resolve();
  }
  write(offset: number, src: Uint8Array): Promise<void> {
    this.inner.write(offset, src);
    return Promise.resolve();
  }
  flush(): void {}
}

/** Bounce buffers in front of a backend: the backend never sees guest RAM. */
class Bounce implements BlockBackend {
  private readonly pool = new Map<number, Uint8Array[]>();
  constructor(readonly inner: BlockBackend) {}
  get size(): number {
    return this.inner.size;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  private take(n: number): Uint8Array {
    return this.pool.get(n)?.pop() ?? new Uint8Array(n);
  }
  private give(b: Uint8Array): void {
    let list = this.pool.get(b.length);
    if (list === undefined) this.pool.set(b.length, (list = []));
    list.push(b);
  }
  async read(offset: number, dst: Uint8Array): Promise<void> {
    const b = this.take(dst.length);
    await this.inner.read(offset, b);
    dst.set(b); // only if the request is still live, in a real device
    this.give(b);
  }
  async write(offset: number, src: Uint8Array): Promise<void> {
    const b = this.take(src.length);
    b.set(src);
    await this.inner.write(offset, b);
    this.give(b);
  }
  flush(): void | Promise<void> {
    return this.inner.flush();
  }
}

type Round = () => Promise<void>;

/** QD requests of `len` bytes per round, reads or writes, spread over the disk. */
function rounds(backend: BlockBackend, len: number, write: boolean) {
  const mem = new FlatRam(RAM_BASE, QD * (len + 4096) + (4 << 20));
  const drv = new TestDriver(new VirtioBlk(backend), mem).init();
  const q = drv.queues[0]!;
  const a = drv.allocator;
  const hdrs: number[] = [];
  const st: number[] = [];
  for (let c = 0; c < QD; c++) {
    const hdr = a.alloc(16, 16);
    const data = a.alloc(len, 4096);
    const s = a.alloc(1, 1);
    mem.writeU32(hdr, write ? 1 : 0);
    q.writeDesc(3 * c, { addr: hdr, len: 16, flags: DESC_F_NEXT, next: 3 * c + 1 });
    q.writeDesc(3 * c + 1, { addr: data, len, flags: (write ? 0 : DESC_F_WRITE) | DESC_F_NEXT, next: 3 * c + 2 });
    q.writeDesc(3 * c + 2, { addr: s, len: 1, flags: DESC_F_WRITE, next: 0 });
    hdrs.push(hdr);
    st.push(s);
  }
  const slots = Math.floor(backend.size / len);
  let n = 0;
  let availIdx = 0;
  const publish = (): void => {
    for (let c = 0; c < QD; c++) {
      mem.writeU32(hdrs[c]! + 8, ((n++ * 7919) % slots) * (len / 512));
      mem.writeU8(st[c]!, 0xff);
      mem.writeU16(q.avail + 4 + 2 * ((availIdx + c) & (q.size - 1)), 3 * c);
    }
    availIdx = (availIdx + QD) & 0xffff;
    mem.writeU16(q.avail + 2, availIdx);
    q.kick();
  };
  const round: Round = async () => {
    publish();
    await drv.transport.idle();
    for (let c = 0; c < QD; c++) if (mem.readU8(st[c]!) !== 0) throw new Error('request failed');
    drv.ackInterrupt();
  };
  return { round, drv, publish };
}

/** The same rounds through a HostCallTransport, bouncing (as shipped) or not (zero-copy). */
function hostRounds(backend: BlockBackend, len: number, write: boolean, bounce: boolean): Round {
  const mem = new FlatRam(RAM_BASE, QD * (len + 4096) + (4 << 20));
  const t = new HostCallTransport(new VirtioBlk(backend), mem, { raiseIrq: () => {} });
  const a = new GuestAllocator(mem);
  const desc = a.alloc(3 * 4096 * 8, 4096);
  t.setFeatures(t.offeredFeatures);
  if (!t.enableVring(0, 256, desc, 1)) throw new Error('ring refused');
  const l = t.queues[0]!;
  // Bench only: the plain split pop hands out chains that don't bounce.
  if (!bounce) (l as { pop: SplitQueue['pop'] }).pop = SplitQueue.prototype.pop;
  const host = { mem, allocator: a, notify: (i: number) => void t.notify(i), idle: () => t.idle() };
  const q = new DriverQueue(host, 0, 256, { desc: l.descAddr, avail: l.driverAddr, used: l.deviceAddr });
  const hdrs: number[] = [];
  const st: number[] = [];
  for (let c = 0; c < QD; c++) {
    const hdr = a.alloc(16, 16);
    const data = a.alloc(len, 4096);
    const s = a.alloc(1, 1);
    mem.writeU32(hdr, write ? 1 : 0);
    q.writeDesc(3 * c, { addr: hdr, len: 16, flags: DESC_F_NEXT, next: 3 * c + 1 });
    q.writeDesc(3 * c + 1, { addr: data, len, flags: (write ? 0 : DESC_F_WRITE) | DESC_F_NEXT, next: 3 * c + 2 });
    q.writeDesc(3 * c + 2, { addr: s, len: 1, flags: DESC_F_WRITE, next: 0 });
    hdrs.push(hdr);
    st.push(s);
  }
  const slots = Math.floor(backend.size / len);
  let n = 0;
  let availIdx = 0;
  return async () => {
    for (let c = 0; c < QD; c++) {
      mem.writeU32(hdrs[c]! + 8, ((n++ * 7919) % slots) * (len / 512));
      mem.writeU8(st[c]!, 0xff);
      mem.writeU16(q.avail + 4 + 2 * ((availIdx + c) & (q.size - 1)), 3 * c);
    }
    availIdx = (availIdx + QD) & 0xffff;
    mem.writeU16(q.avail + 2, availIdx);
    t.notify(0);
    await t.idle();
    for (let c = 0; c < QD; c++) if (mem.readU8(st[c]!) !== 0) throw new Error('request failed');
  };
}

async function oneRun(round: Round): Promise<number> {
  let count = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < SECONDS * 1000) {
    for (let k = 0; k < 5; k++) await round();
    count += 5;
  }
  return count / ((performance.now() - t0) / 1000);
}

async function pair(a: Round, b: Round): Promise<[number, number]> {
  for (let k = 0; k < 50; k++) {
    await a();
    await b();
  }
  const ra: number[] = [];
  const rb: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    ra.push(await oneRun(a));
    rb.push(await oneRun(b));
  }
  return [median(ra), median(rb)];
}

const fill = new Uint8Array(1 << 20).map((_, k) => (k * 7) & 0xff);
const mdisk = new MemoryDisk(64 << 20);
for (let at = 0; at < mdisk.size; at += fill.length) mdisk.write(at, fill);
const path = join(tmpdir(), `storvm-reset-bench-${process.pid}.img`);
await writeFile(path, new Uint8Array(64 << 20).fill(7));
const fdisk = await FileDisk.open(path);

console.log(`storvm reset bench — node ${process.version}, QD${QD}, ${SECONDS}s per run, median of ${RUNS}, ${new Date().toISOString().slice(0, 10)}`);
console.log('backend / request'.padEnd(36) + 'drain (zero-copy)'.padStart(18) + 'bounce'.padStart(14) + '   bounce / drain');
try {
  for (const [name, backend] of [
    ['async MemoryDisk', new AsyncMemoryDisk(mdisk)],
    ['FileDisk (page cache)', fdisk],
  ] as const) {
    for (const [what, len, write] of [
      ['4 KiB reads', 4096, false],
      ['1 MiB reads', 1 << 20, false],
      ['4 KiB writes', 4096, true],
      ['1 MiB writes', 1 << 20, true],
    ] as const) {
      const [drain, bounce] = await pair(rounds(backend, len, write).round, rounds(new Bounce(backend), len, write).round);
      const unit = (r: number) => (len === 4096 ? `${((r * QD) / 1000).toFixed(0)} K IOPS` : `${((r * QD * len) / 1e6).toFixed(0)} MB/s`);
      console.log(`${`${name}, ${what}`.padEnd(36)}${unit(drain).padStart(18)}${unit(bounce).padStart(14)}   ${((100 * bounce) / drain).toFixed(0)}%`);
    }
  }

  console.log('\nhost-call transport (reset cannot drain)'.padEnd(37) + 'zero-copy'.padStart(17) + 'bounce'.padStart(14) + '   bounce / zero-copy');
  for (const [name, backend] of [
    ['MemoryDisk (answers at once)', mdisk],
    ['async MemoryDisk', new AsyncMemoryDisk(mdisk)],
    ['FileDisk (page cache)', fdisk],
  ] as const) {
    for (const [what, len, write] of [
      ['4 KiB reads', 4096, false],
      ['1 MiB reads', 1 << 20, false],
      ['4 KiB writes', 4096, true],
      ['1 MiB writes', 1 << 20, true],
    ] as const) {
      const [plain, bounce] = await pair(hostRounds(backend, len, write, false), hostRounds(backend, len, write, true));
      const unit = (r: number) => (len === 4096 ? `${((r * QD) / 1000).toFixed(0)} K IOPS` : `${((r * QD * len) / 1e6).toFixed(0)} MB/s`);
      console.log(`${`${name}, ${what}`.padEnd(36)}${unit(plain).padStart(18)}${unit(bounce).padStart(14)}   ${((100 * bounce) / plain).toFixed(0)}%`);
    }
  }

  // Reset latency while draining: QD reads of 1 MiB in flight at the FileDisk.
  const lat: number[] = [];
  for (let r = 0; r < 9; r++) {
    const { drv, publish } = rounds(fdisk, 1 << 20, false);
    publish();
    const t0 = performance.now();
    drv.write(MMIO.Status, 0);
    let reads = 0;
    while (drv.read(MMIO.Status) !== 0) {
      reads++;
      await new Promise((res) => setImmediate(res));
    }
    lat.push(performance.now() - t0);
    if (reads === 0) throw new Error('nothing was in flight');
  }
  console.log(`\ndrain: reset with ${QD} FileDisk reads of 1 MiB in flight reads Status 0 after ${median(lat).toFixed(2)} ms (median of 9)`);
} finally {
  await fdisk.close();
  await rm(path, { force: true });
}
