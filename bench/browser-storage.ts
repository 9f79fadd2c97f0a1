/**
 * bench/browser-storage.ts — browser storage speed, in headless chromium, in one run:
 *   1. storvm's persistent OPFS disk (PersistentOverlayDisk over FileSystemSyncAccessHandles) beside
 *      a plain SyncAccessHandle doing the same I/O: sequential write (then FLUSH) and read in 1 MiB
 *      pieces, 4 KiB random writes (then FLUSH) and reads, in a worker; at the backend level (the
 *      calls VirtioBlk makes) and at the device level (requests through VirtioBlk's queue, as a
 *      guest driver makes them, by storvm's driver harness).
 *   2. boot to the prompt with a lazily fetched 64 MiB disk (HttpDisk, chunk files): cold (empty
 *      cache, every chunk the guest reads comes over HTTP) and warm (the OPFS cache), beside the
 *      same image as a memory disk; each the time from attaching the disk to the prompt.
 * Rounds alternate (and which of the two I/O runs goes first); medians.   npx tsx bench/browser-storage.ts [--runs N]
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunkImage } from '../src/node/image-chunk.js';
import { buildDemo, chromiumMissing, launchChromium, serve } from '../test/browser/harness.js';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(process.argv[runsArg + 1]) : 5;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const root = new URL('../', import.meta.url).pathname;

if (chromiumMissing()) {
  console.error(chromiumMissing());
  process.exit(2);
}

async function main(): Promise<void> {
  const { build } = await import('vite');
  const pageDir = mkdtempSync(join(tmpdir(), 'storvm-storage-page-'));
  await build({ configFile: join(root, 'bench/browser-storage/vite.config.ts'), build: { outDir: pageDir } });
  const web = await buildDemo();
  const work = mkdtempSync(join(tmpdir(), 'storvm-storage-bench-'));
  const img = new Uint8Array(64 << 20);
  for (let i = 0; i < img.length; i += 4096) img.set(new TextEncoder().encode(`block ${i / 4096}`), i);
  writeFileSync(join(work, 'disk.img'), img);
  await chunkImage(join(work, 'disk.img'), join(work, 'c'), { chunkSize: 256 * 1024 });
  const page = await serve(pageDir);
  const demo = await serve(web);
  demo.routes.set('/disk.img', img);
  demo.routes.set('/c/manifest.json', readFileSync(join(work, 'c/manifest.json')));
  for (const f of readdirSync(join(work, 'c/chunks'))) demo.routes.set(`/c/chunks/${f}`, readFileSync(join(work, 'c/chunks', f)));
  const browser = await launchChromium();
  const io: Array<{ baseline: Record<string, number>; storvm: Record<string, number>; device: Record<string, number> }> = [];
  const boot = { memory: [] as number[], cold: [] as number[], warm: [] as number[] };
  try {
    for (let i = 0; i < RUNS; i++) {
      const p = await browser.newPage();
      await p.goto(`${page.url}/?mib=64&ops=4000&first=${i % 2 ? 'storvm' : 'plain'}`);
      const h = await p.waitForFunction(() => (globalThis as any).storageResult, null, { timeout: 300_000, polling: 200 });
      const r = (await h.jsonValue()) as { error?: string; baseline: Record<string, number>; storvm: Record<string, number>; device: Record<string, number> };
      await p.close();
      if (r.error) throw new Error(r.error);
      io.push(r);
      // Boots: a fresh context each round, so the cold boot has an empty cache.
      const ctx = await browser.newContext();
      const d = await ctx.newPage();
      await d.goto(demo.url + '/');
      await d.waitForFunction(() => (globalThis as any).storvmDemo?.state.booted === true, null, { timeout: 120_000 });
      const timed = async (disk: object): Promise<number> => {
        const n = await d.evaluate(() => (globalThis as any).storvmDemo.state.boots as number);
        const t0 = Date.now();
        await d.evaluate((x) => (globalThis as any).storvmDemo.attachDisk(x), disk);
        await d.waitForFunction((k) => (globalThis as any).storvmDemo.state.boots > k && (globalThis as any).storvmDemo.state.booted === true, n, { timeout: 120_000, polling: 20 });
        const ms = Date.now() - t0;
        // Take it off again for the next figure.
        await d.evaluate(() => {
          const s = (globalThis as any).storvmDemo;
          return s.detach ? s.detach(0) : undefined;
        });
        return ms;
      };
      boot.memory.push(await timed({ source: `${demo.url}/disk.img`, readOnly: true }));
      boot.cold.push(await timed({ source: `${demo.url}/c/manifest.json`, lazy: true, readOnly: true }));
      boot.warm.push(await timed({ source: `${demo.url}/c/manifest.json`, lazy: true, readOnly: true }));
      await ctx.close();
      process.stderr.write(`round ${i + 1}/${RUNS}: seq write ${r.device.seqWriteMBs!.toFixed(0)}/${r.storvm.seqWriteMBs!.toFixed(0)}/${r.baseline.seqWriteMBs!.toFixed(0)} MB/s, boot memory ${boot.memory.at(-1)} cold ${boot.cold.at(-1)} warm ${boot.warm.at(-1)} ms\n`);
    }
  } finally {
    await browser.close();
    await page.close();
    await demo.close();
    for (const d of [pageDir, web, work]) rmSync(d, { recursive: true, force: true });
  }
  console.log(`chromium ${RUNS} rounds, medians, ${new Date().toISOString().slice(0, 10)}`);
  for (const k of ['seqWriteMBs', 'seqReadMBs', 'randWriteIops', 'randReadIops']) {
    const dv = median(io.map((r) => r.device[k]!));
    const s = median(io.map((r) => r.storvm[k]!));
    const b = median(io.map((r) => r.baseline[k]!));
    const ratio = (k2: 'device' | 'storvm') => median(io.map((r) => r[k2][k]! / r.baseline[k]!)).toFixed(2);
    console.log(
      `${k.padEnd(14)} device ${dv.toFixed(0).padStart(8)}  backend ${s.toFixed(0).padStart(8)}  plain handle ${b.toFixed(0).padStart(8)}  device/plain ${ratio('device')}  backend/plain ${ratio('storvm')} (median of per-round ratios)`,
    );
  }
  console.log(`boot with a 64 MiB disk: memory ${median(boot.memory)} ms, lazy cold ${median(boot.cold)} ms, lazy warm ${median(boot.warm)} ms; warm/memory ${(median(boot.warm) / median(boot.memory)).toFixed(2)}`);
}

await main();
