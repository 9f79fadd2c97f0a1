/**
 * bench/browser.ts — storvm in headless chromium beside storvm in Node, in one run.
 *
 * Two figures, each the median of N rounds (default 5), browser and Node rounds alternating:
 *   1. boot: from page load (navigation start) to the first shell prompt of the demo page, which
 *      includes fetching the images, starting the worker and booting with kernel messages on;
 *      beside Node: from building the same machine (same images, 256 MiB, same bootargs) to the
 *      same prompt. The demo's own startVm → prompt time is reported too.
 *   2. cpu: bench/cpu.ts's workload (cpu.elf, ~1 G instructions) in a dedicated worker, beside the
 *      same in this Node process. MIPS and the browser/Node ratio.
 *
 *   npx tsx bench/browser.ts [--runs N]      (needs chromium; see test/browser/harness.ts)
 */
import { readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hart } from '../src/riscv/hart.js';
import { loadTestProgram } from '../src/riscv/htif.js';
import { launch } from '../src/node/launch.js';
import { parseMachineArgs } from '../src/node/options.js';
import { buildDemo, chromiumMissing, launchChromium, serve } from '../test/browser/harness.js';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(process.argv[runsArg + 1]) : 5;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const root = new URL('../', import.meta.url).pathname;

const missing = chromiumMissing();
if (missing) {
  console.error(missing);
  process.exit(2);
}

async function nodeBoot(): Promise<number> {
  const t0 = performance.now();
  let out = '';
  let at = 0;
  const { machine, close } = await launch(parseMachineArgs(['--verbose', '--mem', '256'], false), (b) => {
    out += Buffer.from(b).toString('latin1');
    if (at === 0 && out.includes('~ # ')) {
      at = performance.now() - t0;
      machine.stop();
    }
  });
  await machine.run();
  await close();
  if (at === 0) throw new Error('node: no prompt');
  return at;
}

function nodeCpu(): { seconds: number; instructions: number } {
  const image = new Uint8Array(readFileSync(join(root, 'bench/cpu-guest/cpu.elf')));
  const ram = { base: 0x8000_0000, bytes: new Uint8Array(8 << 20) };
  const hart = new Hart({ ram });
  const { htif } = loadTestProgram(hart, ram, image);
  const t0 = performance.now();
  const r = htif.run(hart, 5_000_000_000, 1_000_000);
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 'pass') throw new Error(`cpu.elf did not pass: ${r.status}`);
  return { seconds, instructions: hart.instret };
}

/** Runs in the page: starts a worker that times 300 of each kind of yield; resolves to the medians. */
const YIELD_PROBE = `new Promise((done) => {
  const code = \`
    const ch = new MessageChannel(); let res; ch.port1.onmessage = () => res();
    const med = (v) => v.sort((a, b) => a - b)[v.length >> 1];
    (async () => {
      const hop = [], tmo = [];
      for (let i = 0; i < 300; i++) { const t = performance.now(); await new Promise((r) => { res = r; ch.port2.postMessage(0); }); hop.push(performance.now() - t); }
      for (let i = 0; i < 300; i++) { const t = performance.now(); await new Promise((r) => setTimeout(r, 0)); tmo.push(performance.now() - t); }
      postMessage({ hopMs: med(hop), timeoutMs: med(tmo) });
    })();\`;
  const w = new Worker(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })));
  w.onmessage = (e) => { done(e.data); w.terminate(); };
})`;

async function main(): Promise<void> {
  const { build } = await import('vite');
  const web = await buildDemo();
  const cpuDir = mkdtempSync(join(tmpdir(), 'storvm-cpu-page-'));
  await build({ configFile: join(root, 'bench/browser-cpu/vite.config.ts'), build: { outDir: cpuDir } });
  const demo = await serve(web);
  const cpuPage = await serve(cpuDir);
  const browser = await launchChromium();
  const version = browser.version();
  let yieldCost = { hopMs: NaN, timeoutMs: NaN };
  const b = { load: [] as number[], start: [] as number[], mips: [] as number[] };
  const n = { boot: [] as number[], mips: [] as number[] };
  try {
    for (let i = 0; i < RUNS; i++) {
      const page = await browser.newPage();
      await page.goto(demo.url + '/');
      await page.waitForFunction(() => (globalThis as any).storvmDemo?.state.booted === true, null, { timeout: 120_000, polling: 20 });
      const s = await page.evaluate(() => (globalThis as any).storvmDemo.state as { promptAt: number; bootMs: number });
      await page.close();
      b.load.push(s.promptAt);
      b.start.push(s.bootMs);
      n.boot.push(await nodeBoot());
      process.stderr.write(`round ${i + 1}/${RUNS}: boot browser ${s.promptAt.toFixed(0)} ms (startVm ${s.bootMs.toFixed(0)}), node ${n.boot.at(-1)!.toFixed(0)} ms\n`);
    }
    for (let i = 0; i < RUNS; i++) {
      const page = await browser.newPage();
      await page.goto(`${cpuPage.url}/?runs=1`);
      const h = await page.waitForFunction(() => (globalThis as any).cpuResult, null, { timeout: 300_000, polling: 100 });
      const r = (await h.jsonValue()) as { runs?: Array<{ seconds: number; instructions: number }>; error?: string };
      await page.close();
      if (!r.runs) throw new Error(`browser cpu: ${r.error}`);
      const br = r.runs[0]!;
      b.mips.push(br.instructions / br.seconds / 1e6);
      const nr = nodeCpu();
      n.mips.push(nr.instructions / nr.seconds / 1e6);
      process.stderr.write(`round ${i + 1}/${RUNS}: cpu browser ${b.mips.at(-1)!.toFixed(1)} MIPS, node ${n.mips.at(-1)!.toFixed(1)} MIPS\n`);
    }
    // What one yield costs in a worker: the MessageChannel hop browserHost uses, and setTimeout(0).
    const page = await browser.newPage();
    await page.goto(demo.url + '/');
    yieldCost = await page.evaluate(YIELD_PROBE);
    await page.close();
  } finally {
    await browser.close();
    await demo.close();
    await cpuPage.close();
    rmSync(web, { recursive: true, force: true });
    rmSync(cpuDir, { recursive: true, force: true });
  }
  const f = (x: number) => x.toFixed(0);
  console.log(`chromium ${version}, node ${process.version}, ${RUNS} rounds, medians`);
  console.log(`boot to prompt: browser ${f(median(b.load))} ms from page load (${f(median(b.start))} ms from startVm), node ${f(median(n.boot))} ms; browser/node ${(median(b.load) / median(n.boot)).toFixed(2)}x`);
  console.log(`yield in a worker: MessageChannel ${yieldCost.hopMs.toFixed(3)} ms, setTimeout(0) ${yieldCost.timeoutMs.toFixed(3)} ms (median of 300)`);
  console.log(`cpu workload:   browser ${median(b.mips).toFixed(1)} MIPS, node ${median(n.mips).toFixed(1)} MIPS; browser/node time ${(median(n.mips) / median(b.mips)).toFixed(2)}x`);
}

await main();
