/*
 * Sv39 (priv spec 4.3-4.4): 4 KiB pages, 2 MiB and 1 GiB superpages, hardware A/D updates,
 * page-fault kinds and tval, U/SUM/MXR, misaligned superpage, non-canonical address, PTE outside
 * RAM (access fault), MPRV, SFENCE.VMA after a PTE change, U-mode fetch through a 4 KiB page.
 * Every trap goes to M (no delegation): s8 = mcause, s9 = mtval, resume in M-mode at s11.
 */
#include "env.h"
#define TRAP_S(n, cause, tval, code...) li TESTNUM, n; la s11, 9f; li s8, -1; TO_S; code; ecall; 9: li t0, cause; bne s8, t0, fail; li t0, tval; bne s9, t0, fail;
#define OK_S(n, reg, val, code...) li TESTNUM, n; la s11, 9f; li s8, -1; TO_S; code; ecall; 9: li t0, 9; bne s8, t0, fail; li t0, val; bne reg, t0, fail;
#define TO_S la t0, 8f; csrw mepc, t0; li t0, 3 << 11; csrc mstatus, t0; li t0, 1 << 11; csrs mstatus, t0; mret; 8:
#define PTE(pa, flags) ((((pa) >> 12) << 10) | (flags))
#define V 1
#define R 2
#define W 4
#define X 8
#define U 16
#define A 64
#define D 128
RVTEST_BEGIN
  la t0, m_handler; csrw mtvec, t0
  /* root[2]: VA 0x80000000 gigapage -> PA 0x80000000, RWX A D (code and data) */
  la s0, root
  li t0, PTE(0x80000000, V|R|W|X|A|D); sd t0, 16(s0)
  /* root[1]: VA 0x40000000 gigapage -> PA 0x80000000, read-only, A clear */
  li t0, PTE(0x80000000, V|R); sd t0, 8(s0)
  /* root[0] -> l1 table */
  la t1, l1; srli t1, t1, 12; slli t1, t1, 10; ori t1, t1, V; sd t1, 0(s0)
  la s1, l1
  /* l1[1]: VA 0x200000 megapage -> PA 0x80200000, RW + U */
  li t0, PTE(0x80200000, V|R|W|U|A|D); sd t0, 8(s1)
  /* l1[2]: VA 0x400000 megapage with a misaligned PPN (0x80201000) */
  li t0, PTE(0x80201000, V|R|W|A|D); sd t0, 16(s1)
  /* l1[3]: VA 0x600000 megapage -> PA 0x00000000 (nothing there) */
  li t0, PTE(0, V|R|W|A|D); sd t0, 24(s1)
  /* l1[0] -> l0 table */
  la t1, l0; srli t1, t1, 12; slli t1, t1, 10; ori t1, t1, V; sd t1, 0(s1)
  la s2, l0
  /* l0[1]: VA 0x1000 -> page1, RW, A and D clear */
  la t1, page1; srli t1, t1, 12; slli t1, t1, 10; ori t0, t1, V|R|W; sd t0, 8(s2)
  /* l0[2]: VA 0x2000 -> page1, execute-only */
  ori t0, t1, V|X|A; sd t0, 16(s2)
  /* l0[3]: VA 0x3000 invalid */
  sd zero, 24(s2)
  /* l0[4]: VA 0x4000 -> page2, RW A D */
  la t1, page2; srli t1, t1, 12; slli t1, t1, 10; ori t0, t1, V|R|W|A|D; sd t0, 32(s2)
  /* l0[5]: VA 0x5000 -> ucode, U + X */
  la t1, ucode; srli t1, t1, 12; slli t1, t1, 10; ori t0, t1, V|X|U|A; sd t0, 40(s2)
  /* l0[6]: VA 0x6000: W without R is reserved */
  ori t0, t1, V|W|A|D; sd t0, 48(s2)
  /* satp: Sv39, root */
  srli t0, s0, 12; li t1, 8 << 60; or t0, t0, t1; csrw satp, t0
  sfence.vma
  la t0, page1; li t1, 0x1111; sd t1, 0(t0)
  la t0, page2; li t1, 0x2222; sd t1, 0(t0)
  /* 4 KiB page: a load sets A; a store sets D */
  OK_S(1, a0, 0x1111, li t0, 0x1000; ld a0, 0(t0))
  TEST(2, a0, V|R|W|A, ld a0, 8(s2); andi a0, a0, 0xff)
  OK_S(3, a0, 0x3333, li t0, 0x1000; li t1, 0x3333; sd t1, 8(t0); ld a0, 8(t0))
  TEST(4, a0, V|R|W|A|D, ld a0, 8(s2); andi a0, a0, 0xff)
  /* gigapage alias: read works and sets A; store is a store page fault */
  OK_S(5, a0, 0x1111, la t0, page1; li t1, 0x40000000; sub t0, t0, t1; ld a0, 0(t0))
  TEST(6, a0, V|R|A, ld a0, 8(s0); andi a0, a0, 0xff)
  TRAP_S(7, 15, 0x40000008, li t0, 0x40000008; sd t0, 0(t0))
  /* megapage with U: S access needs SUM; S never executes U pages */
  TRAP_S(8, 13, 0x200010, li t0, 0x200010; ld a0, 0(t0))
  li t0, 1 << 18; csrs mstatus, t0
  OK_S(9, a0, 0x55, li t0, 0x200010; li t1, 0x55; sd t1, 0(t0); ld a0, 0(t0))
  TRAP_S(10, 12, 0x200000, li t0, 0x200000; jr t0)
  li t0, 1 << 18; csrc mstatus, t0
  /* SUM clear again: what SUM allowed (and the TLB kept) faults again, loads and stores */
  TRAP_S(26, 13, 0x200010, li t0, 0x200010; ld a0, 0(t0))
  TRAP_S(27, 15, 0x200018, li t0, 0x200018; sd a0, 0(t0))
  /* the megapage's data landed at PA 0x80200010 */
  TEST(11, a0, 0x55, li t0, 0x80200010; ld a0, 0(t0))
  /* misaligned megapage, invalid PTE, W-without-R, non-canonical, fetch from non-X */
  TRAP_S(12, 13, 0x400000, li t0, 0x400000; ld a0, 0(t0))
  TRAP_S(13, 13, 0x3008, li t0, 0x3008; ld a0, 0(t0))
  TRAP_S(14, 15, 0x6000, li t0, 0x6000; sd a0, 0(t0))
  TRAP_S(15, 13, 0x0000008000000000, li t0, 0x0000008000000000; ld a0, 0(t0))
  TRAP_S(16, 12, 0x1000, li t0, 0x1000; jr t0)
  /* execute-only page: loads fault unless MXR */
  TRAP_S(17, 13, 0x2000, li t0, 0x2000; ld a0, 0(t0))
  li t0, 1 << 19; csrs mstatus, t0
  OK_S(18, a0, 0x1111, li t0, 0x2000; ld a0, 0(t0))
  li t0, 1 << 19; csrc mstatus, t0
  /* a leaf that maps to nothing: access fault, not page fault */
  TRAP_S(19, 5, 0x600000, li t0, 0x600000; ld a0, 0(t0))
  TRAP_S(20, 7, 0x600008, li t0, 0x600008; sd a0, 0(t0))
  /* SFENCE.VMA after remapping VA 0x1000 to page2 */
  OK_S(21, a0, 0x1111, li t0, 0x1000; ld a0, 0(t0))
  la t1, page2; srli t1, t1, 12; slli t1, t1, 10; ori t0, t1, V|R|W|A|D; sd t0, 8(s2)
  OK_S(22, a0, 0x2222, sfence.vma; li t0, 0x1000; ld a0, 0(t0))
  /* MPRV: M-mode loads translated as S */
  li TESTNUM, 23
  li t0, (1 << 17) | (1 << 11); csrs mstatus, t0
  li t0, 0x4000; ld a0, 0(t0)
  li t0, 1 << 17; csrc mstatus, t0
  li t0, 0x2222; bne a0, t0, fail
  /* U-mode code through a 4 KiB U page; its ECALL arrives as cause 8 */
  li TESTNUM, 24
  la s11, 1f
  li t0, 0x5000; csrw mepc, t0
  li t0, 3 << 11; csrc mstatus, t0
  mret
1: li t0, 8; bne s8, t0, fail
  li t0, 0x77; bne a0, t0, fail
  /* U-mode load from a non-U page faults */
  li TESTNUM, 25
  la s11, 1f
  li t0, 0x5008; csrw mepc, t0
  li t0, 3 << 11; csrc mstatus, t0
  mret
1: li t0, 13; bne s8, t0, fail
  li t0, 0x4000; bne s9, t0, fail
  csrw satp, zero
RVTEST_END

  .align 2
m_handler:
  csrr s8, mcause
  csrr s9, mtval
  csrw mepc, s11
  li t0, 3 << 11
  csrs mstatus, t0
  mret

  .text
  .align 12
ucode:
  li a0, 0x77
  ecall
  li t0, 0x4000
  ld a0, 0(t0)
  ecall

  .data
  .align 12
root: .skip 4096
l1: .skip 4096
l0: .skip 4096
page1: .skip 4096
page2: .skip 4096
