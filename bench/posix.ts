/**
 * POSIX behaviour of storvm's 9p shares, measured in the guest with pjdfstest.
 *
 *   npx tsx bench/posix.ts --pjdfstest DIR [--backend host|passthrough|mem] [--only chmod,link,...]
 *                          [--scratch DIR] [--mem MiB]
 *
 * DIR is a checkout of github.com/pjd/pjdfstest that you provide. Its sources are copied to a
 * scratch folder outside the repository (default $TMPDIR/storvm-posix) and built there, static,
 * for riscv64 with Debian's cross compiler (apt-get install gcc-riscv64-linux-gnu autoconf
 * automake). Nothing of pjdfstest goes into storvm. One guest then runs every `.t` file, one
 * shell per file, as root, in a 9p share over the chosen backend (`host`: HostFs, mapped
 * metadata; `passthrough`: HostFs with the host's own metadata; `mem`: MemFs), and the script
 * prints ok / not ok per directory. The suite's tests directory reaches the guest on a second,
 * read-only share.
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
import { Virtio9p } from '../src/devices/p9/device.js';
import { Machine } from '../src/machine/machine.js';
import { HostFs } from '../src/node/host-fs.js';
import { nodeHost } from '../src/node/host.js';

const GUEST = new URL('../guest-images/', import.meta.url);

function die(msg: string): never {
  process.stderr.write(`posix: ${msg}\n`);
  process.exit(2);
}

function args(argv: string[]) {
  const o = { pjdfstest: '', backend: 'host', only: [] as string[], scratch: path.join(os.tmpdir(), 'storvm-posix'), mem: 512 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    const need = () => v ?? die(`${argv[i]} needs a value`);
    switch (argv[i]) {
      case '--pjdfstest':
        o.pjdfstest = path.resolve(need());
        i++;
        break;
      case '--backend':
        o.backend = need();
        i++;
        if (!['host', 'passthrough', 'mem'].includes(o.backend)) die(`--backend ${o.backend}: use host, passthrough or mem`);
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
  if (o.pjdfstest === '') die('give --pjdfstest DIR, a checkout of github.com/pjd/pjdfstest');
  if (!fs.existsSync(path.join(o.pjdfstest, 'pjdfstest.c'))) die(`${o.pjdfstest}: no pjdfstest.c here`);
  const repo = path.resolve(new URL('..', import.meta.url).pathname);
  if (o.scratch === repo || o.scratch.startsWith(repo + path.sep)) die('--scratch must be outside the repository');
  return o;
}

function run(cmd: string, argv: string[], cwd: string): void {
  const r = spawnSync(cmd, argv, { cwd, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.error !== undefined) die(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) die(`${cmd} ${argv.join(' ')} failed in ${cwd}:\n${r.stderr.split('\n').slice(-8).join('\n')}`);
}

/** Builds pjdfstest static for riscv64 and stages what the guest needs in scratch/tools. */
function build(src: string, scratch: string): string {
  if (spawnSync('riscv64-linux-gnu-gcc', ['--version']).status !== 0) {
    die('riscv64-linux-gnu-gcc not found: apt-get install gcc-riscv64-linux-gnu autoconf automake');
  }
  const work = path.join(scratch, 'build');
  fs.rmSync(work, { recursive: true, force: true });
  fs.cpSync(src, work, { recursive: true, filter: (p) => !p.includes(`${path.sep}.git`) });
  run('autoreconf', ['-ifs'], work);
  run('./configure', ['--host=riscv64-linux-gnu', 'CC=riscv64-linux-gnu-gcc', 'CFLAGS=-O2 -static', 'LDFLAGS=-static'], work);
  run('make', ['pjdfstest'], work);
  const tools = path.join(scratch, 'tools');
  fs.rmSync(tools, { recursive: true, force: true });
  fs.mkdirSync(path.join(tools, 'bin'), { recursive: true });
  fs.copyFileSync(path.join(work, 'pjdfstest'), path.join(tools, 'pjdfstest'));
  fs.chmodSync(path.join(tools, 'pjdfstest'), 0o755);
  fs.cpSync(path.join(src, 'tests'), path.join(tools, 'tests'), { recursive: true });
  fs.writeFileSync(path.join(tools, 'bin', 'openssl'), '#!/bin/sh\nmd5sum | awk \'{print $1}\'\n', { mode: 0o755 });
  fs.writeFileSync(
    path.join(tools, 'run.sh'),
    [
      '#!/bin/sh',
      '# run.sh TOOLS WORK [DIR...]: every .t file of each DIR, one shell each, in WORK',
      'T=$1; W=$2; shift 2',
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
      '    echo "RESULT $d/$(basename $t) $ok $(( $(echo "$out" | grep -c \'^not ok\') - todo )) $todo $st"',
      '    echo "$out" | grep \'^not ok\' | grep -v \'# TODO\' | head -3 | sed \'s/^/  /\'',
      '  done',
      'done',
      'echo DONE',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return tools;
}

async function main(): Promise<void> {
  const o = args(process.argv.slice(2));
  const tools = build(o.pjdfstest, o.scratch);
  const share = path.join(o.scratch, 'share');
  if (fs.existsSync(share)) spawnSync('rm', ['-rf', share]); // rm walks trees deeper than PATH_MAX
  fs.mkdirSync(share, { recursive: true });
  const backend: FsBackend =
    o.backend === 'mem' ? new MemFs({ capacity: 256 << 20 }) : new HostFs(share, { mode: o.backend === 'passthrough' ? 'passthrough' : 'mapped' });
  const cmd = `sh /mnt/tools/run.sh /mnt/tools /mnt/host ${o.only.join(' ')}`;
  const bootargs = [
    'console=ttyS0 quiet loglevel=1',
    'storvm.share=host:/mnt/host',
    'storvm.share=tools:/mnt/tools:ro',
    `storvm.cmd=${Buffer.from(cmd).toString('base64')}`,
  ].join(' ');
  let text = '';
  const td = new TextDecoder();
  const started = Date.now();
  const machine = new Machine({
    memoryMiB: o.mem,
    kernel: gunzipSync(fs.readFileSync(new URL('Image.gz', GUEST))),
    initrd: gunzipSync(fs.readFileSync(new URL('initramfs.cpio.gz', GUEST))),
    bootargs,
    devices: [new Virtio9p(backend, { tag: 'host' }), new Virtio9p(new HostFs(tools, { readOnly: true }), { tag: 'tools' })],
    deterministic: false,
    host: nodeHost,
    onConsole: (b) => {
      const s = td.decode(b, { stream: true });
      text += s;
      process.stderr.write(s);
    },
  });
  const r = await machine.run();
  const perDir = new Map<string, { ok: number; notOk: number; todo: number; files: number; crashed: number }>();
  for (const m of text.matchAll(/^RESULT (\S+)\/(\S+) (\d+) (\d+) (\d+) (\d+)/gm)) {
    const d = perDir.get(m[1]!) ?? { ok: 0, notOk: 0, todo: 0, files: 0, crashed: 0 };
    const [ok, notOk, todo, status] = [Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])];
    d.ok += ok;
    d.notOk += notOk;
    d.todo += todo;
    d.files++;
    // No output at all, or killed by the hour-long timeout (status 124/143) or a signal.
    if (ok + notOk + todo === 0 || status > 1) d.crashed++;
    perDir.set(m[1]!, d);
  }
  const pct = (a: number, b: number) => (b === 0 ? '-' : `${((100 * a) / b).toFixed(1)} %`);
  const rows = [...perDir.entries()].sort();
  let ok = 0;
  let all = 0;
  console.log(`\npjdfstest over 9p, backend ${o.backend}, ${new Date().toISOString().slice(0, 10)}, ${((Date.now() - started) / 60000).toFixed(1)} min`);
  console.log('"not ok" leaves out the TODO tests (the suite expects those to fail on Linux); ok % is of ok + not ok + TODO.');
  console.log('| directory | ok | not ok | TODO | ok % | files without output or killed |');
  console.log('|---|---|---|---|---|---|');
  let todo = 0;
  for (const [d, v] of rows) {
    ok += v.ok;
    todo += v.todo;
    all += v.ok + v.notOk + v.todo;
    console.log(`| ${d} | ${v.ok} | ${v.notOk} | ${v.todo} | ${pct(v.ok, v.ok + v.notOk + v.todo)} | ${v.crashed} |`);
  }
  console.log(`| **all** | ${ok} | ${all - ok - todo} | ${todo} | ${pct(ok, all)} | |`);
  if (!text.includes('DONE')) console.log(`the guest stopped early (${r.reason})`);
}

await main();
