/**
 * Differential test against QEMU: seeded random sequences of user-level RV64IMC instructions
 * (ALU, shifts, multiply/divide, loads and stores including misaligned ones, forward branches)
 * are assembled into one static program, run under qemu-riscv64 (user mode) and under storvm,
 * and the final registers and scratch memory are compared. Skipped, with the reason, when the
 * cross compiler or qemu-riscv64 is not installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Hart } from '../../src/riscv/hart.js';
import { loadElf } from '../../src/riscv/elf.js';
import { createWasmRam } from '../../src/riscv/jit.js';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const missing = ['riscv64-linux-gnu-gcc', 'qemu-riscv64'].filter((c) => !has(c));
const reason = missing.length ? `differential test skipped: ${missing.join(' and ')} not installed` : '';
if (reason) console.log(reason);

const LINK = join(dirname(fileURLToPath(import.meta.url)), 'asm', 'link.ld');
const SEEDS = [1, 2, 3, 4, 5, 6];
const LENGTH = 300;

/** xorshift64* as a deterministic generator */
function rng(seed: number) {
  let s = BigInt(seed) * 0x9e3779b97f4a7c15n + 1n;
  return {
    u64(): bigint { s ^= s >> 12n; s ^= (s << 25n) & 0xffffffffffffffffn; s ^= s >> 27n; return (s * 0x2545f4914f6cdd1dn) & 0xffffffffffffffffn; },
    int(n: number): number { return Number(this.u64() % BigInt(n)); },
  };
}

// x8 (s0) holds the scratch buffer's address; x2 (sp) is left alone.
const REGS = Array.from({ length: 32 }, (_, i) => i).filter((i) => i !== 0 && i !== 2 && i !== 8);
const R3 = ['add', 'sub', 'sll', 'slt', 'sltu', 'xor', 'srl', 'sra', 'or', 'and', 'addw', 'subw', 'sllw', 'srlw', 'sraw',
  'mul', 'mulh', 'mulhsu', 'mulhu', 'div', 'divu', 'rem', 'remu', 'mulw', 'divw', 'divuw', 'remw', 'remuw'];
const IMM = ['addi', 'slti', 'sltiu', 'xori', 'ori', 'andi', 'addiw'];
const SH = ['slli', 'srli', 'srai'], SHW = ['slliw', 'srliw', 'sraiw'];
const LD = ['lb', 'lh', 'lw', 'ld', 'lbu', 'lhu', 'lwu'], ST = ['sb', 'sh', 'sw', 'sd'];
const BR = ['beq', 'bne', 'blt', 'bge', 'bltu', 'bgeu'];

function program(seed: number): string {
  const r = rng(seed);
  const reg = () => `x${REGS[r.int(REGS.length)]}`;
  const lines: string[] = ['.globl _start', '.text', '_start:', 'la s0, scratch'];
  for (const i of REGS) {
    // Mix of small, boundary and random values.
    const k = r.int(4);
    const v = k === 0 ? BigInt(r.int(64)) - 32n : k === 1 ? [0x7fffffffn, 0x80000000n, -1n, 1n << 63n][r.int(4)]! : BigInt.asIntN(64, r.u64());
    lines.push(`li x${i}, ${v}`);
  }
  const one = (): string => {
    const k = r.int(10);
    if (k < 4) return `${R3[r.int(R3.length)]} ${reg()}, ${reg()}, ${reg()}`;
    if (k < 6) return `${IMM[r.int(IMM.length)]} ${reg()}, ${reg()}, ${r.int(4096) - 2048}`;
    if (k < 7) return r.int(2) ? `${SH[r.int(3)]} ${reg()}, ${reg()}, ${r.int(64)}` : `${SHW[r.int(3)]} ${reg()}, ${reg()}, ${r.int(32)}`;
    if (k < 8) return `${LD[r.int(LD.length)]} ${reg()}, ${r.int(2040)}(s0)`;
    if (k < 9) return `${ST[r.int(ST.length)]} ${reg()}, ${r.int(2040)}(s0)`;
    return r.int(2) ? `lui ${reg()}, ${r.int(1 << 20)}` : `sext.w ${reg()}, ${reg()}`;
  };
  for (let n = 0; n < LENGTH; n++) {
    if (r.int(8) === 0) lines.push(`${BR[r.int(BR.length)]} ${reg()}, ${reg()}, 1f`, one(), '1:');
    else lines.push(one());
  }
  lines.push('la s0, regs');
  for (let i = 1; i < 32; i++) if (i !== 8 && i !== 2) lines.push(`sd x${i}, ${8 * i}(s0)`);
  // write(1, regs, 256 + 2048) then exit(0): only meaningful under qemu; storvm stops at `done`.
  lines.push('.globl done', 'done:', 'li a0, 1', 'la a1, regs', 'li a2, 2304', 'li a7, 64', 'ecall', 'li a0, 0', 'li a7, 93', 'ecall');
  lines.push('.data', '.align 12', '.globl regs', 'regs: .skip 256', 'scratch:');
  for (let i = 0; i < 256; i++) lines.push(`.dword ${BigInt.asIntN(64, r.u64())}`);
  return lines.join('\n') + '\n';
}

describe('differential test against qemu-riscv64', () => {
  it.skipIf(missing.length > 0)(`random RV64IMC sequences agree on both engines (seeds ${SEEDS.join(', ')})`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-diff-'));
    try {
      for (const seed of SEEDS) {
        const src = join(dir, `s${seed}.S`), elf = join(dir, `s${seed}.elf`);
        writeFileSync(src, program(seed));
        execFileSync('riscv64-linux-gnu-gcc', ['-nostdlib', '-nostartfiles', '-static', '-march=rv64gc', '-mabi=lp64d',
          '-Wl,--no-relax', '-Wl,--no-warn-rwx-segments', '-T', LINK, '-o', elf, src]);
        const expected = new Uint8Array(execFileSync('qemu-riscv64', [elf]));
        expect(expected.length).toBe(2304);

        const view = (b: Uint8Array) => Array.from({ length: 288 }, (_, i) =>
          new DataView(b.buffer, b.byteOffset).getBigUint64(i * 8, true).toString(16));
        // The interpreter steps to `done`; the translator (everything translated at once) then
        // runs exactly as many instructions in a few slices and must stop at the same place.
        let steps = 0;
        for (const engine of ['interp', 'wasm'] as const) {
          const ram = engine === 'wasm' ? createWasmRam(0x8000_0000, 1 << 20) : { base: 0x8000_0000, bytes: new Uint8Array(1 << 20) };
          const hart = new Hart({ ram, engine, hotThreshold: 1, batch: 1 });
          const loaded = loadElf(new Uint8Array(readFileSync(elf)), ram);
          hart.setPc(loaded.entry);
          const done = loaded.symbols.get('done')!, regs = loaded.symbols.get('regs')!;
          if (engine === 'interp') for (; steps < 10 * LENGTH && (hart.pcLo >>> 0) !== done; steps++) hart.run(1);
          else for (let left = steps; left > 0;) left -= hart.run(Math.min(left, 1 + ((left * 7) % 97)));
          expect((hart.pcLo >>> 0).toString(16)).toBe(done.toString(16));
          expect(hart.instret).toBe(steps);
          const got = ram.bytes.subarray(regs - ram.base, regs - ram.base + 2304);
          expect({ seed, engine, words: view(got) }).toEqual({ seed, engine, words: view(expected) });
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
