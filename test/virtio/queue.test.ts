import { describe, expect, it } from 'vitest';
import { bit, F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1 } from '../../src/virtio/constants.js';
import { SplitQueue } from '../../src/virtio/queue.js';
import { TestDriver } from '../../src/testing/index.js';
import { TestDevice } from '../support/test-device.js';

const HDR = new Uint8Array(16).fill(3);

describe('split queue notification suppression (VIRTIO 1.2, 2.7.7 and 2.7.10)', () => {
  it('without EVENT_IDX: interrupts unless the driver sets NO_INTERRUPT', () => {
    const drv = new TestDriver(new TestDevice()).init({ features: bit(F_VERSION_1) | bit(F_INDIRECT_DESC) });
    const q = drv.queues[0]!;
    q.add({ readable: [HDR], writable: [1] });
    q.kick();
    expect(drv.irq.raised).toBe(1);
    drv.ackInterrupt();
    q.setNoInterrupt(true);
    q.add({ readable: [HDR], writable: [1] });
    q.kick();
    expect(drv.irq.raised).toBe(1);
    expect(q.takeUsed().length).toBe(2);
  });

  it('with EVENT_IDX: interrupts only when used_event is crossed', () => {
    const drv = new TestDriver(new TestDevice()).init();
    expect(drv.features & bit(F_EVENT_IDX)).toBeTruthy();
    const q = drv.queues[0]!;
    const irqs: number[] = [];
    // Ask for an interrupt only after the 3rd used entry (used_event = 2).
    q.setUsedEvent(2);
    for (let i = 0; i < 5; i++) {
      q.add({ readable: [HDR], writable: [1] });
      q.kick();
      if (drv.irq.level) {
        irqs.push(q.usedIdx);
        drv.ackInterrupt();
      }
    }
    // The first completion always signals (nothing signalled yet), then only the crossing of 2.
    expect(irqs).toEqual([1, 3]);
  });

  it('with EVENT_IDX: publishes avail_event as the next index it will read', () => {
    const drv = new TestDriver(new TestDevice()).init();
    const q = drv.queues[0]!;
    for (let i = 0; i < 3; i++) q.add({ readable: [HDR], writable: [1] });
    q.kick();
    expect(q.availEvent).toBe(3);
  });

  it('a batch of completions in one kick gives one interrupt', () => {
    const drv = new TestDriver(new TestDevice()).init();
    const q = drv.queues[0]!;
    q.setUsedEvent(0);
    for (let i = 0; i < 4; i++) q.add({ readable: [HDR], writable: [1] });
    q.kick();
    expect(drv.irq.raised).toBe(1);
    expect(q.takeUsed().length).toBe(4);
  });
});

describe('SplitQueue', () => {
  it('refuses a max size that is not a power of two', () => {
    expect(() => new SplitQueue(3)).toThrow(RangeError);
    expect(() => new SplitQueue(65536)).toThrow(RangeError);
    expect(SplitQueue.validSize(8, 16)).toBe(true);
    expect(SplitQueue.validSize(32, 16)).toBe(false);
  });

  it('gives zero-copy views and gathers a header split across many buffers', async () => {
    const dev = new TestDevice();
    const drv = new TestDriver(dev).init();
    const parts = [HDR.subarray(0, 1), HDR.subarray(1, 1), HDR.subarray(1, 9), HDR.subarray(9)];
    const { used } = await drv.queues[0]!.submit({ readable: parts, writable: [0, 2, 0, 1] });
    expect(used.len).toBe(3);
    expect(dev.headers[0]).toEqual(HDR);
  });
});
