/**
 * Seeded randomized test of the host-call transport: 30,000 random host calls (resets, features,
 * setup, rings enabled and disabled at random places and sizes, config writes, kicks) among random
 * descriptor tables in a WebAssembly.Memory. After every step: nothing threw, and the device wrote
 * only into a used ring of a ready queue, the config buffer, or the data area where every
 * descriptor of the tables points (when it points inside memory at all).
 */
import { describe, expect, it } from 'vitest';
import { WasmMemoryRam } from '../../src/memory/wasm-memory-ram.js';
import { DESC_F_INDIRECT } from '../../src/virtio/constants.js';
import { HostCallTransport } from '../../src/virtio/host-call.js';
import { mulberry32 } from '../support/prng.js';
import { TestDevice } from '../support/test-device.js';
import { RecordingMemory } from '../../src/testing/index.js';

const PAGE = 0x1_0000;
const MEM = 16 * PAGE;
const RINGS = 0x1_0000; // rings are placed in [RINGS, CONFIG)
const CONFIG = 0x7_f000; // the driver's config buffer, 0x100 bytes
const DATA = 0x8_0000; // buffers and indirect tables, up to the end of memory

describe('randomized host calls (seeded)', () => {
  it('survives 30,000 random host calls among random descriptor tables with invariants intact', async () => {
    const rnd = mulberry32(0x17_2026);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const memory = new WebAssembly.Memory({ initial: MEM / PAGE });
    const ram = new WasmMemoryRam(memory);
    const trace = new RecordingMemory(ram);
    const dev = new TestDevice({ queues: [8, 16], behaviour: 'fill' });
    let irqs = 0;
    const t = new HostCallTransport(dev, trace, { raiseIrq: () => irqs++, ringAlign: 4096 });
    const availIdx = [0, 0];
    let served = 0;
    let config = [0, 0]; // the config buffer the transport last accepted

    const randomAddr = () => {
      const r = rnd();
      if (r < 0.85) return DATA + Math.floor(rnd() * (MEM - DATA - 64));
      if (r < 0.95) return MEM - Math.floor(rnd() * 64); // at or just below the end
      return Math.floor(rnd() * 2 ** 32) * 2 ** Math.floor(rnd() * 33); // far outside
    };
    const writeDesc = (at: number, size: number) => {
      if (!ram.contains(at, 16)) return;
      ram.writeU64(at, BigInt(Math.min(randomAddr(), 2 ** 64 - 1)));
      ram.writeU32(at + 8, rnd() < 0.9 ? Math.floor(rnd() * 64) : Math.floor(rnd() * 2 ** 32));
      let flags = Math.floor(rnd() * 8);
      if (rnd() < 0.6) flags &= ~DESC_F_INDIRECT;
      ram.writeU16(at + 12, flags);
      ram.writeU16(at + 14, Math.floor(rnd() * (size + 2)));
    };

    for (let step = 0; step < 30_000; step++) {
      trace.clear();
      const r = rnd();
      // The rings as they are before the call: a call may only write where they were or are now.
      const usedRings = t.queues.filter((q) => q.ready).map((q) => [q.deviceAddr, q.deviceAddr + 6 + 8 * q.size]);
      if (r < 0.01 || ((!t.active || t.broken) && r < 0.3)) {
        // A proper probe now and then, and often once the device is down, so most steps hit live rings.
        t.reset();
        availIdx.fill(0);
        if (rnd() < 0.8) {
          t.setFeatures(t.offeredFeatures);
          t.queues.forEach((_, i) => {
            const size = pick([1, 2, 4, 8]);
            const desc = RINGS + i * 0x8000;
            ram.fill(desc, 0x8000, 0);
            t.enableVring(i, size, desc, 1 + i);
          });
        }
      } else if (r < 0.05) {
        t.setFeatures(rnd() < 0.7 ? t.offeredFeatures : BigInt(Math.floor(rnd() * 2 ** 32)) << BigInt(Math.floor(rnd() * 33)));
      } else if (r < 0.07) {
        const len = pick([0x100, 0x100, 16, 0, 0xffff_ffff]);
        const addr = rnd() < 0.9 ? CONFIG : randomAddr();
        if (t.setup(Math.floor(rnd() * 64), addr, len)) config = [addr, addr + Math.min(len, 0xf00)];
      } else if (r < 0.13) {
        const index = pick([0, 1, 1, 2, 0xffff_ffff]);
        const desc = rnd() < 0.8 ? RINGS + 16 * Math.floor(rnd() * ((CONFIG - RINGS - 0x3000) / 16)) : randomAddr();
        if (t.enableVring(index, pick([1, 2, 4, 8, 16, 0, 3, 32]), desc, Math.floor(rnd() * 64))) {
          const q = t.queues[index]!;
          ram.fill(q.descAddr, q.deviceAddr + 6 + 8 * q.size - q.descAddr, 0);
          availIdx[index] = 0;
        }
      } else if (r < 0.15) {
        t.disableVring(pick([0, 1, 5]));
      } else if (r < 0.16) {
        ram.writeU8(CONFIG + Math.floor(rnd() * 16), Math.floor(rnd() * 256));
        t.configWritten();
      } else if (r < 0.5) {
        // The driver rewrites a few descriptors of a ready queue, or of an indirect table.
        const q = pick(t.queues);
        if (q.ready) for (let i = 0; i < 3; i++) writeDesc(rnd() < 0.8 ? q.descAddr + 16 * Math.floor(rnd() * q.size) : DATA + 16 * Math.floor(rnd() * 1024), q.size);
      } else {
        const index = pick([0, 1, 1, 7]);
        const q = t.queues[index];
        if (q?.ready) {
          const n = rnd() < 0.95 ? 1 + Math.floor(rnd() * 3) : Math.floor(rnd() * 0x10000);
          for (let i = 0; i < Math.min(n, q.size); i++) {
            ram.writeU16(q.driverAddr + 4 + 2 * ((availIdx[index]! + i) % q.size), Math.floor(rnd() * (q.size + 1)));
          }
          availIdx[index] = (availIdx[index]! + n) & 0xffff;
          ram.writeU16(q.driverAddr + 2, availIdx[index]!);
        }
        const before = dev.handled.length;
        t.notify(index);
        served += dev.handled.length - before;
      }
      for (const q of t.queues) if (q.ready) usedRings.push([q.deviceAddr, q.deviceAddr + 6 + 8 * q.size]);
      const allowed = [...usedRings, config, [DATA, MEM]];
      for (const w of trace.writes()) {
        const ok = allowed.some(([a, b]) => w.addr >= a! && w.addr + w.len <= b!);
        if (!ok) expect.fail(`step ${step}: a device write of ${w.len} bytes at 0x${w.addr.toString(16)} is outside rings, config and data`);
      }
    }
    await t.idle();
    // The run reached the interesting states, not only refusals.
    expect(served).toBeGreaterThan(1000);
    expect(irqs).toBeGreaterThan(100);
  });
});
