/**
 * storvm's virtio-blk and virtio-9p behind tombl/linux's virtio,wasm binding, end to end: the
 * device tree the driver probes, a wasm module making the kernel's calls, rings and buffers in the
 * kernel's WebAssembly.Memory (shared, as an SMP kernel's, and not), interrupts per ring.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { MemFs, type MemNode } from '../../src/backends/fs/mem-fs.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { VirtioWasmError, VirtioWasmHost } from '../../src/machine/virtio-wasm.js';
import { bit, DEVICE_ID_9P, DEVICE_ID_BLOCK, F_RING_PACKED, F_VERSION_1 } from '../../src/virtio/constants.js';
import type { BlockBackend } from '../../src/backends/block/backend.js';
import { flush, header, pattern, read, S_OK, T_IN, write } from '../../src/testing/index.js';
import { P9Session } from '../../src/testing/index.js';
import { Kernel, KERNEL_PAGE_SIZE, readDtb } from '../support/wasm-kernel.js';

const O_RDWR = 2;
const td = new TextDecoder();

for (const shared of [true, false]) {
  describe(`virtio,wasm end to end (${shared ? 'shared' : 'non-shared'} memory)`, () => {
    const boot = () => {
      const disk = new MemoryDisk(4 << 20);
      const fs = new MemFs();
      const blk = new VirtioBlk(disk, { serial: 'wasm-disk' });
      const p9 = new Virtio9p(fs, { tag: 'hostshare' });
      const k = new Kernel([blk, p9], { pages: 512, shared });
      return { k, disk, fs, blk, p9 };
    };

    it('describes each device in the device tree as virtio_wasm_probe reads it', () => {
      const { k, blk } = boot();
      const nodes = readDtb(k.dtb).children.filter((n) => n.name.startsWith('virtio'));
      expect(nodes.map((n) => n.name)).toEqual(['virtio0', 'virtio1']);
      const [b, p] = k.drivers;
      expect([b!.hostId, b!.deviceId, p!.hostId, p!.deviceId]).toEqual([0, DEVICE_ID_BLOCK, 1, DEVICE_ID_9P]);
      // blk offers packed rings; the host-call transport has split rings only and does not pass it on.
      expect(blk.features & bit(F_RING_PACKED)).toBe(bit(F_RING_PACKED));
      expect(b!.offered).toBe((blk.features & ~bit(F_RING_PACKED)) | bit(F_VERSION_1));
      expect(b!.offered & bit(F_RING_PACKED)).toBe(0n); // keeps the driver on split rings
      // The config the driver copied from the tree, then the host rewrote in place at setup.
      expect(b!.config(0, 8)).toBe(BigInt((4 << 20) / 512));
      expect(p!.config(0, 2)).toBe(9n);
      expect(td.decode(k.mem.view(p!.configAddr + 2, 9))).toBe('hostshare');
      expect(nodes[1]!.props.get('config')!.length).toBe(11); // trailing zeros left out
      // Every interrupt number is distinct: one per config space, one per ring.
      const all = k.drivers.flatMap((d) => [d.configIrq, d.init().irqOf.get(0)!]);
      expect(all.map((irq, i) => (i % 2 ? k.host.transports[(i - 1) / 2]!.queueIrq(0) : irq))).toEqual(all);
      expect(new Set(all).size).toBe(all.length);
    });

    it('reads and writes a disk through virtio-blk, interrupts on the ring\'s own number', async () => {
      const { k, disk } = boot();
      const d = k.drivers[0]!.init();
      const q = d.queues[0]!;
      const data = pattern(8192, 3);
      expect((await write(q, 8, data)).status).toBe(S_OK);
      expect((await flush(q)).status).toBe(S_OK);
      const back = await read(q, 8, 8192);
      expect(back.status).toBe(S_OK);
      expect(back.data).toEqual(data);
      const onDisk = new Uint8Array(8192);
      disk.read(8 * 512, onDisk);
      expect(onDisk).toEqual(data);
      expect(d.interruptsOf(d.irqOf.get(0)!)).toBeGreaterThan(0);
      expect(d.interruptsOf(d.configIrq)).toBe(0);
      expect(k.refused).toEqual([]);
    });

    it('serves a 9P2000.L session over virtio-9p', async () => {
      const { k, fs } = boot();
      const d = k.drivers[1]!.init();
      const c = new P9Session(d.queues[0]!);
      await c.mount(65536);
      await c.walk(0, 1, []);
      await c.lcreate(1, 'hello.txt', O_RDWR);
      const text = 'written by a kernel that is wasm\n'.repeat(100);
      expect(await c.write(1, 0, text)).toBe(text.length);
      await c.clunk(1);
      await c.walk(0, 2, ['hello.txt']);
      await c.lopen(2, 0);
      expect(td.decode(await c.read(2, 0, 8192))).toBe(text);
      expect((await c.getattr(2)).size).toBe(text.length);
      await c.walk(0, 3, []);
      await c.lopen(3, 0);
      const names = (await c.readdirAll(3)).map((e) => e.name).sort();
      expect(names).toEqual(['.', '..', 'hello.txt']);
      // The file is in the backend the host gave the device.
      const node = fs.lookup(fs.rootNode, 'hello.txt') as MemNode;
      expect(td.decode(node.data.bytes(node.size))).toBe(text);
      expect(d.interruptsOf(d.irqOf.get(0)!)).toBeGreaterThan(0);
      expect(k.refused).toEqual([]);
    });

    it('keeps both devices working while the kernel grows its memory and puts buffers there', async () => {
      const { k } = boot();
      const b = k.drivers[0]!.init();
      const p = k.drivers[1]!.init();
      const c = new P9Session(p.queues[0]!);
      await c.mount();
      const before = k.mem.size;
      k.memory.grow(64);
      expect(k.mem.size).toBe(before + 64 * KERNEL_PAGE_SIZE);
      // Skip to the new pages: every buffer from here on lies above the old end of memory.
      k.allocator.alloc(before - k.allocator.top, 1);
      const data = pattern(4096, 9);
      const w = await write(b.queues[0]!, 0, data);
      expect(w.status).toBe(S_OK);
      const r = await read(b.queues[0]!, 0, 4096);
      expect(k.allocator.top).toBeGreaterThan(before);
      expect(r.data).toEqual(data);
      // A ring placed in the new pages goes ready too.
      b.reset();
      b.negotiate();
      const q = b.setupQueue(0);
      expect(q.desc).toBeGreaterThanOrEqual(before);
      expect((await read(q, 0, 4096)).data).toEqual(data);
      await c.walk(0, 1, []);
      expect((await c.getattr(1)).mode & 0o170000).toBe(0o040000);
    });

    it('drops a device\'s in-flight work on reset without touching the other device', async () => {
      const { k } = boot();
      const b = k.drivers[0]!.init();
      const p = k.drivers[1]!.init();
      const c = new P9Session(p.queues[0]!);
      await c.mount();
      b.reset();
      expect(k.host.transports[0]!.active).toBe(false);
      expect(k.host.transports[1]!.active).toBe(true);
      await c.walk(0, 1, []);
      b.negotiate();
      b.setupQueue(0);
      expect((await read(b.queues[0]!, 0, 512)).status).toBe(S_OK);
    });
  });
}

/** A backend whose reads finish when the test says, into the views they were given then. */
class LateReads implements BlockBackend {
  readonly inner = new MemoryDisk(1 << 20);
  readonly readOnly = false;
  readonly waiting: Array<() => void> = [];
  get size(): number {
    return this.inner.size;
  }
  read(offset: number, dst: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.waiting.push(() => {
        try {
          this.inner.read(offset, dst);
          resolve();
        } catch (e) {
          reject(e);
        }
      }),
    );
  }
  write(offset: number, src: Uint8Array): void {
    this.inner.write(offset, src);
  }
  flush(): void {}
  release(): void {
    for (const w of this.waiting.splice(0)) w();
  }
}

describe('virtio,wasm: completions arrive by interrupt, as the kernel takes them', () => {
  it('reads that finish late are collected by the ring\'s interrupt handler, with EVENT_IDX re-armed', async () => {
    const disk = new LateReads();
    for (let i = 0; i < 4; i++) disk.inner.write(i * 4096, pattern(4096, 10 + i));
    const k = new Kernel([new VirtioBlk(disk)], { pages: 64 });
    const d = k.drivers[0]!.init();
    const q = d.queues[0]!;
    const done: number[] = [];
    let all: () => void = () => {};
    const finished = new Promise<void>((resolve) => (all = resolve));
    d.onRing = () => {
      // vring_interrupt() -> the driver's callback: take what is used, then ask for the next one.
      for (const u of q.takeUsed()) done.push(u.id);
      q.setUsedEvent(q.lastUsed);
      if (done.length === 4) all();
    };
    q.setUsedEvent(0);
    const subs = [0, 1, 2, 3].map((i) => q.add({ readable: [header(T_IN, i * 8)], writable: [4096, 1] }));
    q.kick(); // one notify for the batch, from wasm
    expect(disk.waiting.length).toBe(4);
    expect(done).toEqual([]);
    disk.release();
    await finished;
    expect(done.sort()).toEqual(subs.map((s) => s.head).sort());
    subs.forEach((s, i) => expect(q.readWritable(s).subarray(0, 4096)).toEqual(pattern(4096, 10 + i)));
    expect(k.raised.every((irq) => irq === d.irqOf.get(0))).toBe(true);
    expect(k.raised.length).toBeLessThanOrEqual(4);
  });
});

describe('virtio,wasm: the kernel grows its memory while a read is in flight', () => {
  const start = (shared: boolean) => {
    const disk = new LateReads();
    disk.inner.write(0, pattern(4096, 5));
    const k = new Kernel([new VirtioBlk(disk)], { pages: 64, shared });
    const d = k.drivers[0]!.init();
    const q = d.queues[0]!;
    const sub = q.add({ readable: [header(T_IN, 0)], writable: [4096, 1] });
    q.kick();
    expect(disk.waiting.length).toBe(1);
    k.memory.grow(1);
    disk.release();
    return { k, d, q, sub, disk };
  };

  it('shared memory: the views stay valid and the read completes with its data', async () => {
    const { d, q, sub } = start(true);
    await d.idle();
    expect(q.takeUsed()).toEqual([{ id: sub.head, len: 4097 }]);
    expect(q.readWritable(sub).subarray(0, 4096)).toEqual(pattern(4096, 5));
  });

  it('non-shared memory: the read went to a bounce buffer, not the detached one, and completes with its data', async () => {
    const { k, d, q, sub } = start(false);
    await d.idle();
    expect(q.takeUsed()).toEqual([{ id: sub.head, len: 4097 }]);
    expect(q.readWritable(sub).subarray(0, 4096)).toEqual(pattern(4096, 5));
    expect(k.host.transports[0]!.broken).toBe(false);
    expect(k.needsReset).toEqual([]);
  });
});

describe('virtio,wasm device tree', () => {
  it('refuses a device whose config is longer than the driver reads', () => {
    const host = new VirtioWasmHost({
      memory: new WebAssembly.Memory({ initial: 1 }),
      devices: [new Virtio9p(new MemFs(), { tag: 'x'.repeat(255) })],
      raiseIrq: () => {},
    });
    expect(() => host.deviceTreeNodes()).toThrow(VirtioWasmError);
    expect(() => host.deviceTreeNodes()).toThrow(/257 bytes; virtio_wasm reads at most 256/);
  });
});

describe('examples/wasm-kernel-host.ts', () => {
  it('runs and describes both devices as the driver will probe them', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'examples/wasm-kernel-host.ts'], {
      cwd: new URL('../../', import.meta.url),
      encoding: 'utf8',
    });
    expect(out).toMatch(/^virtio0: compatible virtio,wasm, host-id 0, virtio-device-id 2, features 0x1[0-9a-f]{8}, config \d+ bytes$/m);
    expect(out).toMatch(/^virtio1: compatible virtio,wasm, host-id 1, virtio-device-id 9, features 0x1[0-9a-f]{8}, config 6 bytes$/m);
    expect(out).toContain('imports: set_features setup reset enable_vring disable_vring notify config_written');
  });
});
