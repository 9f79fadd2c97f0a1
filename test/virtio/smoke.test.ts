import { describe, expect, it } from 'vitest';
import { TestDriver } from '../../src/testing/index.js';
import { TestDevice } from '../support/test-device.js';

describe('driver harness round trip', () => {
  it('completes a direct and an indirect chain with a status byte', async () => {
    const dev = new TestDevice();
    const drv = new TestDriver(dev).init();
    const q = drv.queues[0]!;
    const hdr = new Uint8Array(16).map((_, i) => i + 1);
    const a = await q.submit({ readable: [hdr], writable: [1] });
    expect(a.used.len).toBe(1);
    expect(a.data).toEqual(new Uint8Array([0]));
    const b = await q.submit({ readable: [hdr.subarray(0, 5), hdr.subarray(5)], writable: [7, 1], indirect: true });
    expect(b.used.len).toBe(8);
    expect(dev.headers).toEqual([hdr, hdr]);
    expect(drv.irq.level).toBe(true);
    expect(drv.ackInterrupt()).toBe(1);
    expect(drv.irq.level).toBe(false);
  });
});
