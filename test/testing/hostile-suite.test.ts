/**
 * storvm/testing's runHostileSuite: it passes for storvm's own devices (split and packed, sync and
 * async backends) and it catches devices that break the rules.
 */
import { describe, expect, it } from 'vitest';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { MemFs } from '../../src/backends/fs/mem-fs.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import type { DescriptorChain } from '../../src/virtio/chain.js';
import { COMMON_FEATURES, type DeviceContext, PACKED_FEATURES, QueueDevice, type VirtioDevice } from '../../src/virtio/device.js';
import { DeferredDisk, formatFailures, runHostileSuite } from '../../src/testing/index.js';

/** A disk that answers every operation on a later macrotask, like a host file. */
class SlowDisk extends DeferredDisk {
  override read(offset: number, dst: Uint8Array): Promise<void> {
    return new Promise((r) => setTimeout(() => (this.inner.read(offset, dst), r()), 1));
  }
  override write(offset: number, src: Uint8Array): Promise<void> {
    return new Promise((r) => setTimeout(() => (this.inner.write(offset, src), r()), 1));
  }
  override flush(): Promise<void> {
    return new Promise((r) => setTimeout(r, 1));
  }
}

describe('runHostileSuite on storvm devices', () => {
  const devices: Array<[string, () => VirtioDevice]> = [
    ['virtio-blk over MemoryDisk', () => new VirtioBlk(new MemoryDisk(1 << 20))],
    ['virtio-blk over a slow async disk', () => new VirtioBlk(new SlowDisk(1 << 20))],
    ['virtio-blk, split rings only', () => new VirtioBlk(new MemoryDisk(1 << 20), { packed: false })],
    ['virtio-9p over MemFs', () => new Virtio9p(new MemFs())],
  ];
  for (const [name, make] of devices) {
    it(`passes for ${name}`, async () => {
      const report = await runHostileSuite(make);
      expect(formatFailures(report)).toBe('');
      const lines = new Set(report.results.filter((r) => !r.skipped).map((r) => r.line));
      for (let l = 1; l <= 21; l++) expect(lines.has(l), `line ${l}`).toBe(true);
      expect(lines.has(49)).toBe(true);
      if (!name.includes('split')) expect(lines.has(50) && lines.has(51)).toBe(true);
    });
  }
});

/** A device that pops its own queue and gets the rules wrong in ways chosen by the test. */
class CarelessDevice implements VirtioDevice {
  readonly deviceId = 0x3e;
  readonly features = COMMON_FEATURES | PACKED_FEATURES;
  readonly queueMaxSizes = [64];
  private ctx: DeviceContext | undefined;
  constructor(private readonly fault: 'ignores-error' | 'overclaims' | 'throws' | 'late-write') {}
  private late: Array<() => void> = [];
  readConfig(): number {
    return 0;
  }
  writeConfig(): void {}
  activate(ctx: DeviceContext): void {
    this.ctx = ctx;
  }
  reset(): void {
    this.ctx = undefined;
    // late-write: in-flight work still lands after the reset, with nothing telling the transport.
    for (const w of this.late) setTimeout(w, 1);
    this.late = [];
  }
  idle(): Promise<void> {
    return Promise.resolve();
  }
  notify(i: number): void {
    const ctx = this.ctx!;
    const q = ctx.queues[i]!;
    for (let c = q.pop(ctx.mem); c !== null; c = q.pop(ctx.mem)) this.serve(ctx.mem, q, c);
    if (q.broken !== undefined) ctx.needsReset(q.broken);
    ctx.signalUsed(i);
  }
  private serve(mem: GuestMemory, q: DeviceContext['queues'][number], c: DescriptorChain): void {
    if (this.fault === 'throws' && c.readableBytes > 20) throw new Error('device bug');
    if (c.error !== undefined && this.fault !== 'ignores-error') {
      q.addUsed(mem, c, 0);
      return;
    }
    const w = c.writer(mem);
    if (this.fault === 'late-write' && w.remaining > 0) {
      this.late.push(() => mem.fill(c.addrs[c.readableCount]!, 1, 0x77));
    }
    w.zero(w.remaining);
    // overclaims: reports more than it wrote (the queue clamps; the suite sees the clamped len).
    q.addUsed(mem, c, this.fault === 'overclaims' ? 1 << 20 : w.written);
  }
}

describe('runHostileSuite catches broken devices', () => {
  it('a device that serves refused chains fails the refusal lines', async () => {
    const report = await runHostileSuite(() => new CarelessDevice('ignores-error'));
    const failed = new Set(report.failures.map((f) => f.line));
    for (const l of [9, 12]) expect(failed.has(l), `line ${l}`).toBe(true);
    expect(report.ok).toBe(false);
  });

  it('a device that throws fails line 19', async () => {
    const report = await runHostileSuite(() => new CarelessDevice('throws'));
    expect(report.failures.some((f) => f.line === 19 && /threw/.test(f.detail ?? ''))).toBe(true);
  });

  it('a device that writes after reset without saying it is busy fails line 49', async () => {
    const report = await runHostileSuite(() => new CarelessDevice('late-write'), { only: [49] });
    expect(report.failures.map((f) => f.line)).toEqual([49]);
  });

  it('a correct device built the same way passes', async () => {
    const report = await runHostileSuite(() => new CarelessDevice('overclaims'));
    expect(formatFailures(report)).toBe('');
  });
});
