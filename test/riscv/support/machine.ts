/**
 * A minimal test machine for the hart: RAM at 0x80000000 and a "test device" standing in for
 * the CLINT/PLIC so assembly tests can raise M-level interrupt lines themselves.
 *
 * Test device at 0x10000000 (32-bit registers):
 *   +0  write: set the interrupt lines given as a mip bit mask (MSIP 1<<3, MTIP 1<<7, SEIP 1<<9, MEIP 1<<11)
 *   +4  write: clear those lines
 *   +8  write: lines to raise only once the hart is waiting in WFI (tests WFI wake-up)
 *   +12 read:  how many times the hart has been woken from WFI by +8
 */
import { readFileSync } from 'node:fs';
import { Hart, type CpuEngine } from '../../../src/riscv/hart.js';
import { createWasmRam } from '../../../src/riscv/jit.js';
import { loadTestProgram, type HtifResult } from '../../../src/riscv/htif.js';
import type { Bus } from '../../../src/riscv/bus.js';

export const RAM_BASE = 0x8000_0000;
export const TESTDEV = 0x1000_0000;

export class TestMachine {
  readonly ram: { base: number; bytes: Uint8Array };
  readonly hart: Hart;
  deferredLines = 0;
  wakeups = 0;

  /** `engine` 'wasm' puts RAM in a WebAssembly.Memory and runs hot code translated. */
  constructor(readonly engine: CpuEngine = 'interp') {
    const self = this;
    this.ram = engine === 'wasm' ? createWasmRam(RAM_BASE, 4 << 20) : { base: RAM_BASE, bytes: new Uint8Array(4 << 20) };
    const bus: Bus = {
      read(pa, size, out) {
        if (pa === TESTDEV + 12 && size === 4) { out[0] = self.wakeups; return true; }
        return false;
      },
      write(pa, size, lo) {
        if (size !== 4 || pa < TESTDEV || pa >= TESTDEV + 12) return false;
        const off = pa - TESTDEV;
        for (let bit = 0; bit < 12; bit++) {
          if (((lo >>> bit) & 1) === 0) continue;
          if (off === 0) self.hart.setInterruptLine(bit, true);
          else if (off === 4) self.hart.setInterruptLine(bit, false);
        }
        if (off === 8) self.deferredLines |= lo;
        return true;
      },
    };
    // Threshold 1: every entry point is translated at once, so the tests exercise the translator.
    this.hart = new Hart({ ram: this.ram, bus, engine, hotThreshold: 1, batch: 1 });
  }

  /** Loads and runs an ELF test program until it reports through tohost. */
  runElf(path: string, maxInstructions = 5_000_000): HtifResult {
    const { htif } = loadTestProgram(this.hart, this.ram, new Uint8Array(readFileSync(path)));
    let total = 0;
    for (;;) {
      const r = htif.run(this.hart, maxInstructions - total, 10_000);
      total += r.instructions;
      if (r.status !== 'wfi') return { ...r, instructions: total };
      if (this.deferredLines === 0) return { ...r, instructions: total };
      for (let bit = 0; bit < 12; bit++) if ((this.deferredLines >>> bit) & 1) this.hart.setInterruptLine(bit, true);
      this.deferredLines = 0;
      this.wakeups++;
    }
  }
}
