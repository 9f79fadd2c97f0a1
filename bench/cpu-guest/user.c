/* Linux user-mode wrapper of workload.c for qemu-riscv64: prints the checksum in hex. */
#include <stdio.h>
unsigned long workload(void);
int main(void) { printf("%016lx\n", workload()); return 0; }
