/**
 * Seeded randomized test of the transport and split queue: 100,000 random register writes mixed
 * with reads, proper probes, random descriptor tables and kicks, with the invariants checked after
 * each step: nothing throws, the device writes only into writable descriptors and used rings, and no
 * used length exceeds the writable bytes of its chain.
 */
import { describe, expect, it } from 'vitest';
import { FlatRam } from '../../src/memory/flat-ram.js';
import { DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, MMIO } from '../../src/virtio/constants.js';
import type { Virtqueue as SplitQueue } from '../../src/virtio/virtqueue.js';
import { RAM_BASE, TestDriver } from '../../src/testing/index.js';
import { TestDevice } from '../support/test-device.js';
import { mulberry32 } from '../support/prng.js';
import { RecordingMemory } from '../../src/testing/index.js';

const RAM_SIZE = 1 << 20;
const DATA = RAM_BASE + (512 << 10); // random buffers and indirect tables live above this
const REGS = [
  MMIO.DeviceFeaturesSel, MMIO.DriverFeatures, MMIO.DriverFeaturesSel, MMIO.QueueSel, MMIO.QueueNum,
  MMIO.QueueReady, MMIO.QueueNotify, MMIO.InterruptACK, MMIO.Status, MMIO.QueueDescLow, MMIO.QueueDescHigh,
  MMIO.QueueDriverLow, MMIO.QueueDriverHigh, MMIO.QueueDeviceLow, MMIO.QueueDeviceHigh, MMIO.ConfigGeneration,
  MMIO.Config, MMIO.Config + 3, 0x0fd, 0x1ff,
];
const STATUS_VALUES = [0, 1, 3, 11, 15, 0x80, 0x40 | 15, 7];

interface Range {
  a: number;
  b: number;
}

/** The driver's own reading of a descriptor table: writable ranges and a per-head upper bound. */
class TableSnapshot {
  readonly writable: Range[] = [];
  private readonly descs: Array<{ addr: number; len: number; flags: number; next: number }> = [];
  private readonly indirect = new Map<number, Array<{ addr: number; len: number; flags: number; next: number }>>();

  constructor(ram: FlatRam, q: SplitQueue) {
    const read = (table: number, n: number) => {
      const out = [];
      for (let i = 0; i < n; i++) {
        const d = table + 16 * i;
        if (!ram.contains(d, 16)) break;
        out.push({ addr: ram.readU32(d) + ram.readU32(d + 4) * 2 ** 32, len: ram.readU32(d + 8), flags: ram.readU16(d + 12), next: ram.readU16(d + 14) });
      }
      return out;
    };
    this.descs = read(q.descAddr, q.size);
    for (const d of this.descs) {
      if (d.flags & DESC_F_WRITE) this.writable.push({ a: d.addr, b: d.addr + d.len });
      if (d.flags & DESC_F_INDIRECT && d.len % 16 === 0 && d.len > 0) {
        const t = read(d.addr, Math.min(d.len / 16, 1024));
        this.indirect.set(d.addr, t);
        for (const e of t) if (e.flags & DESC_F_WRITE) this.writable.push({ a: e.addr, b: e.addr + e.len });
      }
    }
  }

  /** Writable bytes of the chain at `head`, walked the way a driver built it (an upper bound). */
  writableBytes(head: number): number {
    let total = 0;
    const walk = (table: typeof this.descs, start: number, nested: boolean) => {
      let i = start;
      for (let steps = 0; steps <= table.length; steps++) {
        const d = table[i];
        if (d === undefined) return;
        if (d.flags & DESC_F_INDIRECT && !nested) {
          const t = this.indirect.get(d.addr);
          if (t) walk(t, 0, true);
        } else if (d.flags & DESC_F_WRITE) total += d.len;
        if (!(d.flags & DESC_F_NEXT)) return;
        i = d.next;
      }
    };
    walk(this.descs, head, false);
    return total;
  }
}

function randomDesc(rnd: () => number, size: number) {
  const r = rnd();
  const addr = r < 0.8 ? DATA + Math.floor(rnd() * (RAM_SIZE / 2 - 64)) : r < 0.9 ? RAM_BASE + RAM_SIZE - Math.floor(rnd() * 64) : Math.floor(rnd() * 2 ** 32) * 2 ** Math.floor(rnd() * 33);
  const len = rnd() < 0.9 ? Math.floor(rnd() * 64) : Math.floor(rnd() * 2 ** 32);
  let flags = Math.floor(rnd() * 8);
  if (rnd() < 0.5) flags &= ~DESC_F_INDIRECT;
  const next = Math.floor(rnd() * (size + 2));
  return { addr, len, flags, next };
}

function writeDesc(ram: FlatRam, at: number, d: { addr: number; len: number; flags: number; next: number }) {
  if (!ram.contains(at, 16)) return;
  ram.writeU64(at, BigInt(Math.min(d.addr, 2 ** 64 - 1)));
  ram.writeU32(at + 8, d.len >>> 0);
  ram.writeU16(at + 12, d.flags);
  ram.writeU16(at + 14, d.next & 0xffff);
}

describe('randomized hostile guest (seeded)', () => {
  it('survives 100,000 random register writes among random descriptor tables with invariants intact', async () => {
    const rnd = mulberry32(0x5eed_2026);
    const ram = new FlatRam(RAM_BASE, RAM_SIZE);
    const trace = new RecordingMemory(ram);
    const dev = new TestDevice({ queues: [8, 16], behaviour: 'fill' });
    const drv = new TestDriver(dev, ram, { deviceMem: trace });
    const t = drv.transport;
    let kicks = 0;
    let registerWrites = 0;
    let chains = 0;
    let served = 0;

    // 100,000 random register writes, with probes and random descriptor tables in between.
    while (registerWrites < 100_000) {
      const r = rnd();
      trace.clear();
      // Probe again now and then, and often once the device is down, so most steps hit a live queue.
      const live = (drv.status & 0x44) === 0x04;
      if (r < 0.01 || (!live && r < 0.2)) {
        // Rings come from a fresh allocator each probe.
        (drv as { allocator: unknown }).allocator = new (drv.allocator.constructor as new (m: FlatRam) => typeof drv.allocator)(ram);
        drv.init({ queueSizes: [[1, 2, 4, 8][Math.floor(rnd() * 4)]!, [4, 16][Math.floor(rnd() * 2)]!] });
        continue;
      }
      if (r < 0.45) {
        const off = rnd() < 0.9 ? REGS[Math.floor(rnd() * REGS.length)]! : Math.floor(rnd() * 0x200);
        const size = [4, 4, 4, 1, 2, 8][Math.floor(rnd() * 6)]!;
        const value = off === MMIO.Status ? STATUS_VALUES[Math.floor(rnd() * STATUS_VALUES.length)]! : rnd() < 0.5 ? Math.floor(rnd() * 20) : Math.floor(rnd() * 2 ** 32);
        // Register writes may make the device use new rings: take a snapshot of what is legal first.
        const snaps = t.queues.map((q) => (q.ready ? new TableSnapshot(ram, q) : undefined));
        const before = t.queues.map((q) => q.usedIdx);
        t.write(off, size, value);
        registerWrites++;
        check(snaps, before);
        if (rnd() < 0.2) t.read(Math.floor(rnd() * 0x200), [1, 2, 4][Math.floor(rnd() * 3)]!);
        continue;
      }
      // Random descriptor tables on a ready queue, then a kick.
      const qi = Math.floor(rnd() * t.queues.length);
      const q = t.queues[qi]!;
      if (!q.ready) continue;
      const n = 1 + Math.floor(rnd() * q.size);
      for (let i = 0; i < n; i++) {
        const d = randomDesc(rnd, q.size);
        if (d.flags & DESC_F_INDIRECT) {
          const entries = 1 + Math.floor(rnd() * 12);
          const table = DATA + Math.floor(rnd() * 4000) * 16;
          for (let k = 0; k < entries; k++) writeDesc(ram, table + 16 * k, randomDesc(rnd, entries));
          d.addr = rnd() < 0.9 ? table : d.addr;
          d.len = rnd() < 0.8 ? 16 * entries : d.len;
        }
        writeDesc(ram, q.descAddr + 16 * Math.floor(rnd() * q.size), d);
      }
      const heads = 1 + Math.floor(rnd() * 3);
      for (let i = 0; i < heads; i++) {
        const idx = ram.readU16(q.driverAddr + 2);
        const head = rnd() < 0.97 ? Math.floor(rnd() * q.size) : Math.floor(rnd() * 0x10000);
        ram.writeU16(q.driverAddr + 4 + 2 * (idx % q.size), head);
        ram.writeU16(q.driverAddr + 2, rnd() < 0.99 ? (idx + 1) & 0xffff : Math.floor(rnd() * 0x10000));
      }
      const snaps = t.queues.map((x) => (x.ready ? new TableSnapshot(ram, x) : undefined));
      const before = t.queues.map((x) => x.usedIdx);
      kicks++;
      t.write(MMIO.QueueNotify, 4, qi);
      chains += (q.usedIdx - before[qi]!) & 0xffff;
      served = dev.handled.length;
      check(snaps, before);
    }
    await t.idle();
    // The run must have exercised the device, not only the refusal paths.
    expect(registerWrites).toBe(100_000);
    expect(kicks).toBeGreaterThan(50_000);
    expect(chains).toBeGreaterThan(30_000);
    expect(served).toBeGreaterThan(5_000);

    function check(snaps: Array<TableSnapshot | undefined>, before: number[]) {
      const allowed: Range[] = [];
      t.queues.forEach((q, i) => {
        const s = snaps[i];
        if (s) allowed.push(...s.writable);
        allowed.push({ a: q.deviceAddr, b: q.deviceAddr + 6 + 8 * q.size });
      });
      for (const w of trace.writes()) {
        expect(w.addr >= RAM_BASE && w.addr + w.len <= RAM_BASE + RAM_SIZE).toBe(true);
        if (!allowed.some((g) => w.addr >= g.a && w.addr + w.len <= g.b)) {
          throw new Error(`device wrote ${w.len} bytes at 0x${w.addr.toString(16)} outside writable descriptors and used rings`);
        }
      }
      t.queues.forEach((q, i) => {
        const s = snaps[i];
        if (!s || !q.ready) return;
        for (let u = before[i]!; u !== q.usedIdx; u = (u + 1) & 0xffff) {
          const at = q.deviceAddr + 4 + 8 * (u % q.size);
          const id = ram.readU32(at);
          const len = ram.readU32(at + 4);
          expect(id).toBeLessThan(q.size);
          if (len > s.writableBytes(id)) throw new Error(`used.len ${len} > writable bytes ${s.writableBytes(id)} of chain ${id}`);
        }
      });
    }
  });
});
