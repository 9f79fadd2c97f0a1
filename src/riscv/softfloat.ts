/**
 * Exact IEEE 754-2008 binary32/binary64 arithmetic for the F and D extensions (unprivileged spec
 * ch. 11-12), with the five RISC-V rounding modes and the accrued exception flags.
 *
 * Every operation computes its exact result as sign * m * 2^e with a bigint m (plus a sticky bit
 * for division and square root), then `round` rounds it once to the destination format. That is
 * correct by construction for every rounding mode, fused multiply-add included, at the price of
 * bigint speed; FP is not on the hot path of the guests this VM runs (kernels use none).
 * Tininess is detected after rounding, as RISC-V specifies (11.2 "fflags").
 */

export const NX = 1, UF = 2, OF = 4, DZ = 8, NV = 16;
export const RNE = 0, RTZ = 1, RDN = 2, RUP = 3, RMM = 4;

export interface Fmt { p: number; emin: number; emax: number; ebits: number }
export const F32: Fmt = { p: 24, emin: -126, emax: 127, ebits: 8 };
export const F64: Fmt = { p: 53, emin: -1022, emax: 1023, ebits: 11 };

/** Classes of an unpacked value. */
export const ZERO = 0, FINITE = 1, INF = 2, QNAN = 3, SNAN = 4;

export interface Unpacked { cls: number; s: number; m: bigint; e: number }

/** Raw format bits as bigint (binary32 in the low 32 bits). */
export function unpack(bits: bigint, f: Fmt): Unpacked {
  const fracBits = BigInt(f.p - 1);
  const emask = (1n << BigInt(f.ebits)) - 1n;
  const s = Number((bits >> BigInt(f.p - 1 + f.ebits)) & 1n);
  const E = Number((bits >> fracBits) & emask);
  const frac = bits & ((1n << fracBits) - 1n);
  const bias = (1 << (f.ebits - 1)) - 1;
  if (E === Number(emask)) {
    if (frac === 0n) return { cls: INF, s, m: 0n, e: 0 };
    return { cls: (frac >> (fracBits - 1n)) & 1n ? QNAN : SNAN, s, m: 0n, e: 0 };
  }
  if (E === 0) {
    if (frac === 0n) return { cls: ZERO, s, m: 0n, e: 0 };
    return { cls: FINITE, s, m: frac, e: 1 - bias - (f.p - 1) };
  }
  return { cls: FINITE, s, m: frac | (1n << fracBits), e: E - bias - (f.p - 1) };
}

export function canonicalNaN(f: Fmt): bigint {
  return f.p === 24 ? 0x7fc00000n : 0x7ff8000000000000n;
}
function packInf(s: number, f: Fmt): bigint {
  return (BigInt(s) << BigInt(f.p - 1 + f.ebits)) | (((1n << BigInt(f.ebits)) - 1n) << BigInt(f.p - 1));
}
function packMax(s: number, f: Fmt): bigint {
  return packInf(s, f) - 1n;
}
export function packZero(s: number, f: Fmt): bigint {
  return BigInt(s) << BigInt(f.p - 1 + f.ebits);
}

const bitlen = (m: bigint) => m.toString(2).length;

/** Result of an operation: format bits and the flags it raised. */
export interface FResult { bits: bigint; flags: number }

/**
 * Rounds sign * (m + sticky*epsilon) * 2^e to format f with rounding mode rm (m > 0 or sticky).
 */
export function round(s: number, m: bigint, e: number, sticky: boolean, f: Fmt, rm: number): FResult {
  if (m === 0n && !sticky) return { bits: packZero(s, f), flags: 0 };
  // Give the value some guard bits so the sticky bit sits below the rounding position.
  if (sticky || bitlen(m) < f.p + 2) { const k = f.p + 3; m <<= BigInt(k); e -= k; if (sticky) m |= 1n; }
  const E = bitlen(m) - 1 + e; // exponent of the leading bit
  const roundAt = (lsb: number): { q: bigint; inexact: boolean } => {
    const shift = lsb - e;
    let q: bigint, rem = 0n, half = 0n;
    if (shift > 0) {
      const sh = BigInt(shift);
      q = m >> sh; rem = m & ((1n << sh) - 1n); half = 1n << (sh - 1n);
    } else q = m << BigInt(-shift);
    const inexact = rem !== 0n;
    let up = false;
    if (inexact) {
      switch (rm) {
        case RNE: up = rem > half || (rem === half && (q & 1n) === 1n); break;
        case RTZ: up = false; break;
        case RDN: up = s === 1; break;
        case RUP: up = s === 0; break;
        default: up = rem >= half; break; // RMM
      }
    }
    return { q: up ? q + 1n : q, inexact };
  };
  let flags = 0;
  const minLsb = f.emin - f.p + 1;
  let lsb = Math.max(E - f.p + 1, minLsb);
  let { q, inexact } = roundAt(lsb);
  if (bitlen(q) > f.p) { q >>= 1n; lsb++; } // rounding carried into a new leading bit
  if (inexact) flags |= NX;
  // Tininess after rounding: the result rounded to p bits with unbounded exponent is below 2^emin.
  if (inexact && E < f.emin) {
    const u = roundAt(E - f.p + 1);
    const eAfter = bitlen(u.q) > f.p ? E + 1 : E;
    if (eAfter < f.emin) flags |= UF;
  }
  const resultE = bitlen(q) - 1 + lsb;
  if (q !== 0n && resultE > f.emax) {
    flags |= OF | NX;
    const toInf = rm === RNE || rm === RMM || (rm === RDN && s === 1) || (rm === RUP && s === 0);
    return { bits: toInf ? packInf(s, f) : packMax(s, f), flags };
  }
  const signBit = BigInt(s) << BigInt(f.p - 1 + f.ebits);
  if (q === 0n) return { bits: signBit, flags };
  const bias = (1 << (f.ebits - 1)) - 1;
  if (bitlen(q) < f.p) return { bits: signBit | q, flags }; // subnormal: exponent field 0
  const frac = q & ((1n << BigInt(f.p - 1)) - 1n);
  return { bits: signBit | (BigInt(resultE + bias) << BigInt(f.p - 1)) | frac, flags };
}

/** NaN propagation: canonical NaN, NV if any operand is signaling (11.3). */
function nanResult(f: Fmt, ...xs: Unpacked[]): FResult {
  return { bits: canonicalNaN(f), flags: xs.some((x) => x.cls === SNAN) ? NV : 0 };
}
const isNaN_ = (x: Unpacked) => x.cls === QNAN || x.cls === SNAN;

/** Exact a + b (b's sign already flipped for subtraction). */
export function add(a: Unpacked, b: Unpacked, f: Fmt, rm: number): FResult {
  if (isNaN_(a) || isNaN_(b)) return nanResult(f, a, b);
  if (a.cls === INF || b.cls === INF) {
    if (a.cls === INF && b.cls === INF && a.s !== b.s) return { bits: canonicalNaN(f), flags: NV };
    return { bits: packInf(a.cls === INF ? a.s : b.s, f), flags: 0 };
  }
  if (a.cls === ZERO && b.cls === ZERO) {
    // x + x keeps the sign of zero; opposite signs give +0, or -0 when rounding down (754 6.3).
    return { bits: packZero(a.s === b.s ? a.s : rm === RDN ? 1 : 0, f), flags: 0 };
  }
  if (a.cls === ZERO) return round(b.s, b.m, b.e, false, f, rm);
  if (b.cls === ZERO) return round(a.s, a.m, a.e, false, f, rm);
  const e = Math.min(a.e, b.e);
  const va = (a.m << BigInt(a.e - e)) * (a.s ? -1n : 1n);
  const vb = (b.m << BigInt(b.e - e)) * (b.s ? -1n : 1n);
  const sum = va + vb;
  if (sum === 0n) return { bits: packZero(rm === RDN ? 1 : 0, f), flags: 0 };
  return round(sum < 0n ? 1 : 0, sum < 0n ? -sum : sum, e, false, f, rm);
}

export function mul(a: Unpacked, b: Unpacked, f: Fmt, rm: number): FResult {
  if (isNaN_(a) || isNaN_(b)) return nanResult(f, a, b);
  const s = a.s ^ b.s;
  if (a.cls === INF || b.cls === INF) {
    if (a.cls === ZERO || b.cls === ZERO) return { bits: canonicalNaN(f), flags: NV };
    return { bits: packInf(s, f), flags: 0 };
  }
  if (a.cls === ZERO || b.cls === ZERO) return { bits: packZero(s, f), flags: 0 };
  return round(s, a.m * b.m, a.e + b.e, false, f, rm);
}

/** Fused a*b + c with a single rounding (11.6); NV for inf*0 even when c is a quiet NaN. */
export function fma(a: Unpacked, b: Unpacked, c: Unpacked, f: Fmt, rm: number): FResult {
  if ((a.cls === INF && b.cls === ZERO) || (a.cls === ZERO && b.cls === INF)) {
    return { bits: canonicalNaN(f), flags: NV };
  }
  if (isNaN_(a) || isNaN_(b) || isNaN_(c)) return nanResult(f, a, b, c);
  const s = a.s ^ b.s;
  if (a.cls === INF || b.cls === INF) {
    if (c.cls === INF && c.s !== s) return { bits: canonicalNaN(f), flags: NV };
    return { bits: packInf(s, f), flags: 0 };
  }
  if (c.cls === INF) return { bits: packInf(c.s, f), flags: 0 };
  const prod: Unpacked = a.cls === ZERO || b.cls === ZERO ? { cls: ZERO, s, m: 0n, e: 0 } : { cls: FINITE, s, m: a.m * b.m, e: a.e + b.e };
  return add(prod, c, f, rm);
}

export function div(a: Unpacked, b: Unpacked, f: Fmt, rm: number): FResult {
  if (isNaN_(a) || isNaN_(b)) return nanResult(f, a, b);
  const s = a.s ^ b.s;
  if (a.cls === INF) return b.cls === INF ? { bits: canonicalNaN(f), flags: NV } : { bits: packInf(s, f), flags: 0 };
  if (b.cls === INF) return { bits: packZero(s, f), flags: 0 };
  if (b.cls === ZERO) return a.cls === ZERO ? { bits: canonicalNaN(f), flags: NV } : { bits: packInf(s, f), flags: DZ };
  if (a.cls === ZERO) return { bits: packZero(s, f), flags: 0 };
  const k = Math.max(0, f.p + 3 + bitlen(b.m) - bitlen(a.m));
  const num = a.m << BigInt(k);
  const q = num / b.m;
  return round(s, q, a.e - b.e - k, num % b.m !== 0n, f, rm);
}

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt((bitlen(n) >> 1) + 1);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

export function sqrt(a: Unpacked, f: Fmt, rm: number): FResult {
  if (isNaN_(a)) return nanResult(f, a);
  if (a.cls === ZERO) return { bits: packZero(a.s, f), flags: 0 };
  if (a.s === 1) return { bits: canonicalNaN(f), flags: NV };
  if (a.cls === INF) return { bits: packInf(0, f), flags: 0 };
  let k = Math.max(0, 2 * f.p + 6 - bitlen(a.m));
  if (((a.e - k) & 1) !== 0) k++;
  const n = a.m << BigInt(k);
  const r = isqrt(n);
  return round(0, r, (a.e - k) / 2, r * r !== n, f, rm);
}

/** Float to integer with rounding, saturation and flags (11.7, table 11.4). */
export function toInt(a: Unpacked, bits: 32 | 64, signed: boolean, rm: number): { v: bigint; flags: number } {
  const max = signed ? (1n << BigInt(bits - 1)) - 1n : (1n << BigInt(bits)) - 1n;
  const min = signed ? -(1n << BigInt(bits - 1)) : 0n;
  if (isNaN_(a)) return { v: max, flags: NV };
  if (a.cls === INF) return { v: a.s ? min : max, flags: NV };
  if (a.cls === ZERO) return { v: 0n, flags: 0 };
  let q: bigint, inexact = false;
  if (a.e >= 0) q = a.m << BigInt(a.e);
  else {
    const sh = BigInt(-a.e);
    q = a.m >> sh;
    const rem = a.m & ((1n << sh) - 1n), half = 1n << (sh - 1n);
    inexact = rem !== 0n;
    let up = false;
    if (inexact) {
      switch (rm) {
        case RNE: up = rem > half || (rem === half && (q & 1n) === 1n); break;
        case RTZ: break;
        case RDN: up = a.s === 1; break;
        case RUP: up = a.s === 0; break;
        default: up = rem >= half;
      }
    }
    if (up) q += 1n;
  }
  const v = a.s ? -q : q;
  if (v > max) return { v: max, flags: NV };
  if (v < min) return { v: min, flags: NV };
  return { v, flags: inexact ? NX : 0 };
}

/** Integer to float. */
export function fromInt(v: bigint, f: Fmt, rm: number): FResult {
  if (v === 0n) return { bits: packZero(0, f), flags: 0 };
  return round(v < 0n ? 1 : 0, v < 0n ? -v : v, 0, false, f, rm);
}

/** Format conversion (FCVT.S.D / FCVT.D.S). */
export function convert(a: Unpacked, to: Fmt, rm: number): FResult {
  if (isNaN_(a)) return nanResult(to, a);
  if (a.cls === INF) return { bits: packInf(a.s, to), flags: 0 };
  if (a.cls === ZERO) return { bits: packZero(a.s, to), flags: 0 };
  return round(a.s, a.m, a.e, false, to, rm);
}

/** a < b (or <=) for ordered, non-NaN values; -0 == +0. */
export function compare(a: Unpacked, b: Unpacked): number {
  const va = a.cls === ZERO ? 0 : a.cls === INF ? Infinity : 1;
  const vb = b.cls === ZERO ? 0 : b.cls === INF ? Infinity : 1;
  if (va === 0 && vb === 0) return 0;
  // Compare signed magnitudes exactly.
  const sa = a.cls === ZERO ? 0 : a.s ? -1 : 1, sb = b.cls === ZERO ? 0 : b.s ? -1 : 1;
  if (sa !== sb) return sa < sb ? -1 : 1;
  let mag: number;
  if (a.cls === INF || b.cls === INF) mag = a.cls === b.cls ? 0 : a.cls === INF ? 1 : -1;
  else {
    const e = Math.min(a.e, b.e);
    const ma = a.m << BigInt(a.e - e), mb = b.m << BigInt(b.e - e);
    mag = ma === mb ? 0 : ma > mb ? 1 : -1;
  }
  return sa < 0 ? -mag : mag;
}

/** FCLASS result bits (11.9, table 11.5). */
export function fclass(a: Unpacked, f: Fmt, bits: bigint): number {
  const sub = a.cls === FINITE && (bits >> BigInt(f.p - 1)) % (1n << BigInt(f.ebits)) === 0n;
  switch (a.cls) {
    case INF: return a.s ? 1 << 0 : 1 << 7;
    case ZERO: return a.s ? 1 << 3 : 1 << 4;
    case SNAN: return 1 << 8;
    case QNAN: return 1 << 9;
    default: return sub ? (a.s ? 1 << 2 : 1 << 5) : (a.s ? 1 << 1 : 1 << 6);
  }
}
