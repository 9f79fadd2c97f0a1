/**
 * 64-bit integer arithmetic on registers held as int32 halves (lo, hi).
 *
 * Why halves: bench/cpu-regs.ts measured a mix of add/shift/compare/address arithmetic on Node 20:
 * split Int32Array lo/hi registers ran 2-2.6x faster than BigInt64Array with BigInt ops. The cheap
 * operations (add, logic, shifts, compares) are written inline in exec.ts; the multi-step ones are
 * here and write their result straight into the register file at `rd` (no allocation).
 * Semantics: unprivileged spec ch. 2 (RV32I/RV64I) and ch. 7 "M" extension.
 */

const TWO32 = 4294967296;

/** High 32 bits of the unsigned 32x32 product. */
export function mulhu32(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p01 = a0 * b1, p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) | 0;
}

/** MUL: low 64 bits of the product. */
export function mul64(xl: Int32Array, xh: Int32Array, rd: number, al: number, ah: number, bl: number, bh: number): void {
  xh[rd] = (mulhu32(al, bl) + Math.imul(al, bh) + Math.imul(ah, bl)) | 0;
  xl[rd] = Math.imul(al, bl);
}

/**
 * MULH, MULHSU, MULHU: the high 64 bits of the 128-bit product. Computed unsigned from four
 * 32x32 partial products, then corrected for signed operands: for a < 0 the unsigned reading is
 * a + 2^64, which adds b * 2^64 to the product, i.e. b to the high half (and likewise for b < 0).
 */
export function mulh64(xl: Int32Array, xh: Int32Array, rd: number, al: number, ah: number, bl: number, bh: number,
  aSigned: boolean, bSigned: boolean): void {
  const hi00 = mulhu32(al, bl) >>> 0; // the low word of a0*b0 cannot carry into the high half
  const lo01 = Math.imul(al, bh) >>> 0, hi01 = mulhu32(al, bh) >>> 0;
  const lo10 = Math.imul(ah, bl) >>> 0, hi10 = mulhu32(ah, bl) >>> 0;
  const lo11 = Math.imul(ah, bh) >>> 0, hi11 = mulhu32(ah, bh) >>> 0;
  const w1 = hi00 + lo01 + lo10;
  const w2 = hi01 + hi10 + lo11 + Math.floor(w1 / TWO32);
  let rl = w2 >>> 0;
  let rh = (hi11 + Math.floor(w2 / TWO32)) >>> 0;
  if (aSigned && ah < 0) { // subtract b
    const l = rl - (bl >>> 0);
    rh = (rh - (bh >>> 0) - (l < 0 ? 1 : 0)) >>> 0; rl = l >>> 0;
  }
  if (bSigned && bh < 0) { // subtract a
    const l = rl - (al >>> 0);
    rh = (rh - (ah >>> 0) - (l < 0 ? 1 : 0)) >>> 0; rl = l >>> 0;
  }
  xl[rd] = rl | 0; xh[rd] = rh | 0;
}

const big = (lo: number, hi: number): bigint => (BigInt(hi) << 32n) | BigInt(lo >>> 0);
function setBig(xl: Int32Array, xh: Int32Array, rd: number, v: bigint): void {
  xl[rd] = Number(BigInt.asIntN(32, v));
  xh[rd] = Number(BigInt.asIntN(32, v >> 32n));
}

/**
 * DIV/DIVU/REM/REMU (spec 7.2, table 7.1): x/0 = all ones, x%0 = x; signed overflow
 * (-2^63 / -1) gives -2^63 and remainder 0. Operands that fit in 32 bits take a Number path;
 * the rest use bigint, which is exact (division is rare enough in the hot path).
 */
export function div64(xl: Int32Array, xh: Int32Array, rd: number, al: number, ah: number, bl: number, bh: number,
  signed: boolean, rem: boolean): void {
  if (bl === 0 && bh === 0) {
    if (rem) { xl[rd] = al; xh[rd] = ah; } else { xl[rd] = -1; xh[rd] = -1; }
    return;
  }
  if (signed) {
    if (ah === al >> 31 && bh === bl >> 31) {
      const r = rem ? al % bl : Math.trunc(al / bl);
      xl[rd] = r | 0; xh[rd] = r < 0 ? -1 : 0; // |r| <= 2^31 (-2^31 / -1 = 2^31: lo wraps, hi is 0)
      return;
    }
    if (ah === (0x80000000 | 0) && al === 0 && bl === -1 && bh === -1) {
      if (rem) { xl[rd] = 0; xh[rd] = 0; } else { xl[rd] = 0; xh[rd] = ah; }
      return;
    }
    const a = big(al, ah), b = big(bl, bh);
    setBig(xl, xh, rd, rem ? a % b : a / b); // bigint / and % truncate toward zero, as RISC-V does
    return;
  }
  if (ah === 0 && bh === 0) {
    const a = al >>> 0, b = bl >>> 0;
    const r = rem ? a % b : Math.floor(a / b);
    xl[rd] = r | 0; xh[rd] = 0;
    return;
  }
  const a = BigInt.asUintN(64, big(al, ah)), b = BigInt.asUintN(64, big(bl, bh));
  setBig(xl, xh, rd, rem ? a % b : a / b);
}

/** DIVW/DIVUW/REMW/REMUW: 32-bit operation, result sign-extended (spec 7.2). */
export function div32(xl: Int32Array, xh: Int32Array, rd: number, a: number, b: number, signed: boolean, rem: boolean): void {
  let r: number;
  if (b === 0) r = rem ? a : -1;
  else if (signed) {
    if (a === (0x80000000 | 0) && b === -1) r = rem ? 0 : a;
    else r = rem ? a % b : Math.trunc(a / b);
  } else {
    const ua = a >>> 0, ub = b >>> 0;
    r = rem ? ua % ub : Math.floor(ua / ub);
  }
  r |= 0;
  xl[rd] = r; xh[rd] = r >> 31;
}

/** SLL/SRL/SRA by a 6-bit amount. */
export function shift64(xl: Int32Array, xh: Int32Array, rd: number, al: number, ah: number, s: number, kind: 0 | 1 | 2): void {
  s &= 63;
  if (s === 0) { xl[rd] = al; xh[rd] = ah; return; }
  if (kind === 0) {
    if (s < 32) { xh[rd] = (ah << s) | (al >>> (32 - s)); xl[rd] = al << s; }
    else { xh[rd] = al << (s - 32); xl[rd] = 0; }
  } else if (kind === 1) {
    if (s < 32) { xl[rd] = (al >>> s) | (ah << (32 - s)); xh[rd] = ah >>> s; }
    else { xl[rd] = ah >>> (s - 32); xh[rd] = 0; }
  } else {
    if (s < 32) { xl[rd] = (al >>> s) | (ah << (32 - s)); xh[rd] = ah >> s; }
    else { xl[rd] = ah >> (s - 32); xh[rd] = ah >> 31; }
  }
}

/** Signed 64-bit a < b. */
export function lt64(al: number, ah: number, bl: number, bh: number): boolean {
  return ah < bh || (ah === bh && (al >>> 0) < (bl >>> 0));
}
/** Unsigned 64-bit a < b. */
export function ltu64(al: number, ah: number, bl: number, bh: number): boolean {
  return (ah >>> 0) < (bh >>> 0) || (ah === bh && (al >>> 0) < (bl >>> 0));
}
