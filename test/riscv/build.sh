#!/bin/sh
# Assembles the RISC-V test programs in test/riscv/asm into test/riscv/elf (committed, so that
# `npm test` needs only Node). Needs Debian's gcc-riscv64-linux-gnu. When qemu-riscv64 is
# installed, the user-level programs are also built as Linux executables and run under QEMU,
# which checks the expected values written in the tests against an independent implementation.
set -eu
cd "$(dirname "$0")"
CC=${CC:-riscv64-linux-gnu-gcc}
CFLAGS="-nostdlib -nostartfiles -static -march=rv64gc -mabi=lp64d -g0 -Wl,--build-id=none -Wl,--no-relax -Wl,--no-warn-rwx-segments -Iasm"
USER_TESTS="rv64i rv64m rv64a rv64c rv64f rv64d"
for src in asm/*.S; do
  name=$(basename "$src" .S)
  $CC $CFLAGS -T asm/link.ld -o "elf/$name.elf" "$src"
  riscv64-linux-gnu-strip --strip-debug "elf/$name.elf"
  echo "built elf/$name.elf"
done
if command -v qemu-riscv64 >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  for name in $USER_TESTS; do
    [ -f "asm/$name.S" ] || continue
    $CC $CFLAGS -DUSER_LINUX -o "$tmp/$name" "asm/$name.S"
    if qemu-riscv64 "$tmp/$name"; then echo "qemu-riscv64: $name passes"
    else echo "qemu-riscv64: $name FAILS test $?" >&2; rm -rf "$tmp"; exit 1; fi
  done
  rm -rf "$tmp"
else
  echo "qemu-riscv64 not installed: expected values not cross-checked"
fi
