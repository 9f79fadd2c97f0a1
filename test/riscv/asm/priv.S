/*
 * CSRs and synchronous traps (priv spec ch. 3-4): WARL masks, sstatus/sie views, counters and
 * their enables, illegal instructions with tval, ECALL/EBREAK causes, access faults,
 * misaligned AMOs, delegation to S-mode, MRET/SRET privilege rules, TSR/TVM/TW.
 * The M handler stores mcause/mtval/mepc in s8/s9/s10 and resumes in M-mode at s11.
 * The S handler stores scause/stval in s6/s7 and resumes in S-mode at s11.
 */
#include "env.h"
#define TRAP_M(n, cause, tval, code...) li TESTNUM, n; la s11, 9f; li s8, -1; code; j fail; 9: li t0, cause; bne s8, t0, fail; li t0, tval; bne s9, t0, fail;
#define TO_S la t0, 8f; csrw mepc, t0; li t0, 3 << 11; csrc mstatus, t0; li t0, 1 << 11; csrs mstatus, t0; mret; 8:
#define TO_U la t0, 8f; csrw mepc, t0; li t0, 3 << 11; csrc mstatus, t0; mret; 8:
RVTEST_BEGIN
  la t0, m_handler; csrw mtvec, t0
  la t0, s_handler; csrw stvec, t0
  /* misa: RV64 with IMAFDCSU */
  TEST(1, a0, 0x800000000014112d, csrr a0, misa)
  TEST(2, a0, 0x800000000014112d, li t0, 0; csrw misa, t0; csrr a0, misa)
  /* mstatus WARL: write all ones; UXL=SXL=2, SD follows FS=3 */
  TEST(3, a0, 0x8000000a007e79aa, li t0, -1; csrw mstatus, t0; csrr a0, mstatus)
  TEST(4, a0, 0x80000002000c6122, csrr a0, sstatus)
  /* MPP = 2 is reserved: the write keeps the old MPP */
  TEST(5, a0, 0x1800, li t0, 0x1000; csrc mstatus, t0; li t0, 0x1800; csrs mstatus, t0; csrr a0, mstatus; li t0, 0x1800; and a0, a0, t0)
  TEST(6, a0, 0x8000000a00006000, li t0, -1; csrc mstatus, t0; li t0, 0x6000; csrs mstatus, t0; csrr a0, mstatus)
  /* 64-bit scratch registers, epc bit 0, tvec mode bits */
  TEST(7, a0, 0x123456789abcdef0, li t0, 0x123456789abcdef0; csrw mscratch, t0; csrr a0, mscratch)
  TEST(8, a0, 0x80001002, li t0, 0x80001003; csrw mepc, t0; csrr a0, mepc)
  TEST(9, a0, 0x80001001, li t0, 0x80001003; csrw stvec, t0; csrr a0, stvec; la t0, s_handler; csrw stvec, t0)
  TEST(10, a0, 0xb3ff, li t0, -1; csrw medeleg, t0; csrr a0, medeleg; csrw medeleg, zero)
  TEST(11, a0, 0x222, li t0, -1; csrw mideleg, t0; csrr a0, mideleg)
  TEST(12, a0, 0xaaa, li t0, -1; csrw mie, t0; csrr a0, mie)
  TEST(13, a0, 0x888, csrr a1, sie; li t0, 0x222; bne a1, t0, fail; csrw sie, zero; csrr a0, mie)
  csrw mideleg, zero
  csrw mie, zero
  TEST(14, a0, 0x222, li t0, -1; csrw mip, t0; csrr a0, mip; csrw mip, zero)
  TEST(15, a0, 0, csrr a0, mhartid)
  TEST(16, a0, 0x8000000000000000, li t0, 0x8000000000012345; csrw satp, t0; csrr a0, satp; li t0, 0xfffffffffff00000; and a0, a0, t0; csrw satp, zero)
  TEST(17, a0, 0, li t0, 0x9000000000000000; csrw satp, t0; csrr a0, satp)   /* Sv48 unsupported: no effect */
  TEST(18, a0, 0x1f, li t0, 0x1f1f; csrw pmpcfg0, t0; csrr a0, pmpcfg0; andi a0, a0, 0xff)
  TEST(19, a0, 0x3fffffffffffff, li t0, -1; csrw pmpaddr0, t0; csrr a0, pmpaddr0)
  /* counters: instret counts retired instructions; minstret is writable */
  TEST(20, a0, 3, csrr t0, minstret; nop; nop; csrr a0, minstret; sub a0, a0, t0)
  TEST(21, a0, 1000, li t0, 1000; csrw minstret, t0; csrr a0, minstret)
  TEST(22, a0, 1, csrr t0, cycle; csrr a0, cycle; sltu a0, t0, a0)
  /* illegal instructions: tval holds the instruction bits */
  TRAP_M(30, 2, 0xffffffff, .word 0xffffffff)
  TRAP_M(31, 2, 0, .half 0; .half 0)
  TRAP_M(32, 2, 0x7c0022f3, .word 0x7c0022f3)                 /* csrr t0, 0x7c0 (no such CSR) */
  TRAP_M(33, 2, 0xf1401073, .word 0xf1401073)                 /* csrw mhartid, zero: read-only */
  TRAP_M(34, 2, 0x00007053, li t0, 7 << 5; csrw fcsr, t0; .word 0x00007053)  /* fadd.s with dyn rm and frm = 7 */
  csrw fcsr, zero
  /* ECALL and EBREAK */
  TRAP_M(35, 11, 0, ecall)
  TRAP_M(36, 3, 0, 7: ebreak; 9: la t0, 7b; bne s10, t0, fail; sub s9, s9, t0; li t0, 3; bne s8, t0, fail; j 9f)  /* tval = epc = pc */
  /* access faults: nothing at physical address 0x100 */
  TRAP_M(37, 5, 0x100, li t0, 0x100; ld a0, 0(t0))
  TRAP_M(38, 7, 0x104, li t0, 0x104; sw a0, 0(t0))
  TRAP_M(39, 1, 0x200, li t0, 0x200; jr t0)
  /* misaligned AMO / LR */
  TRAP_M(40, 6, 0, lla t0, tohost+4; amoadd.d a0, a0, (t0); 9: lla t0, tohost+4; sub s9, s9, t0; li t0, 6; bne s8, t0, fail; j 9f)
  TRAP_M(41, 4, 0, lla t0, tohost+2; lr.w a0, (t0); 9: lla t0, tohost+2; sub s9, s9, t0; li t0, 4; bne s8, t0, fail; j 9f)
  /* MRET to S, ECALL from S traps to M with cause 9; from U cause 8 */
  TRAP_M(42, 9, 0, TO_S; ecall)
  TRAP_M(43, 8, 0, TO_U; ecall)
  /* privileged instructions below their level */
  TRAP_M(44, 2, 0x30200073, TO_S; mret)
  TRAP_M(45, 2, 0x10200073, TO_U; sret)
  TRAP_M(46, 2, 0x10500073, TO_U; wfi)
  TRAP_M(47, 2, 0x30002573, TO_S; csrr a0, mstatus)
  /* TVM, TSR, TW */
  TRAP_M(48, 2, 0x18002573, li t0, 1 << 20; csrs mstatus, t0; TO_S; csrr a0, satp)
  TRAP_M(49, 2, 0x12000073, TO_S; sfence.vma)
  li t0, 1 << 20; csrc mstatus, t0
  TRAP_M(50, 2, 0x10200073, li t0, 1 << 22; csrs mstatus, t0; TO_S; sret)
  li t0, 1 << 22; csrc mstatus, t0
  TRAP_M(51, 2, 0x10500073, li t0, 1 << 21; csrs mstatus, t0; TO_S; wfi)
  li t0, 1 << 21; csrc mstatus, t0
  /* counter enables: cycle from S needs mcounteren.CY, from U also scounteren.CY */
  csrw mcounteren, zero
  TRAP_M(52, 2, 0xc0002573, TO_S; rdcycle a0)
  li t0, 7; csrw mcounteren, t0
  TRAP_M(53, 9, 0, TO_S; rdcycle a0; rdtime a0; rdinstret a0; ecall)
  TRAP_M(54, 2, 0xc0202573, csrw scounteren, zero; TO_U; rdinstret a0)
  /* delegation: U-mode ECALL and illegal instruction go to S; S-mode ECALL still to M */
  li t0, (1 << 8) | (1 << 2); csrw medeleg, t0
  li TESTNUM, 55
  la s11, 1f
  TO_S
  li s6, -1
  la s11, 2f
  la t0, 3f; csrw sepc, t0
  li t0, 1 << 8; csrc sstatus, t0   /* SPP = U */
  sret
3: ecall                             /* U-mode: to the S handler */
  j fail_s
2: li t0, 8; bne s6, t0, fail_s
  csrr t0, sstatus; andi t0, t0, 1 << 8; bnez t0, fail_s   /* SPP = U after a trap from U */
  la s11, 4f
  la t0, 5f; csrw sepc, t0
  sret
5: .word 0
  j fail_s
4: li t0, 2; bne s6, t0, fail_s
  bnez s7, fail_s                    /* tval = the all-zero parcel */
  la s11, 1f
  ecall                              /* S-mode: to M */
  j fail
1: li t0, 9; bne s8, t0, fail
  csrw medeleg, zero
RVTEST_END

fail_s:
  la s11, fail
  ecall

  .align 2
m_handler:
  csrr s8, mcause
  csrr s9, mtval
  csrr s10, mepc
  csrw mepc, s11
  li t0, 3 << 11
  csrs mstatus, t0                   /* resume in M-mode */
  mret

  .align 2
s_handler:
  csrr s6, scause
  csrr s7, stval
  csrw sepc, s11
  li t0, 1 << 8
  csrs sstatus, t0                   /* resume in S-mode */
  sret
