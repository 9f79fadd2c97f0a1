/**
 * F and D arithmetic without bigint: FADD, FSUB, FMUL, FDIV and FSQRT rounded to nearest-even on
 * the host's binary64 arithmetic, where that gives the exact bits and flags. softfloat.ts
 * (bigint) does everything else: other rounding modes, NaN, infinities, zeros, and operands or
 * results near the ends of the exponent range (overflow, underflow and subnormals).
 *
 * - D: with both operands' exponents within 2^±250, no result over- or underflows, so the only
 *   flag is NX, and it is exact: the rounding error of a sum comes from TwoSum (Knuth), that of
 *   a product from Dekker's TwoProduct (Veltkamp's split), and a quotient or square root is
 *   exact when its product with the divisor (itself) gives the dividend back (a - p is exact
 *   by Sterbenz's lemma since p is within a factor 2 of a).
 * - S: a NaN-boxed single is exact as a double; the double result rounded once more with
 *   Math.fround is the correctly rounded single (double rounding is innocuous for + - * / sqrt
 *   when 53 >= 2 * 24 + 2, Figueroa 1995). It is inexact when either rounding was. Results at
 *   or below 2^-126 (tininess, UF) and overflows go to softfloat.
 */
import { NX } from './softfloat.js';

const f64 = new Float64Array(1), w64 = new Int32Array(f64.buffer);
const f32 = new Float32Array(1), w32 = new Int32Array(f32.buffer);
const SPLIT = 134217729; // 2^27 + 1
const MIN_NORMAL32 = 1.1754943508222875e-38; // 2^-126

/** The exact rounding error of p = a * b: a * b = p + e (no over- or underflow). */
function mulErr(a: number, b: number, p: number): number {
  let t = SPLIT * a;
  const ah = t - (t - a), al = a - ah;
  t = SPLIT * b;
  const bh = t - (t - b), bl = b - bh;
  return ((ah * bh - p) + ah * bl + al * bh) + al * bl;
}

/** The exact rounding error of s = a + b (TwoSum). */
function addErr(a: number, b: number, s: number): number {
  const bb = s - a;
  return (a - (s - bb)) + (b - bb);
}

/** D exponent field within 2^±250 of 1. */
const inRange = (hi: number) => { const e = (hi >>> 20) & 0x7ff; return e >= 773 && e <= 1273; };

/**
 * `op` (0 FADD, 1 FSUB, 2 FMUL, 3 FDIV, 11 FSQRT) of format `fmt` (0 S, 1 D) on f registers
 * rs1, rs2 into rd (`fi`: two int32 words per register), rounding to nearest-even. Returns the
 * flags raised (0 or NX), or -1 having changed nothing when softfloat must do it.
 */
export function fastArith(fi: Int32Array, op: number, fmt: number, rd: number, rs1: number, rs2: number): number {
  let r: number, exact: boolean;
  if (fmt === 1) {
    const ahi = fi[2 * rs1 + 1]!;
    if (!inRange(ahi)) return -1;
    w64[0] = fi[2 * rs1]!; w64[1] = ahi;
    const a = f64[0]!;
    let b = 0;
    if (op !== 11) {
      const bhi = fi[2 * rs2 + 1]!;
      if (!inRange(bhi)) return -1;
      w64[0] = fi[2 * rs2]!; w64[1] = bhi;
      b = f64[0]!;
    }
    switch (op) {
      case 0: r = a + b; exact = addErr(a, b, r) === 0; break;
      case 1: r = a - b; exact = addErr(a, -b, r) === 0; break;
      case 2: r = a * b; exact = mulErr(a, b, r) === 0; break;
      case 3: { r = a / b; const p = r * b; exact = a - p === mulErr(r, b, p); break; }
      default: {
        if (a < 0) return -1; // NV: softfloat
        r = Math.sqrt(a); const p = r * r; exact = a - p === mulErr(r, r, p); break;
      }
    }
    f64[0] = r;
    fi[2 * rd] = w64[0]!; fi[2 * rd + 1] = w64[1]!;
    return exact ? 0 : NX;
  }
  if (fi[2 * rs1 + 1] !== -1) return -1; // not NaN-boxed: the canonical NaN
  w32[0] = fi[2 * rs1]!;
  const a = f32[0]!;
  if (a === 0 || !Number.isFinite(a)) return -1;
  let b = 0;
  if (op !== 11) {
    if (fi[2 * rs2 + 1] !== -1) return -1;
    w32[0] = fi[2 * rs2]!;
    b = f32[0]!;
    if (b === 0 || !Number.isFinite(b)) return -1;
  }
  switch (op) {
    case 0: r = a + b; exact = addErr(a, b, r) === 0; break;
    case 1: r = a - b; exact = addErr(a, -b, r) === 0; break;
    case 2: r = a * b; exact = true; break; // 24 x 24 bits fit in 53
    case 3: { r = a / b; const p = r * b; exact = a - p === mulErr(r, b, p); break; }
    default: {
      if (a < 0) return -1;
      r = Math.sqrt(a); const p = r * r; exact = a - p === mulErr(r, r, p); break;
    }
  }
  const R = Math.fround(r);
  if (R === 0 ? r !== 0 : Math.abs(R) <= MIN_NORMAL32 || !Number.isFinite(R)) return -1;
  f32[0] = R;
  fi[2 * rd] = w32[0]!; fi[2 * rd + 1] = -1;
  return exact && R === r ? 0 : NX;
}
