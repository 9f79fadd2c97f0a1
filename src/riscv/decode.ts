/**
 * Instruction decoder: 32-bit RV64G encodings (unprivileged spec ch. 2, 4, 7-8, 10-13, 24 "opcode
 * map") and the compressed set (ch. 16 "C" extension), which is expanded to its 32-bit equivalent
 * and decoded by the same code, so both forms share one execution path.
 *
 * The decoded form is two int32 words per 16-bit code parcel of a page (see `DecodedPage` in
 * exec.ts): `w = op | rd<<8 | rs1<<14 | rs2<<19 | (compressed ? 1<<24 : 0)` and `imm`.
 * A destination x0 is written as register 32, a scratch slot that is never read, so the hot path
 * never has to test rd == 0 (reads of x0 use slot 0, which stays zero).
 */
import { Op } from './ops.js';

export const W_C = 1 << 24;
export const RD_ZERO = 32;

/** Packs a decoded instruction; `rd` 0 becomes the scratch register 32. */
function pack(op: number, rd: number, rs1: number, rs2: number): number {
  return op | ((rd === 0 ? RD_ZERO : rd) << 8) | (rs1 << 14) | (rs2 << 19);
}

const LOADS = [Op.LB, Op.LH, Op.LW, Op.LD, Op.LBU, Op.LHU, Op.LWU, -1];
const STORES = [Op.SB, Op.SH, Op.SW, Op.SD, -1, -1, -1, -1];
const BRANCHES = [Op.BEQ, Op.BNE, -1, -1, Op.BLT, Op.BGE, Op.BLTU, Op.BGEU];
const OPIMM = [Op.ADDI, -2, Op.SLTI, Op.SLTIU, Op.XORI, -2, Op.ORI, Op.ANDI];
const OPREG = [Op.ADD, Op.SLL, Op.SLT, Op.SLTU, Op.XOR, Op.SRL, Op.OR, Op.AND];
const OPMUL = [Op.MUL, Op.MULH, Op.MULHSU, Op.MULHU, Op.DIV, Op.DIVU, Op.REM, Op.REMU];
const OPMULW = [Op.MULW, -1, -1, -1, Op.DIVW, Op.DIVUW, Op.REMW, Op.REMUW];
const AMO_FUNCT5 = new Set([0x00, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c]);

/** Result of decoding: packed word and immediate. */
export interface Decoded { w: number; imm: number }

const ILL = (ins: number): Decoded => ({ w: pack(Op.ILLEGAL, 0, 0, 0), imm: ins | 0 });

/** Decodes one 32-bit instruction (low two bits 11). */
export function decode32(ins: number): Decoded {
  const opc = ins & 0x7f;
  const rd = (ins >>> 7) & 31, f3 = (ins >>> 12) & 7, rs1 = (ins >>> 15) & 31, rs2 = (ins >>> 20) & 31;
  const f7 = ins >>> 25;
  const immI = ins >> 20;
  const immS = ((ins >> 25) << 5) | ((ins >>> 7) & 31);
  switch (opc) {
    case 0x37: return { w: pack(Op.LUI, rd, 0, 0), imm: ins & 0xfffff000 };
    case 0x17: return { w: pack(Op.AUIPC, rd, 0, 0), imm: ins & 0xfffff000 };
    case 0x6f: {
      const imm = ((ins >> 11) & ~0xfffff) | (ins & 0xff000) | ((ins >>> 9) & 0x800) | ((ins >>> 20) & 0x7fe);
      return { w: pack(Op.JAL, rd, 0, 0), imm };
    }
    case 0x67: return f3 === 0 ? { w: pack(Op.JALR, rd, rs1, 0), imm: immI } : ILL(ins);
    case 0x63: {
      const op = BRANCHES[f3]!;
      if (op < 0) return ILL(ins);
      const imm = ((ins >> 19) & ~0xfff) | ((ins << 4) & 0x800) | ((ins >>> 20) & 0x7e0) | ((ins >>> 7) & 0x1e);
      return { w: pack(op, 0, rs1, rs2), imm };
    }
    case 0x03: { const op = LOADS[f3]!; return op < 0 ? ILL(ins) : { w: pack(op, rd, rs1, 0), imm: immI }; }
    case 0x23: { const op = STORES[f3]!; return op < 0 ? ILL(ins) : { w: pack(op, 0, rs1, rs2), imm: immS }; }
    case 0x13: {
      let op = OPIMM[f3]!;
      if (op === -2) { // shifts: 6-bit shamt on RV64 (spec 4.2.1)
        const f6 = ins >>> 26;
        if (f3 === 1) op = f6 === 0 ? Op.SLLI : -1;
        else op = f6 === 0 ? Op.SRLI : f6 === 0x10 ? Op.SRAI : -1;
        if (op < 0) return ILL(ins);
        return { w: pack(op, rd, rs1, 0), imm: immI & 63 };
      }
      if (op === Op.ADDI && immI === 0) op = Op.MV;
      return { w: pack(op, rd, rs1, 0), imm: immI };
    }
    case 0x1b: {
      if (f3 === 0) return { w: pack(Op.ADDIW, rd, rs1, 0), imm: immI };
      const sh = (ins >>> 20) & 31;
      if (f3 === 1 && f7 === 0) return { w: pack(Op.SLLIW, rd, rs1, 0), imm: sh };
      if (f3 === 5 && f7 === 0) return { w: pack(Op.SRLIW, rd, rs1, 0), imm: sh };
      if (f3 === 5 && f7 === 0x20) return { w: pack(Op.SRAIW, rd, rs1, 0), imm: sh };
      return ILL(ins);
    }
    case 0x33: {
      let op = -1;
      if (f7 === 0) op = OPREG[f3]!;
      else if (f7 === 1) op = OPMUL[f3]!;
      else if (f7 === 0x20) op = f3 === 0 ? Op.SUB : f3 === 5 ? Op.SRA : -1;
      return op < 0 ? ILL(ins) : { w: pack(op, rd, rs1, rs2), imm: 0 };
    }
    case 0x3b: {
      let op = -1;
      if (f7 === 0) op = f3 === 0 ? Op.ADDW : f3 === 1 ? Op.SLLW : f3 === 5 ? Op.SRLW : -1;
      else if (f7 === 1) op = OPMULW[f3]!;
      else if (f7 === 0x20) op = f3 === 0 ? Op.SUBW : f3 === 5 ? Op.SRAW : -1;
      return op < 0 ? ILL(ins) : { w: pack(op, rd, rs1, rs2), imm: 0 };
    }
    case 0x0f:
      // FENCE ignores its unused fields (spec 2.7); FENCE.I likewise (Zifencei).
      if (f3 === 0) return { w: pack(Op.FENCE, 0, 0, 0), imm: 0 };
      if (f3 === 1) return { w: pack(Op.FENCE_I, 0, 0, 0), imm: 0 };
      return ILL(ins);
    case 0x73: {
      if (f3 === 0) {
        if (ins === 0x00000073) return { w: pack(Op.ECALL, 0, 0, 0), imm: 0 };
        if (ins === 0x00100073) return { w: pack(Op.EBREAK, 0, 0, 0), imm: 0 };
        if (ins === 0x30200073) return { w: pack(Op.MRET, 0, 0, 0), imm: 0 };
        if (ins === 0x10200073) return { w: pack(Op.SRET, 0, 0, 0), imm: 0 };
        if (ins === 0x10500073) return { w: pack(Op.WFI, 0, 0, 0), imm: 0 };
        if (f7 === 0x09 && rd === 0) return { w: pack(Op.SFENCE_VMA, 0, rs1, rs2), imm: ins | 0 };
        return ILL(ins);
      }
      if (f3 === 4) return ILL(ins);
      const csr = ins >>> 20;
      const op = [0, Op.CSRRW, Op.CSRRS, Op.CSRRC, 0, Op.CSRRWI, Op.CSRRSI, Op.CSRRCI][f3]!;
      // imm = csr number; the instruction bits for an illegal access are re-read at trap time.
      return { w: pack(op, rd, rs1, 0), imm: csr };
    }
    case 0x2f: {
      const f5 = ins >>> 27;
      if (f3 !== 2 && f3 !== 3) return ILL(ins);
      const d = f3 === 3;
      if (f5 === 0x02) return rs2 === 0 ? { w: pack(d ? Op.LR_D : Op.LR_W, rd, rs1, 0), imm: 0 } : ILL(ins);
      if (f5 === 0x03) return { w: pack(d ? Op.SC_D : Op.SC_W, rd, rs1, rs2), imm: 0 };
      if (!AMO_FUNCT5.has(f5)) return ILL(ins);
      return { w: pack(d ? Op.AMO_D : Op.AMO_W, rd, rs1, rs2), imm: f5 };
    }
    case 0x07:
      // rd names an f register here, so f0 is a real destination: pack it unchanged.
      if (f3 === 2) return { w: Op.FLW | (rd << 8) | (rs1 << 14), imm: immI };
      if (f3 === 3) return { w: Op.FLD | (rd << 8) | (rs1 << 14), imm: immI };
      return ILL(ins);
    case 0x27:
      if (f3 === 2) return { w: pack(Op.FSW, 0, rs1, rs2), imm: immS };
      if (f3 === 3) return { w: pack(Op.FSD, 0, rs1, rs2), imm: immS };
      return ILL(ins);
    case 0x43: case 0x47: case 0x4b: case 0x4f: case 0x53:
      return { w: pack(Op.FP, 0, 0, 0), imm: ins | 0 };
    default:
      return ILL(ins);
  }
}

// ---- 32-bit encoders used by the RVC expansion ----
const enc = {
  i: (imm: number, rs1: number, f3: number, rd: number, opc: number) =>
    (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc) >>> 0,
  s: (imm: number, rs2: number, rs1: number, f3: number, opc: number) =>
    ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | opc) >>> 0,
  r: (f7: number, rs2: number, rs1: number, f3: number, rd: number, opc: number) =>
    ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc) >>> 0,
  b: (imm: number, rs2: number, rs1: number, f3: number) =>
    ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
      (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0,
  j: (imm: number, rd: number) =>
    ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) |
      (imm & 0xff000) | (rd << 7) | 0x6f) >>> 0,
};

const sext = (v: number, bits: number) => (v << (32 - bits)) >> (32 - bits);

/**
 * Expands a 16-bit compressed instruction to the 32-bit instruction it stands for
 * (spec ch. 16, table 16.5-16.7), or returns 0 for a reserved/illegal encoding.
 */
export function expandC(h: number): number {
  const q = h & 3, f3 = (h >>> 13) & 7;
  const rdp = ((h >>> 2) & 7) + 8, rs1p = ((h >>> 7) & 7) + 8;
  const rd = (h >>> 7) & 31, rs2 = (h >>> 2) & 31;
  if (q === 0) {
    const uD = ((h >>> 7) & 0x38) | ((h << 1) & 0xc0); // C.LD/C.SD/C.FLD/C.FSD offset
    const uW = ((h >>> 7) & 0x38) | ((h >>> 4) & 4) | ((h << 1) & 0x40); // C.LW/C.SW offset
    switch (f3) {
      case 0: {
        const nz = ((h >>> 7) & 0x30) | ((h >>> 1) & 0x3c0) | ((h >>> 4) & 0x4) | ((h >>> 2) & 0x8);
        return nz === 0 ? 0 : enc.i(nz, 2, 0, rdp, 0x13); // C.ADDI4SPN (all-zero parcel is illegal too)
      }
      case 1: return enc.i(uD, rs1p, 3, rdp, 0x07); // C.FLD
      case 2: return enc.i(uW, rs1p, 2, rdp, 0x03); // C.LW
      case 3: return enc.i(uD, rs1p, 3, rdp, 0x03); // C.LD
      case 5: return enc.s(uD, rdp, rs1p, 3, 0x27); // C.FSD
      case 6: return enc.s(uW, rdp, rs1p, 2, 0x23); // C.SW
      case 7: return enc.s(uD, rdp, rs1p, 3, 0x23); // C.SD
      default: return 0;
    }
  }
  if (q === 1) {
    const imm6 = sext(((h >>> 7) & 0x20) | ((h >>> 2) & 0x1f), 6);
    switch (f3) {
      case 0: return enc.i(imm6, rd, 0, rd, 0x13); // C.ADDI / C.NOP (hints are legal)
      case 1: return rd === 0 ? 0 : enc.i(imm6, rd, 0, rd, 0x1b); // C.ADDIW
      case 2: return enc.i(imm6, 0, 0, rd, 0x13); // C.LI
      case 3: {
        if (rd === 2) { // C.ADDI16SP
          const imm = sext(((h >>> 3) & 0x200) | ((h >>> 2) & 0x10) | ((h << 1) & 0x40) | ((h << 4) & 0x180) | ((h << 3) & 0x20), 10);
          return imm === 0 ? 0 : enc.i(imm, 2, 0, 2, 0x13);
        }
        if (imm6 === 0) return 0; // C.LUI with nzimm 0 is reserved
        return (((imm6 << 12) & 0xfffff000) | (rd << 7) | 0x37) >>> 0; // C.LUI
      }
      case 4: {
        const f2 = (h >>> 10) & 3;
        const sh = ((h >>> 7) & 0x20) | ((h >>> 2) & 0x1f);
        if (f2 === 0) return enc.i(sh, rs1p, 5, rs1p, 0x13); // C.SRLI
        if (f2 === 1) return enc.i(sh | 0x400, rs1p, 5, rs1p, 0x13); // C.SRAI
        if (f2 === 2) return enc.i(imm6, rs1p, 7, rs1p, 0x13); // C.ANDI
        const f = (h >>> 5) & 3;
        if ((h & 0x1000) === 0) {
          const f3s = [0, 4, 6, 7][f]!;
          return enc.r(f === 0 ? 0x20 : 0, rdp, rs1p, f3s, rs1p, 0x33); // C.SUB/XOR/OR/AND
        }
        if (f === 0) return enc.r(0x20, rdp, rs1p, 0, rs1p, 0x3b); // C.SUBW
        if (f === 1) return enc.r(0, rdp, rs1p, 0, rs1p, 0x3b); // C.ADDW
        return 0;
      }
      case 5: { // C.J
        const imm = sext(((h >>> 1) & 0x800) | ((h >>> 7) & 0x10) | ((h >>> 1) & 0x300) | ((h << 2) & 0x400) |
          ((h >>> 1) & 0x40) | ((h << 1) & 0x80) | ((h >>> 2) & 0xe) | ((h << 3) & 0x20), 12);
        return enc.j(imm, 0);
      }
      default: { // C.BEQZ / C.BNEZ
        const imm = sext(((h >>> 4) & 0x100) | ((h >>> 7) & 0x18) | ((h << 1) & 0xc0) | ((h >>> 2) & 6) | ((h << 3) & 0x20), 9);
        return enc.b(imm, 0, rs1p, f3 === 6 ? 0 : 1);
      }
    }
  }
  if (q === 2) {
    const uDsp = ((h >>> 7) & 0x20) | ((h >>> 2) & 0x18) | ((h << 4) & 0x1c0);
    switch (f3) {
      case 0: return enc.i(((h >>> 7) & 0x20) | rs2, rd, 1, rd, 0x13); // C.SLLI
      case 1: return enc.i(uDsp, 2, 3, rd, 0x07); // C.FLDSP
      case 2: return rd === 0 ? 0 : enc.i(((h >>> 7) & 0x20) | ((h >>> 2) & 0x1c) | ((h << 4) & 0xc0), 2, 2, rd, 0x03); // C.LWSP
      case 3: return rd === 0 ? 0 : enc.i(uDsp, 2, 3, rd, 0x03); // C.LDSP
      case 4:
        if ((h & 0x1000) === 0) {
          if (rs2 === 0) return rd === 0 ? 0 : enc.i(0, rd, 0, 0, 0x67); // C.JR
          return enc.r(0, rs2, 0, 0, rd, 0x33); // C.MV
        }
        if (rs2 === 0) return rd === 0 ? 0x00100073 : enc.i(0, rd, 0, 1, 0x67); // C.EBREAK / C.JALR
        return enc.r(0, rs2, rd, 0, rd, 0x33); // C.ADD
      case 5: return enc.s(((h >>> 7) & 0x38) | ((h >>> 1) & 0x1c0), rs2, 2, 3, 0x27); // C.FSDSP
      case 6: return enc.s(((h >>> 7) & 0x3c) | ((h >>> 1) & 0xc0), rs2, 2, 2, 0x23); // C.SWSP
      default: return enc.s(((h >>> 7) & 0x38) | ((h >>> 1) & 0x1c0), rs2, 2, 3, 0x23); // C.SDSP
    }
  }
  return 0;
}

/** Decodes a 16-bit parcel; illegal encodings keep the 16-bit bits for tval (priv spec 3.1.16). */
export function decode16(h: number): Decoded {
  const x = expandC(h);
  if (x === 0) return { w: pack(Op.ILLEGAL, 0, 0, 0) | W_C, imm: h };
  let d = decode32(x);
  // C.MV is `add rd, x0, rs2`; give it the dedicated copy op.
  if ((d.w & 0xff) === Op.ADD && ((d.w >>> 14) & 31) === 0) d = { w: (d.w & ~0xff & ~(31 << 14) & ~(31 << 19)) | Op.MV | (((d.w >>> 19) & 31) << 14), imm: 0 };
  return { w: d.w | W_C, imm: d.imm };
}
