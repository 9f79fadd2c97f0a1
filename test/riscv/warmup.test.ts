/**
 * The warm-up program (src/riscv/warmup.ts) that every process runs once before its first
 * guest: it must run every instruction kind through to its WFI, on both engines alike, and
 * leave the harts a guest gets untouched.
 */
import { describe, expect, it } from 'vitest';
import { Hart, type CpuEngine } from '../../src/riscv/hart.js';
import { createWasmRam } from '../../src/riscv/jit.js';
import { loadWarmUp, WARMUP_RAM } from '../../src/riscv/warmup.js';

const BASE = 0x8000_0000;

function runWarmUp(engine: CpuEngine) {
  const ram = engine === 'wasm' ? createWasmRam(BASE, WARMUP_RAM) : { base: BASE, bytes: new Uint8Array(WARMUP_RAM) };
  const h = new Hart({ ram, engine, hotThreshold: 2, batch: 1 });
  loadWarmUp(h, ram.bytes);
  const counts: number[] = [];
  for (let i = 0; i < 64 && !h.waiting; i++) counts.push(h.run(1 + i * 29));
  return { h, counts, x: Array.from(h.xl.subarray(1, 32)).map((l, i) => [l, h.xh[i + 1]]), f: Array.from(h.fi), ram: ram.bytes };
}

describe('warm-up program', () => {
  it('runs its loop three times to the WFI, with the same state on both engines', () => {
    const a = runWarmUp('interp'), b = runWarmUp('wasm');
    expect(a.h.waiting).toBe(true);
    expect(a.h.xl[5]).toBe(0); // the loop ran out
    expect(a.h.instret).toBeGreaterThan(400);
    expect({ counts: b.counts, x: b.x, f: b.f, pc: b.h.pcLo, instret: b.h.instret })
      .toEqual({ counts: a.counts, x: a.x, f: a.f, pc: a.h.pcLo, instret: a.h.instret });
    expect(Buffer.from(b.ram).equals(Buffer.from(a.ram))).toBe(true);
    expect(b.h.jit!.stats.retired).toBeGreaterThan(0); // and part of it ran translated
  });

  it('leaves a new hart in its reset state', () => {
    const ram = createWasmRam(BASE, 1 << 20);
    const h = new Hart({ ram, engine: 'wasm' });
    expect(h.instret).toBe(0);
    expect(Array.from(h.xl.subarray(0, 32)).every((v) => v === 0)).toBe(true);
    expect(h.jit!.stats.compiled).toBe(0);
    expect(ram.bytes.every((v) => v === 0)).toBe(true);
  });
});
