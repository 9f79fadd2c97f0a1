/* C extension (unprivileged spec ch. 16): every RV64 compressed form, written explicitly. */
#include "env.h"
RVTEST_BEGIN
  .option push
  .option rvc
  la s0, cdata
  TEST(1, a0, 0x10, c.li a0, 0x10)
  TEST(2, a0, -32, c.li a0, -32)
  TEST(3, a0, 0x1f000, c.lui a0, 0x1f)
  TEST(4, a0, 0xfffffffffffe0000, c.lui a0, 0xfffe0)
  TEST(5, a0, 7, c.li a0, 2; c.addi a0, 5)
  TEST(6, a0, 0xffffffff80000000, li a0, 0x7fffffff; c.addiw a0, 1)
  TEST(7, a0, 3, c.li a0, 1; c.li a1, 2; c.add a0, a1)
  TEST(8, a0, 2, c.li a1, 2; c.mv a0, a1)
  TEST(9, s1, 0xffffffffffffffff, c.li s1, 1; c.li a5, 2; c.sub s1, a5)
  TEST(10, s1, 6, c.li s1, 3; c.li a5, 5; c.xor s1, a5)
  TEST(11, s1, 7, c.li s1, 3; c.li a5, 5; c.or s1, a5)
  TEST(12, s1, 1, c.li s1, 3; c.li a5, 5; c.and s1, a5)
  TEST(13, s1, 0xffffffff80000000, li s1, 0x7fffffff; c.li a5, 1; c.addw s1, a5)
  TEST(14, s1, 0x000000007fffffff, li s1, 0x80000000; c.li a5, 1; c.subw s1, a5)
  TEST(15, s1, 0x4, c.li s1, 0x14; c.andi s1, 0xc)
  TEST(16, s1, 0x0000000100000000, c.li s1, 1; c.slli s1, 32)
  TEST(17, s1, 0x00000000ffffffff, c.li s1, -1; c.srli s1, 32)
  TEST(18, s1, 0xffffffffffffffff, li s1, 0x8000000000000000; c.srai s1, 63)
  /* stack-pointer forms */
  mv s2, sp
  mv sp, s0
  TEST(20, a0, 0x40, c.addi16sp sp, 64; sub a0, sp, s0)
  TEST(21, a0, 0, c.addi16sp sp, -64; sub a0, sp, s0)
  TEST(22, s1, 0x20, c.addi4spn s1, sp, 32; sub s1, s1, s0)
  TEST(23, a0, 0x1122334455667788, li a1, 0x1122334455667788; c.sdsp a1, 8(sp); c.ldsp a0, 8(sp))
  TEST(24, a0, 0xffffffff99aabbcc, li a1, 0x99aabbcc; c.swsp a1, 16(sp); c.lwsp a0, 16(sp))
  TEST(25, a0, 0x1122334455667788, li a1, 0x1122334455667788; fmv.d.x fa1, a1; c.fsdsp fa1, 0(sp); c.fldsp fa0, 0(sp); fmv.x.d a0, fa0)
  TEST(28, a0, 0x0102030405060708, li a1, 0x0102030405060708; fmv.d.x fa1, a1; c.fsd fa1, 40(s0); c.fld fa2, 40(s0); fmv.x.d a0, fa2)
  mv sp, s2
  /* register-based loads and stores */
  TEST(26, a0, 0xa5a5a5a55a5a5a5a, li a5, 0xa5a5a5a55a5a5a5a; c.sd a5, 24(s0); c.ld a0, 24(s0))
  TEST(27, a0, 0xffffffffdeadbeef, li a5, 0xdeadbeef; c.sw a5, 32(s0); c.lw a0, 32(s0))
  /* jumps and branches */
  li TESTNUM, 30
  c.li a0, 0
  c.beqz a0, 1f
  j fail
1: c.bnez a0, fail_far
  c.li a0, 1
  c.bnez a0, 1f
  j fail
1: c.beqz a0, fail_far
  li TESTNUM, 31
  c.j 1f
  j fail
1: la t0, 2f
  c.jr t0
  j fail
2: la t0, 3f
  c.jalr t0
4: j fail
3: la t1, 4b
  bne ra, t1, fail
  c.nop
  .option pop
RVTEST_END
fail_far: j fail
.data
.align 4
cdata: .skip 64
