/**
 * A short program that runs every kind of instruction once, so V8 has seen each path of the
 * interpreter's loop before it optimises it.
 *
 * V8 compiles `Hart.run` with TurboFan once it is hot, and every site the loop has never
 * executed becomes a deoptimisation point ("insufficient type feedback"). A guest that reaches
 * such a site for the first time throws the optimised code away. TurboFan then compiles the
 * large function again, which takes 0.1-0.7 s of CPU each time. The Linux boot did that 12-25
 * times, on both engines (bench/README.md). Running this program early (at a boot's first `run`,
 * or after a resumed hart's first million instructions, see Hart.run), in a hart of its own,
 * gives the sites a kernel reaches their feedback: M, S and U mode, an interrupt taken and one
 * pending but masked, Sv39 page walks, a device on the bus, SBI calls, branches and jumps that
 * leave their page, a 32-bit instruction across a page end. It touches nothing outside that
 * hart. test/riscv/warmup.test.ts checks that it takes each of these paths; with it, a cold
 * Linux boot deoptimises `Hart.run` 0 times instead of 4 (`node --trace-deopt`, bench/README.md).
 * (The instruction across a page end was added on 2026-12-02: without it, 2 boots of 3
 * deoptimised `Hart.run` once, in decodeSlot's two-page path.)
 */
import type { Bus } from './bus.js';
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

/**
 * RAM the program needs from `base`: code in pages 0 and 1, the trap handler in page 2, an
 * instruction across the end of page 3, data in page 8.
 */
export const WARMUP_RAM = 0x10000;
const PAGE1 = 0x1000, HANDLER = 0x2000, DATA = 0x8000, PAGE_TABLE = 0x9000;
/** A 32-bit instruction whose upper half is on the next page (the interpreter decodes it from both). */
export const WARMUP_STRADDLE = 0x3ffe;
/** Landing pads at the end of page 0 for the branches from page 1 that leave their page. */
const LAND = 0x0f00;
/** Where the warm-up's device answers (x8): loads read 0, stores are taken. */
const DEVICE = 0x2000_0000, DEVICE_SIZE = 16;
/** beq bne blt bge bltu bgeu as [f3, rs1, rs2], with operands (x2 = 7, x9 = -3) that take each. */
const TAKEN_BRANCHES = [[0, 2, 2], [1, 2, 9], [4, 9, 2], [5, 2, 9], [6, 2, 9], [7, 9, 2]] as const;
/** Bytes taken by a list of 32-bit words and 16-bit parcels. */
const byteLength = (ws: Array<number | { c: number }>) => ws.reduce<number>((a, w) => a + (typeof w === 'number' ? 4 : 2), 0);

/**
 * The bus of the warm-up harts: one small device, so the loop's paths for a load or store that
 * reached a device (it may have raised an interrupt: the loop goes back to its top) get feedback.
 */
export const WARMUP_BUS: Bus = {
  read: (pa, _size, out) => {
    if (pa < DEVICE || pa >= DEVICE + DEVICE_SIZE) return false;
    out[0] = 0; out[1] = 0;
    return true;
  },
  write: (pa) => pa >= DEVICE && pa < DEVICE + DEVICE_SIZE,
};

/** The program's words from offset 0: a loop over every instruction kind, then WFI. */
function program(): { main: Array<number | { c: number }>; page1: number[]; land: number[]; handler: number[]; straddle: number[] } {
  const m: Array<number | { c: number }> = [];
  // x1 data, x2 = 7, x3 = -3, x4 page 1, x5 loop count, x7 an address nothing answers,
  // x8 the device (WARMUP_BUS), x9 = -3, x19 the instruction across pages, x28 satp
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
  m.push(I(0, 8, 2, 14, 0x03), I(8, 8, 3, 14, 0x03), S(0, 2, 8, 2), S(8, 2, 8, 3)); // lw ld sw sd at the device
  // An interrupt: SSIP pending but not taken (MIE clear; then delegated, which M-mode ignores),
  // then taken when MIE is set (the handler clears SSIP).
  m.push(I(0x304, 2, 6, 0, 0x73), I(0x344, 2, 6, 0, 0x73)); // csrsi mie, SSIE; csrsi mip, SSIP
  m.push(I(0x303, 2, 6, 0, 0x73), I(0x303, 2, 7, 0, 0x73)); // csrsi / csrci mideleg, SSIP
  m.push(I(0x300, 8, 6, 0, 0x73), ADDI(10, 10, 1), I(0x300, 8, 7, 0, 0x73)); // csrsi mstatus, MIE; ...; csrci
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
  // sret to U-mode at the instruction after it (sepc = auipc + 16), whose ecall comes back to M
  m.push((16 << 7) | 0x17, ADDI(16, 16, 16), I(0x141, 16, 1, 0, 0x73), 0x10200073, 0x00000073);
  // S-mode, as a kernel runs: x30 = MPP's mask, x29 = MPP=S; SIE cleared (an sret set it from
  // SPIE); then mret to S at auipc + 16
  const toS = [I(0x300, 30, 3, 0, 0x73), I(0x300, 29, 2, 0, 0x73), I(0x300, 2, 7, 0, 0x73), (16 << 7) | 0x17, ADDI(16, 16, 16),
    I(0x341, 16, 1, 0, 0x73), 0x30200073];
  m.push((2 << 12) | (30 << 7) | 0x37, ADDI(30, 30, -2048), (1 << 12) | (29 << 7) | 0x37, ADDI(29, 29, -2048));
  // Sv39 on (x28 = satp: the identity gigapages of PAGE_TABLE), with SSIP pending, enabled and
  // delegated (SIE clear: not taken); in S-mode: sfence.vma, a wfi that does not wait, SSIP
  // cleared through sip, loads and stores through the page walk (RAM and the device), ecalls
  // from S (a7 = 1: the ecall the warm-up's SBI takes, a7 = 0: one it passes on); then Sv39 off.
  m.push(I(0x180, 28, 1, 0, 0x73), 0x12000073, I(0x303, 2, 6, 0, 0x73), I(0x344, 2, 6, 0, 0x73), ...toS);
  m.push(0x12000073, 0x10500073, I(0x144, 2, 7, 0, 0x73), I(0, 1, 3, 14, 0x03), S(24, 2, 1, 3), I(0, 8, 2, 14, 0x03),
    ADDI(17, 0, 1), 0x00000073, ADDI(17, 0, 0), 0x00000073, I(0x303, 2, 7, 0, 0x73), I(0x180, 0, 1, 0, 0x73));
  // to S again, sret from S to U (sepc = auipc + 16), ecall from U back to M
  m.push(...toS, (16 << 7) | 0x17, ADDI(16, 16, 16), I(0x141, 16, 1, 0, 0x73), 0x10200073, 0x00000073);
  m.push({ c: (((1 >> 5) & 1) << 12) | (10 << 7) | ((1 & 31) << 2) | 1 }, { c: (2 << 13) | (11 << 7) | (3 << 2) | 1 },
    { c: (0x8 << 12) | (12 << 7) | (11 << 2) | 2 }, { c: (0x9 << 12) | (12 << 7) | (10 << 2) | 2 }); // c.addi c.li c.mv c.add
  m.push(I(0, 19, 0, 15, 0x67)); // jalr x15, 0(x19): to the instruction across pages 3 and 4, which comes back
  m.push(I(0, 4, 0, 15, 0x67)); // jalr x15, 0(x4): to page 1, which comes back
  m.push(ADDI(5, 5, -1));
  const size = byteLength(m);
  m.push(B(-size, 0, 5, 1)); // bne x5, x0, start
  m.push(0x10500073, J(-4, 0)); // wfi (nothing is enabled: the hart waits), then stay
  // page 1: one instruction, each kind of conditional branch taken to a landing pad in page 0
  // (x2 = 7, x9 = -3 make each one taken; the F/D conversions overwrite x3) whose jal comes
  // back to the next one, and a return through x15
  const page1 = [ADDI(10, 10, 3)];
  const land: number[] = [];
  TAKEN_BRANCHES.forEach(([f3, rs1, rs2], k) => {
    const at = PAGE1 + 4 + 8 * k, pad = LAND + 4 * k;
    page1.push(B(pad - at, rs2, rs1, f3), ADDI(10, 10, 1)); // the addi is skipped
    land.push(J(at + 8 - pad, 0));
  });
  page1.push(I(0, 15, 0, 0, 0x67));
  // trap handler: an interrupt (mcause < 0) clears SSIP; an exception skips its instruction
  // (mepc += 4) and returns to M-mode (MPP = M: the ecall from U-mode comes back to M); then mret
  const handler = [I(0x342, 0, 2, 31, 0x73), B(32, 0, 31, 4), I(0x341, 0, 2, 31, 0x73), ADDI(31, 31, 4),
    I(0x341, 31, 1, 0, 0x73), (2 << 12) | (31 << 7) | 0x37, ADDI(31, 31, -2048), I(0x300, 31, 2, 0, 0x73),
    0x30200073, I(0x344, 2, 7, 0, 0x73), 0x30200073];
  // addi across the page end, then back through x15
  const straddle = [ADDI(10, 10, 1), I(0, 15, 0, 0, 0x67)];
  return { main: m, page1, land, handler, straddle };
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
  if (byteLength(p.main) > LAND) throw new Error('warm-up program overlaps its landing pads');
  put(dv, 0, p.main);
  put(dv, LAND, p.land);
  put(dv, PAGE1, p.page1);
  put(dv, HANDLER, p.handler);
  put(dv, WARMUP_STRADDLE, p.straddle);
  for (let i = 0; i < 64; i++) dv.setInt32(DATA + 4 * i, (i * 0x9e3779b9) | 0, true);
  const base = h.ramBase;
  const set = (x: number, v: number) => { h.xl[x] = v | 0; h.xh[x] = v < 0 ? -1 : Math.floor(v / 4294967296) | 0; };
  set(1, base + DATA); set(2, 7); set(3, -3); set(4, base + PAGE1); set(5, 3); set(7, 0x1000_0000); set(8, DEVICE); set(9, -3);
  set(19, base + WARMUP_STRADDLE);
  // Sv39 root: identity 1 GiB pages for the device's gigapage (RW) and RAM's (RWX), A and D set;
  // x28 = satp (MODE 8, the root's PPN). The first write of a root PPN also gives the hart's
  // satpPpn field the representation a guest's page tables need (a number beyond int32), before
  // V8 optimises code that reads it.
  if (base % 2 ** 30 !== 0 || base >= 2 ** 32) throw new RangeError('warm-up RAM must start at a 1 GiB boundary below 4 GiB');
  const devGiga = Math.floor(DEVICE / 2 ** 30);
  dv.setInt32(PAGE_TABLE + 8 * devGiga, ((devGiga * 2 ** 18) * 1024) | 0xc7, true);
  dv.setInt32(PAGE_TABLE + 8 * (base / 2 ** 30), ((base / 4096) * 1024) | 0xcf, true);
  h.xl[28] = (base + PAGE_TABLE) / 4096; h.xh[28] = 0x8000_0000 | 0;
  h.c64[C_MTVEC] = (base + HANDLER) | 0; h.c64[C_MTVEC + 1] = Math.floor((base + HANDLER) / 4294967296) | 0;
  h.mstatus |= MS_FS;
  h.setPc(base);
}
