/* RV64I base integer instructions (unprivileged spec ch. 2 and 5), uncompressed. */
#include "env.h"
.option norvc
RVTEST_BEGIN
  /* arithmetic with carries across the 32-bit halves */
  TEST(1, a0, 0x100000000, li a1, 0xffffffff; li a2, 1; add a0, a1, a2)
  TEST(2, a0, 0xffffffffffffffff, li a1, 0; li a2, 1; sub a0, a1, a2)
  TEST(3, a0, 0x0000000100000000, li a1, 0x1ffffffff; li a2, 0xffffffff; sub a0, a1, a2)
  TEST(4, a0, 0x7fffffff80000000, li a1, 0x7fffffff7fffffff; addi a0, a1, 1)
  TEST(5, a0, 0xfffffffffffff800, addi a0, zero, -2048)
  TEST(6, a0, 0xffffffff, li a1, 0x100000000; addi a0, a1, -1)
  /* logic */
  TEST(7, a0, 0xf0f0f0f00f0f0f0f, li a1, 0xff00ff0000ff00ff; li a2, 0x0ff00ff00ff00ff0; xor a0, a1, a2)
  TEST(8, a0, 0xfff0fff00fff0fff, li a1, 0xff00ff0000ff00ff; li a2, 0x0ff00ff00ff00ff0; or a0, a1, a2)
  TEST(9, a0, 0x0f000f0000f000f0, li a1, 0xff00ff0000ff00ff; li a2, 0x0ff00ff00ff00ff0; and a0, a1, a2)
  TEST(10, a0, 0xffffffffffffff0f, li a1, 0xf0; xori a0, a1, -1; ori a0, a0, 0xf; andi a0, a0, -1)
  TEST(11, a0, 0x000000000000070f, li a1, 0x1234567800000f0f; andi a0, a1, 0x7ff; ori a0, a0, 0x700)
  /* shifts, all amounts 0..63 paths */
  TEST(12, a0, 0x8000000000000000, li a1, 1; slli a0, a1, 63)
  TEST(13, a0, 0x0000000123456780, li a1, 0x12345678; slli a0, a1, 4)
  TEST(14, a0, 0x1234567800000000, li a1, 0x12345678; slli a0, a1, 32)
  TEST(15, a0, 0x0000000080000000, li a1, 0x8000000000000000; srli a0, a1, 32)
  TEST(16, a0, 0xffffffff80000000, li a1, 0x8000000000000000; srai a0, a1, 32)
  TEST(17, a0, 0x0fffffffffffffff, li a1, -1; srli a0, a1, 4)
  TEST(18, a0, 0xffffffffffffffff, li a1, -1; srai a0, a1, 63)
  TEST(19, a0, 0x00000000000001ff, li a1, 0xff80000000000000; srli a0, a1, 55)
  TEST(20, a0, 0x00000002468acf00, li a1, 0x12345678; li a2, 0x45; sll a0, a1, a2) /* amount mod 64 */
  TEST(21, a0, 0x0000000012345678, li a1, 0x1234567800000000; li a2, 96; srl a0, a1, a2)
  TEST(22, a0, 0xfffffffff2345678, li a1, 0xf234567800000000; li a2, 32; sra a0, a1, a2)
  TEST(23, a0, 0x123456789abcdef0, li a1, 0x123456789abcdef0; li a2, 64; sll a0, a1, a2)
  /* compares */
  TEST(24, a0, 1, li a1, -1; li a2, 0; slt a0, a1, a2)
  TEST(25, a0, 0, li a1, -1; li a2, 0; sltu a0, a1, a2)
  TEST(26, a0, 1, li a1, 0x7fffffff; li a2, 0x80000000; sltu a0, a1, a2)
  TEST(27, a0, 1, li a1, 0x100000000; slti a0, a1, -1; xori a0, a0, 1)
  TEST(28, a0, 1, li a1, 5; sltiu a0, a1, -1)
  TEST(29, a0, 0, li a1, 0xffffffff00000000; li a2, 0xfffffffe00000000; slt a0, a1, a2)
  TEST(30, a0, 1, li a1, 0; sltiu a0, a1, 1)
  /* LUI / AUIPC */
  TEST(31, a0, 0xffffffff80000000, lui a0, 0x80000)
  TEST(32, a0, 0x0000000012345000, lui a0, 0x12345)
  TEST(33, a0, 0, 1: auipc a0, 0; la a1, 1b; sub a0, a0, a1)
  TEST(34, a0, 0x1000, 1: auipc a0, 1; la a1, 1b; sub a0, a0, a1)
  /* W instructions sign-extend their 32-bit result */
  TEST(35, a0, 0xffffffff80000000, li a1, 0x7fffffff; addiw a0, a1, 1)
  TEST(36, a0, 0, li a1, 0x1ffffffff; addiw a0, a1, 1)
  TEST(37, a0, 0xffffffff80000000, li a1, 1; slliw a0, a1, 31)
  TEST(38, a0, 0x0000000000000001, li a1, 0xffffffff80000000; srliw a0, a1, 31)
  TEST(39, a0, 0xffffffffffffffff, li a1, 0x80000000; sraiw a0, a1, 31)
  TEST(40, a0, 0xffffffff80000000, li a1, 0x80000000; li a2, 0x100000000; addw a0, a1, a2)
  TEST(41, a0, 0x000000007fffffff, li a1, 0x80000000; li a2, 1; subw a0, a1, a2)
  TEST(42, a0, 0xffffffff80000000, li a1, 1; li a2, 63; sllw a0, a1, a2)
  TEST(43, a0, 0x0000000000000001, li a1, 0x80000000; li a2, 63; srlw a0, a1, a2)
  TEST(44, a0, 0xfffffffffffffffe, li a1, 0x80000000; li a2, 30; sraw a0, a1, a2)
  TEST(45, a0, 0x0000000012345678, li a1, 0xabcdef0012345678; sext.w a0, a1)
  /* loads and stores of every width, sign and zero extension */
  la s0, data
  TEST(46, a0, 0xffffffffffffff81, lb a0, 0(s0))
  TEST(47, a0, 0x81, lbu a0, 0(s0))
  TEST(48, a0, 0xffffffffffff8281, lh a0, 0(s0))
  TEST(49, a0, 0x8281, lhu a0, 0(s0))
  TEST(50, a0, 0xffffffff84838281, lw a0, 0(s0))
  TEST(51, a0, 0x84838281, lwu a0, 0(s0))
  TEST(52, a0, 0x8887868584838281, ld a0, 0(s0))
  TEST(53, a0, 0x0000000000000088, lbu a0, 7(s0))
  TEST(54, a0, 0x1122334455667788, li a1, 0x1122334455667788; sd a1, 16(s0); ld a0, 16(s0))
  TEST(55, a0, 0x11223344556677aa, li a1, 0xaa; sb a1, 16(s0); ld a0, 16(s0))
  TEST(56, a0, 0x11223344bbcc77aa, li a1, 0xbbcc; sh a1, 18(s0); ld a0, 16(s0))
  TEST(57, a0, 0xdeadbeefbbcc77aa, li a1, 0xdeadbeef; sw a1, 20(s0); ld a0, 16(s0))
  TEST(58, a0, 0x0000000055667788, addi s1, s0, 40; li a1, 0x55667788; sw a1, -8(s1); lwu a0, -8(s1))
  /* misaligned accesses work (priv 3.6.3.2 allows it) */
  TEST(59, a0, 0x8988878685848382, ld a0, 1(s0))
  TEST(60, a0, 0xffffffff85848382, lw a0, 1(s0))
  TEST(61, a0, 0x0123456789abcdef, li a1, 0x0123456789abcdef; sd a1, 27(s0); ld a0, 27(s0))
  /* page-crossing misaligned load and store */
  la s1, page_edge
  TEST(62, a0, 0x0102030405060708, li a1, 0x0102030405060708; sd a1, -3(s1); ld a0, -3(s1))
  TEST(63, a0, 0x05060708, lwu a0, -3(s1))
  /* branches: taken and not taken, signed/unsigned */
  li TESTNUM, 64
  li a1, -1; li a2, 1
  beq a1, a2, fail
  bne a1, a1, fail
  bge a1, a2, fail
  blt a2, a1, fail
  bltu a1, a2, fail
  bgeu a2, a1, fail
  li TESTNUM, 65
  blt a1, a2, 1f
  j fail
1: bltu a2, a1, 1f
  j fail
1: bge a2, a1, 1f
  j fail
1: bgeu a1, a2, 1f
  j fail
1: beq a1, a1, 1f
  j fail
1: bne a1, a2, 1f
  j fail
1: li t0, 0x100000000; li t1, 0; beq t0, t1, fail   /* differ only in the high half */
  bne t0, t1, 1f
  j fail
1:
  /* jal / jalr link addresses and targets; jalr clears bit 0 */
  li TESTNUM, 66
  jal ra, 1f
2: j fail
1: la t0, 2b; bne ra, t0, fail
  la t0, 3f; addi t0, t0, 1
  jalr t1, 0(t0)
  j fail
3: la t0, 3b; addi t0, t0, -4; bne t1, t0, fail
  li TESTNUM, 67
  la t0, 4f; addi t0, t0, -8
  jalr x0, 8(t0)
  j fail
4:
  /* far jump to another page and back */
  li TESTNUM, 68
  call far_function
  li t0, 0x55; bne a0, t0, fail
  /* writes to x0 are discarded */
  TEST(69, zero, 0, li zero, 5; addi zero, zero, 7; lw zero, 0(s0))
  /* fence is a no-op here */
  TEST(70, a0, 7, fence; fence rw, rw; li a0, 7)
RVTEST_END

.text
.align 12
.skip 4000
far_function:
  li a0, 0x55
  ret

.data
.align 4
data: .byte 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90
  .skip 48
.align 12
  .skip 4096
page_edge: .skip 64
