/**
 * When translated code goes back to the hart's loop after an instruction run through `ex`
 * that enables interrupts (Linux's local_irq_restore, `csrs sstatus, SIE`): only when an
 * interrupt is pending and enabled in mie, since the loop's interrupt check does nothing
 * otherwise. Each case also runs on the interpreter (the oracle) and must end in the same state.
 */
import { describe, expect, it } from 'vitest';
import { Hart, type CpuEngine } from '../../src/riscv/hart.js';
import { createWasmRam } from '../../src/riscv/jit.js';
import { C_MTVEC } from '../../src/riscv/state.js';
import { ADDI, B, I, MRET } from './support/rvasm.js';
import { hartState } from './support/state.js';

const BASE = 0x8000_0000;
const CSRRSI = (csr: number, u: number) => I(csr, u, 6, 0, 0x73);
const CSRRCI = (csr: number, u: number) => I(csr, u, 7, 0, 0x73);

function hart(engine: CpuEngine, hotThreshold: number) {
  const ram = engine === 'wasm' ? createWasmRam(BASE, 1 << 20) : { base: BASE, bytes: new Uint8Array(1 << 20) };
  const h = new Hart({ ram, engine, hotThreshold, batch: 1 });
  const dv = new DataView(ram.bytes.buffer, ram.bytes.byteOffset);
  const put = (at: number, ws: number[]) => ws.forEach((w, i) => dv.setUint32(at + 4 * i, w >>> 0, true));
  return { h, put };
}

describe('enabling interrupts in translated code', () => {
  // M-mode loop: set MIE, clear it, count, 2,000 times; x6 > 0 also raises SSIP (enabled in
  // mie) on the 1,000th round: the MIE write after it must leave and take the interrupt.
  function run(engine: CpuEngine, pending: boolean) {
    const { h, put } = hart(engine, 2);
    const HANDLER = 0x4000;
    put(0, [CSRRSI(0x300, 8), CSRRCI(0x300, 8), ADDI(20, 20, 1), B(8, 6, 20, 1), CSRRSI(0x344, 2), // bne x20, x6, +8 / csrsi mip, SSIP
      B(-20, 21, 20, 1), 0x10500073, 0]); // bne x20, x21, loop; wfi
    put(HANDLER, [ADDI(22, 22, 1), CSRRCI(0x344, 2), MRET]); // count, clear SSIP
    h.c64[C_MTVEC] = (BASE + HANDLER) | 0;
    h.mie = 2; // SSIE
    h.xl[6] = pending ? 1000 : -1; h.xl[21] = 2000;
    h.setPc(BASE);
    for (let i = 0; i < 200 && !h.waiting; i++) h.run(97);
    return { h, s: hartState(h), entered: h.jit?.stats.entered ?? 0 };
  }

  it('goes on in wasm while nothing is pending', () => {
    const a = run('interp', false), b = run('wasm', false);
    expect(a.h.waiting).toBe(true);
    expect(a.h.xl[22]).toBe(0); // no interrupt
    expect(b.s).toEqual(a.s);
    // 2,000 rounds of 5 instructions in slices of 97: about 100 entries from the hart's loop,
    // not one per round
    expect(b.entered).toBeLessThan(300);
  });

  it('leaves, and takes the interrupt where the interpreter does, when one is pending', () => {
    const a = run('interp', true), b = run('wasm', true);
    expect(a.h.xl[22]).toBe(1); // x22: the handler ran once
    expect(b.s).toEqual(a.s);
  });
});
