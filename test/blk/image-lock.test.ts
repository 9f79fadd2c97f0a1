/**
 * One writer per image (issue 16, item 5): a second read-write opener of a raw image is refused
 * while the first lives; read-only openers are allowed beside it; a lock left by a dead process
 * is taken over. The CLI turns the refusal into one line and exit status 2.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/node/cli.js';
import { FileDisk } from '../../src/node/file-disk.js';
import { ImageLockedError } from '../../src/node/image-lock.js';

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
