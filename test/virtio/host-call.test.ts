/**
 * The host-call transport as tombl/linux's virtio,wasm driver drives it: every call made from a
 * wasm module over a WebAssembly.Memory (test/support/wasm-kernel.ts).
 */
import { describe, expect, it } from 'vitest';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { FlatRam } from '../../src/memory/flat-ram.js';
import { bit, F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1 } from '../../src/virtio/constants.js';
import { HostCallTransport, legacyVringLayout } from '../../src/virtio/host-call.js';
import { read } from '../../src/testing/index.js';
import { TestDevice } from '../support/test-device.js';
import { Kernel, KERNEL_PAGE_SIZE, vringSize } from '../support/wasm-kernel.js';

const HDR = new Uint8Array(16).fill(7);

describe('host-call transport', () => {
  it('lays rings out as Linux vring_init() does', () => {
    for (const [size, align] of [
      [256, 0x10000],
      [1, 4096],
      [8, 4096],
      [1024, 4096],
      [128, 4],
    ] as const) {
      const l = legacyVringLayout(0x30000, size, align);
      expect(l.avail).toBe(0x30000 + 16 * size);
      expect(l.used % align).toBe(0);
      expect(l.used).toBeGreaterThanOrEqual(l.avail + 6 + 2 * size);
      expect(l.used - align).toBeLessThan(l.avail + 6 + 2 * size);
      expect(l.end - l.desc).toBe(vringSize(size, align));
    }
  });

  it('serves a ring set up from wasm and raises that ring\'s own interrupt', async () => {
    const dev = new TestDevice();
    const k = new Kernel([dev]);
    const d = k.drivers[0]!.init();
    const t = k.host.transports[0]!;
    expect(t.active).toBe(true);
    expect(d.offered).toBe(t.offeredFeatures);
    expect(t.negotiatedFeatures).toBe(bit(F_VERSION_1) | bit(F_INDIRECT_DESC) | bit(F_EVENT_IDX));
    const q = d.queues[0]!;
    expect(t.queues[0]!.descAddr).toBe(q.desc);
    expect(t.queues[0]!.driverAddr).toBe(q.avail);
    expect(t.queues[0]!.deviceAddr).toBe(q.used);
    expect(q.used % KERNEL_PAGE_SIZE).toBe(0);
    for (let i = 0; i < 3; i++) {
      q.setUsedEvent(q.lastUsed); // virtqueue_enable_cb() with EVENT_IDX: interrupt for the next one
      const r = await q.submit({ readable: [HDR], writable: [1] });
      expect(r.used.len).toBe(1);
    }
    expect(dev.headers).toEqual([HDR, HDR, HDR]);
    const irq = d.irqOf.get(0)!;
    expect(t.queueIrq(0)).toBe(irq);
    expect(d.interruptsOf(irq)).toBe(3);
    expect(d.interruptsOf(d.configIrq)).toBe(0);
    expect(k.refused).toEqual([]);
  });

  it('publishes config into the driver\'s buffer, and again with the config interrupt on a change', () => {
    const dev = new TestDevice();
    dev.configSpace.set([1, 2, 3, 4]);
    const k = new Kernel([dev]);
    const d = k.drivers[0]!.init();
    expect(d.config(0, 4)).toBe(0x04030201n);
    dev.configSpace[1] = 0x77;
    (dev as unknown as { ctx: { signalConfig(): void } }).ctx.signalConfig();
    expect(d.config(0, 4)).toBe(0x04037701n);
    expect(d.interruptsOf(d.configIrq)).toBe(1);
  });

  it('holds a config change that comes before setup and raises it at setup', () => {
    const dev = new TestDevice();
    const raised: number[] = [];
    const ram = new FlatRam(0, 1 << 20);
    const t = new HostCallTransport(dev, ram, { raiseIrq: (irq) => raised.push(irq) });
    expect(t.setFeatures(t.offeredFeatures)).toBe(true);
    expect(t.enableVring(0, 8, 0x1000, 5)).toBe(true);
    (dev as unknown as { ctx: { signalConfig(): void } }).ctx.signalConfig();
    expect(raised).toEqual([]);
    dev.configSpace[0] = 9;
    expect(t.setup(3, 0x8000, 16)).toBe(true);
    expect(raised).toEqual([3]);
    expect(ram.readU8(0x8000)).toBe(9);
  });

  it('passes config writes to the device; writes to read-only bytes snap back', async () => {
    const blk = new VirtioBlk(new MemoryDisk(1 << 20));
    const k = new Kernel([blk]);
    const d = k.drivers[0]!.init();
    const WRITEBACK = 32; // struct virtio_blk_config.wce
    expect(d.config(0, 8)).toBe(BigInt((1 << 20) / 512)); // capacity
    expect(blk.writeback).toBe(true);
    d.writeConfig(WRITEBACK, [0]);
    expect(blk.writeback).toBe(false);
    expect(d.config(WRITEBACK, 1)).toBe(0n);
    d.writeConfig(0, [0xff, 0xff]); // capacity is read-only
    expect(d.config(0, 8)).toBe(BigInt((1 << 20) / 512));
    expect((await read(d.queues[0]!, 0, 512)).status).toBe(0);
  });

  it('a disabled ring drops its in-flight requests, and comes back at full depth', async () => {
    const dev = new TestDevice({ deferred: true, queues: [8] });
    const k = new Kernel([dev]);
    const d = k.drivers[0]!.init({ queueSize: 8 });
    const q = d.queues[0]!;
    const subs = Array.from({ length: 8 }, () => q.add({ readable: [HDR], writable: [1], indirect: true }));
    q.kick();
    expect(dev.waitingCount).toBe(8);
    d.disableQueue(0);
    expect(k.host.transports[0]!.queues[0]!.ready).toBe(false);
    dev.release();
    await d.idle();
    expect(q.usedIdx).toBe(0);
    for (const s of subs) expect(k.mem.readU8(s.writable[0]!.addr)).toBe(0xee);
    // The same ring again: all 8 requests may be in flight at once.
    const q2 = d.setupQueue(0, 8);
    for (let i = 0; i < 8; i++) q2.add({ readable: [HDR], writable: [1], indirect: true });
    q2.kick();
    expect(dev.waitingCount).toBe(8);
    dev.release();
    await d.idle();
    expect(q2.takeUsed().length).toBe(8);
  });

  it('reset drops features and rings but keeps setup; a fresh probe works', async () => {
    const dev = new TestDevice();
    dev.configSpace[0] = 5;
    const k = new Kernel([dev]);
    const d = k.drivers[0]!.init();
    const t = k.host.transports[0]!;
    d.reset();
    expect(t.active).toBe(false);
    expect(t.negotiatedFeatures).toBe(0n);
    expect(t.queues[0]!.ready).toBe(false);
    expect(dev.resets).toBeGreaterThanOrEqual(1);
    d.negotiate();
    d.setupQueue(0);
    expect((await d.queues[0]!.submit({ readable: [HDR], writable: [1] })).used.len).toBe(1);
    dev.configSpace[0] = 6;
    (dev as unknown as { ctx: { signalConfig(): void } }).ctx.signalConfig();
    expect(d.config(0, 1)).toBe(6n);
  });

  it('a call naming an unknown host id is refused, not thrown into the kernel', () => {
    const k = new Kernel([new TestDevice()]);
    expect(() => k.module.notify(7, 0)).not.toThrow();
    expect(() => k.module.set_features(-1, -1n)).not.toThrow();
    expect(k.refused.map((r) => r.slice(0, 2))).toEqual([
      [7, 'notify'],
      [0xffff_ffff, 'set_features'],
    ]);
  });

  it('refuses a bad ring alignment or a missing raiseIrq with a typed error', () => {
    const ram = new FlatRam(0, 4096);
    for (const ringAlign of [0, 3, 2, 4096 + 1, 2 ** 31]) {
      expect(() => new HostCallTransport(new TestDevice(), ram, { raiseIrq: () => {}, ringAlign })).toThrow(RangeError);
    }
    expect(() => new HostCallTransport(new TestDevice(), ram, {} as never)).toThrow(TypeError);
  });
});
