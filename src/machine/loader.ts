/**
 * Loading a RISC-V Linux `Image` (Documentation/arch/riscv/boot-image-header.rst) with its
 * initramfs and device tree into RAM.
 */

/** A kernel image that can't be booted: bad magic, too big for RAM, … */
export class BootImageError extends Error {
  override readonly name = 'BootImageError';
}

export interface ImageHeader {
  /** Offset from the start of RAM the kernel wants to be loaded at. */
  textOffset: number;
  /** Bytes the kernel occupies in memory once running, BSS included (larger than the file). */
  imageSize: number;
}

const MAGIC2 = 0x05435352; // "RSC\x05"

/** Parses the 64-byte Image header. */
export function parseImageHeader(image: Uint8Array): ImageHeader {
  if (image.length < 64) throw new BootImageError(`kernel image too small (${image.length} bytes)`);
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const magic = new TextDecoder().decode(image.subarray(48, 53));
  if (magic !== 'RISCV' || dv.getUint32(56, true) !== MAGIC2) {
    throw new BootImageError('not a RISC-V Linux Image (no RISCV/RSC magic in its header)');
  }
  const textOffset = Number(dv.getBigUint64(8, true));
  const imageSize = Number(dv.getBigUint64(16, true));
  return { textOffset, imageSize: Math.max(imageSize, image.length) };
}

export interface BootLayout {
  kernel: number;
  initrd?: { start: number; end: number };
  dtb: number;
}

const MiB2 = 2 << 20;
const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Where things go: the kernel at RAM base + text_offset; the initramfs and then the device tree
 * above the kernel's in-memory size (not its file size: the kernel zeroes its BSS beyond the end
 * of the file, so anything placed there would be wiped).
 */
export function planBoot(ramBase: number, ramSize: number, header: ImageHeader, initrdSize: number, dtbSize: number): BootLayout {
  const kernel = ramBase + (header.textOffset || MiB2);
  let next = alignUp(kernel + header.imageSize, MiB2);
  let initrd: BootLayout['initrd'];
  if (initrdSize > 0) {
    initrd = { start: next, end: next + initrdSize };
    next = alignUp(initrd.end, 4096);
  }
  const dtb = next;
  if (dtb + dtbSize > ramBase + ramSize) {
    throw new BootImageError(`kernel, initramfs and device tree need ${Math.ceil((dtb + dtbSize - ramBase) / 2 ** 20)} MiB; the machine has ${ramSize / 2 ** 20} MiB`);
  }
  return { kernel, initrd, dtb };
}
