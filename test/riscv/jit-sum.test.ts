/**
 * mstatus.SUM selects a data TLB set (state.ts). Translated code that clears SUM and then jumps
 * to another translated page (chained in the dispatcher, without JavaScript) must use the new
 * set there: an S-mode load from a U page then faults, though the SUM set still holds it.
 */
import { describe, expect, it } from 'vitest';
import { Hart, type CpuEngine } from '../../src/riscv/hart.js';
import { createWasmRam } from '../../src/riscv/jit.js';
import { C_MTVEC } from '../../src/riscv/state.js';
import { ADDI, CSRRS, CSRRW, I, JALR, MRET } from './support/rvasm.js';

const BASE = 0x8000_0000;
const A = 0x1000, B = 0x3000, HANDLER = 0x5000, UPAGE = 0x8000;
const CSRRC = (rd: number, csr: number, rs1: number) => I(csr, rs1, 3, rd, 0x73);
const LD = (rd: number, rs1: number) => I(0, rs1, 3, rd, 0x03);

function run(engine: CpuEngine) {
  const ram = engine === 'wasm' ? createWasmRam(BASE, 4 << 20) : { base: BASE, bytes: new Uint8Array(4 << 20) };
  const h = new Hart({ ram, engine, hotThreshold: 1, batch: 1 });
  const dv = new DataView(ram.bytes.buffer, ram.bytes.byteOffset);
  const put = (at: number, ws: number[]) => ws.forEach((w, i) => dv.setUint32(at + 4 * i, w >>> 0, true));
  // A (SUM set): load the U page (fills the SUM set), clear SUM, jump to B.
  put(A, [LD(10, 6), CSRRC(0, 0x100, 9), JALR(0, 7, 0)]);
  // B (SUM clear): the load must fault; if it does not, count that and go back to A.
  put(B, [LD(11, 6), ADDI(21, 21, 1), JALR(0, 5, 0)]);
  // M handler: count, set SUM again, resume at A (in S-mode: MPP is S).
  put(HANDLER, [ADDI(20, 20, 1), CSRRS(0, 0x300, 9), CSRRW(0, 0x341, 5), MRET]);
  dv.setUint32(UPAGE, 0x1234, true);
  // Sv39: the first 2 MiB 1:1 (R W X A D), the U page also U.
  const root = 0x100000, l1 = 0x101000, l0 = 0x102000;
  const pte = (pa: number, flags: number) => (((BASE + pa) / 4096) * 1024 + flags) | 0;
  dv.setInt32(root + 2 * 8, pte(l1, 1), true);
  dv.setInt32(l1, pte(l0, 1), true);
  for (let p = 0; p < 512; p++) dv.setInt32(l0 + 8 * p, pte(p * 4096, p * 4096 === UPAGE ? 0xdf : 0xcf), true);
  h.satpMode = 8; h.satpPpn = (BASE + root) / 4096;
  h.c64[C_MTVEC] = (BASE + HANDLER) | 0; h.c64[C_MTVEC + 1] = 0;
  h.xl[5] = (BASE + A) | 0; h.xl[6] = (BASE + UPAGE) | 0; h.xl[7] = (BASE + B) | 0; h.xl[9] = 1 << 18;
  h.mstatus |= 1 << 18; // SUM
  h.priv = 1;
  h.updateModes();
  h.setPc(BASE + A);
  for (let i = 0; i < 300; i++) h.run(1 + (i % 17) * 5);
  return { traps: h.xl[20], unfaulted: h.xl[21], a0: h.xl[10], instret: h.instret, pc: h.pcLo, translated: (h.jit?.stats.retired ?? 1) > 0 };
}

describe('clearing SUM in translated code, then a chained jump', () => {
  it('the next page uses the set without SUM: its U-page load faults as in the interpreter', () => {
    const a = run('interp'), b = run('wasm');
    expect(a.unfaulted).toBe(0);
    expect(a.traps).toBeGreaterThan(50);
    expect(a.a0).toBe(0x1234);
    expect(b.translated).toBe(true);
    expect(b).toEqual({ ...a, translated: true });
  });
});
