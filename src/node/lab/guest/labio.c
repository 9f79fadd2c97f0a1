/*
 * labio: the storage lab's guest helper (RISC-V 64 Linux, no libc). busybox has no way to time
 * finer than 10 ms or to do random-offset I/O in one process, so this does both:
 *
 *   labio now                          CLOCK_MONOTONIC in ns
 *   labio time PROG [ARG...]           run PROG, then print "<elapsed ns> <exit status>"
 *   labio rand FILE r|w BLOCKS OPS SEED   OPS random 4 KiB preads or pwrites (then fsync) within
 *                                      the first BLOCKS blocks of FILE; prints elapsed ns
 *   labio mmap FILE BYTES              map BYTES of FILE shared read-write, store into every 4 KiB
 *                                      page, msync(MS_SYNC); prints elapsed ns
 *
 * Errors: one line on stderr "labio: <what>: errno <n>" and exit status 1 (2 for usage).
 * Build: src/node/lab/guest/build.sh (riscv64-linux-gnu-gcc, -nostdlib, static).
 */
typedef unsigned long u64;
typedef long i64;

#define SYS_openat 56
#define SYS_close 57
#define SYS_write 64
#define SYS_pread64 67
#define SYS_pwrite64 68
#define SYS_fsync 82
#define SYS_exit 93
#define SYS_clock_gettime 113
#define SYS_munmap 215
#define SYS_clone 220
#define SYS_execve 221
#define SYS_mmap 222
#define SYS_msync 227
#define SYS_wait4 260

#define AT_FDCWD -100
#define O_RDONLY 0
#define O_RDWR 2
#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_SHARED 1
#define MS_SYNC 4
#define SIGCHLD 17
#define BLOCK 4096

static i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f) {
  register i64 a0 __asm__("a0") = a;
  register i64 a1 __asm__("a1") = b;
  register i64 a2 __asm__("a2") = c;
  register i64 a3 __asm__("a3") = d;
  register i64 a4 __asm__("a4") = e;
  register i64 a5 __asm__("a5") = f;
  register i64 a7 __asm__("a7") = n;
  __asm__ volatile("ecall" : "+r"(a0) : "r"(a1), "r"(a2), "r"(a3), "r"(a4), "r"(a5), "r"(a7) : "memory");
  return a0;
}
#define sys3(n, a, b, c) sys6(n, (i64)(a), (i64)(b), (i64)(c), 0, 0, 0)

static unsigned char buf[BLOCK] __attribute__((aligned(BLOCK)));

static u64 slen(const char *s) { u64 n = 0; while (s[n]) n++; return n; }
static void puts_fd(int fd, const char *s) { sys3(SYS_write, fd, s, slen(s)); }
static __attribute__((noreturn)) void quit(int code) { for (;;) sys3(SYS_exit, code, 0, 0); }

static void put_u64(int fd, u64 v, const char *after) {
  char t[24]; int i = 23; t[i] = 0;
  do { t[--i] = '0' + v % 10; v /= 10; } while (v);
  puts_fd(fd, t + i); puts_fd(fd, after);
}

static __attribute__((noreturn)) void fail(const char *what, i64 r) {
  puts_fd(2, "labio: "); puts_fd(2, what); puts_fd(2, ": errno "); put_u64(2, (u64)-r, "\n");
  quit(1);
}

static __attribute__((noreturn)) void usage(void) {
  puts_fd(2, "usage: labio now | time PROG [ARG...] | rand FILE r|w BLOCKS OPS SEED | mmap FILE BYTES\n");
  quit(2);
}

static u64 num(const char *s) {
  u64 v = 0;
  if (!*s) usage();
  for (; *s; s++) { if (*s < '0' || *s > '9') usage(); v = v * 10 + (u64)(*s - '0'); }
  return v;
}

static u64 now(void) {
  i64 ts[2];
  sys3(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, ts, 0);
  return (u64)ts[0] * 1000000000ul + (u64)ts[1];
}

static int streq(const char *a, const char *b) { while (*a && *a == *b) a++, b++; return *a == *b; }

static int cmd_time(char **argv, char **envp) {
  u64 t0 = now();
  i64 pid = sys6(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
  if (pid < 0) fail("fork", pid);
  if (pid == 0) {
    i64 r = sys3(SYS_execve, argv[0], argv, envp);
    fail(argv[0], r);
  }
  int status = 0;
  i64 r = sys6(SYS_wait4, pid, (i64)&status, 0, 0, 0, 0);
  u64 t1 = now();
  if (r < 0) fail("wait4", r);
  int code = (status & 0x7f) ? 128 + (status & 0x7f) : (status >> 8) & 0xff;
  put_u64(1, t1 - t0, " "); put_u64(1, (u64)code, "\n");
  return 0;
}

static int cmd_rand(const char *file, int write, u64 blocks, u64 ops, u64 seed) {
  if (blocks == 0) usage();
  u64 x = seed * 2654435761ul + 88172645463325252ul;
  for (int i = 0; i < BLOCK; i++) buf[i] = (unsigned char)(i * 7 + 1);
  u64 t0 = now();
  i64 fd = sys6(SYS_openat, AT_FDCWD, (i64)file, write ? O_RDWR : O_RDONLY, 0, 0, 0);
  if (fd < 0) fail(file, fd);
  for (u64 i = 0; i < ops; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    i64 off = (i64)((x % blocks) * BLOCK);
    i64 r = sys6(write ? SYS_pwrite64 : SYS_pread64, fd, (i64)buf, BLOCK, off, 0, 0);
    if (r != BLOCK) fail(write ? "pwrite" : "pread", r < 0 ? r : -5 /* EIO: short */);
  }
  if (write) { i64 r = sys3(SYS_fsync, fd, 0, 0); if (r < 0) fail("fsync", r); }
  sys3(SYS_close, fd, 0, 0);
  put_u64(1, now() - t0, "\n");
  return 0;
}

static int cmd_mmap(const char *file, u64 bytes) {
  if (bytes == 0) usage();
  u64 t0 = now();
  i64 fd = sys6(SYS_openat, AT_FDCWD, (i64)file, O_RDWR, 0, 0, 0);
  if (fd < 0) fail(file, fd);
  i64 p = sys6(SYS_mmap, 0, (i64)bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p < 0 && p > -4096) fail("mmap", p);
  volatile u64 *m = (volatile u64 *)p;
  for (u64 off = 0; off < bytes; off += BLOCK) m[off / 8] = off + 1;
  i64 r = sys3(SYS_msync, p, bytes, MS_SYNC);
  if (r < 0) fail("msync", r);
  sys3(SYS_munmap, p, bytes, 0);
  sys3(SYS_close, fd, 0, 0);
  put_u64(1, now() - t0, "\n");
  return 0;
}

static int lab_main(int argc, char **argv, char **envp) {
  if (argc < 2) usage();
  const char *c = argv[1];
  if (streq(c, "now") && argc == 2) { put_u64(1, now(), "\n"); return 0; }
  if (streq(c, "time") && argc >= 3) return cmd_time(argv + 2, envp);
  if (streq(c, "rand") && argc == 7 && (streq(argv[3], "r") || streq(argv[3], "w")))
    return cmd_rand(argv[2], argv[3][0] == 'w', num(argv[4]), num(argv[5]), num(argv[6]));
  if (streq(c, "mmap") && argc == 4) return cmd_mmap(argv[2], num(argv[3]));
  usage();
}

void start_c(i64 *sp) {
  int argc = (int)sp[0];
  char **argv = (char **)(sp + 1);
  quit(lab_main(argc, argv, argv + argc + 1));
}

__asm__(".globl _start\n_start:\n  .option push\n  .option norelax\n  lla gp, __global_pointer$\n  .option pop\n  mv a0, sp\n  andi sp, sp, -16\n  call start_c\n");
