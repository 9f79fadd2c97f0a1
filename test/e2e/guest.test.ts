/**
 * End to end: boot the committed guest (guest-images/) and check what crosses the storage
 * devices. Few and fast: each boot takes a few seconds.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/node/cli.js';
import { launch } from '../../src/node/launch.js';
import { parseMachineArgs } from '../../src/node/options.js';

const hasScript = spawnSync('script', ['--version']).status === 0;
if (!hasScript) console.warn('e2e: util-linux script is not installed: the terminal test is skipped');

const EXT4 = new URL('../../guest-images/test-ext4.img.gz', import.meta.url).pathname;

async function storvm(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { write: (s) => (out += typeof s === 'string' ? s : Buffer.from(s).toString()) }, { write: (s) => (err += String(s)) });
  return { code, out, err };
}

describe('storvm run (boots Linux)', () => {
  it('moves files both ways over 9p, writes /dev/vda into the host image, mounts ext4, and returns the exit status', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-e2e-'));
    const share = join(dir, 'share');
    const disk = join(dir, 'disk.img');
    (await import('node:fs')).mkdirSync(share);
    writeFileSync(join(share, 'from-host.txt'), 'written on the host\n');
    writeFileSync(disk, new Uint8Array(1 << 20));
    const script = [
      'cat /mnt/host/from-host.txt',
      'echo written in the guest > /mnt/host/from-guest.txt',
      'printf STORVM-BLOCK | dd of=/dev/vda bs=512 seek=3 conv=sync 2>/dev/null',
      'mkdir /mnt/e && mount -t ext4 -o ro /dev/vdb /mnt/e && cat /mnt/e/hello.txt && wc -l < /mnt/e/dir/numbers.txt',
      'exit 7',
    ].join('; ');
    // With the translator: 9p, blk and ext4 through translated kernel code.
    const r = await storvm('run', '--mem', '64', '--cpu', 'wasm', '--share', share, '--disk', disk, '--disk', `${EXT4}:ro`, '--', script);
    expect(r.err).toBe('');
    expect(r.out).toBe('written on the host\nhello from ext4\n10000\n');
    expect(r.code).toBe(7);
    expect(readFileSync(join(share, 'from-guest.txt'), 'utf8')).toBe('written in the guest\n');
    const img = readFileSync(disk);
    expect(img.subarray(3 * 512, 3 * 512 + 12).toString()).toBe('STORVM-BLOCK');
    expect(img.subarray(3 * 512 + 12, 4 * 512).every((b) => b === 0)).toBe(true);
  });

  it('--trace blk,9p --trace-file writes decoded requests there and leaves the command output alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-trace-'));
    const share = join(dir, 'share');
    (await import('node:fs')).mkdirSync(share);
    writeFileSync(join(share, 'x.txt'), 'traced\n');
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, new Uint8Array(1 << 20));
    const log = join(dir, 'trace.log');
    const cmd = 'cat /mnt/host/x.txt; dd if=/dev/vda of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null';
    const r = await storvm('run', '--mem', '64', '--trace', 'blk,9p', '--trace-file', log, '--share', share, '--disk', disk, '--', cmd);
    expect(r.err).toBe('');
    expect(r.out).toBe('traced\n');
    expect(r.code).toBe(0);
    const trace = readFileSync(log, 'utf8');
    expect(trace).toMatch(/^blk vda READ +sector +0 +4096 B +OK +\d+\.\d{3} ms$/m);
    expect(trace).toMatch(/^9p  Tversion .*->  Rversion/m);
    expect(trace).toMatch(/^9p  Twalk .*"x\.txt"/m);
    expect(trace).toMatch(/^# blk: \d+ requests, .* ms mean device time$/m);
    expect(trace).toMatch(/^# 9p: \d+ messages, /m);
  });

  it('storvm boot gives a shell that reads piped stdin and powers off at its end', () => {
    const out = execFileSync(process.execPath, ['bin/storvm.mjs', 'boot', '--mem', '64'], {
      cwd: new URL('../../', import.meta.url),
      input: 'echo piped-$((6*7))\nexit\n',
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(out).toContain('\npiped-42\r\n');
  });

  it.skipIf(!hasScript)('storvm boot on a terminal: raw keys reach the guest and Ctrl-A x quits', async () => {
    // util-linux `script` gives storvm a pseudo-terminal, as an interactive user has.
    const child = spawn('script', ['-qfec', `${process.execPath} bin/storvm.mjs boot --mem 64`, '/dev/null'], {
      cwd: new URL('../../', import.meta.url),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const until = async (text: string) => {
      for (let i = 0; i < 600 && !out.includes(text); i++) await new Promise((r) => setTimeout(r, 100));
      expect(out).toContain(text);
    };
    await until('~ # ');
    child.stdin.write('echo tty-$((3*4))\r');
    await until('tty-12');
    child.stdin.write('\x01x'); // Ctrl-A x
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
  });

  it('replays exactly in deterministic mode, host-file disk I/O included, on either CPU engine', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-det-'));
    const runOnce = async (n: number, cpu: 'interp' | 'wasm') => {
      // A FileDisk completes on the host's thread pool, at times that differ run to run.
      const disk = join(dir, `disk${n}.img`);
      writeFileSync(disk, new Uint8Array(4 << 20).fill(n)); // different bytes, same guest work
      let out = '';
      const cmd = 'dd if=/dev/vda of=/dev/null bs=64k 2>/dev/null; dd if=/dev/zero of=/dev/vda bs=4k count=64 2>/dev/null; sync; cat /proc/uptime; echo $RANDOM';
      const args = parseMachineArgs(['--mem', '64', '--deterministic', '--cpu', cpu, '--disk', disk, '--', cmd], true);
      const { machine, close } = await launch(args, (b) => (out += Buffer.from(b).toString()));
      const r = await machine.run();
      await close();
      return { out, instructions: r.instructions, code: r.exitCode, translated: machine.hart.jit?.stats.retired ?? 0 };
    };
    const a = await runOnce(1, 'wasm');
    const b = await runOnce(2, 'wasm');
    // The interpreter is the oracle: the same instructions retire in the same order, so the
    // guest sees the same clock and prints the same bytes.
    const c = await runOnce(3, 'interp');
    expect(a.code).toBe(0);
    expect(a.out).toMatch(/^\d+\.\d+ \d+\.\d+\n\d+\n$/);
    expect(a.translated).toBeGreaterThan(0);
    expect(b).toEqual(a);
    expect({ ...c, translated: a.translated }).toEqual(a);
  });
});
