/**
 * The warm-up program (src/riscv/warmup.ts) that every process runs once before its first
 * guest: it must run every instruction kind through to its WFI, on both engines alike, and
 * leave the harts a guest gets untouched.
 */
import { describe, expect, it } from 'vitest';
import { Hart, type CpuEngine } from '../../src/riscv/hart.js';
import { createWasmRam } from '../../src/riscv/jit.js';
import { C_MCAUSE } from '../../src/riscv/state.js';
import { loadWarmUp, WARMUP_BUS, WARMUP_RAM, WARMUP_STRADDLE } from '../../src/riscv/warmup.js';

const BASE = 0x8000_0000;

function runWarmUp(engine: CpuEngine) {
  const ram = engine === 'wasm' ? createWasmRam(BASE, WARMUP_RAM) : { base: BASE, bytes: new Uint8Array(WARMUP_RAM) };
  const h = new Hart({ ram, bus: WARMUP_BUS, engine, hotThreshold: 2, batch: 1 });
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

  // V8 optimises the interpreter's loop from what it has run: a path a guest takes that the
  // warm-up did not is an "insufficient type feedback" deoptimisation and a recompile of the
  // whole loop (bench/README.md). Each path below was one in a Linux boot.
  it.each(['interp', 'wasm'] as const)('takes the paths a kernel takes (%s)', (engine) => {
    const ram = engine === 'wasm' ? createWasmRam(BASE, WARMUP_RAM) : { base: BASE, bytes: new Uint8Array(WARMUP_RAM) };
    const device = { reads: 0, writes: 0 };
    const bus = {
      read: (pa: number, size: number, out: Int32Array) => { const ok = WARMUP_BUS.read(pa, size, out); if (ok) device.reads++; return ok; },
      write: (pa: number, size: number, lo: number, hi: number) => { const ok = WARMUP_BUS.write(pa, size, lo, hi); if (ok) device.writes++; return ok; },
    };
    const h = new Hart({ ram, bus, engine, hotThreshold: 2, batch: 1 });
    let sbi = 0;
    h.onEcallFromS = (x) => { if (x.xl[17] !== 1) return false; sbi++; return true; };
    loadWarmUp(h, ram.bytes);
    const privs = new Set<number>();
    let interrupts = 0, pagedS = 0, landings = 0, straddles = 0;
    for (let i = 0; i < 20_000 && !h.waiting; i++) {
      const before = (h.pcLo >>> 0) - BASE;
      h.run(1);
      const pc = (h.pcLo >>> 0) - BASE;
      privs.add(h.priv);
      if (h.priv === 1 && h.satpMode === 8) pagedS++;
      if (pc >= 0x2000 && pc < 0x2100 && before < 0x2000 && h.c64[C_MCAUSE + 1]! < 0) interrupts++;
      if (before >= 0x1000 && before < 0x1100 && pc >= 0xf00 && pc < 0x1000) landings++; // branch out of page 1
      if (before === WARMUP_STRADDLE && pc === WARMUP_STRADDLE + 4) straddles++; // a 32-bit instruction across a page end
    }
    expect(h.waiting).toBe(true);
    expect([...privs].sort()).toEqual([0, 1, 3]); // U, S and M
    expect(interrupts).toBe(3); // once per round of the loop
    expect(sbi).toBe(3);
    expect(pagedS).toBeGreaterThan(3 * 8); // S-mode code under Sv39
    expect(device).toEqual({ reads: 9, writes: 6 }); // lw, ld (M) and lw (S, paged) per round; sw, sd
    expect(landings).toBe(18); // six branch kinds, three rounds
    expect(straddles).toBe(3);
  });
});
