/**
 * bench/boot.ts — how long the default guest takes to boot.
 *
 * Measures, median of 5 each, in one run:
 *   1. `storvm run --no-boot-cache -- true`: wall time of the whole command (Node start, boot,
 *      command, poweroff), per CPU engine;
 *   2. `storvm boot --no-boot-cache` to the first shell prompt (piped stdin, the prompt read from
 *      stdout), per CPU engine;
 *   3. the boot cache (docs/boot-cache.md), in a cache folder of its own: `storvm run -- true`
 *      with the folder emptied first (boots and writes the entry), then warm (restores it), and
 *      `storvm boot` to the prompt, warm;
 *   4. the same kernel and initramfs under `qemu-system-riscv64 -M virt` (OpenSBI firmware), for
 *      run and prompt, when QEMU is installed (Debian qemu-system-misc); the ratios storvm / QEMU.
 *      The run is also timed with QEMU given the initramfs gunzipped, as storvm's guest gets it.
 * bin/storvm.mjs runs dist/ when it is built (`npm run build`, as an installed package does) and
 * the sources bundled into one file otherwise (bin/cli-bundle.mjs); the output says which. It
 * runs as `npx storvm` does, as a program, so the Node options of its #! line apply.
 *
 *   npx tsx bench/boot.ts [--runs N] [--engines interp,wasm]
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';

const root = new URL('../', import.meta.url).pathname;
const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg >= 0 ? Number(process.argv[runsArg + 1]) : 5;
const enginesArg = process.argv.indexOf('--engines');
const ENGINES = (enginesArg >= 0 ? process.argv[enginesArg + 1]!.split(',') : ['interp', 'wasm']) as Array<'interp' | 'wasm'>;
const PROMPT = '~ # ';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Runs a command to its end; returns seconds, or throws when it fails. */
function timeCommand(cmd: string, args: string[], expectCode = 0): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000, env });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== expectCode) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr?.toString().slice(-500)}`);
  return s;
}

/** Starts a command, waits until its stdout shows the shell prompt; returns seconds. */
function timeToPrompt(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd: root, stdio: ['pipe', 'pipe', 'pipe'], env });
    let out = '';
    let done = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd}: no prompt within 120 s; output: ${out.slice(-300)}`));
    }, 120_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!done && out.includes(PROMPT)) {
        done = true;
        const s = (performance.now() - t0) / 1000;
        clearTimeout(timer);
        child.stdin.end('exit\n');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
        child.on('exit', () => resolve(s));
      }
    });
    child.on('error', reject);
  });
}

const hasQemu = spawnSync('qemu-system-riscv64', ['--version']).status === 0;
const work = mkdtempSync(join(tmpdir(), 'storvm-boot-bench-'));
const cache = join(work, 'cache');
const env: NodeJS.ProcessEnv = { ...process.env, STORVM_CACHE_DIR: cache };
delete env.STORVM_NO_BOOT_CACHE;
const built = existsSync(join(root, 'dist/node/cli.js'));
/** The command as `npx storvm` runs it: the file itself, so its #! line's Node options apply. */
const STORVM = join(root, 'bin/storvm.mjs');
// QEMU takes an uncompressed Image.
const image = join(work, 'Image');
writeFileSync(image, gunzipSync(readFileSync(join(root, 'guest-images/Image.gz'))));
const initrd = join(root, 'guest-images/initramfs.cpio.gz');
// storvm gives its guest the default initramfs gunzipped (src/node/launch.ts, guestInitrd); QEMU
// boots the committed .gz, and also (one more run per round) the same plain cpio storvm's guest
// gets, so the ratio can be read either way.
const plainInitrd = join(work, 'initramfs.cpio');
writeFileSync(plainInitrd, gunzipSync(readFileSync(initrd)));
const cmdTrue = `storvm.cmd=${Buffer.from('true').toString('base64')}`;
const qemuArgs = (append: string, rd = initrd) => ['-M', 'virt', '-m', '256', '-smp', '1', '-nographic', '-bios', 'default', '-kernel', image, '-initrd', rd, '-append', `console=ttyS0 quiet loglevel=1 ${append}`];

const storvmRun = new Map<string, number[]>(ENGINES.map((e) => [e, []]));
const storvmPrompt = new Map<string, number[]>(ENGINES.map((e) => [e, []]));
const qemuRun: number[] = [];
const qemuRunPlain: number[] = [];
const qemuPrompt: number[] = [];
const firstRun: number[] = [];
const warmRun: number[] = [];
const warmPrompt: number[] = [];
for (let i = 0; i < RUNS; i++) {
  // Both CPU engines, the cache and QEMU in turn, so all see the same machine load.
  for (const e of ENGINES) {
    storvmRun.get(e)!.push(timeCommand(STORVM, ['run', '--no-boot-cache', '--cpu', e, '--', 'true']));
    storvmPrompt.get(e)!.push(await timeToPrompt(STORVM, ['boot', '--no-boot-cache', '--cpu', e]));
  }
  rmSync(cache, { recursive: true, force: true });
  firstRun.push(timeCommand(STORVM, ['run', '--', 'true']));
  warmRun.push(timeCommand(STORVM, ['run', '--', 'true']));
  warmPrompt.push(await timeToPrompt(STORVM, ['boot']));
  if (hasQemu) {
    // Our init powers off through the SiFive test device, which QEMU's virt board also has.
    qemuRun.push(timeCommand('qemu-system-riscv64', qemuArgs(cmdTrue)));
    qemuRunPlain.push(timeCommand('qemu-system-riscv64', qemuArgs(cmdTrue, plainInitrd)));
    qemuPrompt.push(await timeToPrompt('qemu-system-riscv64', qemuArgs('')));
  }
  process.stderr.write(`run ${i + 1}/${RUNS} done\n`);
}
const rows: Array<{ what: string; storvm: number; qemu?: number }> = [];
const q = (xs: number[]) => (hasQemu ? { qemu: median(xs) } : {});
for (const e of ENGINES) {
  rows.push({ what: `run -- true, cold, --cpu ${e}`, storvm: median(storvmRun.get(e)!), ...q(qemuRun) });
  rows.push({ what: `  the same, QEMU given the plain cpio`, storvm: median(storvmRun.get(e)!), ...q(qemuRunPlain) });
  rows.push({ what: `boot to the prompt, cold, --cpu ${e}`, storvm: median(storvmPrompt.get(e)!), ...q(qemuPrompt) });
}
rows.push({ what: 'run -- true, first (writes the cache)', storvm: median(firstRun), ...q(qemuRun) });
rows.push({ what: 'run -- true, warm (boot cache)', storvm: median(warmRun), ...q(qemuRun) });
rows.push({ what: 'boot to the prompt, warm (boot cache)', storvm: median(warmPrompt), ...q(qemuPrompt) });

console.log(`storvm boot bench — node ${process.version}, ${built ? 'built dist/' : 'the sources, bundled (bin/cli-bundle.mjs)'}, median of ${RUNS}, ${new Date().toISOString().slice(0, 10)}`);
if (!hasQemu) console.log('qemu-system-riscv64 not installed (Debian qemu-system-misc): QEMU columns skipped');
console.log(`${'what'.padEnd(40)} ${'storvm s'.padStart(9)} ${'qemu s'.padStart(8)} ${'ratio'.padStart(7)}`);
for (const r of rows) {
  const q = r.qemu === undefined ? '—' : r.qemu.toFixed(2);
  const ratio = r.qemu === undefined ? '—' : `${(r.storvm / r.qemu).toFixed(2)}×`;
  console.log(`${r.what.padEnd(40)} ${r.storvm.toFixed(2).padStart(9)} ${q.padStart(8)} ${ratio.padStart(7)}`);
}
if (ENGINES.includes('interp') && ENGINES.includes('wasm')) {
  const wi = median(storvmRun.get('interp')!) / median(storvmRun.get('wasm')!);
  console.log(`run -- true: interp / wasm wall time ${wi.toFixed(2)}×`);
}
if (ENGINES.includes('interp')) {
  console.log(`boot cache: run -- true cold / warm ${(median(storvmRun.get('interp')!) / median(warmRun)).toFixed(1)}×, prompt cold / warm ${(median(storvmPrompt.get('interp')!) / median(warmPrompt)).toFixed(1)}×`);
}
if (hasQemu) console.log(`boot cache: QEMU cold run / storvm warm run ${(median(qemuRun) / median(warmRun)).toFixed(2)}× (target ≥ 2×, warm ≤ 0.35 s)`);
rmSync(work, { recursive: true, force: true });
