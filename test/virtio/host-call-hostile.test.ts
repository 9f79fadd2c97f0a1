/**
 * The hostile-guest rules for the transport and the split queue (hostile-guest.md lines 1–21),
 * through the host-call transport: a kernel that is wasm, calling the virtio,wasm imports from
 * a wasm module, with its rings in its WebAssembly.Memory. Where a rule names an MMIO register,
 * the host call that stands for it is tested.
 */
import { describe, expect, it } from 'vitest';
import { bit, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1 } from '../../src/virtio/constants.js';
import type { DriverQueue } from '../../src/testing/index.js';
import { TestDevice, type TestDeviceOptions } from '../support/test-device.js';
import { Kernel, KERNEL_PAGE_SIZE, vringSize, type KernelDriver } from '../support/wasm-kernel.js';

const HDR = new Uint8Array(16).fill(7);
const PAGES = 64; // 4 MiB of kernel memory
const END = PAGES * KERNEL_PAGE_SIZE;

function setup(opts: TestDeviceOptions & { pages?: number; queueSize?: number; features?: bigint } = {}) {
  const dev = new TestDevice(opts);
  const k = new Kernel([dev], { pages: opts.pages ?? PAGES, trace: true });
  const d = k.drivers[0]!.init({ queueSize: opts.queueSize, features: opts.features });
  k.trace!.clear();
  return { dev, k, d, t: k.host.transports[0]!, trace: k.trace!, q: d.queues[0]! };
}

/** A buffer in kernel memory, filled with `fill`. */
function buf(k: Kernel, len: number, fill = 0xee): number {
  const addr = k.allocator.alloc(Math.max(len, 1), 8);
  k.mem.fill(addr, len, fill);
  return addr;
}

async function run(d: KernelDriver, q: DriverQueue, head: number) {
  q.publish(head);
  q.kick();
  await d.idle();
  return q.takeUsed();
}

function rawChain(q: DriverQueue, descs: Array<{ addr: number; len: number; flags: number; next?: number }>, first = 0, table = q.desc) {
  descs.forEach((x, i) => {
    const last = i === descs.length - 1;
    q.writeDesc(first + i, { addr: x.addr, len: x.len, flags: x.flags | (last ? 0 : DESC_F_NEXT), next: x.next ?? (last ? 0 : first + i + 1) }, table);
  });
}

function expectRefused(used: Array<{ id: number; len: number }>, dev: TestDevice, head = 0) {
  expect(used).toEqual([{ id: head, len: 0 }]);
  expect(dev.handled).toEqual([]);
}

/** A fresh kernel whose device is past set_features, with no ring yet. */
function negotiated(opts: TestDeviceOptions = {}) {
  const dev = new TestDevice(opts);
  const k = new Kernel([dev], { pages: PAGES });
  const d = k.drivers[0]!;
  d.reset();
  d.negotiate();
  return { dev, k, d, t: k.host.transports[0]! };
}

describe('hostile guest through the host-call transport (hostile-guest.md lines 1–21)', () => {
  it('1: desc.next >= queue size refuses the chain', async () => {
    const { dev, k, d, q } = setup({ queueSize: 8 });
    q.writeDesc(0, { addr: buf(k, 16), len: 16, flags: DESC_F_NEXT, next: 8 });
    expectRefused(await run(d, q, 0), dev);
  });

  it('2: a loop in a chain, or in an indirect table, is refused after a bounded walk', async () => {
    const { dev, k, d, q, trace } = setup({ queueSize: 8 });
    const b = buf(k, 16);
    q.writeDesc(0, { addr: b, len: 16, flags: DESC_F_NEXT, next: 1 });
    q.writeDesc(1, { addr: b, len: 16, flags: DESC_F_NEXT, next: 0 });
    expectRefused(await run(d, q, 0), dev);
    const descReads = trace.log.filter((a) => a.kind === 'read' && a.addr >= q.desc && a.addr < q.desc + 16 * 8);
    expect(descReads.length).toBeLessThanOrEqual(8 * 5);
    const table = k.allocator.alloc(32, 16);
    q.writeDesc(0, { addr: b, len: 16, flags: DESC_F_NEXT, next: 1 }, table);
    q.writeDesc(1, { addr: b, len: 16, flags: DESC_F_NEXT, next: 0 }, table);
    q.writeDesc(2, { addr: table, len: 32, flags: DESC_F_INDIRECT, next: 0 });
    expectRefused(await run(d, q, 2), dev, 2);
  });

  it('3: a chain of exactly queue-size descriptors is served; an indirect table of one more is refused', async () => {
    const { dev, k, d, q } = setup({ queueSize: 8 });
    const descs = Array.from({ length: 7 }, () => ({ addr: buf(k, 3, 7), len: 3, flags: 0 }));
    const status = buf(k, 1);
    rawChain(q, [...descs, { addr: status, len: 1, flags: DESC_F_WRITE }]);
    expect(await run(d, q, 0)).toEqual([{ id: 0, len: 1 }]);
    expect(dev.headers[0]).toEqual(HDR);
    const table = k.allocator.alloc(16 * 9, 16);
    rawChain(q, [...Array.from({ length: 8 }, () => ({ addr: buf(k, 3, 7), len: 3, flags: 0 })), { addr: buf(k, 1), len: 1, flags: DESC_F_WRITE }], 0, table);
    q.writeDesc(1, { addr: table, len: 16 * 9, flags: DESC_F_INDIRECT, next: 0 });
    expect(await run(d, q, 1)).toEqual([{ id: 1, len: 0 }]);
    expect(dev.handled.length).toBe(1);
  });

  it('4: avail.idx more than queue size ahead: DEVICE_NEEDS_RESET, the config interrupt, no spinning', async () => {
    const { dev, k, d, q, t } = setup({ queueSize: 8 });
    q.setAvailIdx(9);
    q.kick();
    await d.idle();
    expect(t.broken).toBe(true);
    expect(k.needsReset.length).toBe(1);
    expect(k.needsReset[0]![1]).toMatch(/9 entries ahead/);
    expect(d.interruptsOf(d.configIrq)).toBe(1);
    expect(q.usedIdx).toBe(0);
    expect(dev.handled).toEqual([]);
    q.kick(); // ignored until reset
    expect(dev.handled).toEqual([]);
    expect(k.refused.at(-1)).toEqual([0, 'notify', 'queue 0 is not live']);
    // A ring can't be set up either until the driver resets the device.
    expect(t.enableVring(0, 8, 0x10_0000, 9)).toBe(false);
    d.init({ queueSize: 8 });
    expect(t.broken).toBe(false);
    expect((await d.queues[0]!.submit({ readable: [HDR], writable: [1] })).used.len).toBe(1);
  });

  it('5: an avail ring entry >= queue size sets DEVICE_NEEDS_RESET', () => {
    const { dev, q, t } = setup({ queueSize: 8 });
    q.publish(8);
    q.kick();
    expect(t.broken).toBe(true);
    expect(dev.handled).toEqual([]);
    expect(q.usedIdx).toBe(0);
  });

  it('6: u16 indices wrap 0xFFFF -> 0 for both rings', () => {
    const { dev, k, q, t, trace } = setup({ queueSize: 4 });
    trace.recording = false;
    rawChain(q, [{ addr: buf(k, 16, 7), len: 16, flags: 0 }, { addr: buf(k, 1), len: 1, flags: DESC_F_WRITE }]);
    const total = 0x10000 + 10;
    let completed = 0;
    while (completed < total) {
      const batch = Math.min(4, total - completed);
      for (let i = 0; i < batch; i++) q.publish(0); // wasm stores
      q.kick();
      const used = q.takeUsed();
      expect(used.length).toBe(batch);
      completed += batch;
    }
    expect(q.usedIdx).toBe(total & 0xffff);
    expect(k.mem.readU16(q.avail + 2)).toBe(total & 0xffff);
    expect(dev.handled.length).toBe(total);
    expect(t.broken).toBe(false);
  });

  it('7: INDIRECT inside an indirect table, with NEXT, or without the feature is refused', async () => {
    {
      const { dev, k, d, q } = setup();
      const inner = k.allocator.alloc(16, 16);
      rawChain(q, [{ addr: buf(k, 17, 7), len: 17, flags: 0 }], 0, inner);
      const outer = k.allocator.alloc(16, 16);
      q.writeDesc(0, { addr: inner, len: 16, flags: DESC_F_INDIRECT, next: 0 }, outer);
      q.writeDesc(0, { addr: outer, len: 16, flags: DESC_F_INDIRECT, next: 0 });
      expectRefused(await run(d, q, 0), dev);
      const table = k.allocator.alloc(32, 16);
      rawChain(q, [{ addr: buf(k, 16, 7), len: 16, flags: 0 }, { addr: buf(k, 1), len: 1, flags: DESC_F_WRITE }], 0, table);
      q.writeDesc(1, { addr: table, len: 32, flags: DESC_F_INDIRECT | DESC_F_NEXT, next: 2 });
      q.writeDesc(2, { addr: buf(k, 1), len: 1, flags: DESC_F_WRITE, next: 0 });
      expectRefused(await run(d, q, 1), dev, 1);
    }
    const { dev, k, d, q, t } = setup({ features: bit(F_VERSION_1) | bit(F_EVENT_IDX) });
    expect(t.negotiatedFeatures & bit(F_INDIRECT_DESC)).toBe(0n);
    const table = k.allocator.alloc(32, 16);
    rawChain(q, [{ addr: buf(k, 16, 7), len: 16, flags: 0 }, { addr: buf(k, 1), len: 1, flags: DESC_F_WRITE }], 0, table);
    q.writeDesc(0, { addr: table, len: 32, flags: DESC_F_INDIRECT, next: 0 });
    expectRefused(await run(d, q, 0), dev);
  });

  it('8: indirect tables of length 0, not a multiple of 16, or past the end of memory are refused', async () => {
    for (const bad of [
      (t: number) => ({ addr: t, len: 0 }),
      (t: number) => ({ addr: t, len: 24 }),
      () => ({ addr: END - 16, len: 32 }),
      () => ({ addr: 2 ** 32 - 16, len: 32 }),
    ]) {
      const { dev, k, d, q } = setup();
      const table = k.allocator.alloc(32, 16);
      rawChain(q, [{ addr: buf(k, 16, 7), len: 16, flags: 0 }, { addr: buf(k, 1), len: 1, flags: DESC_F_WRITE }], 0, table);
      q.writeDesc(0, { ...bad(table), flags: DESC_F_INDIRECT, next: 0 });
      expectRefused(await run(d, q, 0), dev);
    }
  });

  it('9: a buffer leaving memory or wrapping past 2^64 refuses the chain before any I/O', async () => {
    for (const bad of [
      { addr: END - 4, len: 5 },
      { addr: END, len: 1 },
      { addr: 2 ** 32 - 1, len: 2 },
      { addr: 2 ** 64 - 4096, len: 8192 }, // wraps to 4096, which is inside memory
      { addr: 2 ** 63, len: 1 },
    ]) {
      const { dev, k, d, q, trace } = setup();
      const status = buf(k, 4);
      rawChain(q, [{ addr: buf(k, 16, 7), len: 16, flags: 0 }, { addr: status, len: 4, flags: DESC_F_WRITE }, { ...bad, flags: DESC_F_WRITE }]);
      expectRefused(await run(d, q, 0), dev);
      for (const w of trace.writes()) expect(w.addr >= q.used && w.addr < q.used + 6 + 8 * q.size).toBe(true);
      expect(k.mem.readU32(status)).toBe(0xeeeeeeee);
    }
  });

  it('10: a buffer ending exactly at the last byte of memory is valid, also after the memory grew', async () => {
    const { k, d, q } = setup();
    rawChain(q, [{ addr: buf(k, 16, 7), len: 16, flags: 0 }, { addr: END - 1, len: 1, flags: DESC_F_WRITE }]);
    k.mem.writeU8(END - 1, 0xee);
    expect(await run(d, q, 0)).toEqual([{ id: 0, len: 1 }]);
    expect(k.mem.readU8(END - 1)).toBe(0);
    k.memory.grow(1);
    const end = END + KERNEL_PAGE_SIZE;
    rawChain(q, [{ addr: buf(k, 16, 7), len: 16, flags: 0 }, { addr: end - 1, len: 1, flags: DESC_F_WRITE }], 2);
    new Uint8Array(k.memory.buffer)[end - 1] = 0xee;
    expect(await run(d, q, 2)).toEqual([{ id: 2, len: 1 }]);
    expect(new Uint8Array(k.memory.buffer)[end - 1]).toBe(0);
  });

  it('11: a chain whose total length overflows u32 is refused', async () => {
    const pages = 1024; // 64 MiB
    const { dev, k, d, q } = setup({ pages, queues: [128], queueSize: 128 });
    const table = k.allocator.alloc(16 * 65, 16);
    rawChain(q, Array.from({ length: 65 }, () => ({ addr: 0, len: pages * KERNEL_PAGE_SIZE, flags: DESC_F_WRITE })), 0, table);
    q.writeDesc(0, { addr: table, len: 16 * 65, flags: DESC_F_INDIRECT, next: 0 });
    expectRefused(await run(d, q, 0), dev);
  });

  it('12: a readable descriptor after a writable one is refused', async () => {
    const { dev, k, d, q } = setup();
    rawChain(q, [
      { addr: buf(k, 8, 7), len: 8, flags: 0 },
      { addr: buf(k, 1), len: 1, flags: DESC_F_WRITE },
      { addr: buf(k, 8, 7), len: 8, flags: 0 },
    ]);
    expectRefused(await run(d, q, 0), dev);
  });

  it('13: the device writes only into writable buffers; used.len is written before used.idx', async () => {
    const { k, q, trace } = setup({ behaviour: 'fill' });
    const sub = q.add({ readable: [new Uint8Array(10)], writable: [5, 7, 3], indirect: true });
    q.kick();
    expect(q.takeUsed()).toEqual([{ id: sub.head, len: 15 }]);
    const ranges = [...sub.writable.map((w) => [w.addr, w.addr + w.len]), [q.used, q.used + 6 + 8 * q.size]];
    const writes = trace.writes();
    for (const w of writes) expect(ranges.some(([a, b]) => w.addr >= a! && w.addr + w.len <= b!)).toBe(true);
    const lenWrite = writes.findIndex((w) => w.addr === q.used + 4 + 4);
    const idxWrite = writes.findIndex((w) => w.addr === q.used + 2);
    expect(lenWrite).toBeGreaterThanOrEqual(0);
    expect(idxWrite).toBeGreaterThan(lenWrite);
    expect([...q.readWritable(sub)].every((b) => b === 0x5a)).toBe(true);
    expect(k.refused).toEqual([]);
  });

  it('14: a ring misaligned, running past the end of memory, or at an address above 2^31 does not go ready', () => {
    const ringBytes = vringSize(256, KERNEL_PAGE_SIZE);
    for (const [desc, why] of [
      [0x2_0008, /descriptor table misaligned/],
      [END - 16 * 256, /available ring .* outside RAM/], // the table fits, the ring after it does not
      [END - KERNEL_PAGE_SIZE, /used ring .* outside RAM/], // the used ring would start at the end
      [0x8000_0000, /descriptor table .* outside RAM/], // an i32 argument with the sign bit set
      [0xffff_fff0, /outside RAM/],
    ] as const) {
      const { k, d, t } = negotiated();
      d.enableRaw(0, 256, desc);
      expect(t.queues[0]!.ready).toBe(false);
      expect(t.active).toBe(false);
      expect(k.refused.at(-1)?.[1]).toBe('enable_vring');
      expect(k.refused.at(-1)?.[2]).toMatch(why);
    }
    // The last place a ring fits is fine: its used ring in the last page.
    const { d, t } = negotiated();
    d.enableRaw(0, 256, END - 2 * KERNEL_PAGE_SIZE);
    expect(t.queues[0]!.ready).toBe(true);
    expect(t.queues[0]!.deviceAddr).toBe(END - KERNEL_PAGE_SIZE);
  });

  it('15: a ring size of 0, above the maximum or not a power of two is refused', () => {
    for (const size of [0, 512, 24, 0xffff_ffff, -1]) {
      const { k, d, t } = negotiated({ queues: [256] });
      d.enableRaw(0, size, 0x10_0000);
      expect(t.queues[0]!.ready).toBe(false);
      expect(k.refused.at(-1)?.[2]).toMatch(/queue size/);
    }
  });

  it('16: calls in the wrong phase, for a missing queue, or with a bad buffer are refused without a throw', () => {
    const dev = new TestDevice();
    const k = new Kernel([dev], { pages: PAGES });
    const d = k.drivers[0]!;
    const t = k.host.transports[0]!;
    const m = k.module;
    d.reset();
    // A ring before set_features.
    m.enable_vring(0, 0, 256, 0x10_0000, 9);
    expect(t.queues[0]!.ready).toBe(false);
    // Config writes before set_features.
    m.config_written(0);
    d.negotiate();
    // Features twice without a reset.
    m.set_features(0, 0n);
    expect(t.negotiatedFeatures).toBe(d.features);
    // A queue that doesn't exist.
    for (const vq of [1, 7, -1]) m.enable_vring(0, vq, 8, 0x10_0000, 9);
    expect(t.active).toBe(false);
    d.setupQueue(0);
    // The same ring twice without disabling it.
    const before = t.queues[0]!.descAddr;
    m.enable_vring(0, 0, 8, 0x30_0000, 9);
    expect(t.queues[0]!.descAddr).toBe(before);
    expect(t.queues[0]!.size).toBe(256);
    // A config buffer outside memory; a disable of a missing ring.
    m.setup(0, 3, END - 8, 0x100);
    m.setup(0, 3, -16, 0x100);
    m.disable_vring(0, 9);
    expect(k.refused.map(([, call, why]) => `${call}: ${why}`)).toEqual([
      'enable_vring: before set_features',
      'config_written: before set_features',
      'set_features: features were already set; the device must be reset first',
      'enable_vring: no queue 1 (the device has 1)',
      'enable_vring: no queue 7 (the device has 1)',
      'enable_vring: no queue 4294967295 (the device has 1)',
      'enable_vring: queue 0 is already enabled',
      `setup: config buffer of 256 bytes at 0x${(END - 8).toString(16)} is outside RAM`,
      'setup: config buffer of 256 bytes at 0xfffffff0 is outside RAM',
      'disable_vring: no queue 9',
    ]);
    expect(k.deviceErrors).toEqual([]);
    // The old config buffer is still the one in use.
    dev.configSpace[0] = 0x42;
    (dev as unknown as { ctx: { signalConfig(): void } }).ctx.signalConfig();
    expect(d.config(0, 1)).toBe(0x42n);
  });

  it('16: a config buffer longer than the config window is clamped, not allocated', () => {
    const dev = new TestDevice();
    const k = new Kernel([dev], { pages: PAGES });
    const addr = k.allocator.alloc(0x1000, 16);
    k.mem.fill(addr, 0x1000, 0xee);
    k.module.setup(0, 3, addr, -1); // an i32 of -1: 4 GiB, more than the whole memory
    expect(k.refused).toEqual([]);
    expect(k.mem.readU8(addr + 0xeff)).toBe(0);
    expect(k.mem.readU8(addr + 0xf00)).toBe(0xee);
  });

  it('17: notify before any ring is enabled, after reset, or for a missing queue does nothing', () => {
    const { dev, k, d, t } = negotiated();
    k.module.notify(0, 0); // no ring yet: not active
    expect(dev.handled).toEqual([]);
    const q = d.setupQueue(0, 8);
    q.add({ readable: [HDR], writable: [1] });
    for (const vq of [1, 7, 0xffff, -1]) k.module.notify(0, vq);
    expect(dev.handled).toEqual([]);
    d.reset();
    expect(t.active).toBe(false);
    q.kick();
    expect(dev.handled).toEqual([]);
    expect(q.usedIdx).toBe(0);
  });

  it('18: descriptors are read once; rewriting the table after the pop changes nothing', async () => {
    const { dev, k, d, q, trace } = setup({ deferred: true, behaviour: 'fill' });
    const sub = q.add({ readable: [HDR], writable: [8] });
    q.kick();
    const descReads = trace.log.filter((a) => a.kind === 'read' && a.addr >= q.desc && a.addr < q.desc + 16 * q.size);
    expect(descReads.length).toBe(2 * 5);
    const elsewhere = buf(k, 8);
    q.writeDesc(sub.descs[1]!, { addr: elsewhere, len: 8, flags: DESC_F_WRITE, next: 0 });
    dev.release();
    await d.idle();
    expect(q.takeUsed()).toEqual([{ id: sub.head, len: 8 }]);
    expect([...q.readWritable(sub)]).toEqual(Array(8).fill(0x5a));
    expect(k.mem.readU32(elsewhere)).toBe(0xeeeeeeee);
  });

  it('19: a device or embedder that throws never throws into the kernel\'s call', async () => {
    const thrower = new (class extends TestDevice {
      protected override handle(): number {
        throw new Error('device bug');
      }
    })();
    const k1 = new Kernel([thrower], { pages: PAGES });
    const d1 = k1.drivers[0]!.init();
    expect((await d1.queues[0]!.submit({ readable: [HDR], writable: [1] })).used.len).toBe(0);

    const broken = new TestDevice();
    broken.notify = () => {
      throw new Error('notify bug');
    };
    const k2 = new Kernel([broken], { pages: PAGES });
    const d2 = k2.drivers[0]!.init();
    expect(() => d2.queues[0]!.kick()).not.toThrow();
    expect(k2.host.transports[0]!.broken).toBe(true);
    expect(k2.host.transports[0]!.needsResetReason).toMatch(/notify bug/);
    expect(k2.deviceErrors.length).toBe(1);

    const k3 = new Kernel([new TestDevice()], {
      pages: PAGES,
      raiseIrq: () => {
        throw new Error('embedder bug');
      },
    });
    const d3 = k3.drivers[0]!.init();
    expect((await d3.queues[0]!.submit({ readable: [HDR], writable: [1] })).used.len).toBe(1);
    expect(String(k3.deviceErrors[0])).toMatch(/embedder bug/);
  });

  it('20: reset while requests are in flight drops late completions', async () => {
    const { dev, k, d, q } = setup({ deferred: true });
    const sub = q.add({ readable: [HDR], writable: [1] });
    q.kick();
    expect(dev.waitingCount).toBe(1);
    d.init(); // reset and probe again: new rings
    const q2 = d.queues[0]!;
    dev.release();
    await d.idle();
    expect(q.usedIdx).toBe(0);
    expect(q2.usedIdx).toBe(0);
    expect(k.mem.readU8(sub.writable[0]!.addr)).toBe(0xee);
    dev.deferred = false;
    expect((await q2.submit({ readable: [HDR], writable: [1] })).used).toMatchObject({ len: 1 });
  });

  it('21: features are masked to those offered; without VERSION_1 none are accepted', () => {
    const k = new Kernel([new TestDevice()], { pages: PAGES });
    const t = k.host.transports[0]!;
    k.module.set_features(0, -1n); // all 64 bits, as an i64
    expect(t.negotiatedFeatures).toBe(t.offeredFeatures);
    expect(t.offeredFeatures).toBe(bit(F_VERSION_1) | bit(F_INDIRECT_DESC) | bit(F_EVENT_IDX));
    k.module.reset(0);
    k.module.set_features(0, bit(F_INDIRECT_DESC) | bit(F_EVENT_IDX));
    expect(t.negotiatedFeatures).toBe(0n);
    expect(k.refused.at(-1)?.[2]).toMatch(/VERSION_1/);
    k.module.enable_vring(0, 0, 8, 0x10_0000, 9);
    expect(t.active).toBe(false);
  });
});
