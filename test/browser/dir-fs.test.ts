/**
 * DirectoryHandleFs in Node, over an in-memory stand-in for the browser's directory handles
 * (test/support/fake-dir-handle.ts; the 9P and FUSE conformance suites run over it too, and
 * test/browser/dir-share.test.ts runs the real thing in chromium): where records go, what
 * survives a new mount of the same folder, what the guest can't reach or forge (hostile-guest
 * lines 57-60), and both ways of moving bytes (sync access handles, writable streams).
 */
import { describe, expect, it } from 'vitest';
import { S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from '../../src/backends/fs/backend.js';
import { EINVAL, EIO, ELOOP, ENOENT, ENOSPC, EPERM, EROFS, EACCES } from '../../src/backends/fs/errno.js';
import { DIR_FS_LOOSE_NODES, DirectoryHandleFs } from '../../src/browser/dir-fs.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { P9Client, errnoOf } from '../../src/testing/index.js';
import { fakeFolder, type FakeDirHandle, type FakeOptions } from '../support/fake-dir-handle.js';

const O_RDONLY = 0;
const O_RDWR = 2;
const MODE = 1;
const UID = 2;
const GID = 4;
const SIZE = 8;
const ATIME = 0x10;
const MTIME = 0x20;
const ATIME_SET = 0x80;
const MTIME_SET = 0x100;
const td = new TextDecoder();

async function mount(folder: FakeDirHandle, opts: { readOnly?: boolean } = {}): Promise<{ c: P9Client; fs: DirectoryHandleFs }> {
  const fs = await DirectoryHandleFs.open(folder, opts);
  const c = new P9Client(new Virtio9p(fs));
  await c.mount(65536);
  return { c, fs };
}

async function put(folder: FakeDirHandle, path: string, text: string): Promise<void> {
  const names = path.split('/');
  let d: Awaited<ReturnType<FakeDirHandle['getDirectoryHandle']>> = folder;
  for (const n of names.slice(0, -1)) d = await d.getDirectoryHandle(n, { create: true });
  const w = await (await d.getFileHandle(names[names.length - 1]!, { create: true })).createWritable();
  await w.write(new TextEncoder().encode(text));
  await w.close();
}

for (const mode of [{ sync: true }, { sync: false }] satisfies FakeOptions[]) {
  describe(`DirectoryHandleFs (${mode.sync ? 'sync access handles' : 'writable streams'})`, () => {
    it('keeps modes, owners, times, symlinks, device nodes and xattrs across a new mount; plain files get no record', async () => {
      const folder = fakeFolder(mode);
      const { c } = await mount(folder);
      await c.walk(0, 1, []);
      await c.lcreate(1, 'plain', O_RDWR, 0o644);
      await c.write(1, 0, 'plain bytes');
      await c.clunk(1);
      expect(Object.keys(folder.dump())).toEqual(['plain']); // nothing beside a plain file
      await c.walk(0, 2, []);
      await c.lcreate(2, 'owned', O_RDWR, 0o600, 777);
      await c.write(2, 0, 'x'.repeat(5000));
      await c.setattr(2, { valid: UID | GID | ATIME | MTIME | ATIME_SET | MTIME_SET, uid: 1000, gid: 2000, atime: 1_000_000_000, atimeNsec: 123, mtime: 981_173_106, mtimeNsec: 456_789 });
      await c.clunk(2);
      await c.symlink(0, 'ln', '../../outside/etc/passwd');
      await c.mknod(0, 'tty', S_IFCHR | 0o620, 4, 1);
      await c.mknod(0, 'fifo', S_IFIFO | 0o644);
      await c.mkdir(0, 'sub', 0o700);
      await c.walk(0, 3, []);
      await c.setattr(3, { valid: MODE, mode: 0o750 }); // the root's own record
      await c.walk(0, 8, ['sub']);
      await c.setattr(8, { valid: MTIME | MTIME_SET, mtime: 1_234_567_890, mtimeNsec: 5 }); // as tar sets a directory's
      const dump = folder.dump();
      expect(Object.keys(dump).sort()).toEqual(['.storvm/', '.storvm/.storvm/', '.storvm/.storvm/root', '.storvm/fifo', '.storvm/ln', '.storvm/owned', '.storvm/sub', '.storvm/tty', 'fifo', 'ln', 'owned', 'plain', 'sub/', 'tty']);
      expect(dump.ln).toBe('../../outside/etc/passwd');

      const again = (await mount(folder)).c;
      const at = async (names: string[]) => {
        await again.walk(0, 9, names);
        const st = await again.getattr(9);
        await again.clunk(9);
        return st;
      };
      expect(((await at([])).mode & 0o7777) >>> 0).toBe(0o750);
      const owned = await at(['owned']);
      expect([owned.mode, owned.uid, owned.gid, owned.size, owned.mtime, owned.mtimeNsec, owned.atime, owned.atimeNsec]).toEqual([S_IFREG | 0o600, 1000, 2000, 5000, 981_173_106, 456_789, 1_000_000_000, 123]);
      expect((await at(['ln'])).mode).toBe(S_IFLNK | 0o777);
      await again.walk(0, 4, ['ln']);
      expect(await again.readlink(4)).toBe('../../outside/etc/passwd');
      const tty = await at(['tty']);
      expect([tty.mode, tty.rdev]).toEqual([S_IFCHR | 0o620, (4 << 8) | 1]);
      expect((await at(['fifo'])).mode).toBe(S_IFIFO | 0o644);
      const sub = await at(['sub']);
      expect([sub.mode, sub.mtime, sub.mtimeNsec]).toEqual([S_IFDIR | 0o700, 1_234_567_890, 5]);
      expect((await at(['plain'])).mode).toBe(S_IFREG | 0o644);
      // The server never opens what the guest sees as a symlink or a FIFO.
      await again.walk(0, 5, ['fifo']);
      expect(await errnoOf(again.lopen(5, O_RDONLY))).toBe(EACCES);
      expect(await errnoOf(again.lopen(4, O_RDONLY))).toBe(ELOOP);
    });

    it('renames files atomically over others and directories with their records and open files', async () => {
      const folder = fakeFolder(mode);
      const { c } = await mount(folder);
      await c.mkdir(0, 'd', 0o755);
      await c.walk(0, 1, ['d']);
      await c.walk(1, 2, []);
      await c.lcreate(2, 'inner', O_RDWR, 0o604);
      await c.write(2, 0, 'open across the move');
      await c.mkdir(1, 'e', 0o711);
      await c.renameat(0, 'd', 0, 'd2');
      await c.write(2, 20, '!');
      expect(td.decode(await c.read(2, 0, 100))).toBe('open across the move!');
      await c.clunk(2);
      expect(Object.keys(folder.dump()).sort()).toEqual(['d2/', 'd2/.storvm/', 'd2/.storvm/e', 'd2/.storvm/inner', 'd2/e/', 'd2/inner']);
      await c.walk(0, 3, ['d2', 'inner']);
      expect(((await c.getattr(3)).mode & 0o7777) >>> 0).toBe(0o604);
      // A file over another: the target's bytes and record are replaced by the source's.
      await c.walk(0, 4, []);
      await c.lcreate(4, 'a', O_RDWR, 0o600);
      await c.write(4, 0, 'AAA');
      await c.clunk(4);
      await put(folder, 'b', 'BBB');
      await c.renameat(0, 'a', 0, 'b');
      expect(folder.dump().b).toBe('AAA');
      expect(folder.dump().a).toBeUndefined();
      await c.walk(0, 5, ['b']);
      expect(((await c.getattr(5)).mode & 0o7777) >>> 0).toBe(0o600);
      expect(await errnoOf(c.renameat(0, 'd2', 3, 'x'))).not.toBe(0); // not a directory
      await c.walk(0, 6, ['d2']);
      expect(await errnoOf(c.renameat(0, 'd2', 6, 'inside-itself'))).toBe(EINVAL);
    });

    it('keeps an unlinked open file readable, and the next mount sweeps what a killed page left', async () => {
      const folder = fakeFolder(mode);
      const { c } = await mount(folder);
      await c.walk(0, 1, []);
      await c.lcreate(1, 'f', O_RDWR);
      await c.write(1, 0, 'still here');
      await c.unlinkat(0, 'f');
      expect(await errnoOf(c.walk(0, 2, ['f']))).toBe(ENOENT);
      expect(td.decode(await c.read(1, 0, 100))).toBe('still here');
      expect((await c.getattr(1)).nlink).toBe(0);
      expect(Object.keys(folder.dump()).some((k) => k.startsWith('.storvm/.storvm/trash/'))).toBe(true);
      folder.releaseLocks(); // the page was killed with the file open
      await mount(folder);
      expect(Object.keys(folder.dump()).filter((k) => k.includes('trash/') && !k.endsWith('/'))).toEqual([]);
    });

    it('truncates, appends and writes at offsets; the page sees the bytes after fsync', async () => {
      const folder = fakeFolder(mode);
      const { c } = await mount(folder);
      await c.walk(0, 1, []);
      await c.lcreate(1, 'f', O_RDWR);
      await c.write(1, 0, 'hello world');
      await c.write(1, 6, 'WORLD');
      await c.fsync(1);
      expect(folder.dump().f).toBe('hello WORLD');
      await c.setattr(1, { valid: SIZE, size: 5 });
      expect((await c.getattr(1)).size).toBe(5);
      await c.write(1, 8, 'Z');
      expect(td.decode(await c.read(1, 0, 100))).toBe('hello\0\0\0Z');
      await c.clunk(1);
      expect(folder.dump().f).toBe('hello\0\0\0Z');
    });

    it('answers ENOSPC when the quota is full and keeps what was written before', async () => {
      const folder = fakeFolder({ ...mode, quota: 10_000 });
      const { c } = await mount(folder);
      await c.walk(0, 1, []);
      await c.lcreate(1, 'f', O_RDWR);
      await c.write(1, 0, 'k'.repeat(8000));
      await c.fsync(1);
      const big = errnoOf(c.write(1, 8000, 'z'.repeat(4000)).then(() => c.fsync(1)));
      expect(await big).toBe(ENOSPC);
      await c.clunk(1).catch(() => {});
      expect(folder.dump().f).toBe('k'.repeat(8000));
    });
  });
}

describe('DirectoryHandleFs against a hostile guest', () => {
  it('hides .storvm in every directory and refuses to make, remove or rename onto it (line 57)', async () => {
    const folder = fakeFolder();
    const { c } = await mount(folder);
    await c.mkdir(0, 'sub', 0o700); // a record in the root's .storvm
    await c.walk(0, 1, ['sub']);
    await c.mkdir(1, 'inner', 0o700); // and one in sub's
    for (const dir of [0, 1]) {
      expect(await errnoOf(c.walk(dir, 5, ['.storvm']))).toBe(ENOENT);
      expect(await errnoOf(c.mkdir(dir, '.storvm'))).toBe(EPERM);
      expect(await errnoOf(c.symlink(dir, '.storvm', 'x'))).toBe(EPERM);
      expect(await errnoOf(c.unlinkat(dir, '.storvm', 0x200))).toBe(ENOENT);
      expect(await errnoOf(c.renameat(0, 'sub', dir, '.storvm'))).toBe(EPERM);
      await c.walk(dir, 6, []);
      await c.lopen(6, O_RDONLY);
      expect((await c.readdirAll(6)).map((e) => e.name)).not.toContain('.storvm');
      await c.clunk(6);
    }
    await c.walk(0, 7, []);
    expect(await errnoOf(c.lcreate(7, '.storvm', O_RDWR))).toBe(EPERM);
    expect(Object.keys(folder.dump())).toContain('.storvm/sub');
  });

  it('answers EINVAL for names the browser refuses, never an exception (line 58)', async () => {
    const { c } = await mount(fakeFolder());
    await c.walk(0, 1, []);
    expect(await errnoOf(c.lcreate(1, 'back\\slash', O_RDWR))).toBe(EINVAL);
    expect(await errnoOf(c.mkdir(0, 'a\\b'))).toBe(EINVAL);
    expect(await errnoOf(c.walk(0, 2, ['a\\b']))).toBe(EINVAL);
    await c.walk(0, 3, []);
    await c.lcreate(3, 'ok', O_RDWR);
  });

  it('shows a corrupt or forged record as plain attributes; a record never makes a file a directory (line 59)', async () => {
    const folder = fakeFolder();
    await put(folder, 'f', 'data');
    await put(folder, 'g', 'data');
    await put(folder, 'd/x', 'data');
    await put(folder, '.storvm/f', '{"v":1,"b":"0","m":16877,"u":5,"g":6,"r":0,"x":{}}'); // says "directory"
    await put(folder, '.storvm/g', 'not json at all');
    await put(folder, '.storvm/d', '{"v":1,"b":"0","m":33188,"u":0,"g":0,"r":0,"x":{}}'); // says "regular file"
    const { c } = await mount(folder);
    await c.walk(0, 1, ['f']);
    const f = await c.getattr(1);
    expect([f.mode & S_IFMT, f.uid, f.gid]).toEqual([S_IFREG, 5, 6]);
    await c.walk(0, 2, ['g']);
    const g = await c.getattr(2);
    expect([g.mode, g.uid]).toEqual([S_IFREG | 0o644, 0]);
    await c.walk(0, 3, ['d']);
    expect((await c.getattr(3)).mode & S_IFMT).toBe(S_IFDIR);
    await c.walk(3, 4, ['x']);
    await c.lopen(4, O_RDONLY);
    expect(td.decode(await c.read(4, 0, 10))).toBe('data');
  });

  it('refuses a symlink whose file grew past PATH_MAX behind the share, and a target that long (line 60)', async () => {
    const folder = fakeFolder();
    const { c } = await mount(folder);
    await c.symlink(0, 'ln', 'short');
    await put(folder, 'ln', 'y'.repeat(5000));
    await c.walk(0, 1, ['ln']);
    expect(await errnoOf(c.readlink(1))).toBe(EIO);
    expect(await errnoOf(c.symlink(0, 'long', 'z'.repeat(4096)))).not.toBe(0);
  });

  it('refuses every change on a read-only share', async () => {
    const folder = fakeFolder();
    await put(folder, 'f', 'data');
    const { c } = await mount(folder, { readOnly: true });
    await c.walk(0, 1, []);
    expect(await errnoOf(c.lcreate(1, 'n', O_RDWR))).toBe(EROFS);
    await c.walk(0, 2, ['f']);
    expect(await errnoOf(c.lopen(2, O_RDWR))).toBe(EROFS);
    expect(await errnoOf(c.setattr(2, { valid: MODE, mode: 0o777 }))).toBe(EROFS);
    await c.lopen(2, O_RDONLY);
    expect(td.decode(await c.read(2, 0, 10))).toBe('data');
  });
});

describe('DirectoryHandleFs node table', () => {
  const N = DIR_FS_LOOSE_NODES * 3;

  it('stays bounded however many entries the guest walks to and lists; what a fid holds keeps its node', async () => {
    const folder = fakeFolder();
    const sub = await folder.getDirectoryHandle('sub', { create: true });
    for (let i = 0; i < N; i++) await (await sub.getFileHandle(`f${i}`, { create: true })).createWritable().then((w) => w.close());
    const { c, fs } = await mount(folder);
    await c.walk(0, 1, ['sub', 'f0']); // held through the sweep
    const held = (await c.getattr(1)).qid.path;
    for (let i = 1; i < N; i++) {
      await c.walk(0, 2, ['sub', `f${i}`]);
      await c.clunk(2);
    }
    expect(fs.knownNodes).toBeLessThanOrEqual(DIR_FS_LOOSE_NODES + 3);
    // A full listing of the directory, in small pages, has every entry once, and leaves it bounded.
    await c.walk(0, 3, ['sub']);
    await c.lopen(3, O_RDONLY);
    const names = (await c.readdirAll(3, 512)).map((d) => d.name).filter((n) => n !== '.' && n !== '..');
    expect(names.length).toBe(N);
    expect(new Set(names).size).toBe(N);
    await c.clunk(3);
    expect(fs.knownNodes).toBeLessThanOrEqual(DIR_FS_LOOSE_NODES + 3);
    // The held file kept its node: the same number on a new walk, and a rename through the
    // directory reaches it.
    await c.walk(0, 4, ['sub', 'f0']);
    expect((await c.getattr(4)).qid.path).toBe(held);
    await c.clunk(4);
    await c.walk(0, 5, ['sub']);
    await c.renameat(5, 'f0', 5, 'renamed');
    await c.lopen(1, O_RDWR);
    await c.write(1, 0, 'through the held fid');
    await c.fsync(1);
    const f = await (await folder.getDirectoryHandle('sub')).getFileHandle('renamed');
    expect(td.decode(await (await f.getFile()).slice(0).arrayBuffer())).toBe('through the held fid');
  });

  it('leaves out of a listing in progress a name removed since it was taken, while the table is trimmed', async () => {
    const folder = fakeFolder();
    for (let i = 0; i < N; i++) await (await folder.getFileHandle(`g${i}`, { create: true })).createWritable().then((w) => w.close());
    const { c, fs } = await mount(folder);
    await c.walk(0, 1, []);
    await c.lopen(1, O_RDONLY);
    const first = await c.readdir(1, 0, 4096);
    expect(first.length).toBeGreaterThan(10);
    const last = first[first.length - 1]!;
    await c.unlinkat(0, `g${N - 1}`); // not yet read
    const rest: string[] = [];
    for (let off = last.offset; ; ) {
      const page = await c.readdir(1, off, 4096);
      if (page.length === 0) break;
      rest.push(...page.map((d) => d.name));
      off = page[page.length - 1]!.offset;
    }
    const all = [...first.map((d) => d.name), ...rest].filter((n) => n !== '.' && n !== '..');
    expect(all).not.toContain(`g${N - 1}`);
    expect(new Set(all).size).toBe(N - 1);
    expect(fs.knownNodes).toBeLessThanOrEqual(DIR_FS_LOOSE_NODES + 2);
  });
});
