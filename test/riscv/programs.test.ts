/**
 * Runs every assembled test program in test/riscv/elf (built by test/riscv/build.sh from
 * test/riscv/asm) and expects it to report pass through tohost.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TestMachine } from './support/machine.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'elf');
const programs = readdirSync(dir).filter((f) => f.endsWith('.elf')).sort();

describe('RISC-V test programs', () => {
  it('finds the committed programs', () => {
    expect(programs.length).toBeGreaterThan(0);
  });
  for (const engine of ['interp', 'wasm'] as const) for (const file of programs) {
    it(`${file} (${engine})`, () => {
      const m = new TestMachine(engine);
      const r = m.runElf(join(dir, file));
      const detail = r.status === 'fail' ? `test ${r.testNumber & 0x3ff}${r.testNumber & 0x400 ? ' (unexpected trap)' : ''}` : '';
      expect(`${r.status} ${detail}`.trim()).toBe('pass');
    });
  }
});
