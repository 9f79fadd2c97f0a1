/**
 * Snapshots of the booted guest: saved at the prompt and in the middle of 9p and blk I/O, resumed
 * on fresh devices over the same disks and shares; refused for other disks, other devices and
 * damaged files; deterministic runs resume exactly; the CLI's --save-on-exit, Ctrl-A s,
 * `snapshot info` and `boot --restore`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CPU } from '../../src/riscv/engine.js';
import { Machine, type RestoreOptions } from '../../src/machine/machine.js';
import { readSnapshot, SnapshotError, writeSnapshot } from '../../src/machine/snapshot-format.js';
import { main } from '../../src/node/cli.js';
import { nodeCodec, nodeHost } from '../../src/node/host.js';
import { launch, type Launched } from '../../src/node/launch.js';
import { parseMachineArgs } from '../../src/node/options.js';

const hasScript = spawnSync('script', ['--version']).status === 0;
if (!hasScript) console.warn('snapshot e2e: util-linux script is not installed: the Ctrl-A s terminal test is skipped');

const EXT4 = new URL('../../guest-images/test-ext4.img.gz', import.meta.url).pathname;
// These tests snapshot machines that launch() boots and restore them with Machine.restore
// directly, at points in the boot and with devices of their own: they want the plain boot, not the
// boot cache's (whose init waits at its start for a line only launch() types).
process.env.STORVM_NO_BOOT_CACHE = '1';
const enc = new TextEncoder();

/** A console that collects what the guest prints and waits for text. */
class Console {
  text = '';
  readonly sink = (b: Uint8Array) => void (this.text += Buffer.from(b).toString());
  async until(s: string, from = 0, ms = 120_000): Promise<void> {
    const end = Date.now() + ms;
    while (!this.text.includes(s, from)) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${JSON.stringify(s)}; console ends with ${JSON.stringify(this.text.slice(-300))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

async function restoreOn(argv: string[], snap: Uint8Array, con: Console, extra: Partial<RestoreOptions> = {}): Promise<{ m: Machine; launched: Launched }> {
  const launched = await launch(parseMachineArgs(argv, false), () => {});
  try {
    const m = await Machine.restore(snap, { devices: launched.machine.transports.map((t) => t.device), host: nodeHost, onConsole: con.sink, codec: nodeCodec, ...extra });
    return { m, launched };
  } catch (e) {
    await launched.close();
    throw e;
  }
}

describe('snapshots of the booted guest', () => {
  it('resume at the prompt and in the middle of 9p and blk I/O, with disks and shares still working', { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-snap-'));
    const share = join(dir, 'share');
    mkdirSync(share);
    writeFileSync(join(share, 'host.txt'), 'from the host\n');
    const raw = join(dir, 'raw.img');
    writeFileSync(raw, new Uint8Array(16 << 20));
    const argv = ['--mem', '64', '--share', share, '--disk', raw, '--disk', EXT4];
    const con = new Console();
    const a = await launch(parseMachineArgs(argv, false), con.sink);
    const running = a.machine.run();
    await con.until('# ');
    const type = (m: Machine, s: string) => m.input(enc.encode(s + '\n'));
    type(a.machine, 'mkdir -p /mnt/e && mount -t ext4 /dev/vdb /mnt/e && echo ext4-cached > /mnt/e/new.txt && cd /mnt/host && exec 3<host.txt && echo step-$((1+1))');
    await con.until('step-2');
    const atPrompt = await a.machine.save({ codec: nodeCodec });
    // The raw disk is written in place: a snapshot goes with the disk as it was then.
    const rawAtPrompt = join(dir, 'raw-at-prompt.img');
    copyFileSync(raw, rawAtPrompt);
    // In the middle of I/O: a 9p write and a blk write running in the background. Stopped
    // first, so the raw disk stays as the snapshot has it (the stop drains what is in flight).
    type(a.machine, '(dd if=/dev/zero of=/mnt/host/big bs=4k count=4000 2>/dev/null; echo 9p-done) & (dd if=/dev/urandom of=/dev/vda bs=4k count=3000 oflag=direct 2>/dev/null; echo blk-done) &');
    await new Promise((r) => setTimeout(r, 200));
    a.machine.stop();
    await running;
    const midIo = await a.machine.save({ codec: nodeCodec });
    await a.close();
    expect(con.text).not.toMatch(/9p-done\r\n/); // (the typed command line echoes the words)
    expect(atPrompt.length).toBeLessThan(10e6);

    // 1: from the prompt. The ext4 file written before the save is in the overlay and page cache.
    {
      const c = new Console();
      const { m, launched } = await restoreOn(['--mem', '64', '--share', share, '--disk', rawAtPrompt, '--disk', EXT4], atPrompt, c);
      const r = m.run();
      type(m, 'cat <&3; cat /mnt/e/new.txt; echo more > /mnt/e/more.txt; echo guest-wrote > from-guest.txt; sync; echo 3 > /proc/sys/vm/drop_caches; cat /mnt/e/more.txt; ls /mnt/host | tr "\\n" " "; echo; echo done-$((2*3))');
      await c.until('done-6');
      m.stop();
      await r;
      await launched.close();
      expect(c.text).toContain('from the host\r\next4-cached\r\nmore\r\n');
      expect(c.text).toMatch(/from-guest\.txt {2}host\.txt|from-guest\.txt host\.txt/);
      expect(readFileSync(join(share, 'from-guest.txt'), 'utf8')).toBe('guest-wrote\n');
    }
    // 2: from the middle of I/O: both writes finish after the restore.
    {
      const c = new Console();
      const { m, launched } = await restoreOn(argv, midIo, c);
      const r = m.run();
      await c.until('9p-done\r\n');
      await c.until('blk-done\r\n');
      type(m, 'wait; sync; ls -l /mnt/host/big | tr -s " " | cut -d" " -f5; echo io-$((3*3))');
      await c.until('io-9');
      m.stop();
      await r;
      await launched.close();
      expect(c.text).toContain('16384000');
      expect(statSync(join(share, 'big')).size).toBe(16384000);
    }

    // Refusals: another raw disk, another device list, a damaged file.
    const other = join(dir, 'other.img');
    writeFileSync(other, new Uint8Array(16 << 20).fill(1, 0, 1));
    const c = new Console();
    await expect(restoreOn(['--mem', '64', '--share', share, '--disk', raw, '--disk', EXT4], atPrompt, c)).rejects.toThrow(/the disk image differs/);
    await expect(restoreOn(['--mem', '64', '--share', share, '--disk', other, '--disk', EXT4], atPrompt, c)).rejects.toThrow(/virtio slot 0 \(virtio-blk\): the disk image differs/);
    await expect(restoreOn(['--mem', '64', '--share', share], atPrompt, c)).rejects.toThrow(/the snapshot has 3 virtio devices, 1 given/);
    await expect(restoreOn(['--mem', '64', '--disk', rawAtPrompt, '--disk', EXT4, '--disk', other], atPrompt, c)).rejects.toThrow(/slot 2: the snapshot has a virtio-9p device there, a virtio-blk was given/);
    // A state that passed the CRCs is still checked field by field; the SBI timer may be 2^64-1.
    const withState = (edit: (st: { machine: Record<string, unknown>; hart: Record<string, unknown> }) => void) => {
      const sections = readSnapshot(atPrompt).map((x) => ({ tag: x.tag, data: x.data }));
      const st = sections.find((x) => x.tag === 'STAT')!;
      const obj = JSON.parse(new TextDecoder().decode(st.data));
      edit(obj);
      st.data = enc.encode(JSON.stringify(obj));
      return writeSnapshot(sections);
    };
    const off = await restoreOn(['--mem', '64', '--share', share, '--disk', rawAtPrompt, '--disk', EXT4], withState((st) => (st.machine.stimecmp = 2 ** 64)), c);
    await off.launched.close();
    for (const [what, edit] of [
      ['stimecmp', (st: { machine: Record<string, unknown> }) => (st.machine.stimecmp = -1)],
      ['priv', (st: { hart: Record<string, unknown> }) => (st.hart.priv = 2)],
      ['xl', (st: { hart: Record<string, unknown> }) => (st.hart.xl = [1, 2, 3])],
      ['memoryMiB', (st: { machine: Record<string, unknown> }) => (st.machine.memoryMiB = 1 << 20)],
    ] as const) {
      const err = await restoreOn(['--mem', '64', '--share', share, '--disk', rawAtPrompt, '--disk', EXT4], withState(edit as never), c).catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(SnapshotError);
      expect((err as SnapshotError).code, what).toBe('state');
    }
    for (const bad of [atPrompt.subarray(0, atPrompt.length >> 1), Uint8Array.from(atPrompt).fill(0, 5000, 5010)]) {
      const err = await restoreOn(argv, bad, c).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SnapshotError);
    }
  });

  it('a virtio-fs share: node ids and open handles come back by path; a handle whose file vanished answers EBADF', { timeout: 300_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-snapvfs-'));
    writeFileSync(join(dir, 'a.txt'), 'hello-vfs\n');
    writeFileSync(join(dir, 'gone.txt'), 'soon gone\n');
    const argv = ['--mem', '64', '--share', `${dir}:virtiofs`];
    const con = new Console();
    const a = await launch(parseMachineArgs(argv, false), con.sink);
    const running = a.machine.run();
    await con.until('# ');
    a.machine.input(enc.encode('exec 3</mnt/host/a.txt; exec 4</mnt/host/gone.txt; cd /mnt/host; ls -l >/dev/null; echo vfs-$((1+1))\n'));
    await con.until('vfs-2');
    a.machine.stop();
    await running;
    const snap = await a.machine.save({ codec: nodeCodec });
    await a.close();
    rmSync(join(dir, 'gone.txt'));
    const c = new Console();
    const { m, launched } = await restoreOn(argv, snap, c);
    const r = m.run();
    m.input(enc.encode('cat <&3; cat a.txt; echo from-restored > b.txt; sync; ls; cat <&4; echo vfs-done-$((2+2))\n'));
    await c.until('vfs-done-4');
    m.stop();
    await r;
    await launched.close();
    expect(c.text).toContain('hello-vfs\r\nhello-vfs\r\na.txt  b.txt\r\n');
    expect(c.text).toMatch(/Bad file descriptor/);
    expect(readFileSync(join(dir, 'b.txt'), 'utf8')).toBe('from-restored\n');
  });

  it('--deterministic: the restored run prints exactly what the uninterrupted run printed after the snapshot, with the same instret and status', { timeout: 180_000 }, async () => {
    const args = parseMachineArgs(['--mem', '64', '--deterministic', '--', 'i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done; exit 5'], true);
    const con = new Console();
    const a = await launch(args, con.sink);
    const running = a.machine.run();
    await con.until('line-100');
    const snap = await a.machine.save({ codec: nodeCodec });
    const whole = await running;
    await a.close();
    expect(whole.exitCode).toBe(5);

    // On the interpreter it was saved with, and on the translator (translations are rebuilt).
    for (const cpu of ['interp', 'wasm'] as const) {
      const b = await launch(args, () => {});
      const c = new Console();
      const m = await Machine.restore(snap, { devices: b.machine.transports.map((t) => t.device), host: nodeHost, onConsole: c.sink, codec: nodeCodec, cpu });
      const rest = await m.run();
      await b.close();
      expect(rest.exitCode, cpu).toBe(5);
      expect(rest.instructions, cpu).toBe(whole.instructions);
      expect(c.text).toContain('line-399');
      expect(c.text.length).toBeLessThan(con.text.length);
      expect(con.text.endsWith(c.text), cpu).toBe(true);
    }
  });

  it('round-trips at points during the boot: each restored machine boots on to the prompt and runs commands', { timeout: 400_000 }, async () => {
    const args = parseMachineArgs(['--mem', '64', '--verbose'], false); // kernel messages mark the points
    const con = new Console();
    const a = await launch(args, con.sink);
    const running = a.machine.run();
    const snaps: Uint8Array[] = [];
    const marks = ['Linux version', 'Run /init as init process'];
    for (const mark of marks) {
      await con.until(mark);
      snaps.push(await a.machine.save({ codec: nodeCodec }));
    }
    await con.until('# ');
    a.machine.stop();
    await running;
    await a.close();
    for (const [i, snap] of snaps.entries()) {
      const b = await launch(args, () => {});
      const c = new Console();
      const m = await Machine.restore(snap, { devices: [], host: nodeHost, onConsole: c.sink, codec: nodeCodec });
      const r = m.run();
      await c.until('# ');
      m.input(enc.encode(`echo boot-point-${i}-$((7*6))\n`));
      await c.until(`boot-point-${i}-42`);
      m.stop();
      await r;
      await b.close();
    }
  });
});

describe('storvm snapshot CLI', () => {
  async function storvm(...argv: string[]) {
    let out = '';
    let err = '';
    const code = await main(argv, { write: (s) => (out += typeof s === 'string' ? s : Buffer.from(s).toString()) }, { write: (s) => (err += String(s)) });
    return { code, out, err };
  }

  it('refuses bad input with one line and a non-zero status', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-snapcli-'));
    const junk = join(dir, 'junk.snap');
    writeFileSync(junk, 'not a snapshot at all');
    let r = await storvm('snapshot', 'info', junk);
    expect(r.code).toBe(1);
    expect(r.err).toBe('storvm: not a storvm snapshot (bad magic)\n');
    r = await storvm('boot', '--restore', junk);
    expect(r.code).toBe(1);
    expect(r.err).toBe('storvm: not a storvm snapshot (bad magic)\n');
    r = await storvm('snapshot', 'info', join(dir, 'none.snap'));
    expect(r.err).toMatch(/no such file/);
    expect(r.code).toBe(2);
    r = await storvm('boot', '--restore', junk, '--kernel', junk);
    expect(r.err).toMatch(/--restore can't take --kernel/);
    r = await storvm('run', '--restore', junk, '--', 'true');
    expect(r.err).toMatch(/--restore goes with storvm boot/);
  });

  it.skipIf(!hasScript)('Ctrl-A s saves at the prompt, Ctrl-A x saves on exit, snapshot info tells, boot --restore goes on', { timeout: 240_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-snapcli-'));
    const snap = join(dir, 'vm.snap');
    const child = spawn('script', ['-qfec', `${process.execPath} bin/storvm.mjs boot --mem 64 --save-on-exit ${snap}`, '/dev/null'], {
      cwd: new URL('../../', import.meta.url),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const until = async (text: string, from = 0) => {
      for (let i = 0; i < 900 && !out.includes(text, from); i++) await new Promise((r) => setTimeout(r, 100));
      expect(out.slice(from)).toContain(text);
    };
    await until('~ # ');
    child.stdin.write('x=saved-$((6*7))\r');
    child.stdin.write('\x01s');
    await until(`saved snapshot ${snap}`);
    const first = statSync(snap).mtimeMs;
    child.stdin.write('\x01x');
    const status = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(status).toBe(0);
    expect(out.split('saved snapshot').length).toBe(3); // Ctrl-A s, then the exit
    expect(statSync(snap).mtimeMs).toBeGreaterThanOrEqual(first);

    const info = await storvm('snapshot', 'info', snap);
    expect(info.code).toBe(0);
    expect(info.out).toMatch(/^storvm snapshot, format 1, [\d.]+ MB/);
    expect(info.out).toContain(`machine: 64 MiB RAM, cpu ${DEFAULT_CPU}`);

    copyFileSync(snap, join(dir, 'copy.snap'));
    const restored = spawnSync(process.execPath, ['bin/storvm.mjs', 'boot', '--restore', join(dir, 'copy.snap')], {
      cwd: new URL('../../', import.meta.url),
      input: 'echo "$x"; poweroff -f\n',
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(restored.stdout).toContain('saved-42');
    expect(restored.status).toBe(0);
  });
});
