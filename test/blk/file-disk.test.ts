import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ReadOnlyError } from '../../src/backends/block/backend.js';
import { BLK_F_RO } from '../../src/devices/blk/constants.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { FileDisk } from '../../src/node/file-disk.js';
import { bit, MMIO } from '../../src/virtio/constants.js';
import { diffBytes, flush, header, pattern, read, request, S_IOERR, S_OK, segments, T_DISCARD, write } from '../../src/testing/index.js';
import { TestDriver } from '../../src/testing/index.js';

const MiB = 1 << 20;
let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'storvm-filedisk-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('FileDisk', () => {
  it('reads and writes a raw image through the device, with positional I/O', async () => {
    const path = join(dir, 'a.img');
    const initial = pattern(4 * MiB, 1);
    await writeFile(path, initial);
    const disk = await FileDisk.open(path);
    expect(disk.size).toBe(4 * MiB);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    expect((await read(q, 2048, 65536)).data).toEqual(initial.subarray(MiB, MiB + 65536));
    const data = pattern(12288, 2);
    expect((await write(q, 7, data)).status).toBe(S_OK);
    expect((await flush(q)).status).toBe(S_OK);
    expect((await request(q, [header(T_DISCARD), segments([100, 8])], [1])).status).toBe(S_OK);
    await disk.close();
    const want = initial.slice();
    want.set(data, 7 * 512);
    want.fill(0, 100 * 512, 108 * 512);
    expect(diffBytes(new Uint8Array(await readFile(path)), want)).toBe('equal');
  });

  it('serves offsets past 4 GiB of a sparse file', async () => {
    const path = join(dir, 'big.img');
    const size = 5 * 1024 * MiB;
    const disk = await FileDisk.create(path, size);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    const q = drv.queues[0]!;
    const sector = (4 * 1024 * MiB + 4096) / 512;
    expect((await write(q, sector, pattern(4096, 3))).status).toBe(S_OK);
    expect((await read(q, sector, 4096)).data).toEqual(pattern(4096, 3));
    expect((await read(q, size / 512 - 8, 4096)).data).toEqual(new Uint8Array(4096));
    await disk.close();
    expect((await stat(path)).size).toBe(size);
  });

  it('opens read-only when asked: the device offers RO and nothing reaches the file', async () => {
    const path = join(dir, 'ro.img');
    const initial = pattern(MiB, 4);
    await writeFile(path, initial);
    const disk = await FileDisk.open(path, { readOnly: true });
    await expect(disk.write(0, new Uint8Array(512))).rejects.toBeInstanceOf(ReadOnlyError);
    const drv = new TestDriver(new VirtioBlk(disk)).init();
    expect(drv.features & bit(BLK_F_RO)).toBe(bit(BLK_F_RO));
    const q = drv.queues[0]!;
    expect((await write(q, 0, pattern(512, 5))).status).toBe(S_IOERR);
    expect((await request(q, [header(T_DISCARD), segments([0, 8])], [1])).status).toBe(S_IOERR);
    expect((await read(q, 0, 512)).data).toEqual(initial.subarray(0, 512));
    await disk.close();
    expect(diffBytes(new Uint8Array(await readFile(path)), initial)).toBe('equal');
  });

  it('flushes with fdatasync, and a failed fdatasync is IOERR for this and later flushes', async () => {
    const path = join(dir, 'sync.img');
    await writeFile(path, new Uint8Array(MiB));
    const probe = await open(path, 'r');
    const proto = Object.getPrototypeOf(probe) as { datasync(): Promise<void> };
    await probe.close();
    const original = proto.datasync;
    const order: string[] = [];
    let fail = false;
    const spy = vi.spyOn(proto, 'datasync').mockImplementation(async function (this: unknown) {
      order.push('datasync');
      if (fail) throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      return original.call(this);
    });
    try {
      const disk = await FileDisk.open(path);
      const drv = new TestDriver(new VirtioBlk(disk)).init();
      const q = drv.queues[0]!;
      expect((await write(q, 0, pattern(512, 1))).status).toBe(S_OK);
      expect(order).toEqual([]); // write-back: no sync per write
      const f = await flush(q);
      expect(f.status).toBe(S_OK);
      expect(order).toEqual(['datasync']);
      fail = true;
      expect((await flush(q)).status).toBe(S_IOERR);
      fail = false;
      expect((await flush(q)).status).toBe(S_IOERR);
      drv.init();
      expect((await flush(drv.queues[0]!)).status).toBe(S_OK);
      drv.transport.write(MMIO.Config + 32, 1, 0); // writeback = 0: write-through
      order.length = 0;
      expect((await write(drv.queues[0]!, 0, pattern(512, 2))).status).toBe(S_OK);
      expect(order).toEqual(['datasync']);
      await disk.close();
    } finally {
      spy.mockRestore();
    }
  });

  it('keeps the bytes a completed FLUSH covered when the process is killed with SIGKILL', async () => {
    const path = join(dir, 'durable.img');
    await writeFile(path, new Uint8Array(2 * MiB));
    const child = fileURLToPath(new URL('./flush-child.ts', import.meta.url));
    const proc = spawn(process.execPath, ['--import', 'tsx', child, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => proc.on('exit', (code, sig) => resolve(sig ?? code)));
    await new Promise<void>((resolve, reject) => {
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('FLUSHED')) {
          proc.kill('SIGKILL');
          resolve();
        }
      });
      void exited.then(() => reject(new Error(`child exited before FLUSH: ${err}`)));
    });
    expect(await exited).toBe('SIGKILL');
    expect(out.trim()).toBe('FLUSHED 0');
    const file = new Uint8Array(await readFile(path));
    for (let i = 0; i < 16; i++) {
      expect(diffBytes(file.subarray(i * 4096, (i + 1) * 4096), pattern(4096, 100 + i)), `block ${i}`).toBe('equal');
    }
  });
});
