/**
 * bench/browser.ts — storvm in headless chromium beside storvm in Node, in one run.
 *
 * Two figures, each the median of N rounds (default 5), browser and Node rounds alternating:
 *   1. boot: from page load (navigation start) to the first shell prompt of the demo page, which
 *      includes fetching the images, starting the worker and booting with kernel messages on;
 *      beside Node: `storvm boot --verbose` (built CLI, same images, 256 MiB, same bootargs) from
 *      spawn to the same prompt. Both cold. The demo's own startVm → prompt time is shown too.
 *   2. cpu: bench/cpu.ts's workload (cpu.elf) in a dedicated worker of a fresh page, beside the
 *      same in a fresh Node process. MIPS and the browser/Node time ratio.
 *   3. the cost of one yield in a worker: a MessageChannel round trip and a setTimeout(0).
 *
 *   npx tsx bench/browser.ts [--runs N]      (needs chromium; see test/browser/harness.ts)
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/**
 * A cold Node boot, as a user starts one: `node bin/storvm.mjs boot --verbose` (the built CLI in
 * dist/) in a fresh process, from spawn to the first prompt. The browser side is cold too: a fresh
 * page and worker. (Boots repeated inside one Node process get faster as its JIT warms up; that
 * is not what either user sees.)
 */
function nodeBoot(): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['bin/storvm.mjs', 'boot', '--no-boot-cache', '--verbose', '--mem', '256'], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node: no prompt within 120 s: ${out.slice(-300)}`));
    }, 120_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
      if (out.includes('~ # ')) {
        const ms = performance.now() - t0;
        clearTimeout(timer);
        child.kill('SIGKILL');
        child.on('exit', () => resolve(ms));
      }
    });
    child.on('error', reject);
  });
}

/** bench/cpu.ts's workload, cold, in a fresh Node process. */
function nodeCpu(): { seconds: number; instructions: number } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/browser-cpu/node-once.ts'], { cwd: root, encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`node cpu run failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number; instructions: number };
}

/** Runs in the page: starts a worker that times 300 of each kind of yield; resolves to the medians. */
const YIELD_PROBE = `new Promise((done) => {
  const code = \`
    const ch = new MessageChannel(); let res; ch.port1.onmessage = () => res();
    (async () => {
      // Means over 300, since the page's clock is coarsened to 0.1 ms.
      let t = performance.now();
      for (let i = 0; i < 300; i++) await new Promise((r) => { res = r; ch.port2.postMessage(0); });
      const hopMs = (performance.now() - t) / 300;
      t = performance.now();
      for (let i = 0; i < 300; i++) await new Promise((r) => setTimeout(r, 0));
      postMessage({ hopMs, timeoutMs: (performance.now() - t) / 300 });
    })();\`;
  const w = new Worker(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })));
  w.onmessage = (e) => { done(e.data); w.terminate(); };
})`;

async function main(): Promise<void> {
  const { build } = await import('vite');
  // The Node side runs the built CLI, as the browser runs a production build.
  const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { cwd: root, encoding: 'utf8' });
  if (tsc.status !== 0) throw new Error(`build failed: ${tsc.stdout}${tsc.stderr}`);
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
  console.log(`yield in a worker: MessageChannel ${yieldCost.hopMs.toFixed(3)} ms, setTimeout(0) ${yieldCost.timeoutMs.toFixed(3)} ms (mean of 300)`);
  console.log(`cpu workload:   browser ${median(b.mips).toFixed(1)} MIPS, node ${median(n.mips).toFixed(1)} MIPS; browser/node time ${(median(n.mips) / median(b.mips)).toFixed(2)}x`);
}

await main();
