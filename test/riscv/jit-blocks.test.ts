/**
 * A page entered at more offsets than a chain-cache entry can name blocks (CHAIN_MAX_BLOCKS):
 * the translation keeps the first 1024 entries and the interpreter runs the rest, so a chained
 * jump to any of them lands where the interpreter would.
 */
import { describe, expect, it } from 'vitest';
import { Hart } from '../../src/riscv/hart.js';
import { createWasmRam } from '../../src/riscv/jit.js';
import type { CpuEngine } from '../../src/riscv/engine.js';

const BASE = 0x8000_0000;
const I = (imm: number, rs1: number, f3: number, rd: number, opc: number) => (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc) >>> 0;
const B = (imm: number, rs1: number, rs2: number, f3: number) =>
  ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 63) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (((imm >> 1) & 15) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;

function run(engine: CpuEngine) {
  const ram = engine === 'wasm' ? createWasmRam(BASE, 1 << 20) : { base: BASE, bytes: new Uint8Array(1 << 20) };
  const h = new Hart({ ram, engine, hotThreshold: 1, batch: 1 });
  const dv = new DataView(ram.bytes.buffer, ram.bytes.byteOffset);
  // Page 1: 2048 c.addi x6, 1 (each counts, so a wrong entry block shows in x6).
  for (let o = 0; o < 4096; o += 2) dv.setUint16(0x1000 + o, 0x0305, true);
  // Page 2: x5 += 2 (wrapping to x8 at x7), x9++, jalr x0, 0(x5): 1500 distinct entries, again and again.
  [I(2, 5, 0, 5, 0x13), I(1, 9, 0, 9, 0x13), B(8, 5, 7, 4), I(0, 8, 0, 5, 0x13), I(0, 5, 0, 0, 0x67)]
    .forEach((w, i) => dv.setUint32(0x2000 + 4 * i, w, true));
  h.xl[8] = (BASE + 0x1000) | 0;
  h.xl[5] = h.xl[8]!;
  h.xl[7] = (BASE + 0x1000 + 3000) | 0;
  h.setPc(BASE + 0x2000);
  for (let i = 0; i < 400; i++) h.run(20_011);
  return { x5: h.xl[5], x6: h.xl[6], x9: h.xl[9], pc: h.pcLo, instret: h.instret, translated: (h.jit?.stats.retired ?? 1) > 0 };
}

describe('a page with more entries than a chain-cache entry can name', () => {
  it('runs as the interpreter does', () => {
    const a = run('interp'), b = run('wasm');
    expect(a.x9).toBeGreaterThan(3000); // every entry offset more than twice
    expect(b.translated).toBe(true);
    expect(b).toEqual({ ...a, translated: true });
  });
});
