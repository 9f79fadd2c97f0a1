/** hostile-guest.md lines 22–31 and 45–48, one block each, through the driver harness. */
import { describe, expect, it } from 'vitest';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { BLK_F_CONFIG_WCE, BLK_F_FLUSH } from '../../src/devices/blk/constants.js';
import { BLK_MAX_DWZ_SECTORS, VirtioBlk } from '../../src/devices/blk/device.js';
import { parseRequest } from '../../src/devices/blk/request.js';
import { FlatRam } from '../../src/memory/flat-ram.js';
import { DescriptorChain } from '../../src/virtio/chain.js';
import { bit, F_EVENT_IDX, MMIO } from '../../src/virtio/constants.js';
import {
  DeferredDisk,
  FaultyDisk,
  flush,
  header,
  pattern,
  read,
  request,
  S_IOERR,
  S_OK,
  S_UNSUPP,
  segments,
  T_DISCARD,
  T_FLUSH,
  T_GET_ID,
  T_IN,
  T_OUT,
  T_WRITE_ZEROES,
  write,
} from '../../src/testing/index.js';
import { TestDriver } from '../../src/testing/index.js';

const MiB = 1 << 20;

function setup(size = MiB, opts: ConstructorParameters<typeof VirtioBlk>[1] = {}) {
  const disk = new MemoryDisk(size);
  const dev = new VirtioBlk(disk, opts);
  const drv = new TestDriver(dev).init();
  return { disk, dev, drv, q: drv.queues[0]! };
}

describe('hostile 22: request header', () => {
  it('gathers a header split byte by byte across descriptors', async () => {
    const { q, disk } = setup();
    disk.write(512, pattern(512, 22));
    const h = header(T_IN, 1);
    const r = await request(q, [...h].map((b) => new Uint8Array([b])), [512, 1]);
    expect(r.status).toBe(S_OK);
    expect(r.data).toEqual(pattern(512, 22));
  });

  it('completes a header shorter than 16 bytes with length 0 and writes nothing', async () => {
    const { q } = setup();
    const { sub, used } = await q.submit({ readable: [header(T_IN, 0).subarray(0, 15)], writable: [512, 1] });
    expect(used.len).toBe(0);
    expect(q.readWritable(sub)).toEqual(new Uint8Array(513).fill(0xee));
  });
});

describe('hostile 23: status byte', () => {
  it('completes with length 0 when there is no writable byte for the status', async () => {
    const { q, disk } = setup();
    const { used } = await q.submit({ readable: [header(T_OUT, 0), pattern(512, 1), new Uint8Array(1)] });
    expect(used.len).toBe(0);
    expect(disk.allocatedBytes).toBe(0);
  });

  it('completes with length 0 when the last writable buffer is zero-length', async () => {
    const { q, disk } = setup();
    disk.write(0, pattern(512, 3));
    const { sub, used } = await q.submit({ readable: [header(T_IN, 0)], writable: [512, 0] });
    expect(used.len).toBe(0);
    expect(q.readWritable(sub)).toEqual(new Uint8Array(512).fill(0xee));
  });
});

describe('hostile 24: sector range', () => {
  it('refuses sectors beyond capacity and overflowing sector + count, accepts ending exactly at capacity', async () => {
    const { q, disk } = setup(MiB);
    const last = MiB / 512;
    expect((await read(q, last - 2, 1024)).status).toBe(S_OK);
    expect((await write(q, last - 1, pattern(512, 1))).status).toBe(S_OK);
    expect((await read(q, last - 1, 1024)).status).toBe(S_IOERR);
    expect((await read(q, last, 512)).status).toBe(S_IOERR);
    expect((await read(q, 0xffff_ffff_ffff_ffffn, 512)).status).toBe(S_IOERR);
    expect((await read(q, 2n ** 55n, 512)).status).toBe(S_IOERR);
    expect((await write(q, 0xffff_ffff_ffff_fff0n, pattern(8192, 1))).status).toBe(S_IOERR);
    expect((await write(q, last, pattern(512, 1))).status).toBe(S_IOERR);
    expect(disk.allocatedBytes).toBe(64 * 1024); // only the one good write at the end
  });

  it('zeroes the data of a failed read so the used length covers only written bytes', async () => {
    const { q } = setup(MiB);
    const r = await read(q, MiB / 512, 512);
    expect(r.status).toBe(S_IOERR);
    expect(r.usedLen).toBe(513);
    expect(r.data).toEqual(new Uint8Array(512));
  });
});

describe('hostile 25: data length', () => {
  it('answers IOERR for data not a multiple of 512, writing nothing', async () => {
    const { q, disk } = setup();
    expect((await read(q, 0, 513)).status).toBe(S_IOERR);
    expect((await read(q, 0, 100)).status).toBe(S_IOERR);
    expect((await write(q, 0, pattern(1000, 1))).status).toBe(S_IOERR);
    expect(disk.allocatedBytes).toBe(0);
  });
});

describe('hostile 26: read-only device', () => {
  for (const how of ['option', 'backend'] as const) {
    it(`refuses OUT, DISCARD and WRITE_ZEROES with IOERR (read-only by ${how})`, async () => {
      const content = pattern(MiB, 26);
      const disk = new MemoryDisk(content.slice(), { readOnly: how === 'backend' });
      const drv = new TestDriver(new VirtioBlk(disk, { readOnly: how === 'option' })).init();
      const q = drv.queues[0]!;
      expect((await write(q, 0, pattern(512, 9))).status).toBe(S_IOERR);
      expect((await request(q, [header(T_WRITE_ZEROES), segments([0, 8])], [1])).status).toBe(S_IOERR);
      expect((await request(q, [header(T_WRITE_ZEROES), segments([0, 8, 1])], [1])).status).toBe(S_IOERR);
      if (how === 'option') expect((await request(q, [header(T_DISCARD), segments([0, 8])], [1])).status).toBe(S_IOERR);
      const now = new Uint8Array(MiB);
      disk.read(0, now);
      expect(Buffer.compare(now, content)).toBe(0);
      expect((await read(q, 0, 512)).data).toEqual(content.subarray(0, 512));
      expect((await flush(q)).status).toBe(S_OK);
    });
  }
});

describe('hostile 27: unknown request type', () => {
  it('answers UNSUPP', async () => {
    const { q } = setup();
    for (const t of [2, 3, 5, 7, 10, 14, 99, 0x8000_0000]) {
      expect((await request(q, [header(t)], [1])).status, `type ${t}`).toBe(S_UNSUPP);
    }
  });
});

describe('hostile 28: FLUSH not negotiated', () => {
  it('answers UNSUPP without calling the backend', async () => {
    const disk = new FaultyDisk(MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init({ features: ~bit(BLK_F_FLUSH) });
    expect((await request(drv.queues[0]!, [header(T_FLUSH)], [1])).status).toBe(S_UNSUPP);
    expect(disk.log).toEqual([]);
  });
});

describe('hostile 29: GET_ID', () => {
  it('never writes past a short writable buffer', async () => {
    const { q, drv } = setup(MiB, { serial: 'ABCDEFGHIJKLMNOPQRST' });
    const sub = q.build({ readable: [header(T_GET_ID)], writable: [5, 1] });
    const idBuf = sub.writable[0]!.addr;
    drv.mem.fill(idBuf + 5, 3, 0xab); // bytes between the 5-byte buffer and the status buffer
    q.publish(sub.head);
    q.kick();
    await drv.transport.idle();
    const used = q.takeUsed()[0]!;
    expect(used.len).toBe(6);
    expect([...drv.mem.view(idBuf, 8)]).toEqual([65, 66, 67, 68, 69, 0xab, 0xab, 0xab]);
    expect(drv.mem.readU8(sub.writable[1]!.addr)).toBe(S_OK);
  });

  it('NUL-pads a serial shorter than 20 bytes', async () => {
    const { q } = setup(MiB, { serial: 'sn1' });
    const r = await request(q, [header(T_GET_ID)], [20, 1]);
    expect([...r.data]).toEqual([115, 110, 49, ...new Array(17).fill(0)]);
  });
});

describe('hostile 30: DISCARD / WRITE_ZEROES limits', () => {
  const cases: Array<[string, number, Uint8Array, number]> = [
    ['more segments than advertised', T_DISCARD, segments(...Array.from({ length: 17 }, (_, i) => [i * 8, 8] as [number, number])), S_UNSUPP],
    ['num_sectors above the maximum', T_WRITE_ZEROES, segments([0, BLK_MAX_DWZ_SECTORS + 1]), S_IOERR],
    ['sector beyond capacity', T_DISCARD, segments([2048, 1]), S_IOERR],
    ['range ending past capacity', T_WRITE_ZEROES, segments([2000, 100]), S_IOERR],
    ['64-bit sector that would wrap', T_WRITE_ZEROES, segments([0xffff_ffff_ffff_ff00n, 0x100]), S_IOERR],
    ['unknown flags', T_WRITE_ZEROES, segments([0, 8, 2]), S_UNSUPP],
    ['UNMAP on DISCARD', T_DISCARD, segments([0, 8, 1]), S_UNSUPP],
    ['one bad segment after a good one', T_DISCARD, segments([0, 8], [4096, 8]), S_IOERR],
    ['payload not a multiple of 16 bytes', T_DISCARD, segments([0, 8]).subarray(0, 12), S_IOERR],
    ['empty payload', T_WRITE_ZEROES, new Uint8Array(0), S_IOERR],
  ];
  for (const [what, type, payload, want] of cases) {
    it(`${what} -> ${want === S_IOERR ? 'IOERR' : 'UNSUPP'}, nothing changed`, async () => {
      const { q, disk } = setup(MiB);
      disk.write(0, pattern(MiB, 30));
      const readable = payload.length > 0 ? [header(type), payload] : [header(type)];
      expect((await request(q, readable, [1])).status).toBe(want);
      const now = new Uint8Array(MiB);
      disk.read(0, now);
      expect(Buffer.compare(now, pattern(MiB, 30))).toBe(0);
    });
  }

  it('accepts the advertised maximum of segments', async () => {
    const { q, disk } = setup(MiB);
    disk.write(0, pattern(MiB, 30));
    const segs = Array.from({ length: 16 }, (_, i) => [i * 16, 8] as [number, number]);
    expect((await request(q, [header(T_DISCARD), segments(...segs)], [1])).status).toBe(S_OK);
    expect((await read(q, 16, 4096)).data).toEqual(new Uint8Array(4096));
  });
});

describe('hostile 31: backend I/O errors', () => {
  for (const async of [false, true]) {
    it(`answers IOERR for the failing request and goes on serving others (${async ? 'async' : 'sync'})`, async () => {
      const disk = new FaultyDisk(MiB);
      disk.async = async;
      disk.inner.write(0, pattern(MiB, 31));
      disk.badFrom = 100;
      disk.badTo = 108;
      disk.failRead = true;
      disk.failWrite = true;
      const drv = new TestDriver(new VirtioBlk(disk)).init();
      const q = drv.queues[0]!;
      const bad = await read(q, 100, 4096);
      expect(bad.status).toBe(S_IOERR);
      expect(bad.data).toEqual(new Uint8Array(4096));
      expect((await write(q, 104, pattern(512, 1))).status).toBe(S_IOERR);
      expect((await request(q, [header(T_DISCARD), segments([0, 8])], [1])).status).toBe(S_IOERR);
      const good = await read(q, 0, 4096);
      expect(good.status).toBe(S_OK);
      expect(good.data).toEqual(pattern(MiB, 31).subarray(0, 4096));
      expect((await write(q, 200, pattern(512, 2))).status).toBe(S_OK);
      expect((await read(q, 200, 512)).data).toEqual(pattern(512, 2));
    });
  }

  it('fails a multi-buffer read if any piece fails, waiting for the rest first', async () => {
    const disk = new DeferredDisk(MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    q.add({ readable: [header(T_IN, 0)], writable: [512, 512, 1] });
    q.kick();
    expect(disk.waiting.length).toBe(2);
    disk.fail(0);
    await new Promise((r) => setTimeout(r, 0));
    expect(q.usedIdx).toBe(0); // the second piece is still running
    disk.release();
    await drv.transport.idle();
    const used = q.takeUsed();
    expect(used[0]!.len).toBe(1025);
  });
});

describe('hostile 20 (blk side): reset with requests in flight', () => {
  it('leaves the status byte alone when a request completes after reset', async () => {
    const disk = new DeferredDisk(MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    const sub = q.add({ readable: [header(T_OUT, 0), pattern(512, 1)], writable: [1] });
    q.kick();
    drv.write(MMIO.Status, 0);
    disk.release();
    await drv.transport.idle();
    expect(drv.mem.readU8(sub.writable[0]!.addr)).toBe(0xee);
    expect(q.usedIdx).toBe(0);
  });
});

describe('hostile 18 (blk side): the header is read once', () => {
  it('ignores a header the guest rewrites while the request is in flight', async () => {
    const disk = new DeferredDisk(MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    const h = header(T_OUT, 0);
    const sub = q.add({ readable: [h, pattern(512, 18)], writable: [1] });
    q.kick();
    // Find the header in guest RAM through the head descriptor and rewrite it: IN, sector 100.
    const hdrAddr = Number(drv.mem.readU64(q.desc + 16 * sub.head));
    drv.mem.write(hdrAddr, header(T_IN, 100));
    disk.release();
    await drv.transport.idle();
    expect(q.takeUsed()[0]!.len).toBe(1);
    expect(drv.mem.readU8(sub.writable[0]!.addr)).toBe(S_OK);
    const got = new Uint8Array(512);
    disk.inner.read(0, got);
    expect(got).toEqual(pattern(512, 18));
    disk.inner.read(100 * 512, got);
    expect(got).toEqual(new Uint8Array(512));
  });
});

describe('hostile 45: FLUSH waits for the backend', () => {
  it('does not complete FLUSH until the backend flush resolved', async () => {
    const disk = new DeferredDisk(MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    const sub = q.add({ readable: [header(T_FLUSH)], writable: [1] });
    q.kick();
    await new Promise((r) => setTimeout(r, 5));
    expect(disk.waiting.map((w) => w.kind)).toEqual(['flush']);
    expect(q.usedIdx).toBe(0);
    expect(drv.mem.readU8(sub.writable[0]!.addr)).toBe(0xee);
    disk.release();
    await drv.transport.idle();
    expect(q.usedIdx).toBe(1);
    expect(disk.flushes).toBe(1);
    expect(drv.mem.readU8(sub.writable[0]!.addr)).toBe(S_OK);
  });
});

describe('hostile 46: a failed flush sticks until reset', () => {
  for (const async of [false, true]) {
    it(`IOERR now and for later flushes, OK again after reset (${async ? 'async' : 'sync'})`, async () => {
      const disk = new FaultyDisk(MiB);
      disk.async = async;
      const drv = new TestDriver(new VirtioBlk(disk)).init();
      expect((await write(drv.queues[0]!, 0, pattern(512, 1))).status).toBe(S_OK);
      disk.failFlush = true;
      expect((await flush(drv.queues[0]!)).status).toBe(S_IOERR);
      disk.failFlush = false;
      expect((await flush(drv.queues[0]!)).status).toBe(S_IOERR);
      expect((await flush(drv.queues[0]!)).status).toBe(S_IOERR);
      drv.init(); // reset and probe again
      expect((await flush(drv.queues[0]!)).status).toBe(S_OK);
    });
  }
});

describe('hostile 47: write-through without FLUSH or with writeback=0', () => {
  it('flushes after every write when FLUSH is not negotiated', async () => {
    const disk = new FaultyDisk(MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init({ features: ~bit(BLK_F_FLUSH) });
    const q = drv.queues[0]!;
    expect((await write(q, 0, pattern(512, 1))).status).toBe(S_OK);
    expect((await request(q, [header(T_WRITE_ZEROES), segments([0, 1])], [1])).status).toBe(S_OK);
    expect(disk.log).toEqual(['write', 'flush', 'write', 'flush']); // zeroes through write: no writeZeroes
  });

  it('with writeback=0 a write completes only after its flush resolved; writeback=1 does not flush', async () => {
    const disk = new DeferredDisk(MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init({ features: ~bit(F_EVENT_IDX) });
    expect(drv.features & bit(BLK_F_CONFIG_WCE)).toBe(bit(BLK_F_CONFIG_WCE));
    const q = drv.queues[0]!;
    drv.transport.write(MMIO.Config + 32, 1, 0);
    q.add({ readable: [header(T_OUT, 0), pattern(512, 1)], writable: [1] });
    q.kick();
    disk.release(); // the write
    await new Promise((r) => setTimeout(r, 5));
    expect(disk.waiting.map((w) => w.kind)).toEqual(['flush']);
    expect(q.usedIdx).toBe(0);
    disk.release();
    await drv.transport.idle();
    expect(q.usedIdx).toBe(1);
    drv.transport.write(MMIO.Config + 32, 1, 1);
    q.add({ readable: [header(T_OUT, 0), pattern(512, 1)], writable: [1] });
    q.kick();
    disk.release();
    await drv.transport.idle();
    expect(q.usedIdx).toBe(2);
    expect(disk.flushes).toBe(1);
  });
});

describe('hostile 48: no guest number sizes a host allocation', () => {
  it('write-zeroes and discard over gigabytes allocate nothing on a sparse disk', async () => {
    const disk = new MemoryDisk(8 * 1024 * MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    const max = BLK_MAX_DWZ_SECTORS;
    const segs = segments([0, max], [max, max, 1], [2 * max, max], [3 * max, max - 1]);
    expect((await request(q, [header(T_WRITE_ZEROES), segs], [1])).status).toBe(S_OK);
    expect((await request(q, [header(T_DISCARD), segments([0, max])], [1])).status).toBe(S_OK);
    expect(disk.allocatedBytes).toBe(0);
  });

  it('does not copy a segment payload longer than the advertised maximum', () => {
    const mem = new FlatRam(0, 4 * MiB);
    const chain = new DescriptorChain(0, 0);
    mem.write(0, header(T_DISCARD));
    chain.addrs.push(0, 16, 3 * MiB);
    chain.lens.push(16, 2 * MiB, 1);
    chain.readableCount = 2;
    chain.readableBytes = 16 + 2 * MiB;
    chain.writableBytes = 1;
    const req = parseRequest(chain, mem, new Uint8Array(16), 16)!;
    expect(req.segments).toBeUndefined();
    expect(req.segmentBytes).toBe(2 * MiB);
    chain.lens[1] = 256;
    chain.readableBytes = 16 + 256;
    expect(parseRequest(chain, mem, new Uint8Array(16), 16)!.segments?.length).toBe(256);
  });

  it('serves reads and writes of many megabytes as zero-copy views of guest RAM', async () => {
    const disk = new MemoryDisk(64 * MiB);
    const drv = new TestDriver(new VirtioBlk(disk), new FlatRam(0x8000_0000, 32 * MiB)).init();
    const q = drv.queues[0]!;
    const r = await read(q, 0, 8 * MiB);
    expect(r.status).toBe(S_OK);
    expect(disk.allocatedBytes).toBe(0);
  });
});

describe('hostile 26/OUT: requests after a refused one still work', () => {
  it('keeps serving after IOERR and UNSUPP', async () => {
    const { q } = setup();
    await request(q, [header(99)], [1]);
    await read(q, 1 << 30, 512);
    expect((await write(q, 0, pattern(512, 5))).status).toBe(S_OK);
    expect((await read(q, 0, 512)).data).toEqual(pattern(512, 5));
    expect((await request(q, [header(T_OUT, 0)], [1])).status).toBe(S_OK); // zero-length write
  });
});
