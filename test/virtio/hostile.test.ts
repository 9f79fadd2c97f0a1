/**
 * The hostile-guest rules for the transport and the split queue: lines 1–21 of
 * docs/hostile-guest.md, one test (or more) each, all through the driver harness.
 */
import { describe, expect, it } from 'vitest';
import { FlatRam } from '../../src/memory/flat-ram.js';
import {
  bit,
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_WRITE,
  F_EVENT_IDX,
  F_INDIRECT_DESC,
  F_VERSION_1,
  INT_CONFIG_CHANGE,
  MMIO,
  STATUS_ACKNOWLEDGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
} from '../../src/virtio/constants.js';
import { RAM_BASE, TestDriver, type DriverQueue } from '../../src/testing/index.js';
import { TestDevice, type TestDeviceOptions } from '../support/test-device.js';
import { RecordingMemory } from '../../src/testing/index.js';

const HDR = new Uint8Array(16).fill(7);

function setup(opts: TestDeviceOptions & { ram?: number; queueSize?: number; features?: bigint } = {}) {
  const dev = new TestDevice(opts);
  const ram = new FlatRam(RAM_BASE, opts.ram ?? 1 << 20);
  const trace = new RecordingMemory(ram);
  const drv = new TestDriver(dev, ram, { deviceMem: trace });
  drv.init({ queueSizes: opts.queueSize ? [opts.queueSize] : undefined, features: opts.features });
  trace.clear();
  return { dev, drv, ram, trace, q: drv.queues[0]! };
}

/** Allocates a buffer in guest RAM, filled with `fill`. */
function buf(drv: TestDriver, len: number, fill = 0xee): number {
  const addr = drv.allocator.alloc(Math.max(len, 1), 8);
  drv.mem.fill(addr, len, fill);
  return addr;
}

/** Publishes `head`, kicks, waits and returns the used entries. */
async function run(drv: TestDriver, q: DriverQueue, head: number) {
  q.publish(head);
  q.kick();
  await drv.transport.idle();
  return q.takeUsed();
}

/** A status-style chain of raw descriptors starting at index `first`, linked in order. */
function rawChain(q: DriverQueue, descs: Array<{ addr: number; len: number; flags: number; next?: number }>, first = 0, table = q.desc) {
  descs.forEach((d, i) => {
    const last = i === descs.length - 1;
    q.writeDesc(first + i, { addr: d.addr, len: d.len, flags: d.flags | (last ? 0 : DESC_F_NEXT), next: d.next ?? (last ? 0 : first + i + 1) }, table);
  });
}

function expectRefused(used: Array<{ id: number; len: number }>, dev: TestDevice, head = 0) {
  expect(used).toEqual([{ id: head, len: 0 }]);
  expect(dev.handled).toEqual([]);
}

describe('hostile guest: transport and split queue (hostile-guest.md lines 1–21)', () => {
  it('1: desc.next >= queue size refuses the chain', async () => {
    const { dev, drv, q } = setup({ queueSize: 8 });
    q.writeDesc(0, { addr: buf(drv, 16), len: 16, flags: DESC_F_NEXT, next: 8 });
    expectRefused(await run(drv, q, 0), dev);
  });

  it('2: a loop in a chain stops after queue-size descriptors and is refused', async () => {
    const { dev, drv, q, trace } = setup({ queueSize: 8 });
    const b = buf(drv, 16);
    q.writeDesc(0, { addr: b, len: 16, flags: DESC_F_NEXT, next: 1 });
    q.writeDesc(1, { addr: b, len: 16, flags: DESC_F_NEXT, next: 0 });
    expectRefused(await run(drv, q, 0), dev);
    // Bounded walk: at most 8 descriptor reads of 4 fields (plus the avail ring reads).
    const descReads = trace.log.filter((a) => a.kind === 'read' && a.addr >= q.desc && a.addr < q.desc + 16 * 8);
    expect(descReads.length).toBeLessThanOrEqual(8 * 5);
  });

  it('2: a loop inside an indirect table is refused too', async () => {
    const { dev, drv, q } = setup({ queueSize: 8 });
    const table = drv.allocator.alloc(32, 16);
    const b = buf(drv, 16);
    q.writeDesc(0, { addr: b, len: 16, flags: DESC_F_NEXT, next: 1 }, table);
    q.writeDesc(1, { addr: b, len: 16, flags: DESC_F_NEXT, next: 0 }, table);
    q.writeDesc(0, { addr: table, len: 32, flags: DESC_F_INDIRECT, next: 0 });
    expectRefused(await run(drv, q, 0), dev);
  });

  it('3: a chain of exactly queue-size descriptors is served', async () => {
    const { dev, drv, q } = setup({ queueSize: 8 });
    const descs = Array.from({ length: 7 }, () => ({ addr: buf(drv, 3, 7), len: 3, flags: 0 }));
    const status = buf(drv, 1);
    rawChain(q, [...descs, { addr: status, len: 1, flags: DESC_F_WRITE }]);
    expect(await run(drv, q, 0)).toEqual([{ id: 0, len: 1 }]);
    expect(dev.headers[0]).toEqual(HDR);
    expect(drv.mem.readU8(status)).toBe(0);
  });

  it('3: an indirect table of queue-size entries is served, one more is refused', async () => {
    const { dev, drv, q } = setup({ queueSize: 8 });
    const make = (n: number) => {
      const table = drv.allocator.alloc(16 * n, 16);
      const descs = Array.from({ length: n - 1 }, () => ({ addr: buf(drv, 3, 7), len: 3, flags: 0 }));
      rawChain(q, [...descs, { addr: buf(drv, 1), len: 1, flags: DESC_F_WRITE }], 0, table);
      return table;
    };
    const ok = make(8);
    q.writeDesc(0, { addr: ok, len: 16 * 8, flags: DESC_F_INDIRECT, next: 0 });
    expect(await run(drv, q, 0)).toEqual([{ id: 0, len: 1 }]);
    const tooLong = make(9);
    q.writeDesc(1, { addr: tooLong, len: 16 * 9, flags: DESC_F_INDIRECT, next: 0 });
    expect(await run(drv, q, 1)).toEqual([{ id: 1, len: 0 }]);
    expect(dev.handled.length).toBe(1);
  });

  it('4: avail.idx more than queue size ahead sets DEVICE_NEEDS_RESET without spinning', async () => {
    const { dev, drv, q } = setup({ queueSize: 8 });
    q.setAvailIdx(9);
    q.kick();
    await drv.transport.idle();
    expect(drv.status & STATUS_DEVICE_NEEDS_RESET).toBeTruthy();
    expect(drv.read(MMIO.InterruptStatus) & INT_CONFIG_CHANGE).toBeTruthy();
    expect(drv.irq.level).toBe(true);
    expect(q.usedIdx).toBe(0);
    expect(dev.handled).toEqual([]);
    // Further kicks are ignored until the driver resets the device.
    q.kick();
    expect(dev.handled).toEqual([]);
    // A reset and a fresh probe bring it back.
    drv.init({ queueSizes: [8] });
    expect(drv.status & STATUS_DEVICE_NEEDS_RESET).toBe(0);
    expect((await drv.queues[0]!.submit({ readable: [HDR], writable: [1] })).used.len).toBe(1);
  });

  it('5: an avail ring entry >= queue size is refused (device needs reset)', async () => {
    const { dev, drv, q } = setup({ queueSize: 8 });
    q.publish(8);
    q.kick();
    expect(drv.status & STATUS_DEVICE_NEEDS_RESET).toBeTruthy();
    expect(dev.handled).toEqual([]);
    expect(q.usedIdx).toBe(0);
  });

  it('6: u16 indices wrap 0xFFFF -> 0 for both rings', async () => {
    const { dev, drv, q, trace } = setup({ queueSize: 4 });
    trace.recording = false;
    const b = buf(drv, 16, 7);
    const s = buf(drv, 1);
    rawChain(q, [{ addr: b, len: 16, flags: 0 }, { addr: s, len: 1, flags: DESC_F_WRITE }]);
    let completed = 0;
    const total = 0x10000 + 10;
    while (completed < total) {
      const batch = Math.min(4, total - completed);
      for (let i = 0; i < batch; i++) q.publish(0);
      q.kick();
      const used = q.takeUsed();
      expect(used.length).toBe(batch);
      for (const u of used) expect(u).toEqual({ id: 0, len: 1 });
      completed += batch;
    }
    expect(q.usedIdx).toBe(total & 0xffff);
    expect(q.availIdx).toBe(total & 0xffff);
    expect(dev.handled.length).toBe(total);
    expect(drv.status & STATUS_DEVICE_NEEDS_RESET).toBe(0);
  });

  it('7: INDIRECT inside an indirect table is refused', async () => {
    const { dev, drv, q } = setup();
    const inner = drv.allocator.alloc(16, 16);
    rawChain(q, [{ addr: buf(drv, 17, 7), len: 17, flags: 0 }], 0, inner);
    const outer = drv.allocator.alloc(16, 16);
    q.writeDesc(0, { addr: inner, len: 16, flags: DESC_F_INDIRECT, next: 0 }, outer);
    q.writeDesc(0, { addr: outer, len: 16, flags: DESC_F_INDIRECT, next: 0 });
    expectRefused(await run(drv, q, 0), dev);
  });

  it('7: INDIRECT together with NEXT is refused', async () => {
    const { dev, drv, q } = setup();
    const table = drv.allocator.alloc(32, 16);
    rawChain(q, [{ addr: buf(drv, 16, 7), len: 16, flags: 0 }, { addr: buf(drv, 1), len: 1, flags: DESC_F_WRITE }], 0, table);
    q.writeDesc(0, { addr: table, len: 32, flags: DESC_F_INDIRECT | DESC_F_NEXT, next: 1 });
    q.writeDesc(1, { addr: buf(drv, 1), len: 1, flags: DESC_F_WRITE, next: 0 });
    expectRefused(await run(drv, q, 0), dev);
  });

  it('7: INDIRECT without the negotiated feature is refused', async () => {
    const { dev, drv, q } = setup({ features: bit(F_VERSION_1) | bit(F_EVENT_IDX) });
    expect(drv.features & bit(F_INDIRECT_DESC)).toBe(0n);
    const table = drv.allocator.alloc(32, 16);
    rawChain(q, [{ addr: buf(drv, 16, 7), len: 16, flags: 0 }, { addr: buf(drv, 1), len: 1, flags: DESC_F_WRITE }], 0, table);
    q.writeDesc(0, { addr: table, len: 32, flags: DESC_F_INDIRECT, next: 0 });
    expectRefused(await run(drv, q, 0), dev);
  });

  it('8: indirect tables of length 0, not a multiple of 16, or outside RAM are refused', async () => {
    for (const bad of [
      (t: number) => ({ addr: t, len: 0 }),
      (t: number) => ({ addr: t, len: 24 }),
      () => ({ addr: RAM_BASE + (1 << 20) - 16, len: 32 }),
      () => ({ addr: 0x1000, len: 32 }),
    ]) {
      const { dev, drv, q } = setup();
      const table = drv.allocator.alloc(32, 16);
      rawChain(q, [{ addr: buf(drv, 16, 7), len: 16, flags: 0 }, { addr: buf(drv, 1), len: 1, flags: DESC_F_WRITE }], 0, table);
      q.writeDesc(0, { ...bad(table), flags: DESC_F_INDIRECT, next: 0 });
      expectRefused(await run(drv, q, 0), dev);
    }
  });

  it('9: a buffer leaving RAM or wrapping past 2^64 refuses the chain before any I/O', async () => {
    const end = RAM_BASE + (1 << 20);
    for (const bad of [
      { addr: end - 4, len: 5 },
      { addr: RAM_BASE - 1, len: 2 },
      { addr: 0, len: 16 },
      { addr: 2 ** 64 - 8, len: 16 }, // wraps to a small address in 64-bit arithmetic
      { addr: 2 ** 63, len: 1 },
    ]) {
      const { dev, drv, q, trace } = setup();
      const good = buf(drv, 16, 7);
      const status = buf(drv, 4);
      rawChain(q, [{ addr: good, len: 16, flags: 0 }, { addr: status, len: 4, flags: DESC_F_WRITE }, { ...bad, flags: DESC_F_WRITE }]);
      expectRefused(await run(drv, q, 0), dev);
      // The only device writes are the used element, used.idx and avail_event.
      for (const w of trace.writes()) expect(w.addr >= q.used && w.addr < q.used + 6 + 8 * q.size).toBe(true);
      expect(drv.mem.readU32(status)).toBe(0xeeeeeeee);
    }
  });

  it('10: a buffer ending exactly at the last byte of RAM is valid', async () => {
    const { drv, q } = setup();
    const end = RAM_BASE + (1 << 20);
    rawChain(q, [{ addr: buf(drv, 16, 7), len: 16, flags: 0 }, { addr: end - 1, len: 1, flags: DESC_F_WRITE }]);
    drv.mem.writeU8(end - 1, 0xee);
    expect(await run(drv, q, 0)).toEqual([{ id: 0, len: 1 }]);
    expect(drv.mem.readU8(end - 1)).toBe(0);
  });

  it('11: a chain whose total length overflows u32 is refused', async () => {
    const ramSize = 64 << 20;
    const { dev, drv, q } = setup({ ram: ramSize, queueSize: 128, queues: [128] });
    // 65 descriptors each covering all 64 MiB of RAM: 65 * 2^26 > 2^32.
    const table = drv.allocator.alloc(16 * 65, 16);
    rawChain(q, Array.from({ length: 65 }, () => ({ addr: RAM_BASE, len: ramSize, flags: DESC_F_WRITE })), 0, table);
    q.writeDesc(0, { addr: table, len: 16 * 65, flags: DESC_F_INDIRECT, next: 0 });
    expectRefused(await run(drv, q, 0), dev);
  });

  it('12: a readable descriptor after a writable one is refused', async () => {
    const { dev, drv, q } = setup();
    rawChain(q, [
      { addr: buf(drv, 8, 7), len: 8, flags: 0 },
      { addr: buf(drv, 1), len: 1, flags: DESC_F_WRITE },
      { addr: buf(drv, 8, 7), len: 8, flags: 0 },
    ]);
    expectRefused(await run(drv, q, 0), dev);
    // Zero-length writable descriptors count too.
    rawChain(q, [{ addr: buf(drv, 0), len: 0, flags: DESC_F_WRITE }, { addr: buf(drv, 16, 7), len: 16, flags: 0 }, { addr: buf(drv, 1), len: 1, flags: DESC_F_WRITE }], 3);
    expect(await run(drv, q, 3)).toEqual([{ id: 3, len: 0 }]);
  });

  it('13: the device writes only into writable buffers; used.len is written before used.idx', async () => {
    const { drv, q, trace } = setup({ behaviour: 'fill' });
    const sub = q.add({ readable: [new Uint8Array(10)], writable: [5, 7, 3], indirect: true });
    q.kick();
    const used = q.takeUsed();
    expect(used).toEqual([{ id: sub.head, len: 15 }]);
    const ranges = [...sub.writable.map((w) => [w.addr, w.addr + w.len]), [q.used, q.used + 6 + 8 * q.size]];
    const writes = trace.writes();
    for (const w of writes) expect(ranges.some(([a, b]) => w.addr >= a! && w.addr + w.len <= b!)).toBe(true);
    const lenWrite = writes.findIndex((w) => w.addr === q.used + 4 + 4);
    const idxWrite = writes.findIndex((w) => w.addr === q.used + 2);
    expect(lenWrite).toBeGreaterThanOrEqual(0);
    expect(idxWrite).toBeGreaterThan(lenWrite);
    expect([...q.readWritable(sub)].every((b) => b === 0x5a)).toBe(true);
  });

  it('13: a used length larger than the writable bytes is clamped', async () => {
    const dev = new (class extends TestDevice {
      protected override handle(): number {
        return 1 << 20;
      }
    })();
    const drv = new TestDriver(dev).init();
    const { used } = await drv.queues[0]!.submit({ readable: [HDR], writable: [3, 4] });
    expect(used.len).toBe(7);
  });

  it('14: ring addresses misaligned or outside RAM keep the queue from going ready', () => {
    const end = RAM_BASE + (16 << 20);
    const cases: Array<[number, number, number]> = [
      [RAM_BASE + 8, RAM_BASE + 0x10000, RAM_BASE + 0x20000], // desc not 16-aligned
      [RAM_BASE, RAM_BASE + 0x10001, RAM_BASE + 0x20000], // avail not 2-aligned
      [RAM_BASE, RAM_BASE + 0x10000, RAM_BASE + 0x20002], // used not 4-aligned
      [end - 16 * 4, RAM_BASE + 0x10000, RAM_BASE + 0x20000], // table runs past RAM
      [RAM_BASE, end - 8, RAM_BASE + 0x20000], // avail ring runs past RAM (6 + 2*8 bytes)
      [RAM_BASE, RAM_BASE + 0x10000, end - 16], // used ring runs past RAM
      [0x1000, RAM_BASE + 0x10000, RAM_BASE + 0x20000], // below RAM
      [2 ** 40, RAM_BASE + 0x10000, RAM_BASE + 0x20000], // high half set
    ];
    for (const [desc, avail, used] of cases) {
      const drv = new TestDriver(new TestDevice());
      expect(drv.negotiate()).toBe(true);
      drv.write(MMIO.QueueSel, 0);
      drv.write(MMIO.QueueNum, 8);
      drv.write(MMIO.QueueDescLow, desc % 2 ** 32);
      drv.write(MMIO.QueueDescHigh, Math.floor(desc / 2 ** 32));
      drv.write(MMIO.QueueDriverLow, avail % 2 ** 32);
      drv.write(MMIO.QueueDriverHigh, Math.floor(avail / 2 ** 32));
      drv.write(MMIO.QueueDeviceLow, used % 2 ** 32);
      drv.write(MMIO.QueueDeviceHigh, Math.floor(used / 2 ** 32));
      drv.write(MMIO.QueueReady, 1);
      expect(drv.read(MMIO.QueueReady)).toBe(0);
    }
  });

  it('15: QueueNum of 0, above QueueNumMax or not a power of two is ignored', () => {
    const drv = new TestDriver(new TestDevice({ queues: [64] }));
    drv.negotiate();
    drv.write(MMIO.QueueSel, 0);
    const q = drv.transport.queues[0]!;
    drv.write(MMIO.QueueNum, 16);
    expect(q.size).toBe(16);
    for (const bad of [0, 128, 24, 0xffff_ffff]) {
      drv.write(MMIO.QueueNum, bad);
      expect(q.size).toBe(16);
    }
  });

  it('16: register writes in the wrong phase, bad QueueSel, unknown offsets and narrow accesses are ignored', async () => {
    const dev = new TestDevice();
    const drv = new TestDriver(dev);
    const t = drv.transport;
    const q = t.queues[0]!;
    // Queue registers before FEATURES_OK.
    drv.write(MMIO.Status, STATUS_ACKNOWLEDGE);
    drv.write(MMIO.QueueNum, 8);
    expect(q.size).toBe(256);
    // Driver features before DRIVER.
    drv.write(MMIO.DriverFeaturesSel, 1);
    drv.write(MMIO.DriverFeatures, 1);
    expect(t.negotiatedFeatures).toBe(0n);
    // Status transitions that skip a step are ignored.
    drv.write(MMIO.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    expect(drv.status).toBe(STATUS_ACKNOWLEDGE);
    expect(dev.activations).toBe(0);
    // QueueSel out of range.
    drv.negotiate();
    drv.write(MMIO.QueueSel, 5);
    expect(drv.read(MMIO.QueueNumMax)).toBe(0);
    drv.write(MMIO.QueueNum, 8);
    drv.write(MMIO.QueueReady, 1);
    expect(drv.read(MMIO.QueueReady)).toBe(0);
    // Unknown offsets, misaligned and narrow accesses.
    for (const off of [0x018, 0x03c, 0x0c4, 0x0f8, 0x002, 0x071]) {
      expect(t.read(off, 4)).toBe(0);
      expect(() => t.write(off, 4, 0xffff_ffff)).not.toThrow();
    }
    for (const size of [1, 2, 3, 8, 0]) {
      expect(t.read(MMIO.MagicValue, size)).toBe(0);
      t.write(MMIO.Status, size, 0);
    }
    expect(drv.status).toBe(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    // Feature writes after FEATURES_OK are ignored.
    const before = t.negotiatedFeatures;
    drv.writeFeatures(0n);
    expect(t.negotiatedFeatures).toBe(before);
    // Queue registers after DRIVER_OK are ignored.
    drv.write(MMIO.QueueSel, 0);
    drv.setupQueue(0, 8);
    drv.write(MMIO.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    const desc = q.descAddr;
    drv.write(MMIO.QueueReady, 0);
    drv.write(MMIO.QueueDescLow, 0x1234);
    expect(q.ready).toBe(true);
    expect(q.descAddr).toBe(desc);
    expect((await drv.queues[0]!.submit({ readable: [HDR], writable: [1] })).used.len).toBe(1);
  });

  it('17: notify before DRIVER_OK, after reset, or for a missing queue does nothing', () => {
    const dev = new TestDevice();
    const drv = new TestDriver(dev);
    drv.negotiate();
    const q = drv.setupQueue(0, 8);
    q.add({ readable: [HDR], writable: [1] });
    q.kick(); // before DRIVER_OK
    expect(dev.handled).toEqual([]);
    drv.write(MMIO.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    for (const idx of [1, 7, 0xffff, 0xffff_ffff]) drv.write(MMIO.QueueNotify, idx);
    expect(dev.handled).toEqual([]);
    drv.write(MMIO.Status, 0); // reset
    q.kick();
    expect(dev.handled).toEqual([]);
    expect(q.usedIdx).toBe(0);
  });

  it('18: descriptors are read once; rewriting the table after the pop changes nothing', async () => {
    const { dev, drv, q, trace } = setup({ deferred: true, behaviour: 'fill' });
    const sub = q.add({ readable: [HDR], writable: [8] });
    q.kick();
    const descReads = trace.log.filter((a) => a.kind === 'read' && a.addr >= q.desc && a.addr < q.desc + 16 * q.size);
    expect(descReads.length).toBe(2 * 5); // two descriptors, five fields each, read once
    // The guest now points the writable descriptor somewhere else.
    const elsewhere = buf(drv, 8);
    q.writeDesc(sub.descs[1]!, { addr: elsewhere, len: 8, flags: DESC_F_WRITE, next: 0 });
    dev.release();
    await drv.transport.idle();
    expect(q.takeUsed()).toEqual([{ id: sub.head, len: 8 }]);
    expect([...q.readWritable(sub)]).toEqual(Array(8).fill(0x5a));
    expect(drv.mem.readU32(elsewhere)).toBe(0xeeeeeeee);
  });

  it('19: a device that throws completes the chain with len 0; the transport never throws', async () => {
    const dev = new (class extends TestDevice {
      protected override handle(): number {
        throw new Error('device bug');
      }
    })();
    const drv = new TestDriver(dev).init();
    const { used } = await drv.queues[0]!.submit({ readable: [HDR], writable: [1] });
    expect(used.len).toBe(0);

    const errors: unknown[] = [];
    const broken = new TestDevice();
    broken.notify = () => {
      throw new Error('notify bug');
    };
    const d2 = new TestDriver(broken, undefined, { onDeviceError: (e: unknown) => errors.push(e) }).init();
    expect(() => d2.queues[0]!.kick()).not.toThrow();
    expect(d2.status & STATUS_DEVICE_NEEDS_RESET).toBeTruthy();
    expect(d2.transport.needsResetReason).toMatch(/notify bug/);
    expect(errors.length).toBe(1);
  });

  it('20: reset while requests are in flight drops late completions', async () => {
    const { dev, drv, q } = setup({ deferred: true });
    const sub = q.add({ readable: [HDR], writable: [1] });
    q.kick();
    expect(dev.waitingCount).toBe(1);
    drv.write(MMIO.Status, 0);
    expect(() => drv.init()).toThrow(); // a driver that does not wait for Status 0 (line 49) is ignored
    expect(drv.status).not.toBe(0);
    dev.release();
    await drv.transport.idle();
    expect(drv.status).toBe(0);
    drv.init(); // reset and probe again: new rings
    const q2 = drv.queues[0]!;
    expect(q.usedIdx).toBe(0);
    expect(q2.usedIdx).toBe(0);
    expect(drv.mem.readU8(sub.writable[0]!.addr)).toBe(0xee);
    // The new session works.
    dev.deferred = false;
    expect((await q2.submit({ readable: [HDR], writable: [1] })).used).toMatchObject({ len: 1 });
  });

  it('21: acknowledged features are masked to those offered', () => {
    const drv = new TestDriver(new TestDevice());
    drv.write(MMIO.Status, 0);
    drv.write(MMIO.Status, STATUS_ACKNOWLEDGE);
    drv.write(MMIO.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    drv.writeFeatures(0xffff_ffff_ffff_ffffn);
    for (const sel of [2, 3, 0xffff_ffff]) {
      drv.write(MMIO.DriverFeaturesSel, sel);
      drv.write(MMIO.DriverFeatures, 0xffff_ffff);
    }
    expect(drv.transport.negotiatedFeatures).toBe(drv.deviceFeatures());
    expect(drv.deviceFeatures()).toBe(bit(F_VERSION_1) | bit(F_INDIRECT_DESC) | bit(F_EVENT_IDX));
  });
});
