/**
 * Packed virtqueues (VIRTIO 1.2, 2.8) through the driver harness: wrap counters, chains across the
 * wrap, indirect tables, out-of-order completion, event suppression both ways, and the packed
 * hostile-guest lines (50, 51) with the packed equivalents of the split-ring lines 1–21.
 */
import { describe, expect, it } from 'vitest';
import { FlatRam } from '../../src/memory/flat-ram.js';
import { PackedQueue } from '../../src/virtio/packed.js';
import {
  bit,
  DESC_F_AVAIL,
  DESC_F_INDIRECT,
  DESC_F_USED,
  DESC_F_WRITE,
  F_EVENT_IDX,
  F_INDIRECT_DESC,
  F_RING_PACKED,
  F_VERSION_1,
  MMIO,
  RING_EVENT_FLAGS_DESC,
  RING_EVENT_FLAGS_DISABLE,
  STATUS_DEVICE_NEEDS_RESET,
} from '../../src/virtio/constants.js';
import { COMMON_FEATURES, PACKED_FEATURES } from '../../src/virtio/device.js';
import { PackedDriverQueue, RAM_BASE, TestDriver } from '../../src/testing/index.js';
import { TestDevice, type TestDeviceOptions } from '../support/test-device.js';
import { RecordingMemory } from '../../src/testing/index.js';

const HDR = new Uint8Array(16).fill(7);

function setup(opts: TestDeviceOptions & { queueSize?: number; features?: bigint; ram?: number } = {}) {
  const dev = new TestDevice({ features: COMMON_FEATURES | PACKED_FEATURES, ...opts });
  const ram = new FlatRam(RAM_BASE, opts.ram ?? 1 << 20);
  const trace = new RecordingMemory(ram);
  const drv = new TestDriver(dev, ram, { deviceMem: trace });
  drv.init({ packed: true, queueSizes: opts.queueSize ? [opts.queueSize] : undefined, features: opts.features });
  trace.clear();
  return { dev, drv, ram, trace, q: drv.packedQueues[0]! };
}

function buf(drv: TestDriver, len: number, fill = 0xee): number {
  const a = drv.allocator.alloc(Math.max(1, len), 8);
  drv.mem.fill(a, len, fill);
  return a;
}

const needsReset = (drv: TestDriver) => (drv.status & STATUS_DEVICE_NEEDS_RESET) !== 0;

describe('packed virtqueue', () => {
  it('is used only when VIRTIO_F_RING_PACKED is negotiated', () => {
    const split = new TestDriver(new TestDevice({ features: COMMON_FEATURES | PACKED_FEATURES })).init();
    expect(split.transport.queues[0]!.packed).toBe(false);
    const { drv } = setup();
    expect(drv.features & bit(F_RING_PACKED)).toBeTruthy();
    expect(drv.transport.queues[0]!.packed).toBe(true);
    expect(() => new TestDriver(new TestDevice()).init({ packed: true })).toThrow(/RING_PACKED/);
  });

  it('serves direct and indirect chains and reports the bytes written', async () => {
    const { q } = setup({ behaviour: 'fill' });
    const direct = await q.submit({ readable: [HDR], writable: [100, 28] });
    expect(direct.used.len).toBe(128);
    expect(direct.data.every((b) => b === 0x5a)).toBe(true);
    const ind = await q.submit({ readable: [HDR, HDR], writable: [64], indirect: true });
    expect(ind.used.len).toBe(64);
    // A used descriptor with bytes written carries WRITE; one without does not.
    const none = await q.submit({ readable: [HDR] });
    expect(none.used.len).toBe(0);
  });

  it('runs chains across the wrap with any ring size, many laps over', async () => {
    for (const size of [8, 5, 3]) {
      const { q, dev } = setup({ queueSize: size, behaviour: 'fill' });
      for (let i = 0; i < 60; i++) {
        const r = await q.submit({ readable: [HDR], writable: [i + 1, 1] });
        expect(r.used.len).toBe(i + 2);
      }
      expect(dev.handled.length).toBe(60);
    }
  });

  it('completes out of order: each used descriptor skips the slots of its own chain', async () => {
    const { q, dev, drv } = setup({ deferred: true, queueSize: 16 });
    const subs = [
      q.add({ readable: [HDR], writable: [1] }), // 2 slots
      q.add({ readable: [HDR, HDR], writable: [1] }), // 3 slots
      q.add({ readable: [HDR], writable: [1], indirect: true }), // 1 slot
    ];
    q.kick();
    expect(dev.waitingCount).toBe(3);
    dev.release([2, 0, 1]);
    await drv.transport.idle();
    expect(q.takeUsed().map((u) => u.id)).toEqual([subs[2]!.head, subs[0]!.head, subs[1]!.head]);
    // The device's used slot moved 6 on, as did the driver's: the next requests line up.
    expect(drv.transport.queues[0]!.usedIdx).toBe(6);
    dev.deferred = false;
    for (let i = 0; i < 20; i++) expect((await q.submit({ readable: [HDR], writable: [1] })).used.len).toBe(1);
  });

  it('interrupts as the driver event suppression asks: ENABLE, DISABLE, DESC with EVENT_IDX', async () => {
    const { q, drv } = setup({ queueSize: 8 });
    await q.submit({ readable: [HDR], writable: [1] });
    expect(drv.irq.raised).toBe(1);
    drv.ackInterrupt();
    q.setDriverEvent(RING_EVENT_FLAGS_DISABLE);
    await q.submit({ readable: [HDR], writable: [1] });
    expect(drv.irq.raised).toBe(1);
    // DESC: interrupt once the used slot passes slot 7 of this lap (two more 2-slot chains).
    q.setDriverEvent(RING_EVENT_FLAGS_DESC, 7, q.usedWrap);
    await q.submit({ readable: [HDR], writable: [1] }); // slots 4-5
    expect(drv.irq.raised).toBe(1);
    await q.submit({ readable: [HDR], writable: [1] }); // slots 6-7
    expect(drv.irq.raised).toBe(2);
  });

  it('interrupts when the event offset lies in the lap before a wrap the batch crossed', async () => {
    const { q, drv, dev } = setup({ queueSize: 8, deferred: true });
    for (let i = 0; i < 3; i++) await (async () => {
      q.add({ readable: [HDR], writable: [1] });
      q.kick();
      dev.release();
      await drv.transport.idle();
      q.takeUsed();
    })();
    drv.ackInterrupt();
    const before = drv.irq.raised;
    // Used slot is 6 of lap 1; ask for slot 7 of lap 1, then complete two chains (slots 6-7, 0-1).
    q.setDriverEvent(RING_EVENT_FLAGS_DESC, 7, q.usedWrap);
    q.add({ readable: [HDR], writable: [1] });
    q.add({ readable: [HDR], writable: [1] });
    q.kick();
    dev.release();
    await drv.transport.idle();
    expect(drv.irq.raised).toBe(before + 1);
  });

  it('a whole lap of completions in one batch still interrupts under DESC', async () => {
    const { q, drv } = setup({ queueSize: 4 });
    q.setDriverEvent(RING_EVENT_FLAGS_DESC, 3, 1);
    await q.submit({ readable: [HDR] }); // 1 slot; signalled state now valid
    drv.ackInterrupt();
    const before = drv.irq.raised;
    q.setDriverEvent(RING_EVENT_FLAGS_DESC, 0, 0); // slot 0 of the next lap
    for (let i = 0; i < 4; i++) q.add({ readable: [HDR] });
    q.kick(); // slots 1,2,3 then 0: the lap wrapped onto slot 0
    expect(drv.irq.raised).toBe(before + 1);
  });

  it('with EVENT_IDX, the device asks to be kicked at the slot it will read next', async () => {
    const { q } = setup({ queueSize: 8 });
    await q.submit({ readable: [HDR], writable: [1] });
    expect(q.deviceEventState).toEqual({ off: 2, wrap: 1, flags: RING_EVENT_FLAGS_DESC });
    const { q: q2 } = setup({ queueSize: 8, features: COMMON_FEATURES & ~bit(F_EVENT_IDX) | PACKED_FEATURES });
    await q2.submit({ readable: [HDR], writable: [1] });
    expect(q2.deviceEventState.flags).toBe(0); // ENABLE: kick every time
  });

  it('drops late completions after a reset, even though the queue objects were replaced', async () => {
    const { q, dev, drv } = setup({ deferred: true });
    const sub = q.add({ readable: [HDR], writable: [1] });
    q.kick();
    drv.write(MMIO.Status, 0);
    dev.release();
    await drv.transport.idle();
    drv.init({ packed: true });
    expect(q.takeUsed()).toEqual([]);
    expect(drv.mem.readU8(sub.writable[0]!.addr)).toBe(0xee);
    dev.deferred = false;
    expect((await drv.packedQueues[0]!.submit({ readable: [HDR], writable: [1] })).used.len).toBe(1);
  });
});

describe('hostile 50: packed descriptors the driver lies about', () => {
  it('a descriptor whose AVAIL/USED bits disagree with the wrap counter is not available', () => {
    const { q, dev, drv } = setup({ queueSize: 8 });
    const a = buf(drv, 16);
    for (const flags of [DESC_F_AVAIL | DESC_F_USED, 0, DESC_F_USED]) {
      q.writeDesc(0, { addr: a, len: 16, id: 0, flags });
      q.kick();
    }
    expect(dev.handled.length).toBe(0);
    expect(needsReset(drv)).toBe(false);
    q.writeDesc(0, { addr: a, len: 16, id: 0, flags: DESC_F_AVAIL });
    q.kick();
    expect(dev.handled.length).toBe(1);
    // Slot 1 written with the bits of lap 1 again after the device wrapped? Not here: lap 1 still.
    // On the next lap the device expects AVAIL=0/USED=1; last lap's bits are not new buffers.
  });

  it('descriptors left over from the previous lap are not taken again', async () => {
    const { q, dev } = setup({ queueSize: 4 });
    for (let i = 0; i < 4; i++) await q.submit({ readable: [HDR] });
    expect(dev.handled.length).toBe(4);
    // The ring holds used descriptors of lap 1 (AVAIL=USED=1); the device now expects lap 0.
    q.kick();
    q.kick();
    expect(dev.handled.length).toBe(4);
  });

  it('a chain longer than the ring marks the device broken, without spinning', () => {
    const { q, drv, dev } = setup({ queueSize: 8 });
    const a = buf(drv, 16);
    // Every slot available and chained to the next: no end within the ring.
    for (let i = 0; i < 8; i++) q.writeDesc(i, { addr: a, len: 16, id: 0, flags: DESC_F_AVAIL | 1 });
    q.kick();
    expect(needsReset(drv)).toBe(true);
    expect(drv.transport.needsResetReason).toMatch(/longer than the ring/);
    expect(dev.handled.length).toBe(0);
  });

  it('a chain of exactly the ring size is fine', async () => {
    const { q, drv } = setup({ queueSize: 8, behaviour: 'fill' });
    const descs = Array.from({ length: 8 }, () => ({ addr: buf(drv, 4), len: 4, id: 3, flags: DESC_F_WRITE }));
    q.publishRaw(descs);
    q.kick();
    await drv.transport.idle();
    expect(q.readDesc(0)).toMatchObject({ id: 3, len: 32 });
    expect(needsReset(drv)).toBe(false);
  });

  it('a buffer id at or above the ring size marks the device broken', () => {
    const { q, drv } = setup({ queueSize: 8 });
    q.publishRaw([{ addr: buf(drv, 16), len: 16, id: 8, flags: 0 }]);
    q.kick();
    expect(needsReset(drv)).toBe(true);
    expect(drv.transport.needsResetReason).toMatch(/buffer id 8/);
  });

  it('a chain that runs into a descriptor the driver has not made available marks it broken', () => {
    const { q, drv, dev } = setup({ queueSize: 8 });
    const a = buf(drv, 16);
    q.writeDesc(1, { addr: a, len: 16, id: 0, flags: 0 }); // not available
    q.writeDesc(0, { addr: a, len: 16, id: 0, flags: DESC_F_AVAIL | 1 }); // NEXT into slot 1
    q.kick();
    expect(needsReset(drv)).toBe(true);
    expect(dev.handled.length).toBe(0);
  });

  it('a chain refused for its buffers is given back with length 0 and the ring goes on', async () => {
    const { q, drv, dev, trace } = setup({ queueSize: 8 });
    const end = RAM_BASE + drv.mem.size;
    const bad: Array<[string, Array<{ addr: number; len: number; id: number; flags: number }>]> = [
      ['outside RAM', [{ addr: end - 8, len: 16, id: 1, flags: 0 }]],
      ['wraps 2^64', [{ addr: 2 ** 64 - 8, len: 16, id: 1, flags: 0 }]],
      ['readable after writable', [
        { addr: buf(drv, 4), len: 4, id: 1, flags: DESC_F_WRITE },
        { addr: buf(drv, 4), len: 4, id: 1, flags: 0 },
      ]],
      ['overflows u32', [
        { addr: RAM_BASE, len: 0xffff_fff0, id: 1, flags: DESC_F_WRITE },
        { addr: RAM_BASE, len: 0x20, id: 1, flags: DESC_F_WRITE },
      ]],
    ];
    for (const [what, descs] of bad) {
      const before = q.nextUsed;
      q.publishRaw(descs);
      trace.clear();
      q.kick();
      expect(q.isUsed(before), what).toBe(true);
      expect(q.readDesc(before)).toMatchObject({ id: 1, len: 0 });
      // Nothing but the ring (the used descriptor) and the device event area was written.
      const ok = (w: { addr: number }) => (w.addr >= q.ring && w.addr < q.ring + 16 * 8) || w.addr === q.deviceEvent || w.addr === q.deviceEvent + 2;
      expect(trace.writes().every(ok), what).toBe(true);
      q.takeUsed();
    }
    expect(dev.handled.length).toBe(0);
    expect(needsReset(drv)).toBe(false);
    // A buffer that ends exactly at the last byte of RAM is valid.
    q.publishRaw([{ addr: end - 16, len: 16, id: 2, flags: 0 }]);
    q.kick();
    expect(dev.handled.length).toBe(1);
  });
});

describe('hostile 50 (indirect): packed indirect tables', () => {
  function indirect(drv: TestDriver, q: PackedDriverQueue, entries: Array<{ len: number; flags: number }>, len?: number, tableAt?: number) {
    const table = tableAt ?? drv.allocator.alloc(16 * Math.max(1, entries.length), 16);
    entries.forEach((e, i) => q.writeDesc(i, { addr: buf(drv, e.len), len: e.len, id: 0, flags: e.flags }, table));
    const before = q.nextUsed;
    q.publishRaw([{ addr: table, len: len ?? 16 * entries.length, id: 5, flags: DESC_F_INDIRECT }]);
    q.kick();
    return before;
  }

  it('refuses nesting, INDIRECT with NEXT, INDIRECT not negotiated, bad lengths and tables outside RAM', () => {
    const { q, drv, dev } = setup({ queueSize: 8 });
    const cases: Array<() => number> = [
      () => indirect(drv, q, [{ len: 16, flags: DESC_F_INDIRECT }]),
      () => indirect(drv, q, [{ len: 16, flags: 0 }], 0),
      () => indirect(drv, q, [{ len: 16, flags: 0 }], 24),
      () => indirect(drv, q, [{ len: 16, flags: 0 }], 16 * 9), // more entries than the ring
      () => indirect(drv, q, [], 16, RAM_BASE + drv.mem.size - 8),
      () => indirect(drv, q, [{ len: 4, flags: DESC_F_WRITE }, { len: 4, flags: 0 }]),
      () => {
        const before = q.nextUsed;
        q.publishRaw([
          { addr: buf(drv, 16), len: 16, id: 5, flags: 0 },
          { addr: buf(drv, 16), len: 16, id: 5, flags: DESC_F_INDIRECT },
        ]);
        q.kick();
        return before;
      },
    ];
    for (const run of cases) {
      const slot = run();
      expect(q.readDesc(slot)).toMatchObject({ id: 5, len: 0 });
      q.takeUsed();
    }
    expect(dev.handled.length).toBe(0);
    expect(needsReset(drv)).toBe(false);

    const off = setup({ queueSize: 8, features: bit(F_VERSION_1) | bit(F_RING_PACKED) });
    expect(off.drv.features & bit(F_INDIRECT_DESC)).toBe(0n);
    const slot = indirect(off.drv, off.q, [{ len: 16, flags: 0 }]);
    expect(off.q.readDesc(slot)).toMatchObject({ id: 5, len: 0 });
    expect(off.dev.handled.length).toBe(0);
  });

  it('a table of exactly the ring size is fine', async () => {
    const { q, drv, dev } = setup({ queueSize: 8 });
    indirect(drv, q, Array.from({ length: 8 }, (_, i) => ({ len: 16, flags: i === 7 ? DESC_F_WRITE : 0 })));
    await drv.transport.idle();
    expect(dev.handled.length).toBe(1);
  });
});

describe('hostile 51: packed event suppression structures', () => {
  it('outside RAM or misaligned: the queue does not go ready', () => {
    const end = RAM_BASE + (1 << 20);
    for (const [reg, addr] of [
      [MMIO.QueueDriverLow, RAM_BASE + 2],
      [MMIO.QueueDeviceLow, RAM_BASE + 6],
      [MMIO.QueueDriverLow, end - 2],
      [MMIO.QueueDeviceLow, end],
      [MMIO.QueueDescLow, RAM_BASE + 8],
    ] as const) {
      const drv = new TestDriver(new TestDevice({ features: COMMON_FEATURES | PACKED_FEATURES }), new FlatRam(RAM_BASE, 1 << 20));
      expect(drv.negotiate(COMMON_FEATURES | PACKED_FEATURES)).toBe(true);
      drv.write(MMIO.QueueSel, 0);
      drv.write(MMIO.QueueNum, 8);
      drv.writeAddress(MMIO.QueueDescLow, RAM_BASE);
      drv.writeAddress(MMIO.QueueDriverLow, RAM_BASE + 0x1000);
      drv.writeAddress(MMIO.QueueDeviceLow, RAM_BASE + 0x1004);
      drv.writeAddress(reg, addr);
      drv.write(MMIO.QueueReady, 1);
      expect(drv.read(MMIO.QueueReady)).toBe(0);
    }
  });

  it('a packed queue size need not be a power of two, but must fit QueueNumMax', () => {
    const q = new PackedQueue(256);
    expect(q.validSize(100)).toBe(true);
    expect(q.validSize(0)).toBe(false);
    expect(q.validSize(257)).toBe(false);
  });

  it('a driver event offset beyond the ring is ignored: the device interrupts', async () => {
    const { q, drv } = setup({ queueSize: 8 });
    await q.submit({ readable: [HDR] });
    drv.ackInterrupt();
    const before = drv.irq.raised;
    q.setDriverEvent(RING_EVENT_FLAGS_DESC, 0x7000, q.usedWrap);
    await q.submit({ readable: [HDR] });
    expect(drv.irq.raised).toBe(before + 1);
    // Reserved flags value 3 means nothing either: interrupt.
    drv.ackInterrupt();
    q.setDriverEvent(3);
    await q.submit({ readable: [HDR] });
    expect(drv.irq.raised).toBe(before + 2);
  });
});

describe('hostile 20/49 with packed rings', () => {
  it('the reset drain holds for packed queues too', async () => {
    const { q, dev, drv } = setup({ deferred: true });
    q.add({ readable: [HDR], writable: [8] });
    q.kick();
    drv.write(MMIO.Status, 0);
    expect(drv.status).not.toBe(0);
    dev.release();
    await drv.transport.idle();
    expect(drv.status).toBe(0);
    expect(DESC_F_USED).toBe(0x8000);
  });
});
