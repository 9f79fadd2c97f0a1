/**
 * Operation numbers of the decoded instruction form.
 *
 * The interpreter's dispatch `switch` in `hart.ts` (and csr-amo-fp.ts) uses these numbers as *literals*
 * (`case 31: // ADD`): measured on Node 20, a switch over literal cases runs about twice as fast
 * as one over imported constants, because V8 folds literals into a jump table. A unit test
 * (test/riscv/ops.test.ts) checks that every `case N: // NAME` comment there agrees with this table.
 */
export const Op = {
  DECODE: 0, // slot not decoded yet
  LUI: 1, AUIPC: 2, JAL: 3, JALR: 4,
  BEQ: 5, BNE: 6, BLT: 7, BGE: 8, BLTU: 9, BGEU: 10,
  LB: 11, LH: 12, LW: 13, LD: 14, LBU: 15, LHU: 16, LWU: 17,
  SB: 18, SH: 19, SW: 20, SD: 21,
  ADDI: 22, SLTI: 23, SLTIU: 24, XORI: 25, ORI: 26, ANDI: 27, SLLI: 28, SRLI: 29, SRAI: 30,
  ADD: 31, SUB: 32, SLL: 33, SLT: 34, SLTU: 35, XOR: 36, SRL: 37, SRA: 38, OR: 39, AND: 40,
  ADDIW: 41, SLLIW: 42, SRLIW: 43, SRAIW: 44,
  ADDW: 45, SUBW: 46, SLLW: 47, SRLW: 48, SRAW: 49,
  MUL: 50, MULH: 51, MULHSU: 52, MULHU: 53, DIV: 54, DIVU: 55, REM: 56, REMU: 57,
  MULW: 58, DIVW: 59, DIVUW: 60, REMW: 61, REMUW: 62,
  FENCE: 63, FENCE_I: 64,
  ECALL: 65, EBREAK: 66, MRET: 67, SRET: 68, WFI: 69, SFENCE_VMA: 70,
  CSRRW: 71, CSRRS: 72, CSRRC: 73, CSRRWI: 74, CSRRSI: 75, CSRRCI: 76,
  LR_W: 77, SC_W: 78, AMO_W: 79, LR_D: 80, SC_D: 81, AMO_D: 82,
  FLW: 83, FSW: 84, FLD: 85, FSD: 86,
  FP: 87, // every OP-FP / FMADD-family instruction; imm holds the raw instruction bits
  ILLEGAL: 88, // imm holds the instruction bits for mtval/stval
  MV: 89, // ADDI rd, rs, 0 and C.MV: the commonest register copy, without the add
} as const;

export type OpName = keyof typeof Op;
