/* D extension (unprivileged spec ch. 12): double arithmetic, FMA, conversions between formats
 * and integers, comparisons, FCLASS, min/max; raw 64-bit results. */
#include "env.h"
#define DBITS(reg, val) li t5, val; fmv.d.x reg, t5
#define DCHK(n, val, flags, code...) li TESTNUM, n; fsflags zero; code; fmv.x.d a0, fa0; li t6, val; bne a0, t6, fail; frflags a1; li t6, flags; bne a1, t6, fail;
#define XCHK(n, val, flags, code...) li TESTNUM, n; fsflags zero; code; li t6, val; bne a0, t6, fail; frflags a1; li t6, flags; bne a1, t6, fail;
RVTEST_BEGIN
  DBITS(fa1, 0x3ff8000000000000)  /* 1.5 */
  DBITS(fa2, 0x4004000000000000)  /* 2.5 */
  DBITS(fa3, 0x3ff0000000000000)  /* 1.0 */
  DBITS(fa4, 0x4008000000000000)  /* 3.0 */
  DBITS(fa5, 0x7fefffffffffffff)  /* max */
  DBITS(fa6, 0x0000000000000001)  /* min subnormal */
  DBITS(fa7, 0x7ff0000000000000)  /* inf */
  DBITS(fs1, 0x7ff4000000000000)  /* sNaN */
  DBITS(fs2, 0x0010000000000000)  /* min normal */
  DCHK(1, 0x4010000000000000, 0, fadd.d fa0, fa1, fa2)
  DCHK(2, 0x3fd5555555555555, 1, fdiv.d fa0, fa3, fa4)
  DCHK(3, 0x3fd5555555555556, 1, fdiv.d fa0, fa3, fa4, rup)
  DCHK(4, 0x3ff3988e1409212e, 1, fsqrt.d fa0, fa1)
  DCHK(5, 0x3ff3988e1409212f, 1, fsqrt.d fa0, fa1, rup)
  DCHK(6, 0x7ff0000000000000, 5, fmul.d fa0, fa5, fa4)
  DCHK(7, 0x7fefffffffffffff, 5, fmul.d fa0, fa5, fa4, rdn)
  DCHK(8, 0x0000000000000000, 3, fmul.d fa0, fa6, fa6)
  DCHK(9, 0x0000000000000001, 3, fmul.d fa0, fa6, fa6, rup)
  DCHK(10, 0x0008000000000000, 0, fmul.d fa0, fs2, fa3; DBITS(ft0, 0x3fe0000000000000); fmul.d fa0, fs2, ft0)
  /* tininess after rounding: (min normal - ulp/2) rounds up to min normal: UF not raised */
  DCHK(11, 0x0010000000000000, 1, DBITS(ft0, 0x3fefffffffffffff); DBITS(ft1, 0x0010000000000001); fmul.d fa0, ft0, ft1)
  DCHK(12, 0x7ff8000000000000, 0x10, fadd.d fa0, fs1, fa1)
  /* FMA keeps the exact product: 0.1*10 - 1 */
  DCHK(13, 0x3c90000000000000, 0, DBITS(ft0, 0x3fb999999999999a); DBITS(ft1, 0x4024000000000000); fmsub.d fa0, ft0, ft1, fa3)
  DCHK(14, 0x0000000000000000, 1, DBITS(ft0, 0x3fb999999999999a); DBITS(ft1, 0x4024000000000000); fmul.d ft2, ft0, ft1; fsub.d fa0, ft2, fa3)
  DCHK(15, 0x8000000000000000, 0, fsub.d fa0, fa3, fa3, rdn)
  DCHK(16, 0x4012000000000000, 0, fmadd.d fa0, fa1, fa3, fa4; fadd.d fa0, fa0, fa1; fsub.d fa0, fa0, fa1)
  /* format conversions */
  DCHK(17, 0xffffffff3eaaaaab, 1, fdiv.d ft0, fa3, fa4; fcvt.s.d fa0, ft0)
  DCHK(18, 0xffffffff3eaaaaaa, 1, fdiv.d ft0, fa3, fa4; fcvt.s.d fa0, ft0, rtz)
  DCHK(19, 0x3ff8000000000000, 0, li t0, 0x3fc00000; fmv.w.x ft0, t0; fcvt.d.s fa0, ft0)
  DCHK(20, 0x7ff8000000000000, 0x10, li t0, 0x7f800001; fmv.w.x ft0, t0; fcvt.d.s fa0, ft0)
  DCHK(21, 0xffffffff7f800000, 5, fcvt.s.d fa0, fa5)
  DCHK(22, 0xffffffff00000000, 3, fcvt.s.d fa0, fs2)
  /* integer conversions */
  XCHK(23, 0x7fffffffffffffff, 0x10, fcvt.l.d a0, fa5)
  XCHK(24, 0x8000000000000000, 0x10, fneg.d ft0, fa7; fcvt.l.d a0, ft0)
  XCHK(25, 0xffffffff80000000, 0x10, fneg.d ft0, fa5; fcvt.w.d a0, ft0)
  XCHK(26, 2, 1, fcvt.lu.d a0, fa2)
  XCHK(27, 3, 1, fcvt.lu.d a0, fa2, rmm)
  XCHK(28, 0, 0x10, fneg.d ft0, fa3; fcvt.lu.d a0, ft0)
  XCHK(29, 0, 1, DBITS(ft0, 0xbfe0000000000000); fcvt.lu.d a0, ft0)
  XCHK(30, 0xffffffffffffffff, 0x10, fcvt.wu.d a0, fa7)
  DCHK(31, 0x43f0000000000000, 1, li t0, -1; fcvt.d.lu fa0, t0)
  DCHK(32, 0xc3e0000000000000, 0, li t0, 0x8000000000000000; fcvt.d.l fa0, t0)
  DCHK(33, 0x41dfffffffc00000, 0, li t0, 0x7fffffff; fcvt.d.w fa0, t0)
  DCHK(34, 0x41efffffffe00000, 0, li t0, -1; fcvt.d.wu fa0, t0)
  DCHK(35, 0x4340000000000000, 1, li t0, 0x20000000000001; fcvt.d.l fa0, t0)
  DCHK(36, 0x4340000000000001, 1, li t0, 0x20000000000001; fcvt.d.l fa0, t0, rup)
  /* compare / classify / min-max */
  XCHK(37, 1, 0, fle.d a0, fa1, fa1)
  XCHK(38, 0, 0x10, fle.d a0, fs1, fa1)
  XCHK(39, 0x010, 0, fmv.d.x ft0, zero; fclass.d a0, ft0)
  XCHK(40, 0x004, 0, fneg.d ft0, fa6; fclass.d a0, ft0)
  XCHK(41, 0x001, 0, fneg.d ft0, fa7; fclass.d a0, ft0)
  XCHK(42, 0x200, 0, DBITS(ft0, 0x7ff8000000000000); fclass.d a0, ft0)
  DCHK(43, 0x3ff8000000000000, 0x10, fmax.d fa0, fs1, fa1)
  DCHK(44, 0x8000000000000000, 0, fmv.d.x ft0, zero; fneg.d ft1, ft0; fmin.d fa0, ft0, ft1)
  /* memory */
  la s0, ddata
  DCHK(45, 0x0123456789abcdef, 0, fld fa0, 0(s0))
  XCHK(46, 0x4004000000000000, 0, fsd fa2, 8(s0); ld a0, 8(s0))
RVTEST_END
.data
.align 4
ddata: .dword 0x0123456789abcdef, 0
