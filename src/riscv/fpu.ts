/**
 * F and D instructions (unprivileged spec ch. 11 "F", 12 "D"): decoding of OP-FP and the FMA
 * opcodes, NaN-boxing of single values in the 64-bit f registers (12.2: a single is valid only
 * when the upper 32 bits are all ones, otherwise it reads as the canonical NaN), rounding-mode
 * selection (11.2: rm 7 = dynamic from frm; 5, 6 and a reserved frm are illegal), accrued flags,
 * and mstatus.FS (priv 3.1.6.6: FS = Off makes every FP instruction illegal; writes set Dirty).
 * The arithmetic itself is in softfloat.ts.
 */
import {
  add, compare, convert, div, F32, F64, fclass, fma, fromInt, mul, NV, QNAN, SNAN, sqrt, toInt, unpack,
  type Fmt, type FResult, type Unpacked,
} from './softfloat.js';
import { fastArith } from './fpfast.js';
import { MS_FS, type HartState } from './state.js';

const CANON32 = 0x7fc00000;

function checkFs(h: HartState): void {
  if ((h.mstatus & MS_FS) === 0) h.raiseIllegal();
}
function dirty(h: HartState): void {
  h.mstatus |= MS_FS;
}

/** Raw 64-bit pattern of f register i. */
function raw64(h: HartState, i: number): bigint {
  return (BigInt(h.fi[2 * i + 1]!) << 32n) | BigInt(h.fi[2 * i]! >>> 0);
}
/** Operand bits of f register i in format f (NaN-unboxing singles). */
function opBits(h: HartState, i: number, f: Fmt): bigint {
  if (f === F64) return BigInt.asUintN(64, raw64(h, i));
  return h.fi[2 * i + 1] === -1 ? BigInt(h.fi[2 * i]! >>> 0) : BigInt(CANON32);
}
function writeF(h: HartState, i: number, bits: bigint, f: Fmt): void {
  if (f === F64) {
    h.fi[2 * i] = Number(BigInt.asIntN(32, bits));
    h.fi[2 * i + 1] = Number(BigInt.asIntN(32, bits >> 32n));
  } else {
    h.fi[2 * i] = Number(BigInt.asIntN(32, bits));
    h.fi[2 * i + 1] = -1; // NaN-box
  }
  dirty(h);
}
function writeX(h: HartState, rd: number, v: bigint): void {
  if (rd === 0) return;
  h.xl[rd] = Number(BigInt.asIntN(32, v));
  h.xh[rd] = Number(BigInt.asIntN(32, v >> 32n));
}
const xval = (h: HartState, i: number): bigint => (BigInt(h.xh[i]!) << 32n) | BigInt(h.xl[i]! >>> 0);

function effectiveRm(h: HartState, rm: number): number {
  const r = rm === 7 ? h.frm : rm;
  if (r > 4) h.raiseIllegal();
  return r;
}

function finish(h: HartState, rd: number, r: FResult, f: Fmt): void {
  h.fflags |= r.flags;
  writeF(h, rd, r.bits, f);
}

/** FLW / FLD: rd is an f register. */
export function fpLoad(h: HartState, rd: number, rs1: number, imm: number, size: number): void {
  checkFs(h);
  const bl = h.xl[rs1]!, al = (bl + imm) | 0;
  const ah = (h.xh[rs1]! + (imm >> 31) + ((al >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
  const o = h.rOff(al, ah, size);
  let lo: number, hi: number;
  if (o >= 0) { lo = h.dv.getInt32(o, true); hi = size === 8 ? h.dv.getInt32(o + 4, true) : -1; }
  else { lo = h.loadSlow(al, ah, size); hi = size === 8 ? h.th : -1; }
  h.fi[2 * rd] = lo; h.fi[2 * rd + 1] = hi;
  dirty(h);
}

/** FSW / FSD: store the raw low 32 / all 64 bits. */
export function fpStore(h: HartState, rs1: number, rs2: number, imm: number, size: number): void {
  checkFs(h);
  const bl = h.xl[rs1]!, al = (bl + imm) | 0;
  const ah = (h.xh[rs1]! + (imm >> 31) + ((al >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
  const lo = h.fi[2 * rs2]!, hi = h.fi[2 * rs2 + 1]!;
  const o = h.wOff(al, ah, size);
  if (o < 0) h.storeSlow(al, ah, size, lo, hi);
  else { h.dv.setInt32(o, lo, true); if (size === 8) h.dv.setInt32(o + 4, hi, true); }
}

const isNaN_ = (x: Unpacked) => x.cls === QNAN || x.cls === SNAN;

/** Every OP-FP and FMADD/FMSUB/FNMSUB/FNMADD instruction; `ins` is the raw encoding. */
export function execFp(h: HartState, ins: number): void {
  checkFs(h);
  const opc = ins & 0x7f, rd = (ins >>> 7) & 31, rm = (ins >>> 12) & 7;
  const rs1 = (ins >>> 15) & 31, rs2 = (ins >>> 20) & 31, f7 = ins >>> 25;
  const fmtBits = f7 & 3;
  if (fmtBits > 1) h.raiseIllegal(); // only S and D
  const f = fmtBits === 0 ? F32 : F64;
  // FADD/FSUB/FMUL/FDIV/FSQRT in nearest-even take fpfast.ts where it is exact, softfloat the rest.
  if (opc === 0x53) {
    const k = f7 >>> 2;
    if ((k <= 3 || (k === 0x0b && rs2 === 0)) && (rm === 0 || (rm === 7 && h.frm === 0))) {
      const flags = fastArith(h.fi, k, fmtBits, rd, rs1, rs2);
      if (flags >= 0) { h.fflags |= flags; dirty(h); return; }
    }
  }
  if (opc !== 0x53) { // fused multiply-add family (11.6)
    const r = effectiveRm(h, rm);
    const a = unpack(opBits(h, rs1, f), f), b = unpack(opBits(h, rs2, f), f), c = unpack(opBits(h, ins >>> 27, f), f);
    if (opc === 0x47 || opc === 0x4f) c.s ^= 1; // FMSUB, FNMADD subtract c
    if (opc === 0x4b || opc === 0x4f) a.s ^= 1; // FNMSUB, FNMADD negate the product
    finish(h, rd, fma(a, b, c, f, r), f);
    return;
  }
  const A = () => unpack(opBits(h, rs1, f), f);
  const B = () => unpack(opBits(h, rs2, f), f);
  switch (f7 >>> 2) {
    case 0x00: finish(h, rd, add(A(), B(), f, effectiveRm(h, rm)), f); return; // FADD
    case 0x01: { const b = B(); b.s ^= 1; finish(h, rd, add(A(), b, f, effectiveRm(h, rm)), f); return; } // FSUB
    case 0x02: finish(h, rd, mul(A(), B(), f, effectiveRm(h, rm)), f); return; // FMUL
    case 0x03: finish(h, rd, div(A(), B(), f, effectiveRm(h, rm)), f); return; // FDIV
    case 0x0b: // FSQRT
      if (rs2 !== 0) h.raiseIllegal();
      finish(h, rd, sqrt(A(), f, effectiveRm(h, rm)), f); return;
    case 0x04: { // FSGNJ, FSGNJN, FSGNJX: sign-bit manipulation on the (unboxed) bits, no flags
      if (rm > 2) h.raiseIllegal();
      const top = BigInt(f === F64 ? 63 : 31);
      const a = opBits(h, rs1, f), b = opBits(h, rs2, f);
      const sb = (b >> top) & 1n, sa = (a >> top) & 1n;
      const s = rm === 0 ? sb : rm === 1 ? sb ^ 1n : sa ^ sb;
      writeF(h, rd, (a & ~(1n << top)) | (s << top), f);
      return;
    }
    case 0x05: { // FMIN, FMAX (11.6: -0 < +0; one NaN -> the other operand; sNaN -> NV)
      if (rm > 1) h.raiseIllegal();
      const a = A(), b = B();
      if (a.cls === SNAN || b.cls === SNAN) h.fflags |= NV;
      let bits: bigint;
      if (isNaN_(a) && isNaN_(b)) bits = f === F64 ? 0x7ff8000000000000n : BigInt(CANON32);
      else if (isNaN_(a)) bits = opBits(h, rs2, f);
      else if (isNaN_(b)) bits = opBits(h, rs1, f);
      else {
        let c = compare(a, b);
        if (c === 0) c = a.s === b.s ? 0 : a.s ? -1 : 1; // -0 < +0
        const pickA = rm === 0 ? c <= 0 : c >= 0;
        bits = opBits(h, pickA ? rs1 : rs2, f);
      }
      writeF(h, rd, bits, f);
      return;
    }
    case 0x08: { // FCVT.S.D (rs2 = 1) / FCVT.D.S (rs2 = 0)
      const from = rs2 === 1 ? F64 : rs2 === 0 ? F32 : undefined;
      if (from === undefined || from === f) h.raiseIllegal();
      finish(h, rd, convert(unpack(opBits(h, rs1, from), from), f, effectiveRm(h, rm)), f);
      return;
    }
    case 0x14: { // FLE, FLT, FEQ
      if (rm > 2) h.raiseIllegal();
      const a = A(), b = B();
      let res = 0;
      if (isNaN_(a) || isNaN_(b)) {
        // FEQ is a quiet comparison (NV only for sNaN); FLT/FLE signal on any NaN (11.8).
        if (rm === 2 ? a.cls === SNAN || b.cls === SNAN : true) h.fflags |= NV;
      } else {
        const c = compare(a, b);
        res = rm === 0 ? (c <= 0 ? 1 : 0) : rm === 1 ? (c < 0 ? 1 : 0) : (c === 0 ? 1 : 0);
      }
      writeX(h, rd, BigInt(res));
      return;
    }
    case 0x18: { // FCVT.W/WU/L/LU from float
      if (rs2 > 3) h.raiseIllegal();
      const r = toInt(A(), rs2 >= 2 ? 64 : 32, (rs2 & 1) === 0, effectiveRm(h, rm));
      h.fflags |= r.flags;
      // 32-bit results are sign-extended, even for WU (11.7).
      writeX(h, rd, rs2 >= 2 ? r.v : BigInt.asIntN(32, r.v));
      return;
    }
    case 0x1a: { // FCVT.S/D from W/WU/L/LU
      if (rs2 > 3) h.raiseIllegal();
      const x = xval(h, rs1);
      const v = rs2 === 0 ? BigInt.asIntN(32, x) : rs2 === 1 ? BigInt.asUintN(32, x) : rs2 === 2 ? BigInt.asIntN(64, x) : BigInt.asUintN(64, x);
      finish(h, rd, fromInt(v, f, effectiveRm(h, rm)), f);
      return;
    }
    case 0x1c: { // FMV.X.W / FMV.X.D (rm 0), FCLASS (rm 1)
      if (rs2 !== 0) h.raiseIllegal();
      if (rm === 0) {
        if (f === F64) writeX(h, rd, raw64(h, rs1));
        else writeX(h, rd, BigInt(h.fi[2 * rs1]!)); // low 32 bits, sign-extended, no unboxing
      } else if (rm === 1) {
        const bits = opBits(h, rs1, f);
        writeX(h, rd, BigInt(fclass(unpack(bits, f), f, bits)));
      } else h.raiseIllegal();
      return;
    }
    case 0x1e: { // FMV.W.X / FMV.D.X
      if (rs2 !== 0 || rm !== 0) h.raiseIllegal();
      const x = xval(h, rs1);
      writeF(h, rd, f === F64 ? BigInt.asUintN(64, x) : BigInt.asUintN(32, x), f);
      return;
    }
    default:
      h.raiseIllegal();
  }
}
