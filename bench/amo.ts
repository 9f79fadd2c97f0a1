/**
 * A loop of AMOs (the kernel's atomic_add, set_bit, clear_bit and xchg are AMOADD, AMOOR,
 * AMOAND and AMOSWAP) on each engine, in MIPS: how much the translator's inline AMOs
 * (src/riscv/jit.ts, INLINE_AMO) give against the interpreter. Six AMOs (.W and .D, on RAM)
 * and two ADDIs per pass; the engines alternate, median of N rounds of 20 M instructions.
 *
 *   npx tsx bench/amo.ts [--runs N] [--tree DIR]
 *
 * --tree runs the same loop on another checkout's src/ (to compare a tree before a change).
 */
import { ADDI, J, R } from '../test/riscv/support/rvasm.js';
import { median } from './stats.js';

const argv = process.argv.slice(2);
const at = (flag: string) => { const i = argv.indexOf(flag); return i >= 0 ? argv[i + 1] : undefined; };
const RUNS = Number(at('--runs') ?? 5);
const tree = new URL(at('--tree') !== undefined ? `file://${at('--tree')!.replace(/\/?$/, '/')}` : '../', import.meta.url);
const { Hart } = await import(new URL('src/riscv/hart.ts', tree).href);
const { createWasmRam } = await import(new URL('src/riscv/jit.ts', tree).href);

const BASE = 0x8000_0000;
const AMO = (f5: number, rd: number, rs1: number, rs2: number, d: boolean) => R(f5 << 2, rs2, rs1, d ? 3 : 2, rd, 0x2f);
const body = [AMO(0x00, 10, 6, 5, false), AMO(0x08, 11, 6, 5, true), AMO(0x0c, 12, 6, 5, false), AMO(0x01, 13, 6, 5, true), AMO(0x04, 14, 6, 5, false), AMO(0x00, 15, 6, 5, true), ADDI(5, 5, 1), ADDI(7, 7, 1)];

function hart(engine: 'interp' | 'wasm') {
  const ram = engine === 'wasm' ? createWasmRam(BASE, 1 << 20) : { base: BASE, bytes: new Uint8Array(1 << 20) };
  const h = new Hart({ ram, engine });
  const dv = new DataView(ram.bytes.buffer, ram.bytes.byteOffset);
  [...body, J(-4 * body.length, 0)].forEach((w, i) => dv.setUint32(4 * i, w, true));
  h.xl[6] = (BASE + 0x8000) | 0;
  h.setPc(BASE);
  for (let i = 0; i < 20; i++) h.run(100_000); // gets hot, compiles
  return h;
}

const harts = { interp: hart('interp'), wasm: hart('wasm') };
const mips: Record<'interp' | 'wasm', number[]> = { interp: [], wasm: [] };
for (let r = 0; r < RUNS; r++) {
  for (const e of ['interp', 'wasm'] as const) {
    const h = harts[e];
    const t0 = performance.now();
    let n = 0;
    for (let i = 0; i < 200; i++) n += h.run(100_000);
    mips[e].push(n / (performance.now() - t0) / 1000);
  }
}
const i = median(mips.interp), w = median(mips.wasm);
console.log(`AMO loop (${at('--tree') ?? 'this tree'}), median of ${RUNS}: interp ${i.toFixed(0)} MIPS, wasm ${w.toFixed(0)} MIPS, wasm / interp ${(w / i).toFixed(2)}x`);
