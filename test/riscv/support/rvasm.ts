/**
 * A tiny RV64GC instruction encoder for tests that build programs in memory (no toolchain
 * needed): the base formats of the unprivileged spec (2.2-2.3) and a few compressed forms (16.5).
 */
export const R = (f7: number, rs2: number, rs1: number, f3: number, rd: number, opc: number) =>
  ((f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc) >>> 0;
export const I = (imm: number, rs1: number, f3: number, rd: number, opc: number) =>
  (((imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc) >>> 0;
export const S = (imm: number, rs2: number, rs1: number, f3: number, opc = 0x23) =>
  ((((imm >> 5) & 0x7f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | opc) >>> 0;
export const B = (imm: number, rs2: number, rs1: number, f3: number) =>
  ((((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
    (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | 0x63) >>> 0;
export const U = (imm20: number, rd: number, opc: number) => (((imm20 & 0xfffff) << 12) | (rd << 7) | opc) >>> 0;
export const J = (imm: number, rd: number) =>
  ((((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) |
    (imm & 0xff000) | (rd << 7) | 0x6f) >>> 0;

export const ADDI = (rd: number, rs1: number, imm: number) => I(imm, rs1, 0, rd, 0x13);
export const JALR = (rd: number, rs1: number, imm: number) => I(imm, rs1, 0, rd, 0x67);
export const CSRRS = (rd: number, csr: number, rs1: number) => I(csr, rs1, 2, rd, 0x73);
export const CSRRW = (rd: number, csr: number, rs1: number) => I(csr, rs1, 1, rd, 0x73);
export const MRET = 0x30200073, ECALL = 0x00000073, FENCE_I = 0x0000100f;

// Compressed (quadrant, funct3 and fields per spec 16.5)
export const C_ADDI = (rd: number, imm: number) => (((imm >> 5) & 1) << 12) | (rd << 7) | ((imm & 0x1f) << 2) | 1;
export const C_LI = (rd: number, imm: number) => (2 << 13) | (((imm >> 5) & 1) << 12) | (rd << 7) | ((imm & 0x1f) << 2) | 1;
export const C_MV = (rd: number, rs2: number) => (4 << 13) | (rd << 7) | (rs2 << 2) | 2;
export const C_ADD = (rd: number, rs2: number) => (4 << 13) | (1 << 12) | (rd << 7) | (rs2 << 2) | 2;
export const C_SLLI = (rd: number, sh: number) => (((sh >> 5) & 1) << 12) | (rd << 7) | ((sh & 0x1f) << 2) | 2;
/** C.SUB / C.XOR / C.OR / C.AND (f 0..3) on x8..x15 */
export const C_ALU = (f: number, rdp: number, rs2p: number) => (4 << 13) | (3 << 10) | ((rdp - 8) << 7) | (f << 5) | ((rs2p - 8) << 2) | 1;

/** Writes 32-bit and 16-bit parcels at a byte offset of a RAM array; returns the next offset. */
export function put(ram: Uint8Array, at: number, words: Array<number | { c: number }>): number {
  const dv = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  for (const w of words) {
    if (typeof w === 'number') { dv.setUint32(at, w >>> 0, true); at += 4; }
    else { dv.setUint16(at, w.c & 0xffff, true); at += 2; }
  }
  return at;
}
