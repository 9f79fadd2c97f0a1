/**
 * When the warm-up runs. A booting hart (its first run() starts at instret 0) warms up at once,
 * before V8 first optimises the loop. A resumed one (instret > 0, as after a restore) waits for
 * its first million instructions, so a short run (a boot-cache restore has about 0.22 M left)
 * never pays for it. Its own file: the warm-up happens once per process and engine (vitest runs
 * each file in a fresh module graph).
 */
import { describe, expect, it } from 'vitest';
import { Hart } from '../../src/riscv/hart.js';
import { createWasmRam } from '../../src/riscv/jit.js';

const base = 0x8000_0000;
/** A hart on `j .` (jal x0, 0) at the start of RAM. */
function spinner(engine: 'interp' | 'wasm'): Hart {
  const ram = engine === 'wasm' ? createWasmRam(base, 1 << 16) : { base, bytes: new Uint8Array(1 << 16) };
  new DataView(ram.bytes.buffer, ram.bytes.byteOffset).setUint32(0, 0x0000_006f, true);
  const h = new Hart({ ram, engine });
  h.pcLo = base | 0;
  h.pcHi = 0;
  return h;
}

describe('warm-up timing', () => {
  it('a resumed hart waits for 1,000,000 instructions, then warms at its next run()', () => {
    const h = spinner('interp');
    h.instret = 5_000_000; // as a restore leaves it
    expect(Hart.warmedUp('interp')).toBe(false);
    expect(h.run(999_999)).toBe(999_999);
    h.run(1);
    expect(Hart.warmedUp('interp')).toBe(false); // a million exactly, but counted after this run
    h.run(1);
    expect(Hart.warmedUp('interp')).toBe(true);
    expect(h.instret).toBe(6_000_001);
    expect(h.pcLo).toBe(base | 0); // the guest's hart is untouched by it
  });

  it('a booting hart (instret 0) warms at its first run()', () => {
    const h = spinner('wasm');
    expect(Hart.warmedUp('wasm')).toBe(false);
    expect(h.run(10)).toBe(10);
    expect(Hart.warmedUp('wasm')).toBe(true);
    expect(h.instret).toBe(10);
    expect(h.pcLo).toBe(base | 0);
  });
});
