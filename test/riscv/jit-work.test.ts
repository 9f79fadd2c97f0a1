/**
 * A page is translated when the interpreter has run enough instructions in it (`hotWork`), not
 * only when one entry into it has been entered `hotThreshold` times: a long function called a
 * few hundred times is where the interpreter spends its time, though its one entry stays far
 * below the threshold (the Linux boot has one of 1,000 instructions called 4,105 times). A page
 * whose interpreted work is code the translator leaves to the interpreter anyway is compiled
 * again ever more rarely: the limit doubles each time.
 */
import { describe, expect, it } from 'vitest';
import { Hart, type CpuEngine } from '../../src/riscv/hart.js';
import { createWasmRam } from '../../src/riscv/jit.js';
import { ADDI, B, CSRRS, I, J, JALR } from './support/rvasm.js';
import { hartState } from './support/state.js';

const BASE = 0x8000_0000, WFI = 0x10500073;

/** A hart over 1 MiB of RAM with the translator options given, and a writer of words into RAM. */
function makeHart(engine: CpuEngine, opts: { hotWork?: number; hotThreshold?: number } = {}) {
  const ram = engine === 'wasm' ? createWasmRam(BASE, 1 << 20) : { base: BASE, bytes: new Uint8Array(1 << 20) };
  const h = new Hart({ ram, engine, batch: 1, ...opts });
  const dv = new DataView(ram.bytes.buffer, ram.bytes.byteOffset);
  const put = (at: number, ws: number[]) => ws.forEach((w, i) => dv.setUint32(at + 4 * i, w >>> 0, true));
  return { h, put };
}

/** Calls a 300-instruction function at 0x1000 100 times, each of them `body`; then WFI. */
function run(engine: CpuEngine, body: number, hotWork?: number, hotThreshold?: number) {
  const { h, put } = makeHart(engine, { ...(hotWork !== undefined ? { hotWork } : {}), ...(hotThreshold !== undefined ? { hotThreshold } : {}) });
  put(0, [ADDI(20, 20, 1), J(0x1000 - 4, 1), B(-8, 21, 20, 1), WFI]); // x20++; call; bne x20, x21
  put(0x1000, [...Array.from({ length: 300 }, () => body), JALR(0, 1, 0)]);
  h.xl[21] = 100;
  h.setPc(BASE);
  for (let i = 0; i < 100 && !h.waiting; i++) h.run(100_000);
  return { h, s: hartState(h), stats: h.jit?.stats };
}

/**
 * Calls the 300-ADDI function 200 times: at its start, except that from the 50th call on every
 * odd call enters at its 101st instruction (an entry the first translation does not have).
 */
function runTwoEntries(engine: CpuEngine) {
  const { h, put } = makeHart(engine, { hotWork: 3000 });
  const ANDI = (rd: number, rs: number, v: number) => I(v, rs, 7, rd, 0x13), SLTI = (rd: number, rs: number, v: number) => I(v, rs, 2, rd, 0x13);
  put(0, [ADDI(20, 20, 1), ANDI(23, 20, 1), SLTI(25, 20, 50),
    B(16, 0, 25, 1), B(12, 0, 23, 0), // x20 < 50 or even: to 0x1c
    J(0x1190 - 0x14, 1), J(8, 0), // call 0x1190, then on to 0x20
    J(0x1000 - 0x1c, 1), // call 0x1000
    B(-0x20, 21, 20, 1), WFI]);
  put(0x1000, [...Array.from({ length: 300 }, () => ADDI(5, 5, 1)), JALR(0, 1, 0)]);
  h.xl[21] = 200;
  h.setPc(BASE);
  for (let i = 0; i < 100 && !h.waiting; i++) h.run(100_000);
  return { h, s: hartState(h), stats: h.jit?.stats };
}

describe('a page hot by the work the interpreter does in it', () => {
  const ADD5 = ADDI(5, 5, 1);

  it('is translated though its entry was entered 100 times, against a threshold of 4,096', () => {
    const a = run('interp', ADD5), b = run('wasm', ADD5, 3000);
    expect(a.h.waiting).toBe(true);
    expect(a.h.xl[5]).toBe(30000);
    expect(b.s).toEqual(a.s);
    expect(b.stats!.compiled).toBeGreaterThanOrEqual(1);
    // about 10 calls (3,010 instructions) interpreted, the other 90 in wasm
    expect(b.stats!.retired).toBeGreaterThan(80 * 300);
  });

  it('is not translated below that work (the entry threshold alone would not)', () => {
    const b = run('wasm', ADD5, 1 << 20);
    expect(b.h.xl[5]).toBe(30000);
    expect(b.stats!.compiled).toBe(0);
  });

  it('is not compiled again when its translation has every entry seen (the interpreter runs that code anyway)', () => {
    // csrr x6, cycle: a counter read goes to the interpreter from translated code every time
    const CYCLE = CSRRS(6, 0xc00, 0);
    const a = run('interp', CYCLE), b = run('wasm', CYCLE, 1000);
    expect(b.s).toEqual(a.s);
    // 30,100 instructions interpreted in the page: translated at the first 1,000, then never again
    expect(b.stats!.compiled).toBe(1);
  });

  it('is compiled again when an entry its translation lacks has been seen', () => {
    // the function's second half is entered from the caller too (x22 odd: jump to 0x1000 + 400)
    const a = runTwoEntries('interp'), b = runTwoEntries('wasm');
    expect(b.s).toEqual(a.s);
    expect(b.stats!.compiled).toBe(2);
    expect(b.stats!.retired).toBeGreaterThan(150 * 200);
  });
});

describe('the work of a trip that a slice ends', () => {
  it('counts: a loop that never leaves its page, run in slices shorter than a round, gets translated', () => {
    // 250 ADDIs, x20++, bne x20, x21: 200 rounds, in slices of 97 (every trip ends with its slice)
    const go = (engine: CpuEngine) => {
      const { h, put } = makeHart(engine, { hotWork: 3000 });
      put(0, [...Array.from({ length: 250 }, () => ADDI(5, 5, 1)), ADDI(20, 20, 1), B(-251 * 4, 21, 20, 1), WFI]);
      h.xl[21] = 200;
      h.setPc(BASE);
      for (let i = 0; i < 2000 && !h.waiting; i++) h.run(97);
      return { s: hartState(h), stats: h.jit?.stats };
    };
    const a = go('interp'), b = go('wasm');
    expect(b.s).toEqual(a.s);
    expect(b.stats!.compiled).toBeGreaterThanOrEqual(1);
  });
});

describe('straight-line code longer than one block', () => {
  it('runs on in wasm past the cut at 200 instructions', () => {
    // translated at the 50th call; the other 50 run all 301 instructions in wasm, in two blocks
    // (without the cut's continuation as a block, 101 of each go back to the interpreter)
    const a = run('interp', ADDI(5, 5, 1)), b = run('wasm', ADDI(5, 5, 1), 1 << 20, 50);
    expect(b.s).toEqual(a.s);
    expect(b.stats!.retired).toBeGreaterThan(48 * 301);
  });
});
