/** MemFs filled from a literal and from a host folder, saved to bytes and loaded back. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { S_IFCHR, S_IFIFO, S_IFLNK, S_IFMT } from '../../src/backends/fs/backend.js';
import { MemFs, loadMemFs } from '../../src/backends/fs/mem-fs.js';
import { MemFsImageError, saveMemFs } from '../../src/backends/fs/mem-fs-image.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { memFsFromFolder } from '../../src/node/memfs-folder.js';
import { P9Client, errnoOf } from '../../src/testing/index.js';
import { tempDirs } from './backends.js';

const dirs = tempDirs('storvm-memfs-');
afterAll(() => dirs.cleanup());
const td = new TextDecoder();

async function read(c: P9Client, names: string[], fid: number): Promise<string> {
  await c.walk(0, fid, names);
  await c.lopen(fid, 0);
  return td.decode(await c.read(fid, 0, 60000));
}

describe('MemFs images', () => {
  it('fills from an object literal and serves it', async () => {
    const m = new MemFs({
      tree: {
        'hello.txt': 'hi there',
        bin: { tool: MemFs.file(new Uint8Array([0x7f, 0x45]), 0o755) },
        etc: { motd: 'welcome', link: MemFs.symlink('../hello.txt') },
      },
    });
    const c = new P9Client(new Virtio9p(m));
    await c.mount();
    expect(await read(c, ['hello.txt'], 1)).toBe('hi there');
    await c.walk(0, 2, ['bin', 'tool']);
    expect((await c.getattr(2)).mode & 0o7777).toBe(0o755);
    await c.walk(0, 3, ['etc', 'link']);
    expect(await c.readlink(3)).toBe('../hello.txt');
    expect(() => new MemFs({ tree: { 'a/b': 'x' } })).toThrow(/bad name/);
  });

  it('saves to bytes and loads back: data, links, metadata, xattrs', async () => {
    const m = new MemFs({ tree: { d: { f: 'data', deep: { g: new Uint8Array(100_000).fill(9) } }, s: MemFs.symlink('d/f') } });
    const c = new P9Client(new Virtio9p(m));
    await c.mount(200_000);
    await c.walk(0, 1, ['d']);
    await c.walk(0, 2, ['d', 'f']);
    await c.link(1, 2, 'hard');
    await c.mknod(1, 'tty', S_IFCHR | 0o620, 4, 2);
    await c.mknod(1, 'fifo', S_IFIFO | 0o600);
    await c.setattr(2, { valid: 0x1 | 0x2 | 0x4 | 0x20 | 0x100, mode: 0o640, uid: 1000, gid: 100, mtime: 123456 });
    await c.walk(0, 3, ['d', 'f']);
    await c.xattrcreate(3, 'user.tag', 3);
    await c.write(3, 0, 'xyz');
    await c.clunk(3);
    const image = saveMemFs(m);
    const back = loadMemFs(image);
    const c2 = new P9Client(new Virtio9p(back));
    await c2.mount(200_000);
    expect(await read(c2, ['d', 'f'], 1)).toBe('data');
    expect(await read(c2, ['d', 'hard'], 2)).toBe('data');
    const st = await c2.getattr(1);
    expect(st).toMatchObject({ mode: 0o100640, uid: 1000, gid: 100, nlink: 2, mtime: 123456 });
    expect((await c2.getattr(2)).qid.path).toBe(st.qid.path);
    expect((await c2.read(await c2.walk(0, 3, ['d', 'deep', 'g']).then(() => c2.lopen(3, 0)).then(() => 3), 99_990, 100)).length).toBe(10);
    await c2.walk(0, 4, ['s']);
    expect(((await c2.getattr(4)).mode & S_IFMT) >>> 0).toBe(S_IFLNK);
    expect(await c2.readlink(4)).toBe('d/f');
    await c2.walk(0, 5, ['d', 'tty']);
    expect((await c2.getattr(5)).rdev).toBe((4 << 8) | 2);
    expect(await c2.xattrwalk(1, 6, 'user.tag')).toBe(3);
    // Writing into the loaded copy leaves the original alone; the image is stable.
    await c2.walk(0, 7, ['d']);
    await c2.lcreate(7, 'new', 2);
    expect(await c.walk(0, 8, ['d', 'new'])).toHaveLength(1);
    expect(saveMemFs(loadMemFs(image))).toEqual(image);
    expect(back.used).toBe(m.used);
    expect(loadMemFs(image, { readOnly: true }).readOnly).toBe(true);
  });

  it('refuses malformed images with a typed error', () => {
    const image = saveMemFs(new MemFs({ tree: { a: 'x', d: { b: 'y' } } }));
    expect(() => loadMemFs(new Uint8Array(4))).toThrow(MemFsImageError);
    expect(() => loadMemFs(image.subarray(0, image.length - 1))).toThrow(MemFsImageError);
    const extra = new Uint8Array(image.length + 1);
    extra.set(image);
    expect(() => loadMemFs(extra)).toThrow(MemFsImageError);
    const bad = image.slice();
    new DataView(bad.buffer).setUint32(12, 0xffffffff, true); // inode count
    expect(() => loadMemFs(bad)).toThrow(MemFsImageError);
    // Every single-byte corruption either loads or throws MemFsImageError, never anything else.
    for (let i = 0; i < image.length; i++) {
      const m = image.slice();
      m[i] = m[i]! ^ 0xff;
      try {
        loadMemFs(m, { capacity: 1 << 20 });
      } catch (e) {
        expect(e).toBeInstanceOf(MemFsImageError);
      }
    }
    expect(() => loadMemFs(image, { capacity: 1 })).toThrow(MemFsImageError);
  });

  it('fills from a host folder without following symlinks', async () => {
    const d = dirs.make();
    fs.mkdirSync(path.join(d, 'sub'));
    fs.writeFileSync(path.join(d, 'sub', 'file'), 'host data');
    fs.chmodSync(path.join(d, 'sub', 'file'), 0o600);
    fs.linkSync(path.join(d, 'sub', 'file'), path.join(d, 'hard'));
    fs.symlinkSync('/etc', path.join(d, 'etc-link'));
    const m = memFsFromFolder(d, { readOnly: true });
    expect(m.readOnly).toBe(true);
    const c = new P9Client(new Virtio9p(m));
    await c.mount();
    expect(await read(c, ['sub', 'file'], 1)).toBe('host data');
    expect((await c.getattr(1)).mode & 0o777).toBe(0o600);
    expect((await c.getattr(1)).nlink).toBe(2);
    await c.walk(0, 2, ['etc-link']);
    expect(await c.readlink(2)).toBe('/etc');
    expect(await c.walk(0, 3, ['etc-link', 'passwd'])).toHaveLength(1);
    await c.walk(0, 4, ['hard']);
    expect((await c.getattr(4)).qid.path).toBe((await c.getattr(1)).qid.path);
    expect(await errnoOf(c.mkdir(4, 'x'))).toBe(30);
  });
});
