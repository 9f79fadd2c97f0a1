/**
 * hostile-guest.md line 49 on the host-call transport: a kernel that is wasm resets a device with
 * one synchronous call and has no Status to poll, so nothing can wait for requests in flight.
 * Their views are bounce buffers instead: once `reset` (or `disable_vring`) returned, a request
 * that finishes late fills or reads host memory only. Tested with backends that complete late.
 */
import { describe, expect, it } from 'vitest';
import { MemFs, type MemNode } from '../../src/backends/fs/mem-fs.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { header, P9Session, pattern, read, S_OK, T_IN, T_OUT, write } from '../../src/testing/index.js';
import { Gate, gated } from '../p9/async-fs.js';
import { LateDisk } from '../support/late-disk.js';
import { TestDevice } from '../support/test-device.js';
import { Kernel, KERNEL_PAGE_SIZE } from '../support/wasm-kernel.js';

const settle = () => new Promise((r) => setTimeout(r, 5));

function blk(opts: { shared?: boolean; bounceLimit?: number } = {}) {
  const disk = new LateDisk();
  const k = new Kernel([new VirtioBlk(disk)], { pages: 64, trace: true, ...opts });
  const d = k.drivers[0]!.init();
  return { disk, k, d, q: d.queues[0]! };
}

/** What a driver does with its memory once the reset returned: puts other bytes everywhere it had handed out. */
function reuseAll(k: Kernel): void {
  k.mem.fill(KERNEL_PAGE_SIZE, k.allocator.top - KERNEL_PAGE_SIZE, 0x11);
}

function untouched(k: Kernel): boolean {
  return k.mem.view(KERNEL_PAGE_SIZE, k.allocator.top - KERNEL_PAGE_SIZE).every((b) => b === 0x11);
}

for (const shared of [false, true]) {
  describe(`hostile 49 through host calls (${shared ? 'shared' : 'non-shared'} memory)`, () => {
    it('a read in flight at reset never lands in the guest\'s buffer, nor its status byte', async () => {
      const { disk, k, d, q } = blk({ shared });
      disk.inner.write(0, pattern(4096, 49));
      q.add({ readable: [header(T_IN, 0)], writable: [4096, 1] });
      q.kick();
      expect(disk.count).toBe(1);
      d.reset();
      reuseAll(k);
      k.trace!.clear();
      disk.release();
      await settle();
      expect(untouched(k)).toBe(true);
      expect(k.trace!.log).toEqual([]); // not one access of guest memory after the reset
      // A fresh probe, and the device serves again.
      d.init();
      const again = read(d.queues[0]!, 0, 4096);
      await settle();
      disk.release();
      const r = await again;
      expect(r.status).toBe(S_OK);
      expect(r.data).toEqual(pattern(4096, 49));
    });

    it('a write in flight at reset writes the bytes it was given, never what the driver put there after', async () => {
      const { disk, k, d, q } = blk({ shared });
      q.add({ readable: [header(T_OUT, 0), pattern(4096, 1)], writable: [1] });
      q.kick();
      expect(disk.count).toBe(1);
      d.reset();
      reuseAll(k);
      k.trace!.clear();
      disk.release();
      await settle();
      const got = new Uint8Array(4096);
      disk.inner.read(0, got);
      expect(got).toEqual(pattern(4096, 1));
      expect(untouched(k)).toBe(true);
      expect(k.trace!.log).toEqual([]);
    });

    it('disable_vring with a read in flight: the ring\'s buffers stay the driver\'s', async () => {
      const { disk, k, d, q } = blk({ shared });
      disk.inner.write(0, pattern(4096, 7));
      q.add({ readable: [header(T_IN, 0)], writable: [4096, 1] });
      q.kick();
      d.disableQueue(0);
      reuseAll(k);
      k.trace!.clear();
      disk.release();
      await settle();
      expect(k.trace!.log).toEqual([]);
      expect(untouched(k)).toBe(true);
    });
  });
}

describe('bounce buffers on the host-call transport', () => {
  it('a live request completes with its data: written back before the used element', async () => {
    const { disk, k, q } = blk();
    disk.inner.write(4096, pattern(8192, 3));
    const r = read(q, 8, 8192);
    await settle();
    k.trace!.clear();
    disk.release();
    const got = await r;
    expect(got.status).toBe(S_OK);
    expect(got.data).toEqual(pattern(8192, 3));
    const writes = k.trace!.writes();
    const data = writes.findIndex((w) => w.len === 8192);
    const usedIdx = writes.findIndex((w) => w.addr === q.used + 2);
    expect(data).toBeGreaterThanOrEqual(0);
    expect(usedIdx).toBeGreaterThan(data);
  });

  it('a request whose buffers would pass the bounce limit fails; the budget is given back after each request', async () => {
    const { disk, q } = blk({ bounceLimit: 64 * 1024 });
    const big = read(q, 0, 128 * 1024);
    const r = await big;
    expect(r.usedLen).toBe(0); // given back with length 0, before any I/O
    expect(disk.count).toBe(0);
    // Requests that fit go on working, many more than the limit in total.
    for (let i = 0; i < 8; i++) {
      const w = write(q, 0, pattern(32 * 1024, i));
      await settle();
      disk.release();
      expect((await w).status).toBe(S_OK);
    }
  });

  it('a read in flight across a grow of a non-shared memory completes with its data', async () => {
    const { disk, k, q } = blk();
    disk.inner.write(0, pattern(4096, 5));
    const r = read(q, 0, 4096);
    await settle();
    k.memory.grow(1);
    disk.release();
    const got = await r;
    expect(got.status).toBe(S_OK);
    expect(got.data).toEqual(pattern(4096, 5));
    expect(k.needsReset).toEqual([]);
  });

  it('9p: a Twrite in flight at reset writes what it was sent, and reads nothing of the guest after', async () => {
    const gate = new Gate();
    gate.auto = true;
    const fs = new MemFs();
    const k = new Kernel([new Virtio9p(gated(fs, gate), { tag: 't' })], { pages: 256, trace: true });
    const d = k.drivers[0]!.init();
    const c = new P9Session(d.queues[0]!);
    await c.mount(65536);
    await c.walk(0, 1, []);
    await c.lcreate(1, 'f', 2);
    gate.auto = false;
    const text = 'sent before the reset\n'.repeat(200);
    void c.write(1, 0, text).catch(() => {});
    await gate.waitFor(1);
    d.reset();
    reuseAll(k);
    k.trace!.clear();
    gate.release();
    await settle();
    const node = fs.lookup(fs.rootNode, 'f') as MemNode;
    expect(new TextDecoder().decode(node.data.bytes(node.size))).toBe(text);
    expect(untouched(k)).toBe(true);
    expect(k.trace!.log).toEqual([]);
  });

  it('a driver that resets and resubmits again and again can\'t pile up requests: one session\'s worth at most', async () => {
    const dev = new TestDevice({ queues: [8], deferred: true });
    const k = new Kernel([dev], { pages: 64 });
    const d = k.drivers[0]!;
    for (let round = 0; round < 5; round++) {
      const q = d.init({ queueSize: 8 }).queues[0]!;
      for (let i = 0; i < 4; i++) q.add({ readable: [new Uint8Array(16)], writable: [1] });
      q.kick();
      expect(dev.pending).toBeLessThanOrEqual(8);
    }
    // Two sessions' requests are at the device, the cap of 8; none of the later ones started.
    expect(dev.waitingCount).toBe(8);
    expect(dev.handled.length).toBe(8);
    // Once the old requests finish, the live session is served, and it completes.
    dev.release();
    await settle();
    expect(dev.handled.length).toBe(12);
    dev.release();
    await settle();
    expect(d.queues[0]!.takeUsed().length).toBe(4);
    expect(dev.pending).toBe(0);
  });
});
