/*
 * Test-program environment in the riscv-tests convention: the program writes 1 to `tohost` to
 * pass, or (n << 1) | 1 to report that test n failed. gp holds the number of the running test.
 * Every program starts in M-mode at _start with a trap vector that fails the current test,
 * unless the test installs its own.
 */
#define TESTNUM gp

#ifdef USER_LINUX
/*
 * User-level programs (rv64i, m, a, c, fd) are also built as Linux executables that exit with
 * the failing test number, so build.sh can check their expected values under qemu-riscv64.
 */
#define RVTEST_BEGIN              \
  .section .text.init, "ax";      \
  .globl _start;                  \
_start:                           \
  li TESTNUM, 0;                  \
  j tests_begin;                  \
pass:                             \
  li a0, 0;                       \
  li a7, 93;                      \
  ecall;                          \
fail:                             \
  mv a0, TESTNUM;                 \
  li a7, 93;                      \
  ecall;                          \
tests_begin:
#define RVTEST_END                \
  j pass;                         \
  .data;                          \
tohost: .dword 0;
#else
#define RVTEST_BEGIN              \
  .section .text.init, "ax";      \
  .globl _start;                  \
_start:                           \
  la t0, unexpected_trap;         \
  csrw mtvec, t0;                 \
  li t0, 0x2000;                  \
  csrs mstatus, t0;               \
  li TESTNUM, 0;                  \
  j tests_begin;                  \
  .align 2;                       \
unexpected_trap:                  \
  ori TESTNUM, TESTNUM, 0x400;    \
  j fail;                         \
pass:                             \
  li t0, 1;                       \
  la t1, tohost;                  \
  sd t0, 0(t1);                   \
1: j 1b;                          \
fail:                             \
  slli t0, TESTNUM, 1;            \
  ori t0, t0, 1;                  \
  la t1, tohost;                  \
  sd t0, 0(t1);                   \
2: j 2b;                          \
tests_begin:

#define RVTEST_END                \
  j pass;                         \
  .section .tohost, "aw";         \
  .align 3;                       \
  .globl tohost;                  \
tohost: .dword 0;                 \
  .globl fromhost;                \
fromhost: .dword 0;
#endif

/* Test n: register `reg` must equal `val` (a 64-bit constant). Clobbers t6. */
#define CHECK(n, reg, val)        \
  li TESTNUM, n;                  \
  li t6, val;                     \
  bne reg, t6, fail;

/* Test n: run `code`, then `reg` must equal `val`. */
#define TEST(n, reg, val, code...) \
  li TESTNUM, n;                  \
  code;                           \
  li t6, val;                     \
  bne reg, t6, fail;
