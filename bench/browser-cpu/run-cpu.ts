// bench/cpu.ts's workload once: cpu.elf on a fresh hart, timed. Shared by the browser worker and
// the cold Node process that bench/browser.ts compares it with.
import { Hart } from '../../src/riscv/hart.js';
import { loadTestProgram } from '../../src/riscv/htif.js';

export function runCpuElf(image: Uint8Array): { seconds: number; instructions: number } {
  const ram = { base: 0x8000_0000, bytes: new Uint8Array(8 << 20) };
  const hart = new Hart({ ram });
  const { htif } = loadTestProgram(hart, ram, image);
  const t0 = performance.now();
  const r = htif.run(hart, 5_000_000_000, 1_000_000);
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 'pass') throw new Error(`cpu.elf did not pass: ${r.status}`);
  return { seconds, instructions: hart.instret };
}
