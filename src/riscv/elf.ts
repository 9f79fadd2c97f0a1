/**
 * ELF64 little-endian loader for RISC-V programs (System V gABI; RISC-V psABI e_machine 243):
 * copies PT_LOAD segments into RAM at their physical addresses, zero-fills the rest of each
 * segment (.bss), and returns the entry point and the symbol table (for HTIF's tohost/fromhost).
 */
import type { Ram } from './bus.js';

export class ElfError extends Error {
  override readonly name = 'ElfError';
}

export interface LoadedElf {
  entry: number;
  symbols: Map<string, number>;
}

const PT_LOAD = 1, SHT_SYMTAB = 2, EM_RISCV = 243;

function u64(dv: DataView, o: number): number {
  const v = dv.getBigUint64(o, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError(`64-bit field at ${o} out of range`);
  return Number(v);
}

/** Parses `image` and loads it into `ram`. Throws ElfError for malformed input or bad addresses. */
export function loadElf(image: Uint8Array, ram: Ram): LoadedElf {
  if (image.length < 64 || image[0] !== 0x7f || image[1] !== 0x45 || image[2] !== 0x4c || image[3] !== 0x46) {
    throw new ElfError('not an ELF file');
  }
  if (image[4] !== 2 || image[5] !== 1) throw new ElfError('not a 64-bit little-endian ELF');
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (dv.getUint16(18, true) !== EM_RISCV) throw new ElfError('not a RISC-V ELF');
  const entry = u64(dv, 24);
  const phoff = u64(dv, 32), shoff = u64(dv, 40);
  const phentsize = dv.getUint16(54, true), phnum = dv.getUint16(56, true);
  const shentsize = dv.getUint16(58, true), shnum = dv.getUint16(60, true);
  const check = (off: number, len: number, what: string) => {
    if (off < 0 || len < 0 || off + len > image.length) throw new ElfError(`${what} outside the file`);
  };
  check(phoff, phnum * phentsize, 'program headers');
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (dv.getUint32(p, true) !== PT_LOAD) continue;
    const offset = u64(dv, p + 8), paddr = u64(dv, p + 24), filesz = u64(dv, p + 32), memsz = u64(dv, p + 40);
    if (memsz === 0) continue;
    check(offset, filesz, 'segment');
    const ro = paddr - ram.base;
    if (filesz > memsz || ro < 0 || ro + memsz > ram.bytes.length) {
      throw new ElfError(`segment at 0x${paddr.toString(16)} (+0x${memsz.toString(16)}) is outside RAM`);
    }
    ram.bytes.set(image.subarray(offset, offset + filesz), ro);
    ram.bytes.fill(0, ro + filesz, ro + memsz);
  }
  const symbols = new Map<string, number>();
  if (shoff !== 0 && shnum !== 0) {
    check(shoff, shnum * shentsize, 'section headers');
    for (let i = 0; i < shnum; i++) {
      const s = shoff + i * shentsize;
      if (dv.getUint32(s + 4, true) !== SHT_SYMTAB) continue;
      const symoff = u64(dv, s + 24), symsize = u64(dv, s + 32), link = dv.getUint32(s + 40, true);
      const entsize = u64(dv, s + 56) || 24;
      if (link >= shnum) throw new ElfError('symbol table links to a missing string table');
      const str = shoff + link * shentsize;
      const stroff = u64(dv, str + 24), strsize = u64(dv, str + 32);
      check(symoff, symsize, 'symbol table');
      check(stroff, strsize, 'string table');
      for (let e = symoff; e + entsize <= symoff + symsize; e += entsize) {
        const nameOff = dv.getUint32(e, true);
        if (nameOff === 0 || nameOff >= strsize) continue;
        let end = stroff + nameOff;
        while (end < stroff + strsize && image[end] !== 0) end++;
        const name = new TextDecoder().decode(image.subarray(stroff + nameOff, end));
        symbols.set(name, u64(dv, e + 8));
      }
    }
  }
  return { entry, symbols };
}
