#!/bin/sh
# Rebuilds labio, the storage lab's guest helper, from labio.c. Needs riscv64-linux-gnu-gcc
# (Debian: gcc-riscv64-linux-gnu). The binary is committed, so running the lab needs no compiler.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
riscv64-linux-gnu-gcc -Os -static -nostdlib -ffreestanding -fno-builtin -fno-stack-protector \
  -march=rv64gc -mabi=lp64d -Wall -Wextra -Wl,--build-id=none -s -o "$here/labio" "$here/labio.c"
ls -l "$here/labio"
