#!/usr/bin/env bash
# Rebuilds the storvm guest from Debian packages: a RISC-V 64 Linux 6.12 kernel (tinyconfig plus
# kernel.config) and a busybox initramfs with ./init. Outputs, next to this script:
#   Image.gz        the kernel (arch/riscv/boot/Image, gzip -9)
#   initramfs.cpio.gz
#   test-ext4.img.gz  a 4 MiB ext4 image with known files, for tests
#   lab-ext4.sparse.gz  a blank 1 GiB ext4 image for storvm bench (sparse format, ~4 KB)
# Needs (Debian, as root): linux-source-6.12 gcc-riscv64-linux-gnu binutils-riscv64-linux-gnu
#   flex bison bc libelf-dev libssl-dev cpio xz-utils e2fsprogs
# Work happens in $STORVM_GUEST_BUILD (default /tmp/storvm-guest-build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${STORVM_GUEST_BUILD:-/tmp/storvm-guest-build}
jobs=${JOBS:-$(nproc)}
mkdir -p "$work"

# 1. Kernel.
src_tar=$(ls /usr/src/linux-source-6.12*.tar.xz | head -n 1)
ksrc="$work/linux"
if [ ! -f "$ksrc/Makefile" ]; then
  mkdir -p "$ksrc"
  tar -xJf "$src_tar" -C "$ksrc" --strip-components=1
fi
kmake() { make -C "$ksrc" ARCH=riscv CROSS_COMPILE=riscv64-linux-gnu- "$@"; }
kmake tinyconfig
"$ksrc/scripts/kconfig/merge_config.sh" -m -O "$ksrc" "$ksrc/.config" "$here/kernel.config"
kmake olddefconfig
# Every fragment line must have survived olddefconfig, or the kernel is not what we asked for.
missing=0
while IFS= read -r line; do
  case "$line" in CONFIG_*=y) grep -qx "$line" "$ksrc/.config" || { echo "not set: $line" >&2; missing=1; } ;; esac
done < "$here/kernel.config"
[ "$missing" = 0 ] || echo "warning: some options above did not survive olddefconfig" >&2
kmake -j"$jobs" Image
gzip -9 -n -c "$ksrc/arch/riscv/boot/Image" > "$here/Image.gz"

# 2. busybox-static for riscv64, from Debian trixie's riscv64 archive with its own apt state.
apt_dir="$work/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
echo "deb [arch=riscv64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" > "$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Architecture=riscv64"
  -o "APT::Architectures=riscv64" -o "Dir::State::status=/dev/null")
apt-get "${apt_opts[@]}" update
(cd "$work" && rm -f busybox-static_*.deb && apt-get "${apt_opts[@]}" download busybox-static)
rm -rf "$work/bb" && mkdir -p "$work/bb"
dpkg-deb -x "$work"/busybox-static_*.deb "$work/bb"
bb_bin=$(find "$work/bb" -name busybox -type f -perm -u+x | head -n 1)
file "$bb_bin" | grep -q "RISC-V" || { echo "busybox is not a RISC-V binary" >&2; exit 1; }

# 3. initramfs: busybox, /init, and nothing else (init makes the applet links at boot).
root="$work/initramfs"
rm -rf "$root" && mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/mnt" "$root/etc"
cp "$bb_bin" "$root/bin/busybox"
install -m 0755 "$here/init" "$root/init"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --reproducible 2>/dev/null) | gzip -9 -n > "$here/initramfs.cpio.gz"

# 4. A small ext4 image with known files, for tests.
ext="$work/ext4-root"
rm -rf "$ext" && mkdir -p "$ext/dir"
printf 'hello from ext4\n' > "$ext/hello.txt"
seq 1 10000 > "$ext/dir/numbers.txt"
rm -f "$work/test-ext4.img"
mkfs.ext4 -q -F -L storvm-test -E root_owner=0:0 -d "$ext" "$work/test-ext4.img" 4M
gzip -9 -n -c "$work/test-ext4.img" > "$here/test-ext4.img.gz"

# 5. The storage lab's blank 1 GiB ext4 disk (storvm bench), itable and journal zeroed at mkfs so the
#    guest writes nothing behind the benchmark's back; stored sparse (non-zero 4 KiB blocks only).
rm -f "$work/lab-ext4.img"
mkfs.ext4 -q -F -L storvm-lab -U 5f0f7a3c-1d2e-4b6a-9c7d-0123456789ab -E lazy_itable_init=0,lazy_journal_init=0,nodiscard,root_owner=0:0 "$work/lab-ext4.img" 1G
(cd "$here/.." && npx tsx src/node/lab/sparse-image.ts "$work/lab-ext4.img" "$here/lab-ext4.sparse.gz")

ls -l "$here"/Image.gz "$here"/initramfs.cpio.gz "$here"/test-ext4.img.gz "$here"/lab-ext4.sparse.gz
