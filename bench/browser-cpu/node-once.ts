// One cold run of bench/cpu.ts's workload in a fresh Node process, for bench/browser.ts: prints
// {"seconds":…,"instructions":…}. Run: node --import tsx bench/browser-cpu/node-once.ts
import { readFileSync } from 'node:fs';
import { Hart } from '../../src/riscv/hart.js';
import { loadTestProgram } from '../../src/riscv/htif.js';

const image = new Uint8Array(readFileSync(new URL('../cpu-guest/cpu.elf', import.meta.url)));
const ram = { base: 0x8000_0000, bytes: new Uint8Array(8 << 20) };
const hart = new Hart({ ram });
const { htif } = loadTestProgram(hart, ram, image);
const t0 = performance.now();
const r = htif.run(hart, 5_000_000_000, 1_000_000);
const seconds = (performance.now() - t0) / 1000;
if (r.status !== 'pass') throw new Error(`cpu.elf did not pass: ${r.status}`);
console.log(JSON.stringify({ seconds, instructions: hart.instret }));
