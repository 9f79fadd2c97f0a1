/**
 * POSIX behaviour of storvm's 9p shares, measured in the guest with pjdfstest and fsx.
 *
 *   npx tsx bench/posix.ts [--pjdfstest DIR] [--fsx DIR] [--backend STORE[,STORE...]]
 *                          [--only chmod,link,...] [--fsx-ops N] [--scratch DIR] [--mem MiB]
 *
 * --pjdfstest names a checkout of github.com/pjd/pjdfstest, --fsx one of xfstests (for its
 * ltp/fsx.c); give either or both. Their sources are copied to a scratch folder outside the
 * repository (default $TMPDIR/storvm-posix) and built there, static, for riscv64 with Debian's
 * cross compiler (apt-get install gcc-riscv64-linux-gnu autoconf automake). Nothing of either
 * goes into storvm. One guest then runs every `.t` file, one shell per file, as root, in each
 * store named (default `host`), one store after the other, and the script prints ok / not ok per
 * directory and store. The stores: a 9p share over `host` (HostFs, mapped metadata),
 * `passthrough` (HostFs with the host's own metadata) or `mem` (MemFs), mounted with
 * cache=none; `vfs` and `vfs-auto`, the same HostFs on virtio-fs with cache=none or auto (fsx
 * maps the file on auto, where FUSE allows shared mappings); and `ext4`, a blank ext4
 * filesystem (the lab's 1 GiB image, 4 KiB blocks) on virtio-blk, the reference. The tools reach the guest on a read-only share.
 *
 * fsx runs after pjdfstest, `-N` operations (default 100,000) with seed 1: on 9p once with
 * cache=none and mapped reads and writes off (`-R -W`), since Linux's 9p allows no shared
 * writable mapping without a cache, and once with cache=mmap and mapping on; on ext4 once, mapping
 * on. The script prints each run's last line and exit status.
 *
 * busybox has no `openssl`, which pjdfstest's name generator pipes random bytes into: a two-line
 * shim over md5sum stands in for it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { FsBackend } from '../src/backends/fs/backend.js';
import { MemFs } from '../src/backends/fs/mem-fs.js';
import { VirtioBlk } from '../src/devices/blk/device.js';
import { VirtioFs } from '../src/devices/fs/device.js';
import { Virtio9p } from '../src/devices/p9/device.js';
import { Machine } from '../src/machine/machine.js';
import { HostFs } from '../src/node/host-fs.js';
import { nodeHost } from '../src/node/host.js';
import { unpackSparse } from '../src/node/lab/sparse-image.js';
import type { VirtioDevice } from '../src/virtio/device.js';

const GUEST = new URL('../guest-images/', import.meta.url);

function die(msg: string): never {
  process.stderr.write(`posix: ${msg}\n`);
  process.exit(2);
}

const STORES = ['host', 'passthrough', 'mem', 'ext4', 'vfs', 'vfs-auto'];

function args(argv: string[]) {
  const o = { pjdfstest: '', fsx: '', fsxOps: 100000, stores: ['host'], only: [] as string[], scratch: path.join(os.tmpdir(), 'storvm-posix'), mem: 512 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    const need = () => v ?? die(`${argv[i]} needs a value`);
    switch (argv[i]) {
      case '--pjdfstest':
        o.pjdfstest = path.resolve(need());
        i++;
        break;
      case '--fsx':
        o.fsx = path.resolve(need());
        i++;
        break;
      case '--fsx-ops':
        o.fsxOps = Number(need());
        i++;
        if (!Number.isInteger(o.fsxOps) || o.fsxOps < 1) die(`--fsx-ops ${v}: give a whole number of operations`);
        break;
      case '--backend':
        o.stores = [...new Set(need().split(','))];
        i++;
        for (const st of o.stores) if (!STORES.includes(st)) die(`--backend ${st}: use host, passthrough, mem, ext4, vfs or vfs-auto (or several, with commas)`);
        break;
      case '--only':
        o.only = need().split(',').filter((s) => s !== '');
        i++;
        break;
      case '--scratch':
        o.scratch = path.resolve(need());
        i++;
        break;
      case '--mem':
        o.mem = Number(need());
        i++;
        break;
      default:
        die(`unknown option '${argv[i]}'`);
    }
  }
  if (o.pjdfstest === '' && o.fsx === '') die('give --pjdfstest DIR (a checkout of github.com/pjd/pjdfstest), --fsx DIR (one of xfstests), or both');
  if (o.pjdfstest !== '' && !fs.existsSync(path.join(o.pjdfstest, 'pjdfstest.c'))) die(`${o.pjdfstest}: no pjdfstest.c here`);
  if (o.fsx !== '' && !fs.existsSync(path.join(o.fsx, 'ltp', 'fsx.c'))) die(`${o.fsx}: no ltp/fsx.c here (give a checkout of xfstests)`);
  const repo = path.resolve(new URL('..', import.meta.url).pathname);
  if (o.scratch === repo || o.scratch.startsWith(repo + path.sep)) die('--scratch must be outside the repository');
  return o;
}

function run(cmd: string, argv: string[], cwd: string): void {
  const r = spawnSync(cmd, argv, { cwd, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.error !== undefined) die(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) die(`${cmd} ${argv.join(' ')} failed in ${cwd}:\n${r.stderr.split('\n').slice(-8).join('\n')}`);
}

/** The guest's runner: pjdfstest if it is staged, then fsx if it is, in the chosen store. */
const MAIN_SH = `#!/bin/sh
# main.sh "STORE..." OPS [DIR...]: for each store, pjdfstest, then fsx. A 9p store is the share
# tagged with its name; ext4 is /dev/vda.
T=/mnt/tools; STORES=$1; N=$2; shift 2
# busybox's timeout leaves a watcher, its cwd the test's, for up to a second after the test ends.
unmount() { for i in 1 2 3 4 5; do umount $1 2>/dev/null && return 0; sleep 1; done; umount $1 || { held $1; return 1; }; }
held() { for p in /proc/[0-9]*; do ls -l $p/cwd $p/root $p/fd 2>/dev/null | grep -q " $1" && echo "  held by $p: $(tr '\\0' ' ' < $p/cmdline)"; done; }
p9() { mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=$2 $1 /mnt/s-$1; }
for S in $STORES; do
  W=/mnt/s-$S; mkdir -p $W; cd /
  if [ "$S" = ext4 ]; then mount -t ext4 /dev/vda $W; elif [ "$S" = vfs ] || [ "$S" = vfs-auto ]; then mount -t virtiofs $S $W; else p9 $S none; fi || { echo "FAIL $S cannot be mounted"; continue; }
  [ -x $T/pjdfstest ] && sh $T/run.sh $T $W $S "$@"
  if [ -x $T/fsx ]; then
    if [ "$S" = ext4 ]; then
      sh $T/fsx.sh $W $N $S ext4
    elif [ "$S" = vfs ]; then
      sh $T/fsx.sh $W $N $S none
    elif [ "$S" = vfs-auto ]; then
      sh $T/fsx.sh $W $N $S auto
    else
      for c in none mmap; do
        cd /; unmount $W
        if p9 $S $c; then sh $T/fsx.sh $W $N $S $c; else echo "FSX $S $c 125 0 0 cannot mount with cache=$c"; fi
      done
    fi
  fi
  cd /; unmount $W
done
echo DONE
`;

/** One fsx run: FSX MODE STATUS START END LAST-LINE, then why it failed or what it left out. */
const FSX_SH = `#!/bin/sh
# fsx.sh WORK OPS STORE MODE: fsx OPS operations, seed 1, on WORK/fsx-MODE/file; no mapping with cache=none
W=$1; N=$2; S=$3; M=$4; flags=""
[ "$M" = none ] && flags="-R -W"
mkdir -p $W/fsx-$M && cd $W/fsx-$M || exit 1
a=$(cut -d' ' -f1 /proc/uptime)
/mnt/tools/fsx -N $N -S 1 $flags $W/fsx-$M/file > /tmp/fsx-$M.log 2>&1; st=$?
b=$(cut -d' ' -f1 /proc/uptime)
echo "FSX $S $M $st $a $b $(tail -1 /tmp/fsx-$M.log)"
[ $st = 0 ] || tail -25 /tmp/fsx-$M.log | sed 's/^/  /'
grep -i 'disabling' /tmp/fsx-$M.log | sed 's/^/  left out: /'
`;

/** Builds pjdfstest static for riscv64 into scratch/build and stages it in tools. */
function buildPjdfstest(src: string, scratch: string, tools: string): void {
  const work = path.join(scratch, 'build');
  fs.rmSync(work, { recursive: true, force: true });
  fs.cpSync(src, work, { recursive: true, filter: (p) => !p.includes(`${path.sep}.git`) });
  run('autoreconf', ['-ifs'], work);
  run('./configure', ['--host=riscv64-linux-gnu', 'CC=riscv64-linux-gnu-gcc', 'CFLAGS=-O2 -static', 'LDFLAGS=-static'], work);
  run('make', ['pjdfstest'], work);
  fs.mkdirSync(path.join(tools, 'bin'), { recursive: true });
  fs.copyFileSync(path.join(work, 'pjdfstest'), path.join(tools, 'pjdfstest'));
  fs.chmodSync(path.join(tools, 'pjdfstest'), 0o755);
  fs.cpSync(path.join(src, 'tests'), path.join(tools, 'tests'), { recursive: true });
  fs.writeFileSync(path.join(tools, 'bin', 'openssl'), '#!/bin/sh\nmd5sum | awk \'{print $1}\'\n', { mode: 0o755 });
  fs.writeFileSync(
    path.join(tools, 'run.sh'),
    [
      '#!/bin/sh',
      '# run.sh TOOLS WORK STORE [DIR...]: every .t file of each DIR, one shell each, in WORK',
      'T=$1; W=$2; S=$3; shift 3',
      'export PATH=$T/bin:$PATH',
      '# The suite asks `id -u nobody` and `id -u root`; the guest image has no user database.',
      "grep -q '^root:' /etc/passwd 2>/dev/null || echo 'root:x:0:0:root:/:/bin/sh' >> /etc/passwd",
      "grep -q '^nobody:' /etc/passwd 2>/dev/null || echo 'nobody:x:65534:65534:nobody:/:/bin/false' >> /etc/passwd",
      "grep -q '^root:' /etc/group 2>/dev/null || echo 'root:x:0:' >> /etc/group",
      "grep -q '^nobody:' /etc/group 2>/dev/null || echo 'nobody:x:65534:' >> /etc/group",
      'cd "$W" || exit 1',
      'dirs="$*"; [ -z "$dirs" ] && dirs=$(cd $T/tests && ls -d */ | tr -d /)',
      'for d in $dirs; do',
      '  for t in $T/tests/$d/*.t; do',
      '    out=$(timeout 3600 sh $t 2>&1); st=$?',
      '    ok=$(echo "$out" | grep -c \'^ok\'); todo=$(echo "$out" | grep -c \'^not ok.*# TODO\')',
      '    echo "RESULT $S $d/$(basename $t) $ok $(( $(echo "$out" | grep -c \'^not ok\') - todo )) $todo $st"',
      '    echo "$out" | grep \'^not ok\' | grep -v \'# TODO\' | head -3 | sed \'s/^/  /\'',
      '  done',
      'done',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
}

/**
 * Builds xfstests' ltp/fsx.c static for riscv64 into scratch/fsx-build. Without xfstests'
 * configure, a config.h names the glibc headers it would have found; no aio or io_uring.
 */
function buildFsx(src: string, scratch: string, tools: string): void {
  const work = path.join(scratch, 'fsx-build');
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(work, { recursive: true });
  const have = ['SYS_TYPES_H', 'SYS_STAT_H', 'SYS_STATVFS_H', 'SYS_TIME_H', 'SYS_IOCTL_H', 'SYS_WAIT_H', 'MALLOC_H', 'DIRENT_H', 'STDLIB_H', 'UNISTD_H', 'ERRNO_H', 'STRING_H', 'SYS_FCNTL_H', 'TIME_H', 'ERR_H', 'LINUX_FALLOC_H', 'COPY_FILE_RANGE', 'SYS_PARAM_H', 'LIBGEN_H', 'ASSERT_H', 'STRINGS_H', 'SYS_MMAN_H'];
  fs.writeFileSync(path.join(work, 'config.h'), have.map((h) => `#define HAVE_${h} 1\n`).join(''));
  const out = path.join(tools, 'fsx');
  run('riscv64-linux-gnu-gcc', ['-O2', '-static', '-D_GNU_SOURCE', '-include', 'getopt.h', `-I${work}`, `-I${path.join(src, 'src')}`, `-I${path.join(src, 'include')}`, path.join(src, 'ltp', 'fsx.c'), '-o', out], work);
  fs.chmodSync(out, 0o755);
}

interface FsxRun {
  store: string;
  mode: string;
  status: number;
  minutes: number;
  last: string;
  notes: string[];
}

/** How each store is named in the tables. */
const WHERE: Record<string, string> = {
  host: '9p over HostFs (mapped)',
  passthrough: '9p over HostFs (passthrough)',
  mem: '9p over MemFs',
  ext4: 'ext4 on virtio-blk',
  vfs: 'virtio-fs (cache=none) over HostFs (mapped)',
  'vfs-auto': 'virtio-fs (cache=auto) over HostFs (mapped)',
};

async function main(): Promise<void> {
  const o = args(process.argv.slice(2));
  if (spawnSync('riscv64-linux-gnu-gcc', ['--version']).status !== 0) {
    die('riscv64-linux-gnu-gcc not found: apt-get install gcc-riscv64-linux-gnu autoconf automake');
  }
  const tools = path.join(o.scratch, 'tools');
  fs.rmSync(tools, { recursive: true, force: true });
  fs.mkdirSync(tools, { recursive: true });
  if (o.pjdfstest !== '') buildPjdfstest(o.pjdfstest, o.scratch, tools);
  if (o.fsx !== '') buildFsx(o.fsx, o.scratch, tools);
  fs.writeFileSync(path.join(tools, 'main.sh'), MAIN_SH, { mode: 0o755 });
  fs.writeFileSync(path.join(tools, 'fsx.sh'), FSX_SH, { mode: 0o755 });
  const devices: VirtioDevice[] = [];
  for (const st of o.stores) {
    if (st === 'ext4') {
      devices.push(new VirtioBlk(unpackSparse(fs.readFileSync(new URL('lab-ext4.sparse.gz', GUEST)))));
      continue;
    }
    let backend: FsBackend;
    if (st === 'mem') backend = new MemFs({ capacity: 256 << 20 });
    else {
      const share = path.join(o.scratch, `share-${st}`);
      if (fs.existsSync(share)) spawnSync('rm', ['-rf', share]); // rm walks trees deeper than PATH_MAX
      fs.mkdirSync(share, { recursive: true });
      backend = new HostFs(share, { mode: st === 'passthrough' ? 'passthrough' : 'mapped' });
    }
    if (st === 'vfs' || st === 'vfs-auto') devices.push(new VirtioFs(backend, { tag: st, cache: st === 'vfs' ? 'none' : 'auto' }));
    else devices.push(new Virtio9p(backend, { tag: st }));
  }
  devices.push(new Virtio9p(new HostFs(tools, { readOnly: true }), { tag: 'tools' }));
  const cmd = `sh /mnt/tools/main.sh "${o.stores.join(' ')}" ${o.fsxOps} ${o.only.join(' ')}`;
  const bootargs = ['console=ttyS0 quiet loglevel=1', 'storvm.share=tools:/mnt/tools:ro', `storvm.cmd=${Buffer.from(cmd).toString('base64')}`];
  let text = '';
  const td = new TextDecoder();
  const started = Date.now();
  const machine = new Machine({
    memoryMiB: o.mem,
    kernel: gunzipSync(fs.readFileSync(new URL('Image.gz', GUEST))),
    initrd: gunzipSync(fs.readFileSync(new URL('initramfs.cpio.gz', GUEST))),
    bootargs: bootargs.join(' '),
    devices,
    deterministic: false,
    host: nodeHost,
    onConsole: (b) => {
      const s = td.decode(b, { stream: true });
      text += s;
      process.stderr.write(s);
    },
  });
  const r = await machine.run();
  const minutes = ((Date.now() - started) / 60000).toFixed(1);
  console.log(`\n${new Date().toISOString().slice(0, 16)}Z, one guest, ${minutes} min in all, stores in this order: ${o.stores.join(', ')}`);
  if (o.pjdfstest !== '') printPjdfstest(text, o.stores);
  if (o.fsx !== '') printFsx(text, o.fsxOps);
  for (const m of text.matchAll(/^FAIL (.*)$/gm)) console.log(`FAIL ${m[1]}`);
  if (!text.includes('DONE')) console.log(`the guest stopped early (${r.reason})`);
}

interface DirCount {
  ok: number;
  notOk: number;
  todo: number;
  crashed: number;
}

function printPjdfstest(text: string, stores: string[]): void {
  const perStore = new Map<string, Map<string, DirCount>>();
  for (const m of text.matchAll(/^RESULT (\S+) (\S+)\/(\S+) (\d+) (\d+) (\d+) (\d+)/gm)) {
    const dirs = perStore.get(m[1]!) ?? new Map<string, DirCount>();
    perStore.set(m[1]!, dirs);
    const d = dirs.get(m[2]!) ?? { ok: 0, notOk: 0, todo: 0, crashed: 0 };
    const [ok, notOk, todo, status] = [Number(m[4]), Number(m[5]), Number(m[6]), Number(m[7])];
    d.ok += ok;
    d.notOk += notOk;
    d.todo += todo;
    // No output at all, or killed by the hour-long timeout (status 124/143) or a signal.
    if (ok + notOk + todo === 0 || status > 1) d.crashed++;
    dirs.set(m[2]!, d);
  }
  const pct = (a: number, b: number) => (b === 0 ? '-' : `${((100 * a) / b).toFixed(1)} %`);
  console.log('\npjdfstest: "not ok" leaves out the TODO tests (the suite expects those to fail on Linux); ok % is of ok + not ok + TODO.');
  for (const st of stores) {
    const dirs = perStore.get(st);
    if (dirs === undefined) {
      console.log(`\n${WHERE[st]}: no results`);
      continue;
    }
    console.log(`\n${WHERE[st]}`);
    console.log('| directory | ok | not ok | TODO | ok % | files without output or killed |');
    console.log('|---|---|---|---|---|---|');
    const all: DirCount = { ok: 0, notOk: 0, todo: 0, crashed: 0 };
    for (const [d, v] of [...dirs.entries()].sort()) {
      all.ok += v.ok;
      all.notOk += v.notOk;
      all.todo += v.todo;
      all.crashed += v.crashed;
      console.log(`| ${d} | ${v.ok} | ${v.notOk} | ${v.todo} | ${pct(v.ok, v.ok + v.notOk + v.todo)} | ${v.crashed} |`);
    }
    console.log(`| **all** | ${all.ok} | ${all.notOk} | ${all.todo} | ${pct(all.ok, all.ok + all.notOk + all.todo)} | ${all.crashed} |`);
  }
}

function printFsx(text: string, ops: number): void {
  const runs: FsxRun[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, line] of lines.entries()) {
    const m = /^FSX (\S+) (\S+) (\d+) (\S+) (\S+) (.*)$/.exec(line);
    if (m === null) continue;
    const notes: string[] = [];
    for (let j = i + 1; j < lines.length && lines[j]!.startsWith('  '); j++) notes.push(lines[j]!.trim());
    runs.push({ store: m[1]!, mode: m[2]!, status: Number(m[3]), minutes: (Number(m[5]) - Number(m[4])) / 60, last: m[6]!.trim(), notes });
  }
  console.log(`\nfsx -N ${ops} -S 1`);
  console.log('| store | run | exit status | guest minutes | last line |');
  console.log('|---|---|---|---|---|');
  for (const f of runs) {
    const how = f.mode === 'none' ? 'cache=none, -R -W' : f.mode === 'mmap' ? 'cache=mmap, mapping on' : 'mapping on';
    console.log(`| ${WHERE[f.store] ?? f.store} | ${how} | ${f.status} | ${f.minutes.toFixed(1)} | ${f.last} |`);
  }
  for (const f of runs) for (const n of f.notes) console.log(`${f.store} ${f.mode}: ${n}`);
  if (runs.length === 0) console.log('no fsx run finished');
}

await main();
