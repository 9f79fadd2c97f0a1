/**
 * CPU benchmark: runs the committed guest bench/cpu-guest/cpu.elf (integer ALU, loads and
 * stores, branches and calls; S-mode with Sv39 paging on) and reports guest MIPS (retired
 * instructions per second of wall time), median of 5 runs, for both CPU engines (the
 * interpreter and the WebAssembly translator), alternating, so both see the same machine load. When qemu-riscv64 and the cross
 * compiler are installed, the same workload is run under qemu-riscv64 (user mode) in the same
 * session and the run-time ratio storvm / qemu is reported.
 *
 * Run: npx tsx bench/cpu.ts
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hart, type CpuEngine } from '../src/riscv/hart.js';
import { loadTestProgram } from '../src/riscv/htif.js';
import { createWasmRam } from '../src/riscv/jit.js';
import { tuneV8ForTranslator } from '../src/node/v8-tuning.js';

tuneV8ForTranslator(); // as `storvm --cpu wasm` runs

const dir = join(dirname(fileURLToPath(import.meta.url)), 'cpu-guest');
const image = new Uint8Array(readFileSync(join(dir, 'cpu.elf')));
const RUNS = 5;

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;

function runOnce(engine: CpuEngine): { seconds: number; instructions: number } {
  const ram = engine === 'wasm' ? createWasmRam(0x8000_0000, 8 << 20) : { base: 0x8000_0000, bytes: new Uint8Array(8 << 20) };
  const hart = new Hart({ ram, engine });
  const { htif } = loadTestProgram(hart, ram, image);
  const t0 = performance.now();
  const r = htif.run(hart, 5_000_000_000, 1_000_000);
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 'pass') throw new Error(`guest did not pass: ${r.status} ${r.tohost}`);
  return { seconds, instructions: hart.instret };
}

const engines: CpuEngine[] = ['interp', 'wasm'];
const runs = new Map<CpuEngine, { seconds: number; instructions: number }[]>(engines.map((e) => [e, []]));
for (let i = 0; i < RUNS; i++) for (const e of engines) runs.get(e)!.push(runOnce(e));
const secsOf = new Map<CpuEngine, number>();
for (const e of engines) {
  const rs = runs.get(e)!;
  const mips = rs.map((r) => r.instructions / r.seconds / 1e6);
  const secs = median(rs.map((r) => r.seconds));
  secsOf.set(e, secs);
  console.log(`storvm --cpu ${e}: ${(rs[0]!.instructions / 1e6).toFixed(1)} M instructions, median ${secs.toFixed(3)} s, ` +
    `median ${median(mips).toFixed(1)} MIPS (runs: ${mips.map((m) => m.toFixed(1)).join(', ')})`);
}
console.log(`wasm / interp speed: ${(secsOf.get('interp')! / secsOf.get('wasm')!).toFixed(2)}x`);
const secs = secsOf.get('wasm')!;

function qemu(): void {
  const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
  if (!has('qemu-riscv64') || !has('riscv64-linux-gnu-gcc')) {
    console.log('qemu-riscv64 comparison skipped: qemu-riscv64 or riscv64-linux-gnu-gcc not installed');
    return;
  }
  const user = join(dir, 'cpu-user');
  if (!existsSync(user)) execFileSync(join(dir, 'build.sh'), { stdio: 'ignore' });
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    execFileSync('qemu-riscv64', [user]);
    times.push((performance.now() - t0) / 1000);
  }
  const q = median(times);
  console.log(`qemu-riscv64 (user mode, same workload): median ${q.toFixed(3)} s; storvm/qemu run-time ratio: ` +
    `wasm ${(secs / q).toFixed(1)}x, interp ${(secsOf.get('interp')! / q).toFixed(1)}x`);
}
qemu();
