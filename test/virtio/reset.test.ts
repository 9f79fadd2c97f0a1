/**
 * hostile-guest.md line 49: once the driver has read Status 0 after a reset, the device touches
 * no guest memory. Tested with a backend that completes late, the way FileDisk's thread pool does:
 * a read fills the guest's buffer when it finishes, a write reads the guest's buffer when it runs.
 */
import { describe, expect, it } from 'vitest';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { MMIO, STATUS_ACKNOWLEDGE, STATUS_DRIVER_OK } from '../../src/virtio/constants.js';
import { header, pattern, T_IN, T_OUT } from '../../src/testing/index.js';
import { TestDriver } from '../../src/testing/index.js';
import { LateDisk } from '../support/late-disk.js';
import { TestDevice } from '../support/test-device.js';

/** Polls Status the way a careful driver does until it reads 0; returns how many reads it took. */
async function waitForReset(drv: TestDriver): Promise<number> {
  for (let reads = 1; reads < 1000; reads++) {
    if (drv.status === 0) return reads;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error('Status never read 0');
}

function blk() {
  const disk = new LateDisk();
  const drv = new TestDriver(new VirtioBlk(disk)).init();
  return { disk, drv, q: drv.queues[0]! };
}

describe('hostile 49: reset stops all device access to guest memory', () => {
  it('a read in flight never lands in the buffer once Status read 0', async () => {
    const { disk, drv, q } = blk();
    disk.inner.write(0, pattern(4096, 49));
    const sub = q.add({ readable: [header(T_IN, 0)], writable: [4096, 1] });
    q.kick();
    expect(disk.count).toBe(1);
    drv.write(MMIO.Status, 0);
    // The read is still at the backend: Status is not 0 yet, and the driver is ignored meanwhile.
    expect(drv.status).not.toBe(0);
    drv.write(MMIO.Status, STATUS_ACKNOWLEDGE);
    expect(drv.status & STATUS_DRIVER_OK).toBeTruthy();
    setImmediate(() => disk.release());
    expect(await waitForReset(drv)).toBeGreaterThan(1);
    // The driver owns the buffer again and puts something else there; nothing overwrites it.
    const buf = sub.writable[0]!.addr;
    drv.mem.fill(buf, 4096, 0x11);
    await drv.transport.idle();
    await new Promise((r) => setTimeout(r, 5));
    expect(drv.mem.view(buf, 4096).every((b) => b === 0x11)).toBe(true);
    expect(drv.mem.readU8(sub.writable[1]!.addr)).toBe(0xee); // no status byte either
    // The device works again after a fresh probe.
    drv.init();
    expect(drv.status & STATUS_DRIVER_OK).toBeTruthy();
  });

  it('a write in flight never reads the buffer once Status read 0', async () => {
    const { disk, drv, q } = blk();
    const sub = q.add({ readable: [header(T_OUT, 0), pattern(512, 1)], writable: [1] });
    q.kick();
    drv.write(MMIO.Status, 0);
    expect(drv.status).not.toBe(0);
    setImmediate(() => disk.release());
    await waitForReset(drv);
    // After the reset the driver reuses the data buffer for other bytes: they never reach the disk.
    const dataAddr = Number(drv.mem.readU64(q.desc + 16 * sub.descs[1]!));
    drv.mem.write(dataAddr, pattern(512, 2));
    disk.release();
    await new Promise((r) => setTimeout(r, 5));
    const got = new Uint8Array(512);
    disk.inner.read(0, got);
    expect(got).not.toEqual(pattern(512, 2));
  });

  it('Status reads 0 at once when nothing is in flight', () => {
    const { drv } = blk();
    drv.write(MMIO.Status, 0);
    expect(drv.status).toBe(0);
  });

  it('holds for any QueueDevice: a deferred test device', async () => {
    const dev = new TestDevice({ deferred: true, behaviour: 'fill' });
    const drv = new TestDriver(dev).init();
    const q = drv.queues[0]!;
    q.add({ readable: [new Uint8Array(4)], writable: [64] });
    q.kick();
    drv.write(MMIO.Status, 0);
    expect(drv.status).not.toBe(0);
    dev.release();
    expect(await waitForReset(drv)).toBeGreaterThanOrEqual(1);
    expect(drv.status).toBe(0);
  });
});
