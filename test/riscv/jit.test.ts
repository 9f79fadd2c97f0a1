/**
 * The block translator against the interpreter (the oracle). Each test runs one program on two
 * harts, one per engine, in the same random slices (`run(k)`), and compares the whole
 * architectural state after every slice: pc, instret, privilege, x and f registers, every
 * 64-bit CSR, mstatus, fflags. The harts translate every entry at once (hotThreshold 1), so
 * almost everything runs as wasm; a slice limit that ends inside a block, a TLB miss, a trap or
 * an instruction outside the translated subset hands over to the interpreter mid-region. Timer
 * interrupts arrive between some slices and must be taken at the same instruction.
 *
 * The random programs need no toolchain: test/riscv/support/rvasm.ts encodes them.
 */
import { describe, expect, it } from 'vitest';
import { Hart, type CpuEngine } from '../../src/riscv/hart.js';
import { createWasmRam } from '../../src/riscv/jit.js';
import { C_MTVEC, MS_FS } from '../../src/riscv/state.js';
import { mulberry32 } from '../support/prng.js';
import {
  ADDI, B, C_ADD, C_ADDI, C_ALU, C_LI, C_MV, C_SLLI, CSRRS, CSRRW, ECALL, FENCE_I, I, J, JALR, MRET, put, R, S, U,
} from './support/rvasm.js';
import { hartState } from './support/state.js';

const BASE = 0x8000_0000;
const RAM = 4 << 20;
const CODE = 0xf00; // the loop body starts here and crosses into the next page
const HANDLER = 0x3000;
const SCRATCH = 0x12000; // x29 points here; accesses reach 2 KiB either side
const BAD = 0x1000_0000; // x28: nothing answers there (bare) / unmapped (Sv39)

function makeHart(engine: CpuEngine, hotThreshold = 1): { hart: Hart; bytes: Uint8Array } {
  const ram = engine === 'wasm' ? createWasmRam(BASE, RAM) : { base: BASE, bytes: new Uint8Array(RAM) };
  return { hart: new Hart({ ram, engine, hotThreshold, batch: 1 }), bytes: ram.bytes };
}

const POOL = Array.from({ length: 27 }, (_, i) => i + 1); // x1..x27; x28-x31 have jobs

/** One random loop body of RV64IMAFDC and Zicsr instructions, as parcels. */
function randomBody(rnd: () => number, length: number): Array<number | { c: number }> {
  const int = (n: number) => Math.floor(rnd() * n);
  const reg = () => POOL[int(POOL.length)]!;
  const creg = () => 8 + int(8);
  const out: Array<number | { c: number }> = [];
  // x29 sits on a page boundary: one access in 8 lands within 8 bytes of it (straddling ones too)
  const offset = () => (int(8) === 0 ? int(16) - 8 : int(4096) - 2048);
  const one = (): number | { c: number } => {
    const k = int(100);
    if (k < 22) { // OP and OP-32, with M
      const ops = [[0, 0], [0, 0x20], [1, 0], [2, 0], [3, 0], [4, 0], [5, 0], [5, 0x20], [6, 0], [7, 0],
        [0, 1], [1, 1], [2, 1], [3, 1], [4, 1], [5, 1], [6, 1], [7, 1]];
      const opsW = [[0, 0], [0, 0x20], [1, 0], [5, 0], [5, 0x20], [0, 1], [4, 1], [5, 1], [6, 1], [7, 1]];
      if (int(3) === 0) { const [f3, f7] = opsW[int(opsW.length)]!; return R(f7!, reg(), reg(), f3!, reg(), 0x3b); }
      const [f3, f7] = ops[int(ops.length)]!;
      // Small divisors and the overflow case come up often enough with x0 and -1 around.
      return R(f7!, int(6) === 0 ? 0 : reg(), reg(), f3!, reg(), 0x33);
    }
    if (k < 36) { // OP-IMM and OP-IMM-32
      const f3 = [0, 2, 3, 4, 6, 7, 1, 5][int(8)]!;
      const imm = f3 === 1 ? int(64) : f3 === 5 ? int(64) | (int(2) << 10) : int(4096) - 2048;
      if (int(4) === 0) {
        const f3w = [0, 1, 5][int(3)]!;
        const immw = f3w === 0 ? int(4096) - 2048 : int(32) | (f3w === 5 && int(2) ? 0x400 : 0);
        return I(immw, reg(), f3w, reg(), 0x1b);
      }
      return I(imm, reg(), f3, reg(), 0x13);
    }
    if (k < 40) return int(2) ? U(int(1 << 20), reg(), 0x37) : U(int(1 << 20), reg(), 0x17); // LUI, AUIPC
    if (k < 55) { // loads, mostly from scratch (misaligned and page-crossing ones too), some faulting
      const f3 = int(7);
      return I(offset(), int(12) === 0 ? 28 : 29, f3, int(10) === 0 ? 0 : reg(), 0x03);
    }
    if (k < 66) return S(offset(), reg(), int(12) === 0 ? 28 : 29, int(4)); // stores
    if (k < 80) { // compressed
      const c = int(6);
      if (c === 0) return { c: C_ADDI(reg(), int(64) - 32 || 1) };
      if (c === 1) return { c: C_LI(reg(), int(64) - 32) };
      if (c === 2) return { c: C_MV(reg(), reg()) };
      if (c === 3) return { c: C_ADD(reg(), reg()) };
      if (c === 4) return { c: C_SLLI(reg(), 1 + int(63)) };
      return { c: C_ALU(int(4), creg(), creg()) };
    }
    if (k < 85) { // CSR reads (counters must agree to the instruction) and writes
      const c = int(10);
      if (c < 5) return CSRRS(reg(), [0xc02, 0xc00, 0xb02, 0xf14, 0x340, 0xc01][int(6)]!, 0);
      if (c === 5) return CSRRW(reg(), 0x340, reg()); // mscratch (illegal in S-mode: a trap)
      // mstatus.MIE on and off, and mie from a register: a pending timer interrupt must be
      // taken right after the write that enables it (translated code leaves there)
      if (c === 6) return I(8, 8, int(2) ? 6 : 7, reg(), 0x73); // CSRRSI / CSRRCI mstatus, MIE
      if (c === 7) return CSRRW(reg(), 0x304, reg());
      if (c === 8) return CSRRW(int(2) ? 0 : reg(), 0x003, reg()); // fcsr: rounding mode and flags
      // sstatus: read, set or clear bits (SUM among them: the page below SCRATCH is a U page)
      if (int(3) === 0) return I(0x100, 8 + int(2), 3, reg(), 0x73); // CSRRC sstatus, x8/x9 (SUM set in x9)
      return CSRRS(reg(), 0x100, int(3) === 0 ? reg() : 0);
    }
    if (k < 90) { // F/D through the interpreter: moves and arithmetic
      const f = () => int(32);
      const c = int(4);
      if (c === 0) return R(0x79, 0, reg(), 0, f(), 0x53); // fmv.d.x
      if (c === 1) return R(0x71, 0, f(), 0, reg(), 0x53); // fmv.x.d
      if (c === 2) return R(0x01, f(), f(), 0, f(), 0x53); // fadd.d rne
      return R(0x09, f(), f(), 7, f(), 0x53); // fmul.d dyn
    }
    if (k < 93) { // AMO*.D, LR/SC, F/D loads and stores
      const c = int(5);
      if (c === 0) return R(0x08, 0, 29, 3, reg(), 0x2f); // lr.d
      if (c === 1) return R(0x0c, reg(), 29, 3, reg(), 0x2f); // sc.d
      if (c === 2) return int(2) ? I(offset(), 29, 3, int(32), 0x07) : I(offset(), 29, 2, int(32), 0x07); // fld / flw
      if (c === 3) return S(offset(), int(32), 29, int(2) ? 3 : 2, 0x27); // fsd / fsw
      // AMO*.D and AMO*.W (swap, add, xor, or, and are translated inline; min/max through ex)
      return R([0, 1, 4, 8, 0x0c, 0x10, 0x14, 0x18, 0x1c][int(9)]! << 2, reg(), 29, int(2) ? 3 : 2, reg(), 0x2f);
    }
    if (k < 95) return ECALL; // traps to the handler, which skips it
    if (k < 96) return 0xffffffff; // illegal instruction
    return ADDI(reg(), reg(), 0);
  };
  // 2..6 loads or 2..6 stores from one base at nearby offsets, as a function saves and restores
  // registers or a copy loop runs (translated code checks the TLB once for such a group), some
  // straddling the page boundary at x29, sometimes with another instruction among them
  const cluster = (): number[] => {
    const base = int(12) === 0 ? 28 : 29, store = int(2) === 0;
    const centre = int(3) === 0 ? int(32) - 16 : int(4096) - 2048;
    return Array.from({ length: 2 + int(5) }, () => {
      if (int(6) === 0) return int(2) ? ADDI(reg(), reg(), 1) : I(offset(), 29, 3, reg(), 0x03);
      const off = Math.max(-2048, Math.min(2047, centre + int(64) - 32));
      return store ? S(off, reg(), base, int(4)) : I(off, base, int(7), int(10) === 0 ? 0 : reg(), 0x03);
    });
  };
  for (let n = 0; n < length; n++) {
    if (int(16) === 0) out.push(...cluster());
    else if (int(8) === 0) { // forward branch over 1..3 instructions
      const skip = Array.from({ length: 1 + int(3) }, one);
      const bytes = skip.reduce<number>((a, w) => a + (typeof w === 'number' ? 4 : 2), 0);
      out.push(B(4 + bytes, reg(), reg(), [0, 1, 4, 5, 6, 7][int(6)]!), ...skip);
    } else out.push(one());
  }
  return out;
}

interface Setup { sv39: boolean }

/** Loads the same program and state into both harts. */
function load(harts: Hart[], rams: Uint8Array[], rnd: () => number, setup: Setup): void {
  const body = randomBody(rnd, 160);
  const size = body.reduce<number>((a, w) => a + (typeof w === 'number' ? 4 : 2), 0);
  const regs = Array.from({ length: 32 }, () => [Math.floor(rnd() * 2 ** 32) | 0, Math.floor(rnd() * 2 ** 32) | 0]);
  const scratch = Array.from({ length: 2048 }, () => Math.floor(rnd() * 2 ** 32) | 0);
  harts.forEach((h, i) => {
    const ram = rams[i]!;
    const dv = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    let at = put(ram, CODE, body);
    at = put(ram, at, [ADDI(30, 30, -1), B(-(size + 4), 0, 30, 1), J(0, 0)]);
    // exceptions: skip the instruction; interrupts (mcause < 0): mask them all (mie = 0), resume
    put(ram, HANDLER, [CSRRS(31, 0x342, 0), B(20, 0, 31, 4), CSRRS(31, 0x341, 0), ADDI(31, 31, 4), CSRRW(0, 0x341, 31), MRET,
      CSRRW(0, 0x304, 0), MRET]);
    scratch.forEach((v, k) => dv.setInt32(SCRATCH - 4096 + 4 * k, v, true));
    for (let x = 1; x < 28; x++) { h.xl[x] = regs[x]![0]!; h.xh[x] = regs[x]![1]!; }
    // a few small values so divisions by 1/-1 and the INT_MIN cases happen
    h.xl[5] = -1; h.xh[5] = -1; h.xl[6] = 0; h.xh[6] = 0x80000000 | 0; h.xl[7] = 1; h.xh[7] = 0;
    h.xl[28] = BAD; h.xh[28] = 0;
    h.xl[29] = (BASE + SCRATCH) | 0; h.xh[29] = 0;
    h.xl[30] = 1 << 30; h.xh[30] = 0;
    h.c64[C_MTVEC] = (BASE + HANDLER) | 0; h.c64[C_MTVEC + 1] = 0;
    h.mstatus |= MS_FS;
    h.mcounteren = 7;
    h.setPc(BASE + CODE);
    if (setup.sv39) {
      // root -> L1 -> L0 mapping the first 2 MiB of RAM 1:1, except the page at SCRATCH.
      const root = 0x100000, l1 = 0x101000, l0 = 0x102000;
      const pte = (pa: number, flags: number) => (((BASE + pa) / 4096) * 1024 + flags) | 0;
      dv.setInt32(root + 2 * 8, pte(l1, 1), true);
      dv.setInt32(l1, pte(l0, 1), true);
      // The page below SCRATCH is a U page: S-mode reaches it only with sstatus.SUM set.
      for (let p = 0; p < 512; p++) if (p * 4096 !== SCRATCH) dv.setInt32(l0 + 8 * p, pte(p * 4096, p * 4096 === SCRATCH - 4096 ? 0xdf : 0xcf), true);
      h.satpMode = 8; h.satpPpn = (BASE + root) / 4096;
      h.priv = 1; // S-mode; traps go to the M-mode handler (medeleg = 0)
      h.updateModes();
    }
  });
}

const state = hartState;

function differential(seed: number, setup: Setup, total: number) {
  const rnd = mulberry32(seed);
  const a = makeHart('interp'), b = makeHart('wasm');
  load([a.hart, b.hart], [a.bytes, b.bytes], rnd, setup);
  let done = 0, slices = 0, interrupts = 0;
  while (done < total) {
    const k = 1 + Math.floor(rnd() * (rnd() < 0.3 ? 8 : 600));
    if (rnd() < 0.1) { // a timer interrupt arrives between slices: taken at the same instruction on both
      for (const h of [a.hart, b.hart]) { h.mie = 1 << 7; h.mstatus |= 1 << 3; h.setInterruptLine(7, true); }
    }
    const na = a.hart.run(k), nb = b.hart.run(k);
    expect(nb, `slice ${slices} retired`).toBe(na);
    const sa = state(a.hart), sb = state(b.hart);
    if (JSON.stringify(sa) !== JSON.stringify(sb)) expect({ seed, slices, ...sb }).toEqual({ seed, slices, ...sa });
    done += na; slices++;
    if (a.hart.c64[16 + 1]! < 0) interrupts++; // mcause says the last trap was an interrupt
  }
  expect(Buffer.from(b.bytes.subarray(0, 0x20000)).equals(Buffer.from(a.bytes.subarray(0, 0x20000)))).toBe(true);
  const st = b.hart.jit!.stats;
  expect(st.compiled).toBeGreaterThan(0);
  expect(interrupts).toBeGreaterThan(0); // the timer interrupts were taken
  // Most of the work must have run translated, or this test would prove little.
  expect(st.retired / done).toBeGreaterThan(0.3);
  return st;
}

describe('translator against the interpreter', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`random RV64GC loop, M-mode bare, seed ${seed}`, () => { differential(seed, { sv39: false }, 60_000); });
    it(`random RV64GC loop, S-mode Sv39, seed ${seed}`, () => { differential(seed + 100, { sv39: true }, 60_000); });
  }
});

describe('CSR, AMO and F/D instructions inside translated code', () => {
  /**
   * A loop that enables a pending timer interrupt with a CSR write, once through mstatus.MIE and
   * once through mie: translated code must stop right after the write (the interpreter takes the
   * interrupt before the next instruction), in slices of every length.
   */
  function enabling(engine: CpuEngine) {
    const { hart, bytes } = makeHart(engine);
    const CSRRSI = (csr: number, u: number) => I(csr, u, 6, 0, 0x73), CSRRCI = (csr: number, u: number) => I(csr, u, 7, 0, 0x73);
    put(bytes, 0, [
      ADDI(1, 1, 1), CSRRCI(0x300, 8), CSRRW(0, 0x304, 5), ADDI(2, 2, 1),
      CSRRSI(0x300, 8), // the interrupt is taken here ...
      ADDI(3, 3, 1), CSRRSI(0x300, 8), CSRRW(0, 0x304, 5), // ... and here (the handler cleared mie)
      ADDI(6, 6, 1), CSRRS(7, 0xc02, 0), // instret: a CSR only the interpreter reads
      J(-40, 0),
    ]);
    put(bytes, HANDLER, [CSRRW(0, 0x304, 0), ADDI(4, 4, 1), MRET]);
    hart.c64[C_MTVEC] = (BASE + HANDLER) | 0;
    hart.xl[5] = 1 << 7;
    hart.setInterruptLine(7, true);
    hart.setPc(BASE);
    const trace: unknown[] = [];
    for (let i = 0; i < 300; i++) { hart.run(1 + (i % 13)); trace.push(state(hart)); }
    return { trace, hart };
  }

  it('a CSR write that enables a pending interrupt stops translated code right after it', () => {
    const a = enabling('interp'), b = enabling('wasm');
    expect(b.trace).toEqual(a.trace);
    expect(a.hart.xl[4]).toBeGreaterThan(50); // interrupts taken
    expect(b.hart.xl[6]).toBe(a.hart.xl[6]);
    expect(b.hart.jit!.stats.retired).toBeGreaterThan(b.hart.instret / 3);
  });
});

describe('translated code and changing code', () => {
  /** A loop that rewrites the ADDI it then runs (imm = iteration count), on both engines. */
  function selfModifying(withFence: boolean, engine: CpuEngine) {
    const { hart, bytes } = makeHart(engine);
    // x10 = iteration, x11 = sum; 0x100: the patched slot; the code page is also written by SW.
    const patched = 0x40;
    const prog = [
      ADDI(10, 0, 0), ADDI(11, 0, 0),
      // loop (0x08): build "addi x12, x0, x10&0x7ff" and store it at `patched`
      I(0x7ff, 10, 7, 13, 0x13), // andi x13, x10, 0x7ff
      I(20, 13, 1, 13, 0x13), // slli x13, x13, 20
      ADDI(14, 0, 0x613), // x14 = "addi x12, x0, 0"
      R(0, 14, 13, 6, 13, 0x33), // or x13, x13, x14: "addi x12, x0, x10 & 0x7ff"
    ];
    prog.push(U((BASE >>> 12) & 0xfffff, 15, 0x37)); // lui x15, BASE>>12 (sign-extends: fix with slli/srli)
    prog.push(I(32, 15, 1, 15, 0x13), I(32, 15, 5, 15, 0x13)); // zero-extend x15
    prog.push(S(patched, 13, 15, 2)); // sw x13, patched(x15)
    if (withFence) prog.push(FENCE_I);
    while (prog.length * 4 < patched) prog.push(ADDI(0, 0, 0));
    prog.push(ADDI(12, 0, 0)); // patched slot
    prog.push(R(0, 12, 11, 0, 11, 0x33)); // add x11, x11, x12
    prog.push(ADDI(10, 10, 1));
    prog.push(I(200, 0, 0, 16, 0x13)); // li x16, 200
    const here = prog.length * 4;
    prog.push(B(0x08 - here, 16, 10, 4)); // blt x10, x16, loop
    prog.push(J(0, 0));
    put(bytes, 0, prog);
    hart.setPc(BASE);
    for (let i = 0; i < 200; i++) hart.run(97);
    return { sum: (hart.xl[11]! >>> 0) + hart.xh[11]! * 2 ** 32, i: hart.xl[10]!, instret: hart.instret, hart };
  }

  for (const fence of [true, false]) {
    it(`a store into a translated page drops its blocks (${fence ? 'with' : 'without'} FENCE.I)`, () => {
      const interp = selfModifying(fence, 'interp');
      const wasm = selfModifying(fence, 'wasm');
      expect(interp.i).toBe(200);
      expect(interp.sum).toBe((199 * 200) / 2);
      expect({ sum: wasm.sum, i: wasm.i, instret: wasm.instret }).toEqual({ sum: interp.sum, i: interp.i, instret: interp.instret });
      expect(wasm.hart.jit!.stats.dropped).toBeGreaterThan(0);
    });
  }

  it('code written behind the hart (as by DMA) runs after FENCE.I, and unchanged pages survive it', () => {
    const { hart, bytes } = makeHart('wasm');
    // 0x0: x10 += 1 in a loop at 0x0..0x8 that calls 0x1000 (jalr) each time
    put(bytes, 0, [U(BASE >>> 12, 5, 0x37), I(32, 5, 1, 5, 0x13), I(32, 5, 5, 5, 0x13), // x5 = BASE
      ADDI(6, 5, 0x7ff), ADDI(6, 6, 0x7ff), ADDI(6, 6, 2), // x6 = BASE + 0x1000
      JALR(1, 6, 0), J(-4, 0)]);
    put(bytes, 0x1000, [ADDI(10, 10, 1), JALR(0, 1, 0)]);
    hart.setPc(BASE);
    hart.run(10_000);
    expect(hart.xl[10]).toBeGreaterThan(1000);
    const compiled = hart.jit!.stats.compiled;
    // Rewrite the callee without the hart seeing a store (x10 += 2 now), then FENCE.I.
    put(bytes, 0x1000, [ADDI(10, 10, 2)]);
    hart.fenceI();
    const before = hart.xl[10]!;
    hart.run(300);
    const after = hart.xl[10]!;
    expect(after - before).toBeGreaterThan(100);
    expect((after - before) % 2).toBe(0);
    expect(hart.jit!.stats.rechecked).toBeGreaterThan(0); // the caller's page was kept
    expect(hart.jit!.stats.compiled).toBeGreaterThan(compiled); // the callee's was translated again
  });

  it('one physical page mapped at two virtual addresses runs right at both (AUIPC sees each)', () => {
    const run = (engine: CpuEngine) => {
      const { hart, bytes } = makeHart(engine);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      // main at 0x0: call VA1 and VA2 of the same page, forever
      put(bytes, 0, [JALR(1, 5, 0), JALR(1, 6, 0), J(-8, 0)]);
      // the shared page: x12 += its own pc, x13 += 1, return
      put(bytes, 0x1000, [U(0, 10, 0x17), R(0, 10, 12, 0, 12, 0x33), ADDI(13, 13, 1), JALR(0, 1, 0)]);
      const root = 0x100000, l1 = 0x101000, l0 = 0x102000, l0b = 0x103000;
      const pte = (pa: number, flags: number) => (((BASE + pa) / 4096) * 1024 + flags) | 0;
      dv.setInt32(root + 2 * 8, pte(l1, 1), true);
      dv.setInt32(l1, pte(l0, 1), true);
      dv.setInt32(l1 + 8, pte(l0b, 1), true); // VA 0x80200000.. -> l0b
      for (let p = 0; p < 512; p++) dv.setInt32(l0 + 8 * p, pte(p * 4096, 0xcf), true);
      dv.setInt32(l0b, pte(0x1000, 0xcf), true); // VA 0x80200000 -> the page at 0x1000
      hart.satpMode = 8; hart.satpPpn = (BASE + root) / 4096; hart.priv = 1; hart.updateModes();
      hart.xl[5] = (BASE + 0x1000) | 0; hart.xl[6] = (BASE + 0x200000) | 0;
      hart.setPc(BASE);
      for (let i = 0; i < 100; i++) hart.run(61);
      return { sum: [hart.xl[12], hart.xh[12]], calls: hart.xl[13], instret: hart.instret };
    };
    const a = run('interp'), b = run('wasm');
    expect(a.calls).toBeGreaterThan(1000);
    expect(b).toEqual(a);
  });

  it('a virtual page mapped to other code after SFENCE runs the new code, also where translated code chains to it', () => {
    const run = (engine: CpuEngine) => {
      // The new code is interpreted a while before it is translated: meanwhile the caller's
      // code must not chain to the old page's translation.
      const { hart, bytes } = makeHart(engine, 64);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      // main at 0x0 calls VA 0x80201000 (not in main's fetch TLB slot) forever; it first maps
      // the page at 0x1000 (x13 += 1), then the page at 0x2000 (x13 += 100)
      put(bytes, 0, [JALR(1, 6, 0), ADDI(12, 12, 1), J(-8, 0)]);
      put(bytes, 0x1000, [ADDI(13, 13, 1), JALR(0, 1, 0)]);
      put(bytes, 0x2000, [ADDI(13, 13, 100), JALR(0, 1, 0)]);
      const root = 0x100000, l1 = 0x101000, l0 = 0x102000, l0b = 0x103000;
      const pte = (pa: number, flags: number) => (((BASE + pa) / 4096) * 1024 + flags) | 0;
      dv.setInt32(root + 2 * 8, pte(l1, 1), true);
      dv.setInt32(l1, pte(l0, 1), true);
      dv.setInt32(l1 + 8, pte(l0b, 1), true);
      for (let p = 0; p < 512; p++) dv.setInt32(l0 + 8 * p, pte(p * 4096, 0xcf), true);
      dv.setInt32(l0b + 8, pte(0x1000, 0xcf), true);
      hart.satpMode = 8; hart.satpPpn = (BASE + root) / 4096; hart.priv = 1; hart.updateModes();
      hart.xl[6] = (BASE + 0x201000) | 0;
      hart.setPc(BASE);
      for (let i = 0; i < 50; i++) hart.run(61);
      const before = hart.xl[13]!;
      dv.setInt32(l0b + 8, pte(0x2000, 0xcf), true); // as the kernel would, then SFENCE.VMA
      hart.flushTlb();
      for (let i = 0; i < 50; i++) hart.run(61);
      return { before, after: hart.xl[13], calls: hart.xl[12], instret: hart.instret };
    };
    const a = run('interp'), b = run('wasm');
    expect(a.calls).toBeGreaterThan(1000);
    expect(a.after! - a.before).toBeGreaterThan(100 * 500);
    expect(b).toEqual(a);
  });

  it('the translation cache stays within maxRegions', () => {
    const ram = createWasmRam(BASE, RAM);
    const hart = new Hart({ ram, engine: 'wasm', hotThreshold: 1, batch: 1, maxRegions: 8 });
    // 64 pages, each "addi x10, x10, 1; jal to the next page", the last one jumps back.
    for (let p = 0; p < 64; p++) put(ram.bytes, p * 4096, [ADDI(10, 10, 1), J(p === 63 ? -63 * 4096 - 4 : 4096 - 4, 0)]);
    hart.setPc(BASE);
    for (let i = 0; i < 50; i++) {
      hart.run(1000);
      expect(hart.jit!.stats.regions).toBeLessThanOrEqual(8);
    }
    expect(hart.xl[10]).toBe(25_000);
    expect(hart.jit!.stats.flushes).toBeGreaterThan(0);
  });

  for (const engine of ['interp', 'wasm'] as const) {
    it(`run() returns when every trap traps again (a vector at an illegal instruction or outside RAM), ${engine}`, () => {
      const { hart, bytes } = makeHart(engine);
      bytes.fill(0, 0, 0x2000); // all-zero parcels are illegal
      hart.c64[C_MTVEC] = (BASE + 0x1000) | 0; // an illegal instruction: traps to itself
      hart.setPc(BASE);
      expect(hart.run(1000)).toBe(0);
      expect(hart.c64[16]).toBe(2); // mcause: illegal instruction
      hart.c64[C_MTVEC] = 0x1000; // no RAM there: the fetch faults, again and again
      expect(hart.run(1000)).toBe(0);
      expect(hart.c64[16]).toBe(1); // instruction access fault
      expect(hart.instret).toBe(0);
    });
  }

  it("the 'wasm' engine refuses RAM outside a WebAssembly.Memory", () => {
    expect(() => new Hart({ ram: { base: BASE, bytes: new Uint8Array(1 << 16) }, engine: 'wasm' })).toThrow(/createWasmRam/);
    expect(() => new Hart({ ram: { base: BASE, bytes: new Uint8Array(1 << 16) }, engine: 'jit' as CpuEngine })).toThrow(/unknown CPU engine/);
  });
});

describe('an FP access that reaches a device and faults on its other half', () => {
  /** fld f0, -3(x1) with x1 at a device whose first byte counts its reads; below it nothing answers. */
  function run(engine: CpuEngine) {
    let reads = 0;
    const bus = {
      read(pa: number, _size: number, out: Int32Array | number[]) {
        if (pa < 0x1000_0000 || pa >= 0x1000_0100) return false;
        if ((pa & 0xff) === 0) reads++;
        out[0] = 0;
        return true;
      },
      write() {
        return false;
      },
    };
    const ram = engine === 'wasm' ? createWasmRam(BASE, 1 << 20) : { base: BASE, bytes: new Uint8Array(1 << 20) };
    const h = new Hart({ ram, engine, hotThreshold: 1, batch: 1, bus: bus as never });
    const dv = new DataView(ram.bytes.buffer, ram.bytes.byteOffset);
    const I = (imm: number, rs1: number, f3: number, rd: number, opc: number) => (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc) >>> 0;
    // loop: fld f0, -3(x1); addi x2, x2, 1; j loop. The handler skips the faulting instruction.
    [I(0xffd, 1, 3, 0, 0x07), I(1, 2, 0, 2, 0x13), 0xff9ff06f].forEach((w, i) => dv.setUint32(4 * i, w, true));
    [I(0x341, 0, 2, 31, 0x73), I(4, 31, 0, 31, 0x13), I(0x341, 31, 1, 0, 0x73), 0x30200073].forEach((w, i) => dv.setUint32(0x2000 + 4 * i, w, true));
    h.xl[1] = 0x1000_0000;
    h.c64[C_MTVEC] = (BASE + 0x2000) | 0;
    h.mstatus |= MS_FS;
    h.setPc(BASE);
    for (let i = 0; i < 50; i++) h.run(37);
    return { reads, loops: h.xl[2]!, instret: h.instret, translated: (h.jit?.stats.retired ?? 1) > 0 };
  }

  it('the device sees each access once on either engine (the translator leaves it to the interpreter)', () => {
    const a = run('interp'), b = run('wasm');
    expect(b.translated).toBe(true);
    expect(a.reads).toBeGreaterThan(100);
    expect(a.reads - a.loops).toBeLessThanOrEqual(1); // once per loop (the last one may be under way)
    expect(b).toEqual(a);
  });
});

describe('an AMO in translated code that rewrites the next instruction of its own page', () => {
  function run(engine: CpuEngine) {
    const ram = engine === 'wasm' ? createWasmRam(BASE, 1 << 20) : { base: BASE, bytes: new Uint8Array(1 << 20) };
    const h = new Hart({ ram, engine, hotThreshold: 1, batch: 1 });
    const dv = new DataView(ram.bytes.buffer, ram.bytes.byteOffset);
    const I = (imm: number, rs1: number, f3: number, rd: number, opc: number) => (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc) >>> 0;
    const B = (imm: number, rs1: number, rs2: number, f3: number) =>
      ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 63) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (((imm >> 1) & 15) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
    const add100 = I(100, 7, 0, 7, 0x13);
    // loop: amoswap.w x0, x5, (x6)  (x6 -> the next instruction, x5 = "addi x7, x7, 100")
    //       addi x7, x7, 1          (rewritten by the AMO before it runs)
    //       addi x2, x2, 1; blt x2, x8, loop; j .
    const prog = [((1 << 27) | (5 << 20) | (6 << 15) | (2 << 12) | 0x2f) >>> 0, I(1, 7, 0, 7, 0x13), I(1, 2, 0, 2, 0x13), B(-12, 2, 8, 4), 0x0000006f];
    prog.forEach((w, i) => dv.setUint32(4 * i, w, true));
    h.xl[5] = add100 | 0;
    h.xl[6] = (BASE + 4) | 0;
    h.xl[8] = 50;
    h.setPc(BASE);
    for (let i = 0; i < 40; i++) h.run(29);
    return { x2: h.xl[2]!, x7: h.xl[7]!, instret: h.instret, translated: (h.jit?.stats.retired ?? 1) > 0 };
  }

  it('the rest of the block never runs the old instruction: the same state on both engines', () => {
    const a = run('interp'), b = run('wasm');
    expect(a.x2).toBe(50);
    expect(a.x7).toBe(5000); // every pass ran the rewritten instruction
    expect(b.translated).toBe(true);
    expect(b).toEqual(a);
  });
});

describe('AMOs translated inline (swap, add, xor, and, or; .W and .D)', () => {
  // amo<op>.<w|d> rd, rs2, (rs1): funct5 << 27 | rs2 << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | 0x2f
  const AMO = (f5: number, rd: number, rs1: number, rs2: number, d: boolean) =>
    ((f5 << 27) | (rs2 << 20) | (rs1 << 15) | ((d ? 3 : 2) << 12) | (rd << 7) | 0x2f) >>> 0;
  const I = (imm: number, rs1: number, f3: number, rd: number, opc: number) => (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc) >>> 0;
  const B = (imm: number, rs1: number, rs2: number, f3: number) =>
    ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 63) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (((imm >> 1) & 15) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
  const DATA = 0x8000;

  /** A loop of every inline AMO kind on a word and a doubleword whose values change each pass. */
  function run(engine: CpuEngine, misalign: boolean) {
    const ram = engine === 'wasm' ? createWasmRam(BASE, 1 << 20) : { base: BASE, bytes: new Uint8Array(1 << 20) };
    const h = new Hart({ ram, engine, hotThreshold: 1, batch: 1 });
    const dv = new DataView(ram.bytes.buffer, ram.bytes.byteOffset);
    const body: number[] = [];
    // x6 -> the data (+2 when misaligned: every AMO traps, the handler below skips it)
    for (const f5 of [0x00, 0x01, 0x04, 0x0c, 0x08]) {
      body.push(AMO(f5, 10 + body.length % 8, 6, 5, false)); // .W on DATA
      body.push(AMO(f5, 10 + (body.length + 3) % 8, 7, 5, true)); // .D on DATA + 8
      body.push(I(0x135, 5, 0, 5, 0x13)); // addi x5, x5, 0x135
      body.push(((5 << 20) | (5 << 15) | (1 << 12) | (5 << 7) | 0x33) >>> 0); // sll x5, x5, x5 (mixes high bits in)
      body.push(I(-7, 5, 4, 5, 0x13)); // xori x5, x5, -7
    }
    const prog = [...body, I(1, 2, 0, 2, 0x13), B(-4 * (body.length + 1), 2, 8, 4), 0x0000006f];
    prog.forEach((w, i) => dv.setUint32(4 * i, w, true));
    // trap handler at 0x4000: mepc += 4; mret
    const HANDLER = 0x4000;
    [0x34102f73, 0x004f0f13, 0x341f1073, 0x30200073].forEach((w, i) => dv.setUint32(HANDLER + 4 * i, w, true));
    h.c64[C_MTVEC] = (BASE + HANDLER) | 0; h.c64[C_MTVEC + 1] = 0;
    dv.setUint32(DATA, 0x89abcdef, true);
    dv.setBigUint64(DATA + 8, 0x0123456789abcdefn, true);
    h.xl[5] = 0x5a5a1234; h.xh[5] = -0x12345678;
    h.xl[6] = (BASE + DATA + (misalign ? 2 : 0)) | 0;
    h.xl[7] = (BASE + DATA + 8 + (misalign ? 4 : 0)) | 0;
    h.xl[8] = 60;
    h.setPc(BASE);
    for (let i = 0; i < 200 && h.xl[2]! < 60; i++) h.run(37);
    return {
      regs: [...h.xl.subarray(0, 32), ...h.xh.subarray(0, 32)], pc: h.pcLo, instret: h.instret,
      data: [dv.getUint32(DATA, true), dv.getBigUint64(DATA + 8, true)],
      translated: (h.jit?.stats.retired ?? 1) > 0,
    };
  }

  it('leave registers and memory as the interpreter does', () => {
    const a = run('interp', false), b = run('wasm', false);
    expect(a.regs[2]).toBe(60);
    expect(b.translated).toBe(true);
    expect(b).toEqual({ ...a, translated: true });
  });

  it('misaligned ones trap in both engines at the same instruction', () => {
    const a = run('interp', true), b = run('wasm', true);
    expect(a.regs[2]).toBe(60);
    expect(a.data).toEqual([0x89abcdef, 0x0123456789abcdefn]); // no AMO wrote
    expect(b).toEqual({ ...a, translated: true });
  });
});

describe('groups of loads or stores from one base register (one TLB check for the group)', () => {
  const LD = (rd: number, rs1: number, imm: number) => I(imm, rs1, 3, rd, 0x03);
  const SD = (rs2: number, rs1: number, imm: number) => S(imm, rs2, rs1, 3);
  const DATA = 0x8000;
  /** Runs `body` 50 times (x20 counts), translated from the first entry; the state and memory after. */
  function run(engine: CpuEngine, body: number[]) {
    const { hart: h, bytes } = makeHart(engine);
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    const at = put(bytes, 0, body);
    put(bytes, at, [ADDI(20, 20, 1), B(-(at + 4), 21, 20, 1), 0x10500073]); // bne x20, x21, 0; wfi
    dv.setBigUint64(DATA, BigInt(BASE + DATA + 0x100), true); // a pointer to DATA + 0x100
    for (let k = 1; k < 64; k++) dv.setBigUint64(DATA + 8 * k, BigInt(k * 0x1111), true);
    h.xl[10] = (BASE + DATA) | 0; h.xl[21] = 50;
    h.setPc(BASE);
    for (let i = 0; i < 100 && !h.waiting; i++) h.run(1000);
    return { s: hartState(h), mem: Buffer.from(bytes.subarray(DATA, DATA + 0x400)).toString('hex'), retired: h.jit?.stats.retired ?? 0 };
  }
  const same = (body: number[]) => {
    const a = run('interp', body), b = run('wasm', body);
    expect(a.s.pc[0]).toBe((BASE + 4 * body.length + 12) | 0); // past the WFI
    expect(b.retired).toBeGreaterThan(0);
    expect({ ...b.s, mem: b.mem }).toEqual({ ...a.s, mem: a.mem });
    return a;
  };

  it('a load into the base register ends the group: the next load uses the new base', () => {
    // x11 = DATA's pointer, then x13 = 8(x11) loads from DATA + 0x108, not DATA + 8
    const a = same([ADDI(11, 10, 0), LD(12, 11, 16), LD(11, 11, 0), LD(13, 11, 8), LD(14, 11, 16)]);
    expect(a.s.x[12]).toEqual([2 * 0x1111, 0]);
    expect(a.s.x[13]).toEqual([0x21 * 0x1111, 0]);
  });

  it('an instruction that moves the base ends the group', () => {
    const a = same([ADDI(11, 10, 0), SD(20, 11, 0x200), ADDI(11, 11, 64), SD(20, 11, 0x200), LD(14, 11, 0x200 - 64)]);
    expect(a.s.x[14]).toEqual([49, 0]); // x20 of the last round
  });

  it('loads, then stores from one base (a copy loop) and negative offsets', () => {
    same([ADDI(11, 10, 0x100), LD(12, 11, -8), LD(13, 11, 0), LD(14, 11, 8), LD(15, 11, 56),
      SD(12, 11, 0x80), SD(13, 11, 0x88), SD(14, 11, -0x80), SD(15, 11, 0xf8)]);
  });
});
