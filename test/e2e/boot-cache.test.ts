/**
 * End to end: the boot cache. A run restored from the cache gives the guest command the same
 * world as a cold boot; anything that could change what the kernel saw while booting misses;
 * damaged entries are rebuilt; runs at once don't trip over each other.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/node/cli.js';
import { DEFAULT_CPU } from '../../src/riscv/engine.js';
import { launch } from '../../src/node/launch.js';
import { parseMachineArgs } from '../../src/node/options.js';
import { decodeEntry, listEntries } from '../../src/node/boot-cache.js';
import { RECORD_BLOCK } from '../../src/backends/block/read-record.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const EXT4 = join(ROOT, 'guest-images/test-ext4.img.gz');
const CACHE = mkdtempSync(join(tmpdir(), 'storvm-bootcache-e2e-'));
process.env.STORVM_CACHE_DIR = CACHE;
delete process.env.STORVM_NO_BOOT_CACHE;

async function storvm(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { write: (s) => (out += typeof s === 'string' ? s : Buffer.from(s).toString()) }, { write: (s) => (err += String(s)) });
  return { code, out, err };
}

/** What launch decides for these options, without running the guest. */
async function cacheDecision(...argv: string[]): Promise<string> {
  const l = await launch(parseMachineArgs([...argv, '--', 'true'], true), () => {});
  await l.close();
  return l.bootCache;
}

/** A full run through launch: output, exit status, instructions retired, and the cache decision. */
async function runLaunched(argv: string[], command: string) {
  let out = '';
  const l = await launch(parseMachineArgs([...argv, '--', command], true), (b) => (out += Buffer.from(b).toString('latin1')));
  try {
    const r = await l.machine.run();
    return { out, code: r.exitCode, instructions: r.instructions, bootCache: l.bootCache };
  } finally {
    await l.close();
  }
}

function workDir(): { share: string; disk: string } {
  const dir = mkdtempSync(join(tmpdir(), 'storvm-bc-'));
  const share = join(dir, 'share');
  mkdirSync(share);
  writeFileSync(join(share, 'from-host.txt'), 'written on the host\n');
  const disk = join(dir, 'disk.img');
  writeFileSync(disk, new Uint8Array(1 << 20));
  return { share, disk };
}

const entries = async () => listEntries(join(CACHE, 'boot'));

describe('the boot cache', () => {
  it('a warm run gives the command what a cold boot gives it: output, status, shares and disks', async () => {
    const script = [
      'cat /mnt/host/from-host.txt',
      'echo written in the guest > /mnt/host/from-guest.txt',
      'printf STORVM-BLOCK | dd of=/dev/vda bs=512 seek=3 conv=sync 2>/dev/null',
      'mkdir /mnt/e && mount -t ext4 -o ro /dev/vdb /mnt/e && cat /mnt/e/hello.txt && wc -l < /mnt/e/dir/numbers.txt',
      'grep -c . /proc/mounts; ls -1 /mnt',
      // Quotes, a backslash, a control byte, UTF-8 and a newline cross to init intact.
      String.raw`printf '%s|' "it's" 'back\slash' "$(printf '\001')" é | od -An -c` + '\necho two-lines',
      'exit 7',
    ].join('; ');
    const results = [];
    for (const mode of ['--no-boot-cache', 'cold', 'warm']) {
      const w = workDir();
      const opts = ['--mem', '64', '--share', w.share, '--disk', w.disk, '--disk', `${EXT4}:ro`];
      const before = await entries();
      if (mode === 'warm') expect(await cacheDecision(...opts)).toBe('hit');
      const r = await storvm('run', ...(mode === '--no-boot-cache' ? [mode] : []), ...opts, '--', script);
      const after = await entries();
      if (mode === '--no-boot-cache') expect(after).toEqual(before);
      if (mode === 'cold') expect(after.length).toBe(before.length + 1);
      if (mode === 'warm') {
        // Restored, not rebuilt: the same file (inode), used again.
        expect(after.length).toBe(before.length);
        const [b, a] = [before[0]!, after[0]!];
        expect(statSync(a.file).ino).toBe(statSync(b.file).ino);
        expect(a.used.getTime()).toBeGreaterThanOrEqual(b.used.getTime());
      }
      const img = readFileSync(w.disk);
      results.push({ ...r, fromGuest: readFileSync(join(w.share, 'from-guest.txt'), 'utf8'), block: img.subarray(3 * 512, 4 * 512).toString('latin1') });
    }
    expect(results[0]!.err).toBe('');
    expect(results[0]!.code).toBe(7);
    expect(results[0]!.out).toMatch(/^written on the host\nhello from ext4\n10000\n\d+\ne\nhost\n/);
    expect(results[0]!.out.slice(results[0]!.out.lastIndexOf('host\n') + 5)).toBe(String.raw`   i   t   '   s   |   b   a   c   k   \   s   l   a   s   h   |` + '\n 001   | 303 251   |\ntwo-lines\n');
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
  });

  it('misses on another disk size, --append, memory or engine, and on changed blocks the kernel read', async () => {
    const w = workDir();
    const opts = ['--mem', '64', '--disk', w.disk];
    expect(await cacheDecision(...opts)).toBe('miss');
    const r = await storvm('run', ...opts, '--', 'dd if=/dev/vda bs=4096 skip=100 count=1 2>/dev/null | od -An -c | head -1');
    expect(r.code).toBe(0);
    expect(await cacheDecision(...opts)).toBe('hit');
    const entry = (await entries())[0]!;
    const { header } = decodeEntry(readFileSync(entry.file), entry.key, [1 << 20]);
    const runs = header.disks[0]!.runs;
    expect(runs[0]![0]).toBe(0); // the partition table
    const unread = [...Array(256).keys()].reverse().find((b) => !runs.some(([f, n]) => b >= f && b < f + n))!;
    expect(unread).toBeGreaterThan(100);

    const bigger = join(mkdtempSync(join(tmpdir(), 'storvm-bc-')), 'disk.img');
    writeFileSync(bigger, new Uint8Array(2 << 20));
    expect(await cacheDecision('--mem', '64', '--disk', bigger)).toBe('miss');
    expect(await cacheDecision(...opts, '--append', 'storvm.test=1')).toBe('miss');
    expect(await cacheDecision('--mem', '96', '--disk', w.disk)).toBe('miss');
    expect(await cacheDecision(...opts, '--cpu', DEFAULT_CPU === 'wasm' ? 'interp' : 'wasm')).toBe('miss'); // the other engine
    expect(await cacheDecision(...opts, '--deterministic')).toBe('miss');
    expect(await cacheDecision('--mem', '64', '--disk', `${w.disk}:ro`)).toBe('miss');
    expect(await cacheDecision(...opts)).toBe('hit');

    // A block the kernel did not read may change: still a hit, and the guest sees the new bytes.
    const img = readFileSync(w.disk);
    img.set(Buffer.from('NEW'), unread * RECORD_BLOCK);
    writeFileSync(w.disk, img);
    expect(await cacheDecision(...opts)).toBe('hit');
    const seen = await storvm('run', ...opts, '--', `dd if=/dev/vda bs=4096 skip=${unread} count=1 2>/dev/null | head -c 3`);
    expect(seen.out).toBe('NEW');
    // One it read may not: a cold boot, and the entry is made again for this disk.
    img.set(Buffer.from('MBR'), 0x1b8);
    writeFileSync(w.disk, img);
    expect(await cacheDecision(...opts)).toBe('miss');
  });

  it('a damaged or foreign entry is not trusted: the run boots cold and the entry is rebuilt', async () => {
    const opts = ['--mem', '64'];
    const r0 = await storvm('run', ...opts, '--', 'echo built');
    expect(r0.out).toBe('built\n');
    const file = (await entries())[0]!.file;
    expect(await cacheDecision(...opts)).toBe('hit');
    const good = readFileSync(file);
    const flipped = Buffer.from(good);
    flipped[Math.floor(good.length / 2)]! ^= 0x40; // in the RAM section
    const header = Buffer.from(good);
    header[30]! ^= 0x01; // inside the header JSON
    for (const bad of [flipped, good.subarray(0, good.length - 1000), Buffer.from('not an entry'), header]) {
      writeFileSync(file, bad);
      expect(await cacheDecision(...opts)).toBe('miss');
      expect(() => statSync(file)).toThrow(); // deleted, not left to fail again
    }
    // A good entry under another key's name: made for other inputs.
    const r1 = await storvm('run', '--mem', '64', '--disk', `${EXT4}:ro`, '--', 'echo other');
    expect(r1.out).toBe('other\n');
    const other = (await entries())[0]!.file;
    expect(other).not.toBe(file);
    expect(await cacheDecision('--mem', '64', '--disk', `${EXT4}:ro`)).toBe('hit');
    writeFileSync(other, good);
    expect(await cacheDecision('--mem', '64', '--disk', `${EXT4}:ro`)).toBe('miss');
    // And a cold run after damage rebuilds the entry, which the next run uses.
    writeFileSync(file, flipped);
    const r2 = await storvm('run', ...opts, '--', 'echo rebuilt');
    expect(r2.out).toBe('rebuilt\n');
    expect(await cacheDecision(...opts)).toBe('hit');
  });

  it('two runs at once, cold and then warm, both succeed and leave one good entry', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-bc-concurrent-'));
    const env = { ...process.env, STORVM_CACHE_DIR: dir };
    const child = (word: string) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const c = spawn(process.execPath, ['bin/storvm.mjs', 'run', '--mem', '64', '--', `echo ${word}`], { cwd: ROOT, env });
        let out = '';
        let err = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.stderr.on('data', (d: Buffer) => (err += d.toString()));
        c.on('exit', (code) => resolve({ code, out, err }));
      });
    for (const round of ['cold', 'warm']) {
      const [a, b] = await Promise.all([child(`a-${round}`), child(`b-${round}`)]);
      expect(a).toEqual({ code: 0, out: `a-${round}\n`, err: '' });
      expect(b).toEqual({ code: 0, out: `b-${round}\n`, err: '' });
      const list = await listEntries(join(dir, 'boot'));
      expect(list.length).toBe(1);
    }
    process.env.STORVM_CACHE_DIR = dir;
    try {
      expect(await cacheDecision('--mem', '64')).toBe('hit');
    } finally {
      process.env.STORVM_CACHE_DIR = CACHE;
    }
  }, 240_000);

  it('--deterministic --verbose: a warm run prints the same bytes (kernel log replayed) and retires the same instructions', async () => {
    const argv = ['--mem', '64', '--deterministic', '--verbose'];
    const cmd = 'cat /proc/uptime; echo $((RANDOM % 1000)); ls /proc/self/fd | wc -l';
    const cold = await runLaunched(argv, cmd);
    const warm = await runLaunched(argv, cmd);
    expect(cold.bootCache).toBe('miss');
    expect(warm.bootCache).toBe('hit');
    expect(cold.out).toContain('Linux version 6.12');
    expect(warm.out).toBe(cold.out);
    expect(warm.instructions).toBe(cold.instructions);
    expect(warm.code).toBe(0);
  }, 240_000);

  it('a snapshot the user takes before init has its line (Ctrl-A s early in a cold boot) restores and runs the command', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-bc-early-'));
    process.env.STORVM_CACHE_DIR = join(dir, 'cache'); // cold: this run builds the entry
    const file = join(dir, 'early.snap');
    try {
      const cold = await launch(parseMachineArgs(['--mem', '64', '--', 'echo ran-$((6*7)); exit 5'], true), () => {});
      expect(cold.bootCache).toBe('miss');
      const running = cold.machine.run();
      // Taken at the first slice boundary, long before init prints its marker.
      const snap = await cold.machine.save({ meta: cold.snapshotMeta });
      expect((await running).exitCode).toBe(5);
      await cold.close();
      writeFileSync(file, snap);
      let out = '';
      const restored = await launch(parseMachineArgs(['--restore', file], false), (b) => (out += Buffer.from(b).toString('latin1')));
      try {
        const r = await restored.machine.run();
        expect(r.reason).toBe('poweroff');
        expect(r.exitCode).toBe(5);
        expect(out).toContain('ran-42');
        expect(out).not.toContain('storvm-'); // the markers are taken out
      } finally {
        await restored.close();
      }
    } finally {
      process.env.STORVM_CACHE_DIR = CACHE;
    }
  }, 240_000);
});
