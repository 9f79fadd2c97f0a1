/**
 * A short program that runs every kind of instruction once, so V8 has seen each path of the
 * interpreter's loop before it optimises it.
 *
 * V8 compiles `Hart.run` with TurboFan once it is hot, and every site the loop has never
 * executed becomes a deoptimisation point ("insufficient type feedback"). A guest that reaches
 * such a site for the first time throws the optimised code away. TurboFan then compiles the
 * large function again, which takes 0.1-0.7 s of CPU each time. The Linux boot did that 12-25
 * times, on both engines (bench/README.md). Running this program early (after a hart's first
 * million instructions, see Hart.run), in a hart of its own, gives every common site its feedback. It touches nothing outside that hart.
 */
import { C_MTVEC, MS_FS, type HartState } from './state.js';

const R = (f7: number, rs2: number, rs1: number, f3: number, rd: number, opc: number) =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc) >>> 0;
const I = (imm: number, rs1: number, f3: number, rd: number, opc: number) =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc) >>> 0;
const S = (imm: number, rs2: number, rs1: number, f3: number, opc = 0x23) =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | opc) >>> 0;
const B = (imm: number, rs2: number, rs1: number, f3: number) =>
  ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
    (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
const J = (imm: number, rd: number) =>
  ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) | (((imm >> 12) & 0xff) << 12) |
    (rd << 7) | 0x6f) >>> 0;
const ADDI = (rd: number, rs1: number, imm: number) => I(imm, rs1, 0, rd, 0x13);

/** RAM the program needs from `base`: code in pages 0 and 1, the trap handler in page 2, data in page 8. */
export const WARMUP_RAM = 0x10000;
const PAGE1 = 0x1000, HANDLER = 0x2000, DATA = 0x8000;

/** The program's words from offset 0: a loop over every instruction kind, then WFI. */
function program(): { main: Array<number | { c: number }>; page1: number[]; handler: number[] } {
  const m: Array<number | { c: number }> = [];
  // x1 data, x2 = 7, x3 = -3, x4 page 1, x5 loop count, x7 an address nothing answers
  for (const [f3, f7] of [[0, 0], [0, 0x20], [1, 0], [2, 0], [3, 0], [4, 0], [5, 0], [5, 0x20], [6, 0], [7, 0],
    [0, 1], [1, 1], [2, 1], [3, 1], [4, 1], [5, 1], [6, 1], [7, 1]]) m.push(R(f7!, 3, 2, f3!, 10, 0x33));
  for (const [f3, f7] of [[0, 0], [0, 0x20], [1, 0], [5, 0], [5, 0x20], [0, 1], [4, 1], [5, 1], [6, 1], [7, 1]]) {
    m.push(R(f7!, 3, 2, f3!, 11, 0x3b));
  }
  for (const f3 of [0, 2, 3, 4, 6, 7]) m.push(I(-5, 2, f3, 12, 0x13));
  m.push(I(5, 3, 1, 12, 0x13), I(5, 3, 5, 12, 0x13), I(0x405, 3, 5, 12, 0x13)); // slli srli srai
  m.push(I(-5, 2, 0, 12, 0x1b), I(5, 3, 1, 12, 0x1b), I(5, 3, 5, 12, 0x1b), I(0x405, 3, 5, 12, 0x1b)); // *w
  m.push(((0x12345 << 12) | (13 << 7) | 0x37) >>> 0, (13 << 7) | 0x17); // lui, auipc
  for (const f3 of [0, 1, 2, 3, 4, 5, 6]) m.push(I(8, 1, f3, 14, 0x03)); // loads
  for (const f3 of [0, 1, 2, 3]) m.push(S(16, 2, 1, f3)); // stores
  m.push(I(0xffc, 1, 3, 14, 0x03), S(0xffc, 2, 1, 3)); // a load and a store across a page end (x1 + 0xffc)
  m.push(I(0, 7, 2, 14, 0x03), S(0, 2, 7, 2)); // access faults: the handler skips them
  for (const f3 of [0, 1, 4, 5, 6, 7]) m.push(B(8, 3, 2, f3), ADDI(10, 10, 1), B(8, 2, 2, f3), ADDI(10, 10, 1));
  m.push(J(8, 15), ADDI(10, 10, 1)); // jal over one
  m.push((16 << 7) | 0x17, I(12, 16, 0, 15, 0x67), ADDI(10, 10, 1)); // auipc; jalr 12(x16) over one
  for (const f3 of [1, 2, 3]) m.push(I(0x340, 2, f3, 17, 0x73)); // csrrw/s/c mscratch
  for (const f3 of [5, 6, 7]) m.push(I(0x340, 5, f3, 17, 0x73)); // csrr*i
  m.push(I(0x300, 0, 2, 17, 0x73), I(0xb02, 0, 2, 17, 0x73), I(0xfff, 0, 2, 17, 0x73)); // mstatus, minstret, none
  for (const f3 of [2, 3]) {
    m.push(R(0x08, 0, 1, f3, 18, 0x2f), R(0x0c, 2, 1, f3, 18, 0x2f), R(0x0c, 2, 1, f3, 18, 0x2f)); // lr, sc, sc
    for (const f5 of [0, 1, 4, 8, 0x0c, 0x10, 0x14, 0x18, 0x1c]) m.push(R(f5 << 2, 2, 1, f3, 18, 0x2f));
  }
  m.push(I(0, 1, 3, 1, 0x07), I(8, 1, 2, 2, 0x07), S(32, 1, 1, 3, 0x27), S(40, 2, 1, 2, 0x27)); // fld flw fsd fsw
  for (const [f7, rs2, f3] of [[0x01, 1, 0], [0x05, 1, 7], [0x08, 2, 0], [0x0d, 1, 0], [0x2d, 0, 0], [0x11, 1, 0],
    [0x15, 1, 0], [0x20, 1, 0], [0x21, 0, 0], [0x51, 1, 2], [0x61, 2, 0], [0x69, 2, 0], [0x71, 0, 0], [0x71, 0, 1],
    [0x79, 0, 0], [0x60, 0, 1]]) m.push(R(f7!, rs2!, 1, f3!, 3, 0x53));
  m.push(((1 << 27) | (1 << 25) | (1 << 20) | (1 << 15) | (3 << 7) | 0x43) >>> 0); // fmadd.d
  m.push(0x0ff0000f, 0x0000100f, 0x12000073); // fence, fence.i, sfence.vma
  m.push(0x00000073, 0x00100073, 0xffffffff); // ecall, ebreak, illegal: the handler skips them
  m.push({ c: (((1 >> 5) & 1) << 12) | (10 << 7) | ((1 & 31) << 2) | 1 }, { c: (2 << 13) | (11 << 7) | (3 << 2) | 1 },
    { c: (0x8 << 12) | (12 << 7) | (11 << 2) | 2 }, { c: (0x9 << 12) | (12 << 7) | (10 << 2) | 2 }); // c.addi c.li c.mv c.add
  m.push(I(0, 4, 0, 15, 0x67)); // jalr x15, 0(x4): to page 1, which comes back
  m.push(ADDI(5, 5, -1));
  const size = m.reduce<number>((a, w) => a + (typeof w === 'number' ? 4 : 2), 0);
  m.push(B(-size, 0, 5, 1)); // bne x5, x0, start
  m.push(0x10500073, J(-4, 0)); // wfi (nothing is enabled: the hart waits), then stay
  // page 1: one instruction and a return through x15
  const page1 = [ADDI(10, 10, 3), I(0, 15, 0, 0, 0x67)];
  // trap handler: mepc += 4, mret
  const handler = [I(0x341, 0, 2, 31, 0x73), ADDI(31, 31, 4), I(0x341, 31, 1, 0, 0x73), 0x30200073];
  return { main: m, page1, handler };
}

function put(dv: DataView, at: number, words: Array<number | { c: number }>): void {
  for (const w of words) {
    if (typeof w === 'number') { dv.setUint32(at, w, true); at += 4; } else { dv.setUint16(at, w.c, true); at += 2; }
  }
}

/** Loads the program into `bytes` (WARMUP_RAM bytes of RAM at the hart's RAM base) and sets up the hart. */
export function loadWarmUp(h: HartState, bytes: Uint8Array): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const p = program();
  put(dv, 0, p.main);
  put(dv, PAGE1, p.page1);
  put(dv, HANDLER, p.handler);
  for (let i = 0; i < 64; i++) dv.setInt32(DATA + 4 * i, (i * 0x9e3779b9) | 0, true);
  const base = h.ramBase;
  const set = (x: number, v: number) => { h.xl[x] = v | 0; h.xh[x] = v < 0 ? -1 : Math.floor(v / 4294967296) | 0; };
  set(1, base + DATA); set(2, 7); set(3, -3); set(4, base + PAGE1); set(5, 3); set(7, 0x1000_0000);
  h.c64[C_MTVEC] = (base + HANDLER) | 0; h.c64[C_MTVEC + 1] = Math.floor((base + HANDLER) / 4294967296) | 0;
  h.mstatus |= MS_FS;
  h.setPc(base);
}
