/**
 * HostFs confinement (docs/hostile-guest.md lines 35, 36, 44): the guest never reaches a host file
 * outside the share, never makes the server follow a symlink or open a device node or FIFO.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EACCES, EEXIST, EINVAL, ELOOP, ENOENT, ENOTDIR, ENOTEMPTY, EROFS, fsError } from '../../src/backends/fs/errno.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { HostFs, hostErrno } from '../../src/node/host-fs.js';
import { P9Client, errnoOf } from '../../src/testing/index.js';
import { tempDirs } from './backends.js';

const dirs = tempDirs('storvm-hostfs-');
afterAll(() => dirs.cleanup());
const td = new TextDecoder();
const O_RDWR = 2;

/** A share next to an outside directory holding a secret. */
function setup(readOnly = false): { share: string; outside: string; fs: HostFs } {
  const base = dirs.make();
  const share = path.join(base, 'share');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(share);
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret'), 'TOP SECRET');
  fs.mkdirSync(path.join(share, 'a'));
  fs.writeFileSync(path.join(share, 'a', 'secret'), 'harmless');
  fs.writeFileSync(path.join(share, 'file'), 'content');
  return { share, outside, fs: new HostFs(share, { readOnly }) };
}

async function client(h: HostFs): Promise<P9Client> {
  const c = new P9Client(new Virtio9p(h));
  await c.mount(65536);
  return c;
}

describe('HostFs confinement', () => {
  it('refuses to be made over something that is not a directory', () => {
    const { share } = setup();
    expect(() => new HostFs(path.join(share, 'file'))).toThrow(/not a directory/);
  });

  it("keeps '..' at the root and refuses names with '/' even when called directly", async () => {
    const { fs: h } = setup();
    const c = await client(h);
    const root = await c.getattr(0);
    const up = await c.walk(0, 1, ['..', '..', '..']);
    expect(up.every((q) => q.path === root.qid.path)).toBe(true);
    await c.lopen(1, 0);
    const names = (await c.readdirAll(1)).map((e) => e.name).sort();
    expect(names).toEqual(['.', '..', 'a', 'file']);
    // The backend checks names itself too, whatever the server let through.
    expect(h.lookup(h.rootNode, '../outside')).toBe(fsError(EINVAL));
    expect(h.lookup(h.rootNode, 'a/secret')).toBe(fsError(EINVAL));
    expect(h.mkdir(h.rootNode, '..', 0o755, { uid: 0, gid: 0 })).toBe(fsError(EINVAL));
  });

  it('35: never follows a symlink while resolving, wherever it points; guest symlinks are stored', async () => {
    const { share, outside, fs: h } = setup();
    fs.symlinkSync(outside, path.join(share, 'escape'));
    fs.symlinkSync(path.join(outside, 'secret'), path.join(share, 'escape-file'));
    const c = await client(h);
    // Through a directory symlink: not followed.
    expect(await c.walk(0, 1, ['escape', 'secret'])).toHaveLength(1);
    await c.walk(0, 1, ['escape']);
    expect(await errnoOf(c.walk(1, 5, ['secret']))).toBe(ENOTDIR);
    expect(await c.readlink(1)).toBe(outside);
    expect(await errnoOf(c.lopen(1, 0))).toBe(ELOOP);
    expect(await errnoOf(c.mkdir(1, 'x'))).not.toBe(0);
    expect(fs.readdirSync(outside)).toEqual(['secret']);
    // A file symlink is never opened either.
    await c.walk(0, 2, ['escape-file']);
    expect(await errnoOf(c.lopen(2, 0))).toBe(ELOOP);
    expect(await errnoOf(c.setattr(2, { valid: 8, size: 0 }))).not.toBe(0);
    expect(fs.readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('TOP SECRET');
    // The guest may create a symlink with any target; it is stored, read back, not followed.
    await c.walk(0, 3, []);
    await c.symlink(3, 'mine', '../../../../etc/passwd');
    expect(fs.readlinkSync(path.join(share, 'mine'))).toBe('../../../../etc/passwd');
    await c.walk(0, 4, ['mine']);
    expect(await c.readlink(4)).toBe('../../../../etc/passwd');
    expect(await errnoOf(c.lopen(4, 0))).toBe(ELOOP);
    // A hard link to a symlink links the symlink, not its target.
    await c.link(3, 4, 'mine2');
    expect(fs.lstatSync(path.join(share, 'mine2')).isSymbolicLink()).toBe(true);
  });

  it('35: a directory swapped for a symlink after the walk is caught at use', async () => {
    const { share, outside, fs: h } = setup();
    const c = await client(h);
    await c.walk(0, 1, ['a', 'secret']);
    await c.walk(0, 2, ['a']);
    // The host (or a race) replaces 'a' with a symlink to the outside, which has a 'secret' too.
    fs.renameSync(path.join(share, 'a'), path.join(share, 'a-old'));
    fs.symlinkSync(outside, path.join(share, 'a'));
    expect(await errnoOf(c.lopen(1, 0))).toBe(ELOOP);
    expect(await errnoOf(c.getattr(1))).toBe(ELOOP);
    expect(await errnoOf(c.setattr(1, { valid: 8, size: 0 }))).toBe(ELOOP);
    await c.walk(0, 3, []);
    expect(await errnoOf(c.lcreate(2, 'planted', O_RDWR))).toBe(ELOOP);
    expect(await errnoOf(c.unlinkat(2, 'secret'))).toBe(ELOOP);
    expect(await errnoOf(c.renameat(2, 'secret', 3, 'stolen'))).toBe(ELOOP);
    await c.walk(0, 4, ['file']);
    expect(await errnoOf(c.link(2, 4, 'planted'))).toBe(ELOOP);
    expect(fs.readdirSync(outside)).toEqual(['secret']);
    expect(fs.readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('TOP SECRET');
  });

  it('follows its own renames: a fid walked before a guest rename still names the file', async () => {
    const { share, fs: h } = setup();
    const c = await client(h);
    await c.walk(0, 1, ['a', 'secret']);
    await c.walk(0, 2, []);
    await c.renameat(2, 'a', 2, 'b');
    await c.lopen(1, 0);
    expect(td.decode(await c.read(1, 0, 100))).toBe('harmless');
    await c.walk(0, 3, ['b']);
    await c.renameat(3, 'secret', 2, 'top');
    expect((await c.getattr(1)).size).toBe(8);
    expect(fs.existsSync(path.join(share, 'top'))).toBe(true);
  });

  it('36: a host FIFO is never opened (the request answers, nothing blocks)', async () => {
    const { share, fs: h } = setup();
    const made = spawnSync('mkfifo', [path.join(share, 'pipe')]);
    if (made.status !== 0) {
      console.warn('mkfifo unavailable: skipping the FIFO case');
      return;
    }
    const c = await client(h);
    await c.walk(0, 1, ['pipe']);
    expect(await errnoOf(c.lopen(1, 0))).toBe(EACCES);
    // Asked directly, the backend refuses too.
    const node = h.lookup(h.rootNode, 'pipe');
    expect(h.open(node as never, 0)).toBe(fsError(EACCES));
    // And the guest can't make one.
    await c.walk(0, 2, []);
    expect(await errnoOf(c.mknod(2, 'fifo2', 0o10644))).not.toBe(0);
  });

  it('44: a read-only share answers EROFS and leaves the host untouched', async () => {
    const { share, fs: h } = setup(true);
    const c = await client(h);
    await c.walk(0, 1, []);
    await c.walk(0, 2, ['file']);
    for (const op of [
      () => c.lcreate(1, 'n', O_RDWR),
      () => c.mkdir(1, 'n'),
      () => c.symlink(1, 'n', 'x'),
      () => c.link(1, 2, 'n'),
      () => c.unlinkat(1, 'file'),
      () => c.renameat(1, 'file', 1, 'n'),
      () => c.setattr(2, { valid: 8, size: 0 }),
      () => c.walk(0, 3, ['file']).then(() => c.lopen(3, O_RDWR)),
    ]) {
      expect(await errnoOf(op())).toBe(EROFS);
    }
    await c.lopen(2, 0);
    expect(td.decode(await c.read(2, 0, 100))).toBe('content');
    expect(fs.readdirSync(share).sort()).toEqual(['a', 'file']);
    expect(fs.readFileSync(path.join(share, 'file'), 'utf8')).toBe('content');
  });

  it('maps host errors to Linux errno and rethrows what is not a host error', async () => {
    expect(hostErrno({ code: 'ENOTEMPTY' })).toBe(ENOTEMPTY);
    expect(hostErrno({ code: 'EEXIST' })).toBe(EEXIST);
    expect(hostErrno({ code: 'ESOMETHINGNEW' })).toBe(5);
    expect(() => hostErrno(new TypeError('bug'))).toThrow(TypeError);
    const { share, fs: h } = setup();
    const c = await client(h);
    await c.walk(0, 1, []);
    expect(await errnoOf(c.unlinkat(1, 'a', 0x200))).toBe(ENOTEMPTY);
    expect(await errnoOf(c.mkdir(1, 'a'))).toBe(EEXIST);
    fs.rmSync(path.join(share, 'file'));
    await c.walk(0, 2, []);
    expect(await errnoOf(c.walk(0, 3, ['file']))).toBe(ENOENT);
  });
});
