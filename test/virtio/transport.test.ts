import { describe, expect, it } from 'vitest';
import {
  bit,
  F_EVENT_IDX,
  F_INDIRECT_DESC,
  F_VERSION_1,
  INT_CONFIG_CHANGE,
  INT_USED_BUFFER,
  MMIO,
  STATUS_ACKNOWLEDGE as ACK,
  STATUS_DRIVER as DRIVER,
  STATUS_DRIVER_OK as DRIVER_OK,
  STATUS_FAILED,
  STATUS_FEATURES_OK as FEATURES_OK,
} from '../../src/virtio/constants.js';
import { TestDriver } from '../../src/testing/index.js';
import { TEST_DEVICE_ID, TestDevice } from '../support/test-device.js';

const HDR = new Uint8Array(16).fill(1);

describe('virtio-mmio transport registers (VIRTIO 1.2, 4.2.2)', () => {
  it('identifies itself as a version 2 device', () => {
    const drv = new TestDriver(new TestDevice({ queues: [128, 64] }));
    expect(drv.read(MMIO.MagicValue)).toBe(0x74726976);
    expect(drv.read(MMIO.Version)).toBe(2);
    expect(drv.read(MMIO.DeviceID)).toBe(TEST_DEVICE_ID);
    expect(drv.read(MMIO.VendorID)).toBe(0x4d565453);
    drv.write(MMIO.QueueSel, 1);
    expect(drv.read(MMIO.QueueNumMax)).toBe(64);
    expect(drv.read(MMIO.SHMLenLow)).toBe(0xffff_ffff);
  });

  it('offers VERSION_1 even when the device forgets it', () => {
    const drv = new TestDriver(new TestDevice({ features: bit(3) }));
    expect(drv.deviceFeatures()).toBe(bit(3) | bit(F_VERSION_1));
  });

  it('walks the status table: ACK, DRIVER, FEATURES_OK, DRIVER_OK, and reset by writing 0', () => {
    const dev = new TestDevice();
    const drv = new TestDriver(dev);
    drv.write(MMIO.Status, ACK);
    drv.write(MMIO.Status, ACK | DRIVER);
    drv.writeFeatures(drv.deviceFeatures());
    drv.write(MMIO.Status, ACK | DRIVER | FEATURES_OK);
    expect(drv.status).toBe(ACK | DRIVER | FEATURES_OK);
    drv.setupQueue(0, 16);
    drv.write(MMIO.Status, ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(drv.status).toBe(ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(dev.activations).toBe(1);
    drv.write(MMIO.Status, ACK | DRIVER | FEATURES_OK | DRIVER_OK); // same value: no second activation
    expect(dev.activations).toBe(1);
    drv.write(MMIO.Status, 0);
    expect(drv.status).toBe(0);
    expect(dev.resets).toBe(1);
    expect(drv.read(MMIO.QueueReady)).toBe(0);
    expect(drv.transport.negotiatedFeatures).toBe(0n);
  });

  it('refuses FEATURES_OK without VERSION_1 or when the device rejects the set', () => {
    const drv = new TestDriver(new TestDevice());
    expect(drv.negotiate(bit(F_INDIRECT_DESC))).toBe(false);
    expect(drv.status).toBe(ACK | DRIVER);
    const picky = Object.assign(new TestDevice(), { acceptFeatures: (f: bigint) => (f & bit(F_EVENT_IDX)) === 0n });
    const d2 = new TestDriver(picky);
    expect(d2.negotiate()).toBe(false);
    expect(d2.negotiate(bit(F_VERSION_1))).toBe(true);
  });

  it('FAILED can be set at any time and blocks further progress until reset', () => {
    const dev = new TestDevice();
    const drv = new TestDriver(dev);
    drv.write(MMIO.Status, ACK);
    drv.write(MMIO.Status, ACK | STATUS_FAILED);
    drv.write(MMIO.Status, ACK | DRIVER | STATUS_FAILED);
    expect(drv.status).toBe(ACK | STATUS_FAILED);
    drv.init();
    expect(drv.status & DRIVER_OK).toBeTruthy();
  });

  it('raises the used-buffer interrupt and lowers the line on ACK', async () => {
    const drv = new TestDriver(new TestDevice()).init();
    await drv.queues[0]!.submit({ readable: [HDR], writable: [1] });
    expect(drv.irq.level).toBe(true);
    expect(drv.read(MMIO.InterruptStatus)).toBe(INT_USED_BUFFER);
    drv.write(MMIO.InterruptACK, INT_CONFIG_CHANGE); // acking another bit leaves it
    expect(drv.irq.level).toBe(true);
    drv.write(MMIO.InterruptACK, INT_USED_BUFFER);
    expect(drv.irq.level).toBe(false);
    expect(drv.read(MMIO.InterruptStatus)).toBe(0);
  });

  it('passes config space accesses of 1, 2 and 4 bytes to the device, and bumps ConfigGeneration on change', () => {
    const dev = new TestDevice();
    const drv = new TestDriver(dev).init();
    drv.transport.write(MMIO.Config + 0, 4, 0x44332211);
    drv.transport.write(MMIO.Config + 4, 2, 0xbbaa);
    drv.transport.write(MMIO.Config + 6, 1, 0xcc);
    expect(drv.config(0)).toBe(0x44332211);
    expect(drv.config(1, 2)).toBe(0x3322);
    expect(drv.config(6, 1)).toBe(0xcc);
    expect(drv.config64(0)).toBe(0x00ccbbaa44332211n);
    expect(drv.transport.read(MMIO.Config, 8)).toBe(0);
    const gen = drv.read(MMIO.ConfigGeneration);
    (dev as unknown as { ctx: { signalConfig(): void } }).ctx.signalConfig();
    expect(drv.read(MMIO.ConfigGeneration)).toBe(gen + 1);
    expect(drv.read(MMIO.InterruptStatus) & INT_CONFIG_CHANGE).toBeTruthy();
  });

  it('serves several queues independently', async () => {
    const dev = new TestDevice({ queues: [16, 16, 16] });
    const drv = new TestDriver(dev).init();
    await drv.queues[2]!.submit({ readable: [HDR], writable: [1] });
    await drv.queues[0]!.submit({ readable: [HDR], writable: [1] });
    expect(dev.handled.map(([q]) => q)).toEqual([2, 0]);
    expect(drv.queues[1]!.usedIdx).toBe(0);
  });
});

describe('async completion', () => {
  it('lets requests finish out of order and idle() waits for all', async () => {
    const dev = new TestDevice({ deferred: true, behaviour: 'fill' });
    const drv = new TestDriver(dev).init();
    const q = drv.queues[0]!;
    const subs = [2, 3, 4].map((n) => q.add({ readable: [HDR], writable: [n] }));
    q.kick();
    expect(dev.waitingCount).toBe(3);
    let idle = false;
    const done = drv.transport.idle().then(() => (idle = true));
    dev.release([2]);
    await Promise.resolve();
    await Promise.resolve();
    expect(idle).toBe(false);
    dev.release([1, 0]);
    await done;
    expect(idle).toBe(true);
    expect(q.takeUsed()).toEqual([
      { id: subs[2]!.head, len: 4 },
      { id: subs[1]!.head, len: 3 },
      { id: subs[0]!.head, len: 2 },
    ]);
  });

  it('a driver that republishes heads cannot push more than queue-size requests in flight (hostile line 48)', async () => {
    const dev = new TestDevice({ deferred: true, queues: [4] });
    const drv = new TestDriver(dev).init({ queueSizes: [4] });
    const q = drv.queues[0]!;
    const sub = q.add({ readable: [HDR], writable: [1] });
    for (let i = 0; i < 3; i++) q.publish(sub.head); // the same head, four times
    q.kick();
    expect(dev.waitingCount).toBe(4);
    // Four more while the first four are still in flight: legal for the avail index, but the
    // device takes no more than a queue's worth at a time.
    for (let i = 0; i < 4; i++) q.publish(sub.head);
    q.kick();
    expect(dev.waitingCount).toBe(4);
    expect(dev.handled.length).toBe(4);
    // Completions let it take up what was published meanwhile.
    dev.release();
    await new Promise((r) => setTimeout(r, 0));
    expect(dev.waitingCount).toBe(4);
    expect(dev.handled.length).toBe(8);
    dev.release();
    await drv.transport.idle();
    expect(q.usedIdx).toBe(8);
    expect(drv.status & 0x40).toBe(0);
  });

  it('in deterministic mode, completions wait for flushCompletions() and land in submission order', async () => {
    const dev = new TestDevice({ deferred: true, behaviour: 'fill' });
    dev.setDeterministic(true);
    const drv = new TestDriver(dev).init();
    const q = drv.queues[0]!;
    const subs = [2, 3, 4].map((n) => q.add({ readable: [HDR], writable: [n] }));
    q.kick();
    dev.release([2, 0, 1]); // the backend finishes out of order
    await drv.transport.idle();
    expect(q.usedIdx).toBe(0); // held back
    dev.flushCompletions();
    expect(q.takeUsed().map((u) => u.id)).toEqual(subs.map((x) => x.head));
  });

  it('a rejected request completes with length 0 and the device serves the next one', async () => {
    const dev = new (class extends TestDevice {
      n = 0;
      protected override handle(): Promise<number> {
        return this.n++ === 0 ? Promise.reject(new Error('backend failed')) : Promise.resolve(1);
      }
    })();
    const drv = new TestDriver(dev).init();
    expect((await drv.queues[0]!.submit({ readable: [HDR], writable: [1] })).used.len).toBe(0);
    expect((await drv.queues[0]!.submit({ readable: [HDR], writable: [1] })).used.len).toBe(1);
  });
});
