// One cold run of bench/cpu.ts's workload in a fresh Node process, for bench/browser.ts: prints
// {"seconds":…,"instructions":…}. Run: node --import tsx bench/browser-cpu/node-once.ts
import { readFileSync } from 'node:fs';
import { runCpuElf } from './run-cpu.js';

console.log(JSON.stringify(runCpuElf(new Uint8Array(readFileSync(new URL('../cpu-guest/cpu.elf', import.meta.url))))));
