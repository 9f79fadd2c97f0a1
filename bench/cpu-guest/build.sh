#!/bin/sh
# Builds the CPU benchmark guest (cpu.elf, committed) and, for the QEMU comparison, a Linux
# executable of the same workload (cpu-user, not committed: built by bench/cpu.ts when needed).
# The expected checksum is computed by running the workload under qemu-riscv64.
set -eu
cd "$(dirname "$0")"
ROUNDS=${ROUNDS:-300}
CC=riscv64-linux-gnu-gcc
OPT="-O2 -march=rv64gc -mabi=lp64d -DROUNDS=$ROUNDS -fno-stack-protector -fno-tree-loop-distribute-patterns"
$CC $OPT -static -o cpu-user user.c workload.c
EXPECTED=0x$(qemu-riscv64 ./cpu-user)
echo "checksum $EXPECTED"
$CC $OPT -nostdlib -nostartfiles -static -mcmodel=medany -g0 -Wl,--build-id=none -Wl,--no-warn-rwx-segments \
  -DEXPECTED=$EXPECTED -T ../../test/riscv/asm/link.ld -o cpu.elf start.S workload.c
riscv64-linux-gnu-strip --strip-debug cpu.elf
echo "built bench/cpu-guest/cpu.elf"
