/**
 * The bigint-free F/D fast path (src/riscv/fpfast.ts) against softfloat.ts, the oracle: for
 * random operands over the whole exponent range (and the edges of the fast range, tiny and huge
 * values, zeros, infinities, NaNs, unboxed singles), every case the fast path takes must give
 * softfloat's bits and flags, and it must take most of the ordinary ones. Through execFp, every
 * rounding mode and frm agree with softfloat too (the fast path only takes nearest-even).
 */
import { describe, expect, it, vi } from 'vitest';
import { fastArith } from '../../src/riscv/fpfast.js';
import { execFp } from '../../src/riscv/fpu.js';
import { Hart } from '../../src/riscv/hart.js';
import { MS_FS, TRAP } from '../../src/riscv/state.js';
import { add, div, F32, F64, mul, sqrt, unpack } from '../../src/riscv/softfloat.js';
import { mulberry32 } from '../support/prng.js';

/**
 * fastArith as execFp sees it: off, it answers "not mine" (-1) for everything, so execFp takes
 * softfloat alone; `answered` counts the instructions it did answer.
 */
const fastPath = vi.hoisted(() => ({ on: true, answered: 0 }));
vi.mock('../../src/riscv/fpfast.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../../src/riscv/fpfast.js')>();
  return {
    ...m,
    fastArith: (...a: Parameters<typeof m.fastArith>) => {
      if (!fastPath.on) return -1;
      const r = m.fastArith(...a);
      if (r >= 0) fastPath.answered++;
      return r;
    },
  };
});

const OPS = [0, 1, 2, 3, 11] as const;

function soft(op: number, f: typeof F32, a: bigint, b: bigint) {
  const A = unpack(a, f), B = unpack(b, f);
  if (op === 1) B.s ^= 1;
  const r = op <= 1 ? add(A, B, f, 0) : op === 2 ? mul(A, B, f, 0) : op === 3 ? div(A, B, f, 0) : sqrt(A, f, 0);
  return { bits: r.bits, flags: r.flags };
}

function operand64(rnd: () => number): [number, number] {
  const k = rnd();
  const hiMant = Math.floor(rnd() * 0x100000), lo = Math.floor(rnd() * 2 ** 32) | 0;
  let e: number;
  if (k < 0.5) e = 1023 + Math.floor(rnd() * 120) - 60; // ordinary
  else if (k < 0.7) e = [772, 773, 774, 1272, 1273, 1274][Math.floor(rnd() * 6)]!; // the fast range's edges
  else if (k < 0.8) e = Math.floor(rnd() * 2048); // anywhere: subnormals, inf and NaN included
  else if (k < 0.9) e = 1023 + Math.floor(rnd() * 8) - 4;
  else e = [0, 0x7ff, 1, 2046][Math.floor(rnd() * 4)]!;
  const m = k >= 0.95 ? 0 : hiMant; // exact powers of two, zeros, infinities
  const s = rnd() < 0.5 ? 0x80000000 : 0;
  return [k >= 0.95 ? 0 : lo, (s | (e << 20) | m) | 0];
}

function operand32(rnd: () => number): [number, number] {
  const k = rnd();
  let e: number;
  if (k < 0.6) e = 127 + Math.floor(rnd() * 40) - 20;
  else if (k < 0.8) e = Math.floor(rnd() * 256);
  else e = [0, 1, 2, 254, 255, 127][Math.floor(rnd() * 6)]!;
  const m = k >= 0.95 ? 0 : Math.floor(rnd() * 0x800000);
  const s = rnd() < 0.5 ? 0x80000000 : 0;
  const boxed = rnd() < 0.97 ? -1 : Math.floor(rnd() * 2 ** 32) | 0;
  return [(s | (e << 23) | m) | 0, boxed];
}

const big64 = (lo: number, hi: number) => (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);

/** Runs the fast path on (a, b) and, where it answered, compares it with softfloat; false when it did not. */
function check(op: number, fmt: number, [al, ah]: [number, number], [bl, bh]: [number, number]): boolean {
  const fi = new Int32Array(8);
  fi[2] = al; fi[3] = ah; fi[4] = bl; fi[5] = bh; fi[6] = 0x1234; fi[7] = 0x5678;
  const flags = fastArith(fi, op, fmt, 3, 1, 2);
  if (flags < 0) {
    expect([fi[6], fi[7]]).toEqual([0x1234, 0x5678]); // untouched
    return false;
  }
  const f = fmt ? F64 : F32;
  // softfloat reads singles NaN-unboxed: an unboxed operand is the canonical NaN
  const opA = fmt ? big64(al, ah) : ah === -1 ? BigInt(al >>> 0) : 0x7fc00000n;
  const opB = fmt ? big64(bl, bh) : bh === -1 ? BigInt(bl >>> 0) : 0x7fc00000n;
  const want = soft(op, f, opA, opB);
  const got = fmt ? big64(fi[6]!, fi[7]!) : BigInt(fi[6]! >>> 0);
  if (got !== want.bits || flags !== want.flags || (!fmt && fi[7] !== -1)) {
    expect({ op, a: [al, ah], b: [bl, bh], bits: got.toString(16), flags })
      .toEqual({ op, a: [al, ah], b: [bl, bh], bits: want.bits.toString(16), flags: want.flags });
  }
  return true;
}

describe('F/D without bigint', () => {
  it('results at the edge of the single range: tininess after rounding (UF) stays with softfloat', () => {
    // (1 - 2^-24) * 2^-126 rounds to 2^-126 in the format but is tiny unbounded: UF | NX
    expect(check(2, 0, [0x3f7fffff, -1], [0x00800000, -1])).toBe(false);
    // just above it: normal, NX only
    expect(check(2, 0, [0x3f800001, -1], [0x00800001, -1])).toBe(true);
    // overflow to infinity, and the largest finite value
    expect(check(2, 0, [0x7f000000, -1], [0x40000000, -1])).toBe(false);
    expect(check(0, 0, [0x7f7ffffe, -1], [0x73000000, -1])).toBe(true);
    // x - x is +0, exact
    expect(check(1, 1, [0x12345678, 0x3ff12345], [0x12345678, 0x3ff12345])).toBe(true);
    expect(check(1, 0, [0x3fc00000, -1], [0x3fc00000, -1])).toBe(true);
  });

  for (const fmt of [1, 0]) {
    it(`${fmt ? 'D' : 'S'}: FADD FSUB FMUL FDIV FSQRT agree with softfloat bit for bit, flags included`, () => {
      const rnd = mulberry32(fmt + 11);
      let taken = 0, total = 0;
      for (let i = 0; i < 60_000; i++) {
        const op = OPS[i % OPS.length]!;
        const [al, ah] = fmt ? operand64(rnd) : operand32(rnd);
        let [bl, bh] = fmt ? operand64(rnd) : operand32(rnd);
        // near-ties and cancellations: b close to a
        if (i % 7 === 0) { bl = (al + (Math.floor(rnd() * 5) - 2)) | 0; bh = rnd() < 0.5 ? ah : ah ^ (fmt ? 0 : 0x80000000); if (!fmt) { bl = (bl ^ (rnd() < 0.5 ? 0x80000000 : 0)) | 0; bh = -1; } }
        total++;
        if (check(op, fmt, [al, ah], [bl, bh])) taken++;
      }
      expect(taken / total).toBeGreaterThan(0.4);
    });
  }
});

describe('F/D through execFp, fast path on and off', () => {
  it('every rounding mode and frm: the same f registers, fflags and traps as softfloat alone', () => {
    const rnd = mulberry32(77);
    const make = () => { const h = new Hart({ ram: { base: 0x8000_0000, bytes: new Uint8Array(4096) } }); h.mstatus |= MS_FS; return h; };
    const a = make(), b = make();
    let fast = 0;
    const answeredBefore = fastPath.answered;
    for (let i = 0; i < 20_000; i++) {
      const fmt = i & 1;
      for (let r = 1; r < 8; r++) {
        const [lo, hi] = fmt ? operand64(rnd) : operand32(rnd);
        a.fi[2 * r] = b.fi[2 * r] = lo; a.fi[2 * r + 1] = b.fi[2 * r + 1] = hi;
      }
      a.frm = b.frm = [0, 0, 0, 1, 2, 3, 4, 5][Math.floor(rnd() * 8)]!;
      a.fflags = b.fflags = 0;
      const k = [0, 1, 2, 3, 0x0b][Math.floor(rnd() * 5)]!;
      const rm = [0, 0, 7, 7, 1, 2, 3, 4, 5][Math.floor(rnd() * 9)]!;
      const ins = (((k << 2) | fmt) << 25) | ((k === 0x0b ? 0 : 1 + Math.floor(rnd() * 7)) << 20) |
        ((1 + Math.floor(rnd() * 7)) << 15) | (rm << 12) | ((1 + Math.floor(rnd() * 7)) << 7) | 0x53;
      const run = (h: Hart, on: boolean) => {
        fastPath.on = on;
        try { execFp(h, ins); return 'ok'; } catch (e) { if (e !== TRAP) throw e; return 'trap'; } finally { fastPath.on = true; }
      };
      const ra = run(a, true), rb = run(b, false);
      expect({ i, ins: ins >>> 0, r: ra, fi: Array.from(a.fi.subarray(0, 16)), fflags: a.fflags, ms: a.mstatus })
        .toEqual({ i, ins: ins >>> 0, r: rb, fi: Array.from(b.fi.subarray(0, 16)), fflags: b.fflags, ms: b.mstatus });
      if ((rm === 0 || (rm === 7 && a.frm === 0)) && ra === 'ok') fast++;
    }
    expect(fast).toBeGreaterThan(3000);
    // and execFp's gate really sent most of those to the fast path (only the 'on' runs count)
    expect(fastPath.answered - answeredBefore).toBeGreaterThan(fast / 2);
  });
});
