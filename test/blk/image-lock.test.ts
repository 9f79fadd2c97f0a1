/**
 * One writer per image (issue 16, item 5): a second read-write opener of a raw image is refused
 * while the first lives; read-only openers are allowed beside it; a lock left by a dead process
 * is taken over. The CLI turns the refusal into one line and exit status 2.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/node/cli.js';
import { FileDisk } from '../../src/node/file-disk.js';
import { bootId, ImageLockedError, parseLock, processStart } from '../../src/node/image-lock.js';

const hasProc = processStart(process.pid) !== undefined && bootId() !== undefined;

function image(): string {
  const dir = mkdtempSync(join(tmpdir(), 'storvm-lock-'));
  const path = join(dir, 'disk.img');
  writeFileSync(path, new Uint8Array(1 << 20));
  return path;
}

describe('image write lock', () => {
  it('refuses a second writer, allows readers beside it, and frees the image on close', async () => {
    const path = image();
    const a = await FileDisk.open(path);
    expect(existsSync(`${path}.lock`)).toBe(true);
    await expect(FileDisk.open(path)).rejects.toBeInstanceOf(ImageLockedError);
    await expect(FileDisk.create(path, 1 << 20)).rejects.toBeInstanceOf(ImageLockedError);
    const ro = await FileDisk.open(path, { readOnly: true });
    await ro.close();
    await a.close();
    expect(existsSync(`${path}.lock`)).toBe(false);
    const b = await FileDisk.open(path);
    await b.close();
  });

  it('a lock held by another live process holds; one left by a dead process is taken over', async () => {
    const path = image();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
    try {
      writeFileSync(`${path}.lock`, `${child.pid}\n`);
      const err = await FileDisk.open(path).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImageLockedError);
      expect((err as ImageLockedError).pid).toBe(child.pid);
      expect((err as Error).message).toMatch(/already open for writing by process \d+ \(open it read-only with :ro\)/);
    } finally {
      child.kill();
    }
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    writeFileSync(`${path}.lock`, dead.stdout);
    const d = await FileDisk.open(path);
    await d.close();
  });

  it.skipIf(!hasProc)('records pid, start time and boot id; a pid now used by another process does not hold the lock', async () => {
    const path = image();
    const a = await FileDisk.open(path);
    const mine = parseLock(readFileSync(`${path}.lock`, 'utf8'));
    expect(mine).toEqual({ pid: process.pid, start: processStart(process.pid), boot: bootId() });
    await a.close();

    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)'], { stdio: 'ignore' });
    try {
      const pid = child.pid!;
      let start: string | undefined;
      for (let i = 0; i < 100 && start === undefined; i++) {
        start = processStart(pid);
        if (start === undefined) await new Promise((r) => setTimeout(r, 10));
      }
      expect(start).toBeDefined();
      // The live child, as recorded: the lock holds.
      writeFileSync(`${path}.lock`, `${pid}\n${start}\n${bootId()}\n`);
      const err = await FileDisk.open(path).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImageLockedError);
      expect((err as ImageLockedError).pid).toBe(pid);
      // The same pid, but a process that started at another time: the pid was reused, so the
      // owner is gone and the lock is taken over.
      writeFileSync(`${path}.lock`, `${pid}\n${Number(start) - 1}\n${bootId()}\n`);
      const b = await FileDisk.open(path);
      expect(parseLock(readFileSync(`${path}.lock`, 'utf8'))?.pid).toBe(process.pid);
      await b.close();
      // Right pid and start time, but taken in another boot: stale too.
      writeFileSync(`${path}.lock`, `${pid}\n${start}\n00000000-0000-0000-0000-000000000000\n`);
      const c = await FileDisk.open(path);
      await c.close();
    } finally {
      child.kill();
    }
  });

  it.skipIf(!hasProc)('a lock left with this process\'s pid by an earlier process is taken over', async () => {
    const path = image();
    writeFileSync(`${path}.lock`, `${process.pid}\n${Number(processStart(process.pid)) + 12345}\n${bootId()}\n`);
    const d = await FileDisk.open(path);
    await d.close();
  });

  it('reads lock files of either form and refuses ones that name no pid', () => {
    expect(parseLock('123\n')).toEqual({ pid: 123, start: undefined, boot: undefined });
    expect(parseLock('123\n456\nabc\n')).toEqual({ pid: 123, start: '456', boot: 'abc' });
    expect(parseLock('123\n\n\n')).toEqual({ pid: 123, start: undefined, boot: undefined });
    for (const bad of ['', '\n', 'x\n', '-1\n', '0\n', '12ab\n']) expect(parseLock(bad)).toBeUndefined();
  });

  it('storvm run refuses a second writer with one line and exit status 2', async () => {
    const path = image();
    const holder = await FileDisk.open(path);
    try {
      let err = '';
      const code = await main(['run', '--disk', path, '--', 'true'], { write: () => true }, { write: (s) => ((err += String(s)), true) });
      expect(code).toBe(2);
      expect(err.split('\n').length).toBe(2); // one line and its newline
      expect(err).toMatch(/^storvm: disk .*disk\.img: .*already open for writing by process \d+/);
    } finally {
      await holder.close();
    }
  });
});
