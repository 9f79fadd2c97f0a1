/* F extension (unprivileged spec ch. 11): arithmetic, rounding modes, flags, conversions with
 * saturation, FCLASS, FMIN/FMAX, comparisons, NaN-boxing. Values checked as raw bits. */
#include "env.h"
#define FBITS(reg, val) li t5, val; fmv.w.x reg, t5
/* test n: fa0 (as 32 raw bits, sign-extended by fmv.x.w) == val, and fflags == flags (then cleared) */
#define FCHK(n, val, flags, code...) li TESTNUM, n; fsflags zero; code; fmv.x.w a0, fa0; li t6, val; sext.w t6, t6; bne a0, t6, fail; frflags a1; li t6, flags; bne a1, t6, fail;
#define XCHK(n, val, flags, code...) li TESTNUM, n; fsflags zero; code; li t6, val; bne a0, t6, fail; frflags a1; li t6, flags; bne a1, t6, fail;
RVTEST_BEGIN
  FBITS(fa1, 0x3fc00000)   /* 1.5 */
  FBITS(fa2, 0x40200000)   /* 2.5 */
  FBITS(fa3, 0x3f800000)   /* 1.0 */
  FBITS(fa4, 0x40400000)   /* 3.0 */
  FBITS(fa5, 0x7f7fffff)   /* max finite */
  FBITS(fa6, 0x00000001)   /* smallest subnormal */
  FBITS(fa7, 0x7f800000)   /* +inf */
  FBITS(fs1, 0x7fa00000)   /* sNaN */
  FBITS(fs2, 0x80000000)   /* -0 */
  FCHK(1, 0x40800000, 0, fadd.s fa0, fa1, fa2)
  FCHK(2, 0xbf800000, 0, fsub.s fa0, fa1, fa2)
  FCHK(3, 0x40700000, 0, fmul.s fa0, fa1, fa2)
  FCHK(4, 0x3eaaaaab, 1, fdiv.s fa0, fa3, fa4)
  FCHK(5, 0x3eaaaaaa, 1, fdiv.s fa0, fa3, fa4, rtz)
  FCHK(6, 0x3eaaaaaa, 1, fdiv.s fa0, fa3, fa4, rdn)
  FCHK(7, 0x3eaaaaab, 1, fdiv.s fa0, fa3, fa4, rup)
  FCHK(8, 0xbeaaaaab, 1, fneg.s fa4, fa4; fdiv.s fa0, fa3, fa4, rdn; fneg.s fa4, fa4)
  FCHK(9, 0x3f9cc471, 1, fsqrt.s fa0, fa1)
  FCHK(10, 0x7fc00000, 0x10, fneg.s fa0, fa3; fsqrt.s fa0, fa0)
  FCHK(11, 0x7f800000, 5, fadd.s fa0, fa5, fa5)
  FCHK(12, 0x7f7fffff, 5, fadd.s fa0, fa5, fa5, rtz)
  FCHK(13, 0x00000001, 3, fmul.s fa0, fa6, fa1, rtz)
  FCHK(14, 0x00000002, 3, fmul.s fa0, fa6, fa1)
  FCHK(15, 0x7fc00000, 0x10, fsub.s fa0, fa7, fa7)
  FCHK(16, 0x7f800000, 8, fmv.w.x fa0, zero; fdiv.s fa0, fa3, fa0)
  FCHK(17, 0x7fc00000, 0x10, fadd.s fa0, fs1, fa3)
  /* dynamic rounding mode from frm */
  FCHK(18, 0x3eaaaaaa, 1, fsrmi 1; fdiv.s fa0, fa3, fa4; fsrmi 0)
  /* fused multiply-add: one rounding */
  FCHK(19, 0x40d80000, 0, fmadd.s fa0, fa1, fa2, fa4)
  FCHK(20, 0x3f400000, 0, fmsub.s fa0, fa1, fa2, fa4)
  FCHK(21, 0xbf400000, 0, fnmsub.s fa0, fa1, fa2, fa4)
  FCHK(22, 0xc0d80000, 0, fnmadd.s fa0, fa1, fa2, fa4)
  FCHK(23, 0x7fc00000, 0x10, fmv.w.x fa0, zero; fmadd.s fa0, fa7, fa0, fa3)
  /* sign injection */
  FCHK(24, 0xbfc00000, 0, fsgnjn.s fa0, fa1, fa1)
  FCHK(25, 0xbfc00000, 0, fsgnj.s fa0, fa1, fs2)
  FCHK(26, 0x3fc00000, 0, fneg.s fa0, fa1; fabs.s fa0, fa0)
  FCHK(27, 0xbfc00000, 0, fsgnjx.s fa0, fa1, fs2)
  /* min / max */
  FCHK(28, 0x3fc00000, 0, fmin.s fa0, fa1, fa2)
  FCHK(29, 0x40200000, 0, fmax.s fa0, fa1, fa2)
  FCHK(30, 0x80000000, 0, fmv.w.x fa0, zero; fmin.s fa0, fa0, fs2)
  FCHK(31, 0x00000000, 0, fmv.w.x fa0, zero; fmax.s fa0, fs2, fa0)
  FCHK(32, 0x3fc00000, 0x10, fmin.s fa0, fs1, fa1)
  FCHK(33, 0x7fc00000, 0x10, fmax.s fa0, fs1, fs1)
  /* comparisons */
  XCHK(34, 1, 0, flt.s a0, fa1, fa2)
  XCHK(35, 0, 0, fle.s a0, fa2, fa1)
  XCHK(36, 1, 0, fmv.w.x fa0, zero; feq.s a0, fa0, fs2)
  XCHK(37, 0, 0x10, flt.s a0, fs1, fa1)
  XCHK(38, 0, 0x10, feq.s a0, fs1, fa1)
  XCHK(39, 0, 0, li t0, 0x7fc00000; fmv.w.x fa0, t0; feq.s a0, fa0, fa1)
  XCHK(40, 0, 0x10, li t0, 0x7fc00000; fmv.w.x fa0, t0; fle.s a0, fa0, fa1)
  /* conversions to integers: rounding, saturation, NV/NX */
  XCHK(41, 2, 1, fcvt.w.s a0, fa1)
  XCHK(42, 1, 1, fcvt.w.s a0, fa1, rtz)
  XCHK(43, 2, 1, fcvt.w.s a0, fa2, rne)
  XCHK(44, 3, 1, fcvt.w.s a0, fa2, rmm)
  XCHK(45, 0x7fffffff, 0x10, fcvt.w.s a0, fa7)
  XCHK(46, 0xffffffffffffffff, 0x10, fcvt.wu.s a0, fa7)
  XCHK(47, 0, 0x10, fneg.s fa0, fa1; fcvt.wu.s a0, fa0)
  XCHK(48, 0x7fffffff, 0x10, fcvt.w.s a0, fs1)
  XCHK(49, 0x7fffffffffffffff, 0x10, fcvt.l.s a0, fa5)
  XCHK(50, 0xfffffffffffffffe, 1, fneg.s fa0, fa1; fcvt.l.s a0, fa0, rdn)
  XCHK(51, 0xffffffffffffffff, 0x10, fcvt.lu.s a0, fa5)
  XCHK(52, 0, 1, fneg.s fa0, fa6; fcvt.lu.s a0, fa0)
  /* conversions from integers */
  FCHK(53, 0x4f000000, 0, li t0, 0x80000000; fcvt.s.wu fa0, t0)
  FCHK(54, 0xcf000000, 0, li t0, 0x80000000; fcvt.s.w fa0, t0)
  FCHK(55, 0x4b800000, 1, li t0, 16777217; fcvt.s.l fa0, t0)
  FCHK(56, 0x4b800001, 1, li t0, 16777217; fcvt.s.l fa0, t0, rup)
  FCHK(57, 0x5f800000, 1, li t0, -1; fcvt.s.lu fa0, t0)
  /* classification */
  XCHK(58, 0x080, 0, fclass.s a0, fa7)
  XCHK(59, 0x100, 0, fclass.s a0, fs1)
  XCHK(60, 0x008, 0, fclass.s a0, fs2)
  XCHK(61, 0x020, 0, fclass.s a0, fa6)
  XCHK(62, 0x040, 0, fclass.s a0, fa1)
  XCHK(63, 0x002, 0, fneg.s fa0, fa1; fclass.s a0, fa0)
  /* NaN-boxing: a double in the register reads as the canonical NaN */
  XCHK(64, 0x200, 0, li t0, 0x3ff0000000000000; fmv.d.x fa0, t0; fclass.s a0, fa0)
  FCHK(65, 0x7fc00000, 0, li t0, 0x000000003f800000; fmv.d.x fa0, t0; fadd.s fa0, fa0, fa3)
  XCHK(66, 0xffffffff3f800000, 0, fmv.d.x fa0, zero; fmv.s fa0, fa3; fmv.x.d a0, fa0)
  /* loads and stores box and unbox */
  la s0, fdata
  XCHK(67, 0xffffffff40200000, 0, flw fa0, 0(s0); fmv.x.d a0, fa0)
  XCHK(68, 0x3fc00000, 0, fsw fa1, 4(s0); lwu a0, 4(s0))
  /* fcsr */
  XCHK(69, 0xff, 0, li t0, 0xff; fscsr t0; frcsr a0; fscsr zero)
  XCHK(70, 0x7, 0, li t0, 0xff; fsrm a0, t0; frrm a0; fsrm zero)
RVTEST_END
.data
.align 4
fdata: .word 0x40200000, 0, 0, 0
