import { describe, expect, it } from 'vitest';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import {
  BLK_F_BLK_SIZE,
  BLK_F_CONFIG_WCE,
  BLK_F_DISCARD,
  BLK_F_FLUSH,
  BLK_F_MQ,
  BLK_F_RO,
  BLK_F_SEG_MAX,
  BLK_F_SIZE_MAX,
  BLK_F_TOPOLOGY,
  BLK_F_WRITE_ZEROES,
} from '../../src/devices/blk/constants.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { bit, F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, MMIO } from '../../src/virtio/constants.js';
import {
  DeferredDisk,
  diffBytes,
  FaultyDisk,
  flush,
  header,
  pattern,
  read,
  request,
  S_OK,
  segments,
  T_DISCARD,
  T_GET_ID,
  T_IN,
  T_OUT,
  T_WRITE_ZEROES,
  write,
} from '../../src/testing/index.js';
import { TestDriver } from '../../src/testing/index.js';

const MiB = 1 << 20;

describe('virtio-blk identity and config space', () => {
  it('is device 2 with the block features, 256-entry queues and the spec config layout', () => {
    const dev = new VirtioBlk(new MemoryDisk(64 * MiB), { numQueues: 3 });
    const drv = new TestDriver(dev);
    expect(drv.read(MMIO.DeviceID)).toBe(2);
    const offered = drv.deviceFeatures();
    for (const f of [BLK_F_SIZE_MAX, BLK_F_SEG_MAX, BLK_F_BLK_SIZE, BLK_F_FLUSH, BLK_F_CONFIG_WCE, BLK_F_TOPOLOGY, BLK_F_MQ, BLK_F_DISCARD, BLK_F_WRITE_ZEROES]) {
      expect(offered & bit(f), `feature ${f}`).toBe(bit(f));
    }
    for (const f of [F_VERSION_1, F_INDIRECT_DESC, F_EVENT_IDX]) expect(offered & bit(f)).toBe(bit(f));
    expect(offered & bit(BLK_F_RO)).toBe(0n);
    drv.init();
    expect(drv.queues.map((q) => q.size)).toEqual([256, 256, 256]);
    drv.write(MMIO.QueueSel, 2);
    expect(drv.read(MMIO.QueueNumMax)).toBe(256);
    expect(drv.config64(0)).toBe(BigInt((64 * MiB) / 512)); // capacity
    expect(drv.config(8)).toBe(MiB); // size_max
    expect(drv.config(12)).toBe(254); // seg_max
    expect(drv.config(20)).toBe(512); // blk_size
    expect(drv.config(24, 1)).toBe(3); // physical_block_exp
    expect(drv.config(25, 1)).toBe(0); // alignment_offset
    expect(drv.config(26, 2)).toBe(1); // min_io_size
    expect(drv.config(28)).toBe(0); // opt_io_size
    expect(drv.config(32, 1)).toBe(1); // writeback
    expect(drv.config(34, 2)).toBe(3); // num_queues
    expect(drv.config(36)).toBe(0x40_0000); // max_discard_sectors
    expect(drv.config(40)).toBe(16); // max_discard_seg
    expect(drv.config(44)).toBe(8); // discard_sector_alignment
    expect(drv.config(48)).toBe(0x40_0000); // max_write_zeroes_sectors
    expect(drv.config(52)).toBe(16); // max_write_zeroes_seg
    expect(drv.config(56, 1)).toBe(1); // write_zeroes_may_unmap
    expect(drv.config(60)).toBe(0); // past the struct
  });

  it('offers RO for a read-only backend or option, and no DISCARD without backend support', () => {
    const ro = new TestDriver(new VirtioBlk(new MemoryDisk(MiB, { readOnly: true })));
    expect(ro.deviceFeatures() & bit(BLK_F_RO)).toBe(bit(BLK_F_RO));
    const roOpt = new TestDriver(new VirtioBlk(new MemoryDisk(MiB), { readOnly: true }));
    expect(roOpt.deviceFeatures() & bit(BLK_F_RO)).toBe(bit(BLK_F_RO));
    const plain = { size: MiB, readOnly: false, read() {}, write() {}, flush() {} };
    const noDiscard = new TestDriver(new VirtioBlk(plain));
    expect(noDiscard.deviceFeatures() & bit(BLK_F_DISCARD)).toBe(0n);
    expect(noDiscard.deviceFeatures() & bit(BLK_F_WRITE_ZEROES)).toBe(bit(BLK_F_WRITE_ZEROES));
  });

  it('rejects bad options with a typed error', () => {
    expect(() => new VirtioBlk(new MemoryDisk(MiB), { numQueues: 0 })).toThrow(/numQueues/);
    expect(() => new VirtioBlk(new MemoryDisk(MiB), { serial: 'x'.repeat(21) })).toThrow(/serial/);
  });

  it('lets the driver switch writeback only with CONFIG_WCE, and reports write-through without FLUSH', () => {
    const drv = new TestDriver(new VirtioBlk(new MemoryDisk(MiB))).init();
    drv.transport.write(MMIO.Config + 32, 1, 0);
    expect(drv.config(32, 1)).toBe(0);
    drv.transport.write(MMIO.Config + 32, 1, 1);
    expect(drv.config(32, 1)).toBe(1);
    const noWce = new TestDriver(new VirtioBlk(new MemoryDisk(MiB))).init({ features: ~bit(BLK_F_CONFIG_WCE) });
    noWce.transport.write(MMIO.Config + 32, 1, 0);
    expect(noWce.config(32, 1)).toBe(1);
    const noFlush = new TestDriver(new VirtioBlk(new MemoryDisk(MiB))).init({ features: ~bit(BLK_F_FLUSH) });
    expect(noFlush.config(32, 1)).toBe(0);
  });
});

describe('virtio-blk requests', () => {
  it('writes and reads back, with the used length covering data and status', async () => {
    const disk = new MemoryDisk(8 * MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    const data = pattern(8192, 7);
    const w = await write(q, 100, data);
    expect(w).toMatchObject({ status: S_OK, usedLen: 1 });
    const got = new Uint8Array(8192);
    disk.read(100 * 512, got);
    expect(got).toEqual(data);
    const r = await read(q, 100, 8192);
    expect(r.status).toBe(S_OK);
    expect(r.usedLen).toBe(8193);
    expect(r.data).toEqual(data);
    expect(drv.irq.raised).toBeGreaterThan(0);
  });

  it('writes every writable byte the used length covers, even before the status of an OUT', async () => {
    const drv = new TestDriver(new VirtioBlk(new MemoryDisk(MiB))).init();
    const q = drv.queues[0]!;
    const { sub, used } = await q.submit({ readable: [header(T_OUT, 0), pattern(512, 1)], writable: [4, 1] });
    expect(used.len).toBe(5);
    expect(q.readWritable(sub)).toEqual(new Uint8Array([0, 0, 0, 0, S_OK]));
  });

  it('gathers a header and data split across descriptors, direct and indirect', async () => {
    const disk = new MemoryDisk(MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    const h = header(T_OUT, 3);
    const data = pattern(1536, 3);
    for (const indirect of [false, true]) {
      const w = await request(q, [h.subarray(0, 3), h.subarray(3, 11), h.subarray(11), data.subarray(0, 100), data.subarray(100)], [1], indirect);
      expect(w.status).toBe(S_OK);
      const r = await request(q, [header(T_IN, 3).subarray(0, 9), header(T_IN, 3).subarray(9)], [700, 836, 1], indirect);
      expect(r.status).toBe(S_OK);
      expect(r.usedLen).toBe(1537);
      expect(r.data).toEqual(data);
      // data and status may share the last writable buffer
      const r2 = await request(q, [header(T_IN, 3)], [1000, 537], indirect);
      expect(r2.status).toBe(S_OK);
      expect(r2.data).toEqual(data);
    }
  });

  it('serves a sparse disk past 4 GiB without allocating what is not written', async () => {
    const size = 5 * 1024 * MiB;
    const disk = new MemoryDisk(size);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    expect(drv.config64(0)).toBe(BigInt(size / 512));
    const sector = size / 512 - 16; // last 8 KiB, past 4 GiB
    const data = pattern(8192, 9);
    expect((await write(q, sector, data)).status).toBe(S_OK);
    const r = await read(q, sector, 8192);
    expect(r.data).toEqual(data);
    const hole = await read(q, 3 * 1024 * 2048, 4096); // at 3 GiB, never written
    expect(hole.data).toEqual(new Uint8Array(4096));
    expect(disk.allocatedBytes).toBe(64 * 1024);
  });

  it('answers GET_ID with the serial, NUL-padded, never past the buffer', async () => {
    const drv = new TestDriver(new VirtioBlk(new MemoryDisk(MiB), { serial: 'disk-42' })).init();
    const q = drv.queues[0]!;
    const full = await request(q, [header(T_GET_ID)], [20, 1]);
    expect(full.status).toBe(S_OK);
    expect(full.usedLen).toBe(21);
    const want = new Uint8Array(20);
    want.set([...'disk-42'].map((c) => c.charCodeAt(0)));
    expect(full.data).toEqual(want);
    const long = await request(q, [header(T_GET_ID)], [40, 1]);
    expect(long.data).toEqual(new Uint8Array(40).fill(0).map((_, i) => want[i] ?? 0));
  });

  it('completes FLUSH after the backend flush', async () => {
    const disk = new FaultyDisk(MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    expect((await flush(drv.queues[0]!)).status).toBe(S_OK);
    expect(disk.flushes).toBe(1);
  });

  it('serves every queue of a multi-queue device', async () => {
    const disk = new MemoryDisk(MiB);
    const drv = new TestDriver(new VirtioBlk(disk, { numQueues: 4 })).init();
    const data = pattern(512, 4);
    expect((await write(drv.queues[3]!, 5, data)).status).toBe(S_OK);
    expect((await read(drv.queues[1]!, 5, 512)).data).toEqual(data);
  });

  it('discards and writes zeroes, releasing MemoryDisk chunks', async () => {
    const disk = new MemoryDisk(4 * MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    await write(q, 0, pattern(MiB, 2));
    expect(disk.allocatedBytes).toBe(MiB);
    const d = await request(q, [header(T_DISCARD), segments([0, 256])], [1]); // first 128 KiB
    expect(d.status).toBe(S_OK);
    expect(disk.allocatedBytes).toBe(MiB - 128 * 1024);
    const z = await request(q, [header(T_WRITE_ZEROES), segments([300, 10], [1000, 24, 1])], [1]);
    expect(z.status).toBe(S_OK);
    const r = await read(q, 0, MiB);
    const want = pattern(MiB, 2);
    want.fill(0, 0, 128 * 1024);
    want.fill(0, 300 * 512, 310 * 512);
    want.fill(0, 1000 * 512, 1024 * 512);
    expect(diffBytes(r.data, want)).toBe('equal');
  });

  it('writes zeroes through plain writes when the backend has no writeZeroes', async () => {
    const inner = new MemoryDisk(4 * MiB);
    inner.write(0, pattern(2 * MiB, 5));
    const plain = {
      size: inner.size,
      readOnly: false,
      read: (o: number, d: Uint8Array) => inner.read(o, d),
      write: (o: number, s: Uint8Array) => Promise.resolve().then(() => inner.write(o, s)),
      flush() {},
    };
    const drv = new TestDriver(new VirtioBlk(plain)).init();
    const z = await request(drv.queues[0]!, [header(T_WRITE_ZEROES), segments([1, 2 * 2048 - 2])], [1]);
    expect(z.status).toBe(S_OK);
    const got = new Uint8Array(2 * MiB + 512);
    inner.read(0, got);
    const want = pattern(2 * MiB, 5);
    want.fill(0, 512, 2 * MiB - 512);
    expect(diffBytes(got.subarray(0, 2 * MiB), want)).toBe('equal');
    expect(got.subarray(2 * MiB)).toEqual(new Uint8Array(512));
  });
});

describe('virtio-blk with an asynchronous backend', () => {
  it('completes requests out of order, used lengths right, interrupting after each completion', async () => {
    const disk = new DeferredDisk(MiB);
    disk.inner.write(0, pattern(3 * 4096, 11));
    const dev = new VirtioBlk(disk);
    // Without EVENT_IDX every completion may interrupt (VIRTIO 1.2, 2.7.7).
    const drv = new TestDriver(dev).init({ features: ~bit(F_EVENT_IDX) });
    const q = drv.queues[0]!;
    const subs = [0, 1, 2].map((i) => q.add({ readable: [header(T_IN, i * 8)], writable: [4096, 1] }));
    q.kick();
    expect(disk.waiting.length).toBe(3);
    expect(q.usedIdx).toBe(0);
    expect(drv.irq.level).toBe(false);
    disk.release([2]);
    await new Promise((r) => setTimeout(r, 0));
    expect(q.usedIdx).toBe(1);
    expect(drv.irq.level).toBe(true);
    drv.ackInterrupt();
    disk.release([1, 0]);
    await drv.transport.idle();
    const used = q.takeUsed();
    expect(used.map((u) => u.id)).toEqual([subs[2]!.head, subs[1]!.head, subs[0]!.head]);
    expect(used.every((u) => u.len === 4097)).toBe(true);
    expect(drv.irq.level).toBe(true);
    const want = pattern(3 * 4096, 11);
    subs.forEach((s, i) => {
      const got = q.readWritable(s);
      expect(got.subarray(0, 4096)).toEqual(want.subarray(i * 4096, (i + 1) * 4096));
      expect(got[4096]).toBe(S_OK);
    });
  });

  it('writes through an async backend and keeps serving while one request waits', async () => {
    const disk = new DeferredDisk(MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    const a = q.add({ readable: [header(T_OUT, 0), pattern(512, 1)], writable: [1] });
    const b = q.add({ readable: [header(T_OUT, 1), pattern(512, 2)], writable: [1] });
    q.kick();
    disk.release([1]);
    await new Promise((r) => setTimeout(r, 0));
    expect(q.takeUsed().map((u) => u.id)).toEqual([b.head]);
    disk.release();
    await drv.transport.idle();
    expect(q.takeUsed().map((u) => u.id)).toEqual([a.head]);
    const got = new Uint8Array(1024);
    disk.inner.read(0, got);
    expect(got.subarray(0, 512)).toEqual(pattern(512, 1));
    expect(got.subarray(512)).toEqual(pattern(512, 2));
  });
});
