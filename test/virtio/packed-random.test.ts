/**
 * Seeded randomized runs of a packed ring as a correct driver uses it: random ring sizes (powers of
 * two or not), chains of 1–5 descriptors direct or indirect, completions in random order, driver
 * event suppression switched at random. After every step: the device wrote only into the ring, its
 * event area and writable buffers of chains in flight; every used descriptor names a chain in
 * flight with its exact length; an interrupt came whenever the driver asked for one; none came
 * while it said DISABLE; the device never asked for a reset.
 */
import { describe, expect, it } from 'vitest';
import { FlatRam } from '../../src/memory/flat-ram.js';
import { RING_EVENT_FLAGS_DESC, RING_EVENT_FLAGS_DISABLE, RING_EVENT_FLAGS_ENABLE, STATUS_DEVICE_NEEDS_RESET } from '../../src/virtio/constants.js';
import { COMMON_FEATURES, PACKED_FEATURES } from '../../src/virtio/device.js';
import { RAM_BASE, RecordingMemory, type Submitted, TestDriver } from '../../src/testing/index.js';
import { mulberry32 } from '../support/prng.js';
import { TestDevice } from '../support/test-device.js';

async function run(seed: number): Promise<void> {
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const size = [1, 2, 3, 5, 7, 8, 12, 16, 33][int(9)]!;
  const dev = new TestDevice({ features: COMMON_FEATURES | PACKED_FEATURES, behaviour: 'fill', deferred: true, queues: [64] });
  const ram = new FlatRam(RAM_BASE, 8 << 20);
  const rec = new RecordingMemory(ram);
  const drv = new TestDriver(dev, ram, { deviceMem: rec }).init({ packed: true, queueSizes: [size] });
  const q = drv.packedQueues[0]!;
  const inFlight = new Map<number, { sub: Submitted; bytes: number }>();
  let slotsUsed = 0;
  let mode = RING_EVENT_FLAGS_ENABLE;
  const allowedWrite = (addr: number, len: number): boolean => {
    if (addr >= q.ring && addr + len <= q.ring + 16 * size) return true;
    if (addr >= q.deviceEvent && addr + len <= q.deviceEvent + 4) return true;
    for (const { sub } of inFlight.values()) for (const w of sub.writable) if (addr >= w.addr && addr + len <= w.addr + w.len) return true;
    return false;
  };
  for (let step = 0; step < 1500; step++) {
    const action = int(10);
    if (action < 4) {
      const nRead = int(3);
      const nWrite = int(3) + (nRead === 0 ? 1 : 0);
      // Valid chains only (an indirect table may not be longer than the ring).
      const indirect = rnd() < 0.3 && nRead + nWrite <= size;
      const slots = indirect ? 1 : nRead + nWrite;
      if (slots > size - slotsUsed || inFlight.size >= size) continue;
      const writable = Array.from({ length: nWrite }, () => 1 + int(64));
      const sub = q.add({ readable: Array.from({ length: nRead }, () => new Uint8Array(1 + int(32))), writable, indirect });
      slotsUsed += slots;
      inFlight.set(sub.head, { sub: { ...sub, descs: [slots] }, bytes: writable.reduce((a, b) => a + b, 0) });
    } else if (action < 6) {
      q.kick();
    } else if (action < 7) {
      mode = [RING_EVENT_FLAGS_ENABLE, RING_EVENT_FLAGS_DISABLE, RING_EVENT_FLAGS_DESC][int(3)]!;
      // DESC as Linux's enable_cb does: interrupt at the next used slot the driver will look at.
      q.setDriverEvent(mode, q.nextUsed, q.usedWrap);
    } else if (dev.waitingCount > 0) {
      const n = 1 + int(dev.waitingCount);
      const order = Array.from({ length: dev.waitingCount }, (_, i) => i).sort(() => rnd() - 0.5).slice(0, n);
      const before = drv.irq.raised;
      drv.ackInterrupt();
      rec.clear();
      dev.release(order);
      await new Promise((r) => setImmediate(r)); // the completions run on the promise queue
      const stray = rec.writes().find((w) => !allowedWrite(w.addr, w.len));
      expect(stray, `seed ${seed} step ${step}: a write outside the ring and the chains in flight`).toBeUndefined();
      if (mode === RING_EVENT_FLAGS_DISABLE) expect(drv.irq.raised, `seed ${seed}: interrupt under DISABLE`).toBe(before);
      else expect(drv.irq.raised, `seed ${seed} step ${step}: no interrupt (mode ${mode})`).toBeGreaterThan(before);
      for (const u of q.takeUsed()) {
        const f = inFlight.get(u.id);
        expect(f, `seed ${seed}: used id ${u.id} is not in flight`).toBeDefined();
        expect(u.len).toBe(f!.bytes);
        expect(q.readWritable(f!.sub).every((b) => b === 0x5a)).toBe(true);
        slotsUsed -= f!.sub.descs[0]!;
        inFlight.delete(u.id);
      }
      if (mode === RING_EVENT_FLAGS_DESC) q.setDriverEvent(mode, q.nextUsed, q.usedWrap);
    }
    expect(drv.status & STATUS_DEVICE_NEEDS_RESET, `seed ${seed}: ${drv.transport.needsResetReason}`).toBe(0);
  }
}

describe('packed ring, randomized', () => {
  for (let seed = 1; seed <= 12; seed++) it(`seed ${seed}`, () => run(seed));
});
