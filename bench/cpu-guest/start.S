/*
 * Boot code of the CPU benchmark guest: in M-mode, build an Sv39 page table (4 KiB pages for the
 * first 2 MiB of RAM, so every fetch and access goes through real leaf PTEs; megapages for the
 * rest), delegate nothing, turn on satp and drop to S-mode, run workload(), then report the
 * checksum through tohost as (checksum << 1) | 1 would be "fail"; we write ((sum & 0xffff) << 1) | 1
 * only on mismatch. The expected checksum comes from the same C code run under qemu-riscv64.
 */
  .section .text.init, "ax"
  .globl _start
_start:
  la sp, stack_top
  /* root table: entry 2 (VA 0x80000000..0xbfffffff) -> level-1 table */
  la t0, pt_root
  la t1, pt_l1
  srli t1, t1, 12
  slli t1, t1, 10
  ori t1, t1, 1            /* V: pointer */
  sd t1, 16(t0)
  /* level 1: entry 0 -> level-0 table, entries 1..511 -> 2 MiB megapages */
  la t0, pt_l1
  la t1, pt_l0
  srli t1, t1, 12
  slli t1, t1, 10
  ori t1, t1, 1
  sd t1, 0(t0)
  li t2, 1
  li t3, 512
  li t4, 0x80000000
1:
  slli t5, t2, 21
  add t5, t5, t4
  srli t5, t5, 12
  slli t5, t5, 10
  ori t5, t5, 0xcf         /* D A X W R V */
  slli t6, t2, 3
  add t6, t6, t0
  sd t5, 0(t6)
  addi t2, t2, 1
  blt t2, t3, 1b
  /* level 0: 512 x 4 KiB pages for 0x80000000..0x801fffff, A/D clear so the walker sets them */
  la t0, pt_l0
  li t2, 0
2:
  slli t5, t2, 12
  add t5, t5, t4
  srli t5, t5, 12
  slli t5, t5, 10
  ori t5, t5, 0x0f         /* X W R V */
  slli t6, t2, 3
  add t6, t6, t0
  sd t5, 0(t6)
  addi t2, t2, 1
  blt t2, t3, 2b
  /* satp = Sv39 | root ppn; mret to S-mode at s_entry */
  la t0, pt_root
  srli t0, t0, 12
  li t1, 8 << 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  la t0, m_trap
  csrw mtvec, t0
  li t0, 1 << 11           /* MPP = S */
  csrw mstatus, t0
  la t0, s_entry
  csrw mepc, t0
  mret
s_entry:
  call workload
  la t1, expected
  ld t1, 0(t1)
  la t2, tohost
  bne a0, t1, 3f
  li t0, 1
  sd t0, 0(t2)
4: j 4b
3:
  li t0, 0xffff
  and a0, a0, t0
  slli a0, a0, 1
  ori a0, a0, 1
  sd a0, 0(t2)
5: j 5b
  .align 2
m_trap:                    /* any trap fails with code 0x7fff */
  li t0, 0xffff
  la t2, tohost
  sd t0, 0(t2)
6: j 6b

  .section .tohost, "aw"
  .align 3
  .globl tohost
tohost: .dword 0
  .globl fromhost
fromhost: .dword 0

  .section .data
  .align 3
  .globl expected
expected: .dword EXPECTED

  .bss
  .align 12
pt_root: .skip 4096
pt_l1: .skip 4096
pt_l0: .skip 4096
  .skip 16384
stack_top:
