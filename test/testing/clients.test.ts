/** storvm/testing's driver and clients as a user of the export sees them. */
import { describe, expect, it } from 'vitest';
import { FlatRam, MemFs, MemoryDisk, VirtioBlk, Virtio9p } from '../../src/index.js';
import { BlkClient, P9Client, RAM_BASE, RecordingMemory, S_OK, TestDriver } from '../../src/testing/index.js';


describe('TestDriver and BlkClient', () => {
  for (const packed of [false, true]) {
    it(`runs every blk request on ${packed ? 'packed' : 'split'} rings, over a GuestMemory that is not a FlatRam`, async () => {
      const disk = new MemoryDisk(1 << 20);
      const mem = new RecordingMemory(new FlatRam(RAM_BASE, 8 << 20)); // the driver's own memory, wrapped
      const drv = new TestDriver(new VirtioBlk(disk, { serial: 'client-test' }), mem).init({ packed });
      expect(drv.transport.queues[0]!.packed).toBe(packed);
      for (const indirect of [false, true]) {
        const blk = new BlkClient(drv.ring(0), indirect);
        const data = new Uint8Array(4096).map((_, i) => (i * 7) & 0xff);
        expect((await blk.write(8, data)).status).toBe(S_OK);
        const r = await blk.read(8, 4096);
        expect(r.status).toBe(S_OK);
        expect(r.data).toEqual(data);
        expect((await blk.flush()).status).toBe(S_OK);
        expect((await blk.writeZeroes([8, 4])).status).toBe(S_OK);
        expect((await blk.read(8, 2048)).data.every((b) => b === 0)).toBe(true);
        expect((await blk.discard([0, 8])).status).toBe(S_OK);
        expect(await blk.getId()).toBe('client-test');
      }
      expect(mem.log.length).toBeGreaterThan(0);
    });
  }
});

describe('P9Client', () => {
  it('mounts, creates, writes, reads and lists over virtio-9p', async () => {
    const c = new P9Client(new Virtio9p(new MemFs()));
    await c.mount();
    await c.walk(0, 1, []);
    await c.lcreate(1, 'hello.txt', 0o2 /* O_RDWR */);
    expect(await c.write(1, 0, 'hello 9p')).toBe(8);
    expect(new TextDecoder().decode(await c.read(1, 0, 100))).toBe('hello 9p');
    await c.clunk(1);
    await c.walk(0, 2, []);
    await c.lopen(2, 0o200000 /* O_DIRECTORY */);
    expect((await c.readdirAll(2)).map((d) => d.name).sort()).toEqual(['.', '..', 'hello.txt']);
  });
});
