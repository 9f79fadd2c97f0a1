/**
 * HTIF-style test termination, the convention of the riscv-tests suites: the program writes to
 * the 64-bit `tohost` word (found through the ELF symbol). 1 means pass; (n << 1) | 1 means test
 * n failed. Any other non-zero value (a syscall-proxy request in the full HTIF) is reported as
 * such. `runHtif` runs the hart in slices and watches the word between slices.
 */
import type { Hart } from './hart.js';
import { loadElf, type LoadedElf } from './elf.js';
import type { Ram } from './bus.js';

export interface HtifResult {
  /** 'pass', 'fail' (with testNumber), 'other' (tohost value not in the convention), 'timeout', 'wfi' */
  status: 'pass' | 'fail' | 'other' | 'timeout' | 'wfi';
  testNumber: number;
  tohost: bigint;
  instructions: number;
}

export class Htif {
  readonly tohost: number;
  readonly fromhost: number | undefined;
  constructor(private readonly ram: Ram, symbols: Map<string, number>) {
    const t = symbols.get('tohost');
    if (t === undefined) throw new Error('program has no tohost symbol');
    this.tohost = t;
    this.fromhost = symbols.get('fromhost');
  }

  private dv(): DataView {
    return new DataView(this.ram.bytes.buffer, this.ram.bytes.byteOffset, this.ram.bytes.byteLength);
  }

  /** Current tohost value (0 while the program runs). */
  read(): bigint {
    return this.dv().getBigUint64(this.tohost - this.ram.base, true);
  }

  /** Runs `hart` until tohost is written, it waits with nothing to wake it, or `maxInstructions`. */
  run(hart: Hart, maxInstructions: number, slice = 100_000): HtifResult {
    let total = 0;
    for (;;) {
      const v = this.read();
      if (v !== 0n) {
        const n = Number(v >> 1n);
        if (v === 1n) return { status: 'pass', testNumber: 0, tohost: v, instructions: total };
        if ((v & 1n) === 1n) return { status: 'fail', testNumber: n, tohost: v, instructions: total };
        return { status: 'other', testNumber: 0, tohost: v, instructions: total };
      }
      if (total >= maxInstructions) return { status: 'timeout', testNumber: 0, tohost: 0n, instructions: total };
      const ran = hart.run(Math.min(slice, maxInstructions - total));
      total += ran;
      if (ran === 0 && hart.waiting) return { status: 'wfi', testNumber: 0, tohost: 0n, instructions: total };
    }
  }
}

/** Loads an ELF test program, points the hart at its entry and returns its HTIF. */
export function loadTestProgram(hart: Hart, ram: Ram, image: Uint8Array): { elf: LoadedElf; htif: Htif } {
  const elf = loadElf(image, ram);
  hart.setPc(elf.entry);
  return { elf, htif: new Htif(ram, elf.symbols) };
}
