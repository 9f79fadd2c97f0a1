/* A extension (unprivileged spec ch. 8): LR/SC and every AMO, word and doubleword. */
#include "env.h"
RVTEST_BEGIN
  la s0, amo_data
  li t0, 0x7fffffff80000001; sd t0, 0(s0)
  TEST(1, a0, 0x7fffffff80000001, li a1, 5; amoadd.d a0, a1, (s0))
  TEST(2, a0, 0x7fffffff80000006, ld a0, 0(s0))
  TEST(3, a0, 0xffffffff80000006, li a1, -1; amoadd.w a0, a1, (s0))
  TEST(4, a0, 0x7fffffff80000005, ld a0, 0(s0))
  TEST(5, a0, 0x7fffffff80000005, li a1, 0x0f0f; amoxor.d a0, a1, (s0); ld a0, 0(s0); li a1, 0x0f0f; xor a0, a0, a1)
  TEST(6, a0, 0xffffffff80000f0a, li a1, 0xff; amoand.w a0, a1, (s0))
  TEST(7, a0, 0x7fffffff0000000a, ld a0, 0(s0))
  TEST(8, a0, 0x7fffffff0000010a, li a1, 0x100; amoor.d a0, a1, (s0); ld a0, 0(s0))
  TEST(9, a0, 0x7fffffff0000010a, li a1, 42; amoswap.d a0, a1, (s0))
  TEST(10, a0, 42, ld a0, 0(s0))
  /* min/max signed and unsigned */
  li t0, -5; sd t0, 8(s0)
  TEST(11, a0, -5, li a1, 3; addi s3, s0, 8; amomin.d a0, a1, (s3); ld a0, 8(s0))
  TEST(12, a0, 3, li a1, 3; addi s3, s0, 8; amomax.d a0, a1, (s3); ld a0, 8(s0))
  TEST(13, a0, 3, li a1, -1; addi s3, s0, 8; amominu.d a0, a1, (s3); ld a0, 8(s0))
  TEST(14, a0, -1, li a1, -1; addi s3, s0, 8; amomaxu.d a0, a1, (s3); ld a0, 8(s0))
  li t0, 0x00000000fffffff0; sd t0, 16(s0)
  TEST(15, a0, 0xfffffffffffffff0, li a1, 1; addi s3, s0, 16; amomin.w a0, a1, (s3))
  TEST(16, a0, 0x00000000fffffff0, ld a0, 16(s0))
  TEST(17, a0, 0x0000000000000001, li a1, 1; addi s3, s0, 16; amominu.w a0, a1, (s3); ld a0, 16(s0))
  TEST(18, a0, 0x00000000ffffffff, li a1, -1; addi s3, s0, 16; amomaxu.w a0, a1, (s3); ld a0, 16(s0))
  TEST(19, a0, 0x0000000000000007, li a1, 7; addi s3, s0, 16; amomax.w a0, a1, (s3); ld a0, 16(s0))
  /* LR/SC: success, then failure without a reservation */
  TEST(20, a0, 0, li t0, 100; sd t0, 24(s0); addi s1, s0, 24; lr.d a1, (s1); addi a1, a1, 1; sc.d a0, a1, (s1))
  TEST(21, a0, 101, ld a0, 24(s0))
  TEST(22, a0, 1, li a1, 5; sc.d a0, a1, (s1))
  TEST(23, a0, 101, ld a0, 24(s0))
  TEST(24, a0, 0xffffffff80000000, li t0, 0x80000000; sw t0, 32(s0); addi s1, s0, 32; lr.w a0, (s1))
  TEST(25, a0, 0, li a1, 9; sc.w a0, a1, (s1))
  TEST(26, a0, 9, lw a0, 32(s0))
  TEST(27, a0, 1, addi s1, s0, 40; lr.w a1, (s1); addi s2, s0, 48; sc.w a0, a1, (s2))
RVTEST_END
.data
.align 4
amo_data: .skip 64
