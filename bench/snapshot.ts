/**
 * bench/snapshot.ts — snapshots of the booted default guest (issue 15's targets: < 10 MB, restore
 * to a usable prompt ≤ 0.3 s, ≥ 5× faster than booting).
 *
 * In one run, RUNS rounds (default 5), medians:
 *   1. in process: boot to the prompt, `machine.save()` (time, size, with Node's zlib and with
 *      fflate), `Machine.restore()` (time, both codecs), and from the start of the restore to the
 *      answer of a typed command;
 *   2. as a user runs it: `storvm boot --restore FILE` from process start to the answer of a typed
 *      command, beside a cold `storvm boot` to the answer of the same command, alternating.
 *
 *   npx tsx bench/snapshot.ts [--runs N] [--mem MiB]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine } from '../src/machine/machine.js';
import { nodeCodec, nodeHost } from '../src/node/host.js';
import { launch } from '../src/node/launch.js';
import { parseMachineArgs } from '../src/node/options.js';

const root = new URL('../', import.meta.url).pathname;
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg('--runs', 5);
const MEM = arg('--mem', 256);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(0)} ms`;
const COMMAND = 'echo ready-$((20+22))\n';
const ANSWER = 'ready-42';

async function waitFor(get: () => string, s: string, limitMs = 180_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!get().includes(s)) {
    if (Date.now() > end) throw new Error(`no ${JSON.stringify(s)} within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** In process: boot, save, restore, answer. */
async function inProcess() {
  let out = '';
  const args = parseMachineArgs(['--no-boot-cache', '--mem', String(MEM)], false);
  const t0 = performance.now();
  const a = await launch(args, (b) => void (out += Buffer.from(b).toString()));
  const running = a.machine.run();
  await waitFor(() => out, '~ # ');
  const boot = performance.now() - t0;
  let t = performance.now();
  const snap = await a.machine.save({ codec: nodeCodec });
  const saveZlib = performance.now() - t;
  t = performance.now();
  const snapFflate = await a.machine.save();
  const saveFflate = performance.now() - t;
  a.machine.stop();
  await running;
  await a.close();
  t = performance.now();
  await Machine.restore(snapFflate, { host: nodeHost });
  const restoreFflate = performance.now() - t;
  let out2 = '';
  t = performance.now();
  const m = await Machine.restore(snap, { host: nodeHost, codec: nodeCodec, onConsole: (b) => void (out2 += Buffer.from(b).toString()) });
  const restoreZlib = performance.now() - t;
  const r = m.run();
  m.input(new TextEncoder().encode(COMMAND));
  await waitFor(() => out2, ANSWER);
  const toAnswer = performance.now() - t;
  m.stop();
  await r;
  return { boot, saveZlib, saveFflate, restoreZlib, restoreFflate, toAnswer, bytes: snap.length, bytesFflate: snapFflate.length, snap };
}

/** A storvm process, from its start to the answer of COMMAND typed once it is ready. */
function processToAnswer(argv: string[], typeAtOnce: boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['bin/storvm.mjs', ...argv], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let typed = false;
    const type = () => {
      if (typed) return;
      typed = true;
      child.stdin.write(COMMAND);
    };
    if (typeAtOnce) type(); // a restored guest is at its prompt already: input waits in the UART
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no answer within 180 s: ${out.slice(-300)}`));
    }, 180_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('~ # ')) type();
      if (out.includes(ANSWER)) {
        const s = performance.now() - t0;
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolve(s);
      }
    });
    child.on('error', reject);
  });
}

const rows: Array<Awaited<ReturnType<typeof inProcess>>> = [];
const cold: number[] = [];
const warm: number[] = [];
const dir = mkdtempSync(join(tmpdir(), 'storvm-bench-snap-'));
const file = join(dir, 'booted.snap');
for (let i = 0; i < RUNS; i++) {
  const r = await inProcess();
  rows.push(r);
  if (i === 0) writeFileSync(file, r.snap);
  cold.push(await processToAnswer(['boot', '--no-boot-cache', '--mem', String(MEM)], false));
  warm.push(await processToAnswer(['boot', '--restore', file], true));
  process.stderr.write(`round ${i + 1}/${RUNS}: cold ${ms(cold[i]!)}, restored ${ms(warm[i]!)}\n`);
}
const med = (k: keyof (typeof rows)[0]) => median(rows.map((r) => r[k] as number));
console.log(`snapshot of the booted default guest (${MEM} MiB RAM), ${RUNS} rounds, medians, ${new Date().toISOString().slice(0, 10)}`);
console.log(`  size: ${(med('bytes') / 1e6).toFixed(2)} MB (zlib level 1), ${(med('bytesFflate') / 1e6).toFixed(2)} MB (fflate level 1)   target < 10 MB`);
console.log(`  in process: boot to prompt ${ms(med('boot'))}; save ${ms(med('saveZlib'))} (zlib) / ${ms(med('saveFflate'))} (fflate);` +
  ` restore ${ms(med('restoreZlib'))} (zlib) / ${ms(med('restoreFflate'))} (fflate); restore to answer ${ms(med('toAnswer'))}`);
const c = median(cold), w = median(warm);
console.log(`  process start to the answer of a typed command: cold boot ${ms(c)}, boot --restore ${ms(w)}, ${(c / w).toFixed(1)}x faster   target ≥ 5x`);
console.log(`  restore to a usable prompt (in process) ${ms(med('toAnswer'))}   target ≤ 300 ms`);
