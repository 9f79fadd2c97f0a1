/*
 * Interrupts (priv spec 3.1.9, 3.3.3): enables, priority, delegation to S-mode, vectored mtvec,
 * WFI wake-up. M-level lines are driven through the test device (test/riscv/support/machine.ts).
 * Handlers store the cause in s8 and count in s9.
 */
#include "env.h"
#define TESTDEV 0x10000000
#define MSIP (1 << 3)
#define MTIP (1 << 7)
#define SEIP (1 << 9)
#define MEIP (1 << 11)
RVTEST_BEGIN
  la t0, m_handler
  csrw mtvec, t0
  li s9, 0
  li s10, TESTDEV
  /* 1: a pending line with mie clear is not taken */
  li TESTNUM, 1
  li t0, MSIP; sw t0, 0(s10)
  csrsi mstatus, 8
  nop; nop
  bnez s9, fail
  /* 2: enabling MSIE takes it: mcause = interrupt | 3 */
  li TESTNUM, 2
  li t0, MSIP; csrs mie, t0
  nop
  li t0, 1; bne s9, t0, fail
  li t0, 0x8000000000000003; bne s8, t0, fail
  /* 3: mstatus.MIE gates M interrupts in M-mode; MPIE/MIE restored by mret */
  li TESTNUM, 3
  csrci mstatus, 8
  li t0, MTIP; csrs mie, t0; sw t0, 0(s10)
  nop; nop
  li t0, 1; bne s9, t0, fail
  csrr t0, mip; andi t0, t0, MTIP; beqz t0, fail
  /* 4: priority: MEI before MTI when both pend */
  li TESTNUM, 4
  li t0, MEIP; csrs mie, t0; sw t0, 0(s10)
  csrsi mstatus, 8
  nop
  li t0, 3; bne s9, t0, fail       /* MEI, then MTI */
  li t0, 0x8000000000000007; bne s8, t0, fail
  csrci mstatus, 8
  /* 5: vectored mode: cause 3 lands at base + 12 */
  li TESTNUM, 5
  la t0, vec_table; ori t0, t0, 1; csrw mtvec, t0
  li s7, 0
  li t0, MSIP; sw t0, 0(s10)
  csrsi mstatus, 8
  nop
  li t0, 3; bne s7, t0, fail
  csrci mstatus, 8
  la t0, m_handler; csrw mtvec, t0
  /* 6: supervisor software interrupt delegated to S-mode */
  li TESTNUM, 6
  la t0, s_handler; csrw stvec, t0
  li t0, 2; csrw mideleg, t0       /* SSIP */
  li t0, 2 | MTIP; csrw mie, t0
  li t0, 2; csrs mip, t0           /* pend SSIP */
  li s9, 0
  la t0, 1f; csrw mepc, t0
  li t0, 3 << 11; csrc mstatus, t0
  li t0, 1 << 11; csrs mstatus, t0 /* MPP = S */
  mret
1: nop                             /* S-mode, SIE = 0: not taken yet */
  bnez s9, fail_s
  csrsi sstatus, 2                 /* SIE */
  nop
  li t0, 1; bne s9, t0, fail_s
  li t0, 0x8000000000000001; bne s8, t0, fail_s
  /* 7: an M-level interrupt is taken from S-mode although mstatus.MIE = 0 */
  li TESTNUM, 7
  csrr t0, sie                     /* sie shows only the delegated bits of mie */
  li t1, 2; bne t0, t1, fail_s
  li t0, MTIP; sw t0, 0(s10)
  nop
  li t0, 0x8000000000000007; bne s8, t0, fail_s
  li t0, 2; bne s9, t0, fail_s
  ecall                            /* back to M-mode */
  /* 8: WFI wakes on a pending enabled interrupt even with MIE = 0, without trapping */
  li TESTNUM, 8
  csrci mstatus, 8
  csrw mideleg, zero
  li t0, MTIP; csrw mie, t0
  li s9, 0
  li t0, MTIP; sw t0, 8(s10)       /* raise MTIP once the hart waits */
  wfi
  csrr t0, mip; andi t0, t0, MTIP; beqz t0, fail
  bnez s9, fail
  lw t0, 12(s10); li t1, 1; bne t0, t1, fail
  li t0, MTIP; sw t0, 4(s10)
RVTEST_END

fail_s: ecall                      /* leave S-mode through the M handler, then fail */
  j fail

  .align 2
m_handler:
  csrr s8, mcause
  bltz s8, m_irq
  /* synchronous: only ECALL from S is expected; it returns to M-mode after the ecall */
  li t0, 9; bne s8, t0, fail
  csrr t0, mepc; addi t0, t0, 4; csrw mepc, t0
  li t0, 3 << 11; csrs mstatus, t0
  mret
m_irq:
  addi s9, s9, 1
  slli t0, s8, 1; srli t0, t0, 1   /* cause number */
  li t1, 1; sll t1, t1, t0
  sw t1, 4(s10)                    /* lower the line */
  li t2, MTIP; bne t1, t2, 2f
  csrc mie, t1                     /* MTI: also disable it (test 3 leaves MTIP for test 4) */
2: mret

  .align 2
s_handler:
  addi s9, s9, 1
  csrr s8, scause
  li t0, 2; csrc sip, t0
  sret

  .align 6
vec_table:
  j fail
  j fail
  j fail
  j vec_msi
  j fail
  j fail
  j fail
  j fail
vec_msi:
  li s7, 3
  li t1, MSIP; sw t1, 4(s10)
  mret
