/**
 * The warm-up waits for a hart's first million instructions, so a short run (a boot-cache
 * restore has about 0.22 M left) never pays for it, and a long one gets it early. Its own file:
 * the warm-up happens once per process (vitest runs each file in a fresh module graph).
 */
import { describe, expect, it } from 'vitest';
import { Hart } from '../../src/riscv/hart.js';

describe('deferred warm-up', () => {
  it('runs at the first run() after 1,000,000 instructions, and not before', () => {
    const base = 0x8000_0000;
    const bytes = new Uint8Array(1 << 16);
    new DataView(bytes.buffer).setUint32(0, 0x0000_006f, true); // j . (jal x0, 0)
    const h = new Hart({ ram: { base, bytes }, engine: 'interp' });
    h.pcLo = base | 0;
    h.pcHi = 0;
    expect(Hart.warmedUp('interp')).toBe(false);
    expect(h.run(999_999)).toBe(999_999);
    h.run(1);
    expect(Hart.warmedUp('interp')).toBe(false); // a million exactly, but counted after this run
    h.run(1);
    expect(Hart.warmedUp('interp')).toBe(true);
    expect(h.instret).toBe(1_000_001);
    expect(h.pcLo).toBe(base | 0); // the guest's hart is untouched by it
  });
});
