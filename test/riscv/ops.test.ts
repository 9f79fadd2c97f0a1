/**
 * The interpreter switches on literal op numbers (`case 31: // ADD`) for speed; this checks each
 * literal against the Op table so the two cannot drift apart, and spot-checks the decoder.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Op } from '../../src/riscv/ops.js';
import { decode16, decode32, expandC } from '../../src/riscv/decode.js';

const here = dirname(fileURLToPath(import.meta.url));
// the interpreter's loop and the CSR, A and F/D instructions both engines share
const src = ['hart.ts', 'csr-amo-fp.ts'].map((f) => readFileSync(join(here, '../../src/riscv', f), 'utf8')).join('\n');

describe('op numbering', () => {
  it('every case literal in hart.ts and csr-amo-fp.ts names the op with that number', () => {
    const cases = [...src.matchAll(/case (\d+):(?: case \d+:)* (?:\{ )?\/\/ ([A-Z_ ]+)/g)];
    expect(cases.length).toBeGreaterThan(70);
    for (const m of cases) {
      const nums = [...m[0].matchAll(/case (\d+):/g)].map((c) => Number(c[1]));
      const names = m[2]!.trim().split(/\s+/);
      expect(nums.map((n) => names[nums.indexOf(n)])).toEqual(nums.map((n) => Object.entries(Op).find(([, v]) => v === n)?.[0]));
    }
  });
});

describe('decoder', () => {
  it('decodes ADDI, JAL and branch immediates', () => {
    expect(decode32(0xfff00513)).toEqual({ w: Op.ADDI | (10 << 8), imm: -1 }); // addi a0, zero, -1
    expect(decode32(0x0080006f).imm).toBe(8); // j .+8
    expect(decode32(0xfe000ee3).imm).toBe(-4); // beq zero, zero, .-4
  });
  it('marks reserved compressed encodings illegal', () => {
    expect(expandC(0x0000)).toBe(0); // all-zero parcel
    expect(expandC(0x6001)).toBe(0); // c.lui with nzimm = 0 is reserved
    expect(decode16(0x0000).w & 0xff).toBe(Op.ILLEGAL);
  });
  it('treats unknown major opcodes as illegal with the bits as imm', () => {
    const d = decode32(0xffffffff);
    expect(d.w & 0xff).toBe(Op.ILLEGAL);
    expect(d.imm).toBe(-1);
  });
});
