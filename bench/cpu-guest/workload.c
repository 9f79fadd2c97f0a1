/*
 * CPU benchmark workload: integer ALU, loads and stores, branches and calls. The same source
 * runs in storvm (S-mode, Sv39, via start.S) and under qemu-riscv64 (via user.c) so run times
 * can be compared. Returns a checksum that both must agree on.
 */
typedef unsigned long u64;
typedef unsigned int u32;

#define N 4096
static u32 arr[N];
static unsigned char sieve[8192];

static u64 mix(u64 x) {
  x ^= x >> 33; x *= 0xff51afd7ed558ccdUL; x ^= x >> 33;
  return x;
}

__attribute__((noinline)) static u32 fib(u32 n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

__attribute__((noinline)) static void isort(u32 *a, int n) {
  for (int i = 1; i < n; i++) {
    u32 v = a[i]; int j = i - 1;
    while (j >= 0 && a[j] > v) { a[j + 1] = a[j]; j--; }
    a[j + 1] = v;
  }
}

__attribute__((noinline)) static u64 primes(void) {
  u64 count = 0;
  for (int i = 0; i < 8192; i++) sieve[i] = 1;
  for (int i = 2; i < 8192; i++) {
    if (!sieve[i]) continue;
    count += i;
    for (int j = i * 2; j < 8192; j += i) sieve[j] = 0;
  }
  return count;
}

__attribute__((noinline)) static u64 crc(const unsigned char *p, int n) {
  u32 c = 0xffffffff;
  for (int i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c;
}

u64 workload(void) {
  u64 sum = 0, seed = 1;
  for (int round = 0; round < ROUNDS; round++) {
    for (int i = 0; i < N; i++) { seed = mix(seed + i); arr[i] = (u32)seed; }
    isort(arr, 256 + (round & 63));
    sum += arr[0] + arr[100] + primes();
    sum += crc((const unsigned char *)arr, 2048);
    sum += fib(16 + (round & 3));
    sum = mix(sum);
  }
  return sum;
}
