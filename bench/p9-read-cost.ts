/**
 * Where the time of a cache=loose 9p sequential read goes: in the guest's instructions, or in
 * storvm's 9p device.
 *
 *   npx tsx bench/p9-read-cost.ts [--size MiB] [--runs N] [--cpu interp|wasm]
 *
 * One guest mounts a HostFs share with msize 512000 and cache=loose and reads a file of --size
 * MiB (default 32) with `dd bs=1M` N times (default 5) after dropping its caches, then N times
 * from its page cache. For each read it counts the guest's retired instructions, the host's
 * wall time, and the host time spent inside the 9p device's notify (the whole server: chains,
 * message decoding, the host read into guest RAM). The cached read is the part of the work that
 * has nothing to do with 9p: dd, the read syscalls and the copy from the page cache to user
 * memory. Medians are printed, and each read's process CPU time (user + system, from
 * process.cpuUsage), whose rate is what a quiet machine's wall clock would show: on a loaded
 * host the wall-clock rate falls with the CPU share the guest gets, the CPU-time rate does not.
 *
 * It also samples the guest's program counter at the end of every 20,000-instruction slice
 * during the reads through 9p and prints the busiest 256-byte ranges of the kernel, as offsets
 * into guest-images/Image.gz (linked at 0xffffffff80000000), to read with
 * `riscv64-linux-gnu-objdump -D -b binary -m riscv:rv64 --adjust-vma=0xffffffff80000000`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Virtio9p } from '../src/devices/p9/device.js';
import { Machine } from '../src/machine/machine.js';
import { HostFs } from '../src/node/host-fs.js';
import { nodeHost } from '../src/node/host.js';
import { tuneV8ForTranslator } from '../src/node/v8-tuning.js';
import { median } from './stats.js';

const GUEST = new URL('../guest-images/', import.meta.url);

function die(msg: string): never {
  process.stderr.write(`p9-read-cost: ${msg}\n`);
  process.exit(2);
}

function args(argv: string[]) {
  const o = { size: 32, runs: 5, cpu: 'interp' as 'interp' | 'wasm' };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    const num = (lo: number, hi: number) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < lo || n > hi) die(`${argv[i]} ${v ?? ''}: give a whole number in ${lo}..${hi}`);
      i++;
      return n;
    };
    if (argv[i] === '--size') o.size = num(1, 256);
    else if (argv[i] === '--runs') o.runs = num(1, 50);
    else if (argv[i] === '--cpu') {
      if (v !== 'interp' && v !== 'wasm') die('--cpu: use interp or wasm');
      o.cpu = v;
      i++;
    } else die(`unknown option '${argv[i]}'`);
  }
  return o;
}


interface Sample {
  kind: 'U' | 'C';
  instructions: number;
  hostMs: number;
  cpuMs: number;
  deviceMs: number;
}

/** Process CPU time so far, in ms. */
function cpuNow(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function main(): Promise<void> {
  const o = args(process.argv.slice(2));
  if (o.cpu === 'wasm') tuneV8ForTranslator(); // as the CLI runs it
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storvm-p9cost-'));
  try {
    const chunk = new Uint8Array(1 << 20);
    const fd = fs.openSync(path.join(dir, 'big.dat'), 'w');
    for (let i = 0; i < o.size; i++) {
      for (let j = 0; j < chunk.length; j += 4) chunk[j] = (i * 131 + j) & 0xff;
      fs.writeSync(fd, chunk);
    }
    fs.closeSync(fd);
    const dd = `dd if=/mnt/host/big.dat of=/dev/null bs=1M 2>/dev/null`;
    const cmd = [
      'umount /mnt/host',
      'mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose host /mnt/host || exit 3',
      `for i in $(seq ${o.runs}); do echo 3 > /proc/sys/vm/drop_caches; echo @U; ${dd}; echo @E; done`,
      `for i in $(seq ${o.runs}); do echo @C; ${dd}; echo @E; done`,
    ].join('; ');
    const device = new Virtio9p(new HostFs(dir, { readOnly: true }), { tag: 'host' });
    let deviceMs = 0;
    const notify = device.notify.bind(device);
    device.notify = (q: number) => {
      const t = performance.now();
      notify(q);
      deviceMs += performance.now() - t;
    };
    const samples: Sample[] = [];
    let open: { kind: 'U' | 'C'; instret: number; t: number; cpu: number; deviceMs: number } | undefined;
    let line = '';
    const td = new TextDecoder();
    const machine: Machine = new Machine({
      memoryMiB: 256 + o.size,
      kernel: gunzipSync(fs.readFileSync(new URL('Image.gz', GUEST))),
      initrd: gunzipSync(fs.readFileSync(new URL('initramfs.cpio.gz', GUEST))),
      bootargs: `console=ttyS0 quiet loglevel=1 storvm.share=host:/mnt/host storvm.cmd=${Buffer.from(cmd).toString('base64')}`,
      devices: [device],
      deterministic: false,
      host: nodeHost,
      cpu: o.cpu,
      // Markers are seen when the console is flushed, at the end of a slice: keep slices short.
      sliceInstructions: 20_000,
      onConsole: (b) => {
        line += td.decode(b, { stream: true });
        for (let i = line.indexOf('\n'); i >= 0; i = line.indexOf('\n')) {
          const l = line.slice(0, i).trim();
          line = line.slice(i + 1);
          const now = { instret: Number(machine.hart.instret), t: performance.now(), cpu: cpuNow(), deviceMs };
          if (l === '@U' || l === '@C') open = { kind: l === '@U' ? 'U' : 'C', ...now };
          else if (l === '@E' && open !== undefined) {
            samples.push({ kind: open.kind, instructions: now.instret - open.instret, hostMs: now.t - open.t, cpuMs: now.cpu - open.cpu, deviceMs: now.deviceMs - open.deviceMs });
            open = undefined;
          } else if (l !== '') process.stderr.write(l + '\n');
        }
      },
    });
    // Sample where the guest is at each slice boundary while a read through 9p runs.
    const pcs = new Map<number, number>();
    let sampled = 0;
    const hart = machine.hart;
    const run = hart.run.bind(hart);
    hart.run = (limit: number) => {
      const n = run(limit);
      if (open?.kind === 'U') {
        sampled++;
        if (hart.pcHi === -1) {
          const bucket = ((hart.pcLo >>> 0) - 0x80000000) & ~0xff;
          pcs.set(bucket, (pcs.get(bucket) ?? 0) + 1);
        }
      }
      return n;
    };
    const r = await machine.run();
    if (samples.length !== 2 * o.runs) die(`the guest stopped after ${samples.length} of ${2 * o.runs} reads (${r.reason})`);
    const mb = (o.size * 1048576) / 1e6;
    console.log(`9p cache=loose sequential read, ${o.size} MiB with dd bs=1M, msize 512000, HostFs, --cpu ${o.cpu}, medians of ${o.runs}, ${new Date().toISOString().slice(0, 16)}Z`);
    console.log('| read | guest instructions | per 4 KiB page | host ms | in the 9p device | MB/s (host clock) | CPU ms | MB per CPU second |');
    console.log('|---|---|---|---|---|---|---|---|');
    const pages = (o.size * 1048576) / 4096;
    const rows: Record<string, { ins: number; ms: number }> = {};
    for (const kind of ['U', 'C'] as const) {
      const s = samples.filter((x) => x.kind === kind);
      const ins = median(s.map((x) => x.instructions));
      const ms = median(s.map((x) => x.hostMs));
      const dev = median(s.map((x) => x.deviceMs));
      const cpu = median(s.map((x) => x.cpuMs));
      rows[kind] = { ins, ms };
      console.log(`| ${kind === 'U' ? 'after drop_caches (through 9p)' : 'from the page cache'} | ${(ins / 1e6).toFixed(1)} M | ${Math.round(ins / pages)} | ${ms.toFixed(0)} | ${dev.toFixed(1)} ms (${((100 * dev) / ms).toFixed(1)} %) | ${(mb / (ms / 1000)).toFixed(0)} | ${cpu.toFixed(0)} | ${(mb / (cpu / 1000)).toFixed(0)} |`);
    }
    const u = rows.U!;
    const c = rows.C!;
    console.log(`busiest kernel ranges during the reads through 9p (${sampled} samples): ${[...pcs.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([k, v]) => `Image+0x${k.toString(16)} ${((100 * v) / sampled).toFixed(1)} %`)
      .join(', ')}`);
    console.log(`guest instructions that 9p adds per page: ${Math.round((u.ins - c.ins) / pages)}; guest instructions per host microsecond: ${(u.ins / u.ms / 1000).toFixed(0)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
