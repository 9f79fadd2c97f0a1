/**
 * Run by hidden-class.test.ts as `node --allow-natives-syntax --import tsx`: whether a guest's
 * own instructions change the hidden class (V8 map) of every hart. Prints one JSON line:
 * { scenario: sameMap } for each program, run on a fresh hart beside one that runs nothing.
 */
import { Hart } from '../../../src/riscv/hart.js';
import { createWasmRam } from '../../../src/riscv/jit.js';
import { ADDI, CSRRW, I, put, R } from './rvasm.js';

const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
const BASE = 0x8000_0000;
const LUI = (rd: number, imm20: number) => (((imm20 & 0xfffff) << 12) | (rd << 7) | 0x37) >>> 0;
const SLLI = (rd: number, rs1: number, sh: number) => I(sh, rs1, 1, rd, 0x13);
const SRLI = (rd: number, rs1: number, sh: number) => I(sh, rs1, 5, rd, 0x13);
const OR = (rd: number, rs1: number, rs2: number) => R(0, rs2, rs1, 6, rd, 0x33);
/** x1 = 0x8001_0000, zero-extended */
const X1 = [LUI(1, 0x80010), SLLI(1, 1, 32), SRLI(1, 1, 32)];

const programs: Record<string, number[]> = {
  // x1 = a RAM address beyond the first page (its first access misses the TLB): lr.w, sc.w, lr.d
  'lr/sc': [...X1, R(0x08, 0, 1, 2, 2, 0x2f), R(0x0c, 2, 1, 2, 3, 0x2f), R(0x08, 0, 1, 3, 2, 0x2f)],
  // satp = Sv39 with a root PPN of more than 32 bits, then Bare
  'satp': [...X1, ADDI(2, 0, 1), SLLI(2, 2, 63), OR(2, 2, 1), ADDI(3, 0, 1), SLLI(3, 3, 32), OR(2, 2, 3),
    CSRRW(0, 0x180, 2), CSRRW(0, 0x180, 0)],
};

const out: Record<string, boolean> = {};
for (const engine of ['interp', 'wasm'] as const) {
  for (const [name, words] of Object.entries(programs)) {
    const make = () => {
      const ram = engine === 'wasm' ? createWasmRam(BASE, 1 << 20) : { base: BASE, bytes: new Uint8Array(1 << 20) };
      const h = new Hart({ ram, engine });
      put(ram.bytes, 0, [...words, 0x10500073]); // ..., wfi
      h.setPc(BASE);
      return h;
    };
    const idle = make(), used = make();
    for (let i = 0; i < 10 && !used.waiting; i++) used.run(100);
    out[`${engine} ${name}`] = used.waiting && sameMap(idle, used);
  }
}
process.stdout.write(JSON.stringify(out) + '\n');
