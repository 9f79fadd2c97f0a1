/**
 * Where the time of the lab's metadata rows and sequential read goes, per protocol: in the
 * guest's instructions or in storvm's 9p / FUSE server. Counts that do not depend on how busy
 * the host is, so the virtio-fs ≥ 2× 9p target can be judged on a loaded machine.
 *
 *   npx tsx bench/virtiofs-cost.ts [--files N] [--size MiB] [--runs N] [--cpu interp|wasm]
 *
 * One guest runs the lab's own commands for create, stat, unlink, untar (`fileloads` in
 * src/lab/plan.ts) and seq-read in each store: tmpfs (no device: the floor the shell loop and
 * the syscalls themselves cost), 9p msize 512000 with cache=none and loose, and virtio-fs with
 * cache none, auto and always, all over HostFs. It does this N times (default 3), the stores in
 * a different order each round. Per operation (file, tar entry, or MiB) it prints medians of:
 * guest instructions retired, host CPU microseconds inside the device's notify (the whole server:
 * chains, decoding, HostFs calls, replies), requests sent, and the process's CPU and wall time.
 * From the first two it gives a rate that hardly depends on the host's load: ops per second of a
 * guest retiring --ips instructions per second (default: the median this run measured per CPU
 * second outside the devices) plus the device's CPU time, and each virtio-fs column's
 * ratio to its 9p counterpart (none to none, auto and always to loose). The busiest request
 * types per operation are listed too.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { VirtioFs } from '../src/devices/fs/device.js';
import { FUSE } from '../src/devices/fs/fuse.js';
import { Virtio9p } from '../src/devices/p9/device.js';
import { P9 } from '../src/devices/p9/wire.js';
import { Machine } from '../src/machine/machine.js';
import { HostFs } from '../src/node/host-fs.js';
import { nodeHost } from '../src/node/host.js';
import { tarDirectory } from '../src/node/lab/tar.js';
import { median } from './stats.js';

const GUEST = new URL('../guest-images/', import.meta.url);

function die(msg: string): never {
  process.stderr.write(`virtiofs-cost: ${msg}\n`);
  process.exit(2);
}

function args(argv: string[]) {
  const o = { files: 200, size: 16, runs: 3, cpu: 'interp' as 'interp' | 'wasm', ips: 0 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    const num = (lo: number, hi: number) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < lo || n > hi) die(`${argv[i]} ${v ?? ''}: give a whole number in ${lo}..${hi}`);
      i++;
      return n;
    };
    if (argv[i] === '--files') o.files = num(1, 100000);
    else if (argv[i] === '--size') o.size = num(1, 256);
    else if (argv[i] === '--runs') o.runs = num(1, 50);
    else if (argv[i] === '--ips') o.ips = num(1, 1e10);
    else if (argv[i] === '--cpu') {
      if (v !== 'interp' && v !== 'wasm') die('--cpu: use interp or wasm');
      o.cpu = v;
      i++;
    } else die(`unknown option '${argv[i]}'`);
  }
  return o;
}


const STORES = ['tmpfs', '9p-none', '9p-loose', 'vfs-none', 'vfs-auto', 'vfs-always'] as const;
type Store = (typeof STORES)[number];
const WORK = ['create', 'stat', 'unlink', 'untar', 'seq-read'] as const;
type Work = (typeof WORK)[number];
// Like for like, then each protocol's default mount (Linux 9p: cache=none; virtiofsd: cache=auto).
const PAIRS: Array<[Store, Store]> = [['vfs-none', '9p-none'], ['vfs-auto', '9p-loose'], ['vfs-always', '9p-loose'], ['vfs-auto', '9p-none']];

const FUSE_NAMES = new Map<number, string>(Object.entries(FUSE).map(([k, v]) => [v as number, k]));
const P9_NAMES = new Map<number, string>(Object.entries(P9).map(([k, v]) => [v as number, k]));

interface Sample {
  store: Store;
  work: Work;
  instructions: number;
  hostMs: number;
  cpuMs: number;
  deviceMs: number;
  requests: Map<string, number>;
}

async function main(): Promise<void> {
  const o = args(process.argv.slice(2));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storvm-vfscost-'));
  try {
    const share = path.join(dir, 'share');
    const lab = path.join(dir, 'lab');
    fs.mkdirSync(share);
    fs.mkdirSync(lab);
    const tar = tarDirectory(new URL('../src/', import.meta.url).pathname, 'src');
    fs.writeFileSync(path.join(lab, 'src.tar'), tar.bytes);
    const N = o.files;
    const S = o.size;
    // The lab's commands (src/lab/plan.ts, fileloads), each between markers the host counts at.
    const loads = (d: string) => [
      `echo @B $st create; sh -c "mkdir ${d}/files && i=0 && while [ \\$i -lt ${N} ]; do : > ${d}/files/f\\$i || exit 1; i=\\$((i+1)); done"; echo @E`,
      `drop; echo @B $st stat; sh -c "i=0; while [ \\$i -lt ${N} ]; do [ -e ${d}/files/f\\$i ] || exit 1; i=\\$((i+1)); done" || echo stat failed; echo @E`,
      `echo @B $st unlink; rm -r ${d}/files; echo @E`,
      `echo @B $st untar; sh -c "mkdir ${d}/untar && tar -xf /tmp/src.tar -C ${d}/untar && sync"; echo @E`,
      `rm -rf ${d}/untar; dd if=/dev/zero of=${d}/seq.dat bs=1M count=${S} conv=fsync 2>/dev/null`,
      `drop; echo @B $st seq-read; dd if=${d}/seq.dat of=/dev/null bs=1M count=${S} 2>/dev/null; echo @E`,
      `rm -f ${d}/seq.dat`,
    ];
    const mount: Record<Store, string> = {
      tmpfs: 'mkdir -p /tmp/bench',
      '9p-none': 'mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none p9 /mnt/s',
      '9p-loose': 'mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose p9 /mnt/s',
      'vfs-none': 'mount -t virtiofs vfs-none /mnt/s',
      'vfs-auto': 'mount -t virtiofs vfs-auto /mnt/s',
      'vfs-always': 'mount -t virtiofs vfs-always /mnt/s',
    };
    const lines = ['drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }', 'mkdir -p /mnt/s', 'cp /mnt/l/src.tar /tmp/src.tar || exit 3'];
    for (let r = 0; r < o.runs; r++) {
      // Each round starts at another store, so no store always runs first or last.
      const order = STORES.map((_, i) => STORES[(i + r) % STORES.length]!);
      for (const st of order) {
        const d = st === 'tmpfs' ? '/tmp/bench' : '/mnt/s';
        lines.push(`st=${st}; ${mount[st]} || exit 4`, ...loads(d), st === 'tmpfs' ? 'rm -rf /tmp/bench' : 'umount /mnt/s');
      }
    }
    lines.push('echo @DONE');
    const script = lines.join('\n') + '\n';
    fs.writeFileSync(path.join(lab, 'run.sh'), script);

    let deviceMs = 0;
    let requests = new Map<string, number>();
    const count = (name: string) => requests.set(name, (requests.get(name) ?? 0) + 1);
    const timed = <T extends { notify(q: number): void }>(dev: T): T => {
      const notify = dev.notify.bind(dev);
      // CPU time, not wall time: what the server costs, whatever else the host is doing.
      dev.notify = (q: number) => {
        const t = process.cpuUsage();
        notify(q);
        const d = process.cpuUsage(t);
        deviceMs += (d.user + d.system) / 1000;
      };
      return dev;
    };
    const p9 = timed(
      new Virtio9p(new HostFs(share), {
        tag: 'p9',
        trace: () => (req) => count(`9p ${P9_NAMES.get(req[4] ?? 0) ?? req[4]}`),
      }),
    );
    const vfs = (['none', 'auto', 'always'] as const).map((cache) =>
      timed(
        new VirtioFs(new HostFs(share), {
          tag: `vfs-${cache}`,
          cache,
          trace: (req) => {
            count(FUSE_NAMES.get(req.length >= 8 ? new DataView(req.buffer, req.byteOffset).getUint32(4, true) : -1) ?? 'fuse ?');
            return () => {};
          },
        }),
      ),
    );
    const control = new Virtio9p(new HostFs(lab, { readOnly: true }), { tag: 'lab' });

    const samples: Sample[] = [];
    let open: { store: Store; work: Work; instret: number; t: number; cpu: number; deviceMs: number } | undefined;
    const cpuMs = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    let line = '';
    const td = new TextDecoder();
    const cmd = 'sh /mnt/l/run.sh';
    const machine: Machine = new Machine({
      memoryMiB: 256 + S,
      kernel: gunzipSync(fs.readFileSync(new URL('Image.gz', GUEST))),
      initrd: gunzipSync(fs.readFileSync(new URL('initramfs.cpio.gz', GUEST))),
      bootargs: `console=ttyS0 quiet loglevel=1 storvm.cmd=${Buffer.from(`mkdir -p /mnt/l && mount -t 9p -o trans=virtio,version=9p2000.L lab /mnt/l && ${cmd}`).toString('base64')}`,
      devices: [p9, ...vfs, control],
      host: nodeHost,
      cpu: o.cpu,
      // Markers are seen when the console is flushed, at the end of a slice: keep slices short.
      sliceInstructions: 20_000,
      onConsole: (b) => {
        line += td.decode(b, { stream: true });
        for (let i = line.indexOf('\n'); i >= 0; i = line.indexOf('\n')) {
          const l = line.slice(0, i).trim();
          line = line.slice(i + 1);
          const now = { instret: Number(machine.hart.instret), t: performance.now(), cpu: cpuMs(), deviceMs };
          const m = /^@B (\S+) (\S+)$/.exec(l);
          if (m !== null) {
            open = { store: m[1] as Store, work: m[2] as Work, ...now };
            requests = new Map();
          } else if (l === '@E' && open !== undefined) {
            samples.push({ store: open.store, work: open.work, instructions: now.instret - open.instret, hostMs: now.t - open.t, cpuMs: now.cpu - open.cpu, deviceMs: now.deviceMs - open.deviceMs, requests });
            open = undefined;
            requests = new Map();
          } else if (l !== '' && l !== '@DONE') process.stderr.write(`guest: ${l}\n`);
        }
      },
    });
    const t0 = performance.now();
    const r = await machine.run();
    const want = o.runs * STORES.length * WORK.length;
    if (samples.length !== want) die(`the guest stopped after ${samples.length} of ${want} measurements (${r.reason}, exit ${r.exitCode})`);

    const per = (w: Work) => (w === 'seq-read' ? S : w === 'untar' ? tar.entries : N);
    const unit = (w: Work) => (w === 'seq-read' ? 'MiB' : w === 'untar' ? 'entry' : 'file');
    const cell = (st: Store, w: Work) => samples.filter((s) => s.store === st && s.work === w);
    // The guest's speed this run: instructions per CPU second spent outside the devices.
    const ips = o.ips || median(samples.map((s) => s.instructions / ((s.cpuMs - s.deviceMs) / 1000)));
    const cost = (st: Store, w: Work) => {
      const c = cell(st, w);
      const ins = median(c.map((s) => s.instructions)) / per(w);
      const dev = median(c.map((s) => s.deviceMs)) / per(w);
      const wall = median(c.map((s) => s.hostMs)) / per(w);
      const cpu = median(c.map((s) => s.cpuMs)) / per(w);
      const req = median(c.map((s) => [...s.requests.values()].reduce((a, b) => a + b, 0))) / per(w);
      const sec = ins / ips + dev / 1000;
      return { ins, dev, wall, cpu, req, sec };
    };
    const stamp = new Date().toISOString().slice(0, 16);
    console.log(`virtio-fs and 9p cost per operation, HostFs, ${N} files, ${tar.entries} tar entries, ${S} MiB read, --cpu ${o.cpu}, medians of ${o.runs} rounds, ${stamp}Z (host run ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    console.log(`modelled rate: a guest retiring ${(ips / 1e6).toFixed(1)} M instructions per second${o.ips ? ' (--ips)' : ' (measured this run: CPU time outside the devices)'}, plus the device's CPU time\n`);
    console.log(`| workload | store | guest instructions / op | device CPU µs / op | requests / op | CPU ms / op | wall ms / op | modelled ops/s |`);
    console.log('|---|---|---|---|---|---|---|---|');
    for (const w of WORK) {
      for (const st of STORES) {
        const c = cost(st, w);
        console.log(`| ${w} (per ${unit(w)}) | ${st} | ${Math.round(c.ins).toLocaleString('en')} | ${(c.dev * 1000).toFixed(0)} | ${c.req.toFixed(1)} | ${c.cpu.toFixed(2)} | ${c.wall.toFixed(2)} | ${(1 / c.sec).toFixed(1)} |`);
      }
    }
    console.log(`\n| workload | ${PAIRS.map(([a, b]) => `${a} / ${b}`).join(' | ')} | ceiling over 9p-none (tmpfs) | ceiling over 9p-loose (tmpfs) |`);
    console.log(`|---|${PAIRS.map(() => '---').join('|')}|---|---|`);
    for (const w of WORK) {
      const ratios = PAIRS.map(([a, b]) => `${(cost(b, w).sec / cost(a, w).sec).toFixed(2)}×`);
      const floor = cost('tmpfs', w).sec;
      console.log(`| ${w} | ${ratios.join(' | ')} | ${(cost('9p-none', w).sec / floor).toFixed(2)}× | ${(cost('9p-loose', w).sec / floor).toFixed(2)}× |`);
    }
    console.log('\nrequests per operation by type (median round):');
    for (const w of WORK) {
      for (const st of STORES.filter((s) => s !== 'tmpfs')) {
        const c = cell(st, w);
        const mid = c.map((s) => s).sort((a, b) => a.instructions - b.instructions)[c.length >> 1]!;
        const top = [...mid.requests.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k.replace(/^9p /, '')} ${(v / per(w)).toFixed(2)}`);
        console.log(`- ${w}, ${st}: ${top.join(', ')}`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

await main();
