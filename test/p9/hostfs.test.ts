/**
 * HostFs confinement (docs/hostile-guest.md lines 35, 36, 44): the guest never reaches a host file
 * outside the share, never makes the server follow a symlink or open a device node or FIFO.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { EACCES, EEXIST, EINVAL, EIO, ELOOP, ENOENT, ENOTDIR, ENOTEMPTY, EPERM, EROFS, fsError } from '../../src/backends/fs/errno.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK } from '../../src/backends/fs/backend.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { HostFs, META_DIR, hostErrno } from '../../src/node/host-fs.js';
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
    // The guest's own FIFO is a plain empty host file (mapped), or refused (passthrough).
    await c.walk(0, 2, []);
    await c.mknod(2, 'fifo2', 0o10644);
    expect(fs.lstatSync(path.join(share, 'fifo2')).isFile()).toBe(true);
    await c.walk(0, 3, ['fifo2']);
    expect(await errnoOf(c.lopen(3, 0))).toBe(EACCES);
    const p = await client(new HostFs(share, { mode: 'passthrough' }));
    await p.walk(0, 2, []);
    expect(await errnoOf(p.mknod(2, 'fifo3', 0o10644))).toBe(EPERM);
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

/** The record files of a share's metadata store. */
function records(share: string): string[] {
  const d = path.join(share, META_DIR);
  return fs.existsSync(d) ? fs.readdirSync(d).sort() : [];
}

describe('HostFs mapped metadata', () => {
  it('keeps mode, owner, node type and rdev in the store; the host sees plain files it owns', async () => {
    const { share, fs: h } = setup();
    const c = await client(h);
    await c.attach(1, 65534);
    await c.walk(1, 2, []);
    await c.mknod(2, 'fifo', S_IFIFO | 0o640);
    await c.mknod(2, 'sock', S_IFSOCK | 0o600);
    await c.mknod(2, 'chr', S_IFCHR | 0o620, 4, 1);
    await c.mknod(2, 'blk', S_IFBLK | 0o660, 8, 3);
    await c.symlink(2, 'ln', '/etc/passwd');
    await c.lcreate(2, 'suid', O_RDWR, 0o6755, 65533);
    const want: Record<string, number> = {
      fifo: S_IFIFO | 0o640,
      sock: S_IFSOCK | 0o600,
      chr: S_IFCHR | 0o620,
      blk: S_IFBLK | 0o660,
      ln: S_IFLNK | 0o777,
      suid: S_IFREG | 0o6755,
    };
    let fid = 10;
    for (const [name, mode] of Object.entries(want)) {
      await c.walk(0, fid, [name]);
      const st = await c.getattr(fid);
      expect(st.mode).toBe(mode);
      expect(st.uid).toBe(65534);
      if (name === 'chr') expect(st.rdev).toBe((4 << 8) | 1);
      if (name === 'blk') expect(st.rdev).toBe((8 << 8) | 3);
      fid++;
      // On the host: a regular file (or the symlink), no setuid bit, owned by this process.
      const hs = fs.lstatSync(path.join(share, name));
      expect(name === 'ln' ? hs.isSymbolicLink() : hs.isFile()).toBe(true);
      expect(hs.mode & 0o7000).toBe(0);
      expect(hs.uid).toBe(process.getuid!());
    }
    expect((await c.getattr(15)).gid).toBe(65533);
    // The listing shows the guest's types and never the store.
    await c.walk(0, 20, []);
    await c.lopen(20, 0);
    const ents = await c.readdirAll(20);
    expect(ents.map((d) => d.name)).not.toContain(META_DIR);
    expect(ents.find((d) => d.name === 'fifo')?.type).toBe(1); // DT_FIFO
    expect(await errnoOf(c.walk(0, 21, [META_DIR]))).toBe(ENOENT);
    await c.walk(0, 21, []);
    expect(await errnoOf(c.mkdir(21, META_DIR))).toBe(EPERM);
    expect(await errnoOf(c.renameat(21, 'fifo', 21, META_DIR))).toBe(EPERM);
    // A new HostFs over the same directory reads the same metadata back.
    const again = await client(new HostFs(share));
    await again.walk(0, 1, ['chr']);
    expect((await again.getattr(1)).mode).toBe(S_IFCHR | 0o620);
  });

  it('keeps metadata with the inode through hard links, renames and unlinks', async () => {
    const { share, fs: h } = setup();
    const c = await client(h);
    await c.walk(0, 1, []);
    await c.lcreate(1, 'f', O_RDWR, 0o600);
    await c.walk(0, 2, ['f']);
    await c.walk(0, 3, []);
    await c.link(3, 2, 'g');
    await c.setattr(2, { valid: 0x1 | 0x2, mode: 0o741, uid: 1234 });
    await c.walk(0, 4, ['g']);
    expect((await c.getattr(4)).mode).toBe(S_IFREG | 0o741);
    expect((await c.getattr(4)).uid).toBe(1234);
    await c.renameat(3, 'g', 3, 'h');
    await c.walk(0, 5, ['h']);
    expect((await c.getattr(5)).mode).toBe(S_IFREG | 0o741);
    const n = records(share).length;
    await c.unlinkat(3, 'f');
    expect(records(share).length).toBe(n); // 'h' still links the inode
    expect((await c.getattr(5)).uid).toBe(1234);
    await c.unlinkat(3, 'h');
    expect(records(share).length).toBe(n - 1);
    // An open fid on the unlinked inode still answers the guest's metadata.
    expect((await c.getattr(1)).mode).toBe(S_IFREG | 0o741);
  });

  it('writes a record only where the host shows something else, and removes an emptied store', async () => {
    const { share, fs: h } = setup();
    const c = await client(h);
    await c.walk(0, 1, []);
    await c.mknod(1, 'fifo', S_IFIFO | 0o644);
    expect(records(share)).toHaveLength(1);
    await c.walk(0, 2, []);
    await c.lcreate(2, 'plain', O_RDWR, 0o640, process.getgid!());
    // Made by the same uid and gid that storvm runs as, with host-expressible bits: no record.
    if (process.getuid!() === 0) expect(records(share)).toHaveLength(1);
    await c.unlinkat(1, 'fifo');
    await c.unlinkat(1, 'plain');
    expect(fs.existsSync(path.join(share, META_DIR))).toBe(false);
    expect(fs.readdirSync(share).sort()).toEqual(['a', 'file']);
  });

  it('55: a corrupt, forged or missing store degrades to the host attributes, never outside the share', async () => {
    const { share, outside, fs: h } = setup();
    const c = await client(h);
    await c.walk(0, 1, []);
    await c.mknod(1, 'fifo', S_IFIFO | 0o600);
    await c.lcreate(1, 'file2', O_RDWR, 0o4640); // setuid: never on the host, so a record holds it
    const store = path.join(share, META_DIR);
    const ino = (name: string) => String(fs.lstatSync(path.join(share, name)).ino);
    const hostMode = (name: string) => fs.lstatSync(path.join(share, name)).mode;
    const look = async (name: string): Promise<number> => {
      const v = await client(new HostFs(share));
      await v.walk(0, 1, [name]);
      return (await v.getattr(1)).mode;
    };
    // Garbage, a truncated record, a wrong field: the host's own attributes.
    fs.writeFileSync(path.join(store, ino('fifo')), '\xff\xfe{not json');
    expect(await look('fifo')).toBe(hostMode('fifo'));
    const good = fs.readFileSync(path.join(store, ino('file2')), 'utf8');
    fs.writeFileSync(path.join(store, ino('file2')), good.slice(0, good.length / 2));
    expect(await look('file2')).toBe(hostMode('file2'));
    fs.writeFileSync(path.join(store, ino('file2')), good.replace('"m":', '"m":-1,"old":'));
    expect(await look('file2')).toBe(hostMode('file2'));
    // A forged type can't turn a file into a directory or symlink, nor a directory into a file.
    const forge = (mode: number) => good.replace(/"m":\d+/, `"m":${mode}`).replace(/"b":"[^"]*"/, '"b":"0"');
    fs.writeFileSync(path.join(store, ino('file2')), forge(S_IFDIR | 0o755));
    expect((await look('file2')) & S_IFMT).toBe(S_IFREG);
    fs.writeFileSync(path.join(store, ino('file2')), forge(S_IFLNK | 0o777));
    expect((await look('file2')) & S_IFMT).toBe(S_IFREG);
    fs.writeFileSync(path.join(store, ino('a')), forge(S_IFREG | 0o644));
    expect((await look('a')) & S_IFMT).toBe(S_IFDIR);
    const v = await client(new HostFs(share));
    await v.walk(0, 1, ['file2']);
    expect(await errnoOf(v.walk(1, 2, ['secret']))).toBe(ENOTDIR);
    // A record that is a symlink to a file outside is not read (nor written through).
    fs.writeFileSync(path.join(outside, 'record'), forge(S_IFCHR | 0o666));
    fs.rmSync(path.join(store, ino('file2')));
    fs.symlinkSync(path.join(outside, 'record'), path.join(store, ino('file2')));
    expect((await look('file2')) & S_IFMT).toBe(S_IFREG);
    // The store itself swapped for a symlink to the outside: defaults, and changes fail cleanly.
    fs.renameSync(store, path.join(share, 'old-store'));
    fs.symlinkSync(outside, store);
    const w = await client(new HostFs(share));
    await w.walk(0, 1, ['fifo']);
    expect((await w.getattr(1)).mode).toBe(hostMode('fifo'));
    expect(await errnoOf(w.setattr(1, { valid: 0x1, mode: 0o777 }))).toBe(EIO);
    await w.walk(0, 2, []);
    expect(await errnoOf(w.mknod(2, 'fifo9', S_IFIFO | 0o600))).toBe(EIO);
    expect(fs.existsSync(path.join(share, 'fifo9'))).toBe(false);
    expect(fs.readdirSync(outside).sort()).toEqual(['record', 'secret']);
    // No store at all: every file shows what the host holds.
    fs.rmSync(store);
    fs.rmSync(path.join(share, 'old-store'), { recursive: true });
    expect(await look('fifo')).toBe(hostMode('fifo'));
  });

  it('survives a kill in the middle of a record update: the old record holds, the temporary goes', async () => {
    const { share, fs: h } = setup();
    const c = await client(h);
    await c.walk(0, 1, []);
    await c.mknod(1, 'fifo', S_IFIFO | 0o640);
    const store = path.join(share, META_DIR);
    const ino = String(fs.lstatSync(path.join(share, 'fifo')).ino);
    const old = fs.readFileSync(path.join(store, ino), 'utf8');
    // What a storvm killed while writing the next version leaves: a partial temporary.
    const tmp = path.join(store, 'tmp.99999.0');
    fs.writeFileSync(tmp, old.replace('416', '511').slice(0, 20));
    const v = await client(new HostFs(share));
    expect(fs.existsSync(tmp)).toBe(false);
    await v.walk(0, 1, ['fifo']);
    expect((await v.getattr(1)).mode).toBe(S_IFIFO | 0o640);
    // And a finished update replaces the record whole.
    await v.setattr(1, { valid: 0x1, mode: 0o600 });
    expect(fs.readdirSync(store)).toEqual([ino]);
    expect((await v.getattr(1)).mode).toBe(S_IFIFO | 0o600);
  });

  it('a kill while a node is made leaves no node or the whole node: the next mount sweeps the store', async () => {
    const { share, fs: h } = setup();
    const c = await client(h);
    await c.walk(0, 1, []);
    await c.mknod(1, 'keep', S_IFIFO | 0o640);
    const store = path.join(share, META_DIR);
    const keepIno = String(fs.lstatSync(path.join(share, 'keep')).ino);
    const rec = fs.readFileSync(path.join(store, keepIno));
    // Killed after the record, before the link: a node in the store that only the store names.
    const lone = path.join(store, 'new.99999.0');
    fs.writeFileSync(lone, '');
    const loneIno = String(fs.lstatSync(lone).ino);
    fs.writeFileSync(path.join(store, loneIno), rec);
    // Killed after the link, before the store's name went: two links, the record is the node's.
    fs.linkSync(path.join(share, 'keep'), path.join(store, 'new.99999.1'));
    // A directory killed before its rename, with its record.
    const dir = path.join(store, 'new.99999.2');
    fs.mkdirSync(dir);
    const dirIno = String(fs.lstatSync(dir).ino);
    fs.writeFileSync(path.join(store, dirIno), rec);
    const v = await client(new HostFs(share));
    expect(fs.readdirSync(store).sort()).toEqual([keepIno]);
    await v.walk(0, 1, ['keep']);
    expect((await v.getattr(1)).mode).toBe(S_IFIFO | 0o640);
    expect(fs.lstatSync(path.join(share, 'keep')).nlink).toBe(1);
    // And nodes made now leave nothing of their making in the store.
    await v.walk(0, 2, []);
    await v.mkdir(2, 'd', 0o750, 4242);
    await v.lcreate(2, 'f', 0o1, 0o640, 4242);
    expect(fs.readdirSync(store).filter((n) => !/^\d+$/.test(n))).toEqual([]);
    expect(fs.lstatSync(path.join(share, 'f')).nlink).toBe(1);
  });

  it('keeps records whole when the storvm writing them is killed (SIGKILL, a real process)', async () => {
    const base = dirs.make();
    const share = path.join(base, 'share');
    fs.mkdirSync(share);
    const child = fileURLToPath(new URL('./meta-kill-child.ts', import.meta.url));
    const proc = spawn(process.execPath, ['--import', 'tsx', child, share], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
    let out = '';
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // Kill it at a moment of its own choosing: some way into the updates, not between two lines.
    const after = 40 + Math.floor(Math.random() * 80);
    await new Promise<void>((resolve, reject) => {
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if ((out.match(/^SET /gm) ?? []).length >= after) {
          proc.kill('SIGKILL');
          resolve();
        }
      });
      void exited.then(() => reject(new Error(`the child exited on its own: ${err}`)));
    });
    await exited;
    const sets = [...out.matchAll(/^SET (\d+)$/gm)].map((m) => Number(m[1]));
    const last = sets[sets.length - 1]!;
    // A new HostFs over the same folder: the killed writer's temporaries go, every record reads.
    const c = await client(new HostFs(share));
    expect(fs.readdirSync(path.join(share, META_DIR)).every((n) => /^\d+$/.test(n))).toBe(true);
    await c.walk(0, 1, ['f']);
    const f = await c.getattr(1);
    // The last answered update, or the one in flight, whole: its mode belongs with its uid.
    expect([last, last + 1]).toContain(f.uid);
    expect(f.mode).toBe(S_IFIFO | f.uid % 0o1000);
    // Every node made before the kill was answered is what the guest made; the one in flight is
    // missing or whole, never a host file without its record (an empty file or a bare directory).
    await c.walk(0, 2, []);
    await c.lopen(2, 0);
    const names = (await c.readdirAll(2)).map((e) => e.name).filter((n) => /^[ncd]\d+$/.test(n));
    const want: Record<string, number> = { n: S_IFIFO | 0o640, c: S_IFREG | 0o640, d: S_IFDIR | 0o750 };
    for (let i = 1; i <= last; i++) for (const k of 'ncd') expect(names).toContain(`${k}${i}`);
    for (const n of names) {
      const i = Number(n.slice(1));
      expect(i).toBeLessThanOrEqual(last + 1);
      await c.walk(0, 3, [n]);
      const st = await c.getattr(3);
      await c.clunk(3);
      expect([n, st.mode]).toEqual([n, want[n[0]!]]);
      if (n[0] !== 'n') expect([n, st.gid]).toEqual([n, 4242]);
    }
  }, 120_000);

  it('33-36: a PATH_MAX-long path works, walked by directory fds even when few stay open', async () => {
    const { share } = setup();
    const h = new HostFs(share, { dirFds: 8 });
    const c = await client(h);
    // 4095 bytes below the share (PATH_MAX less its NUL): 16 names of NAME_MAX bytes, joined by '/'.
    const names = [...Array.from({ length: 15 }, (_, i) => String(i).padEnd(255, 'x'))];
    names.push('leaf'.padEnd(255, 'y'));
    expect(names.join('/').length).toBe(4095);
    await c.walk(0, 1, []);
    for (const n of names.slice(0, -1)) {
      await c.mkdir(1, n);
      await c.walk(1, 1, [n]);
    }
    await c.lcreate(1, names.at(-1)!, O_RDWR);
    await c.write(1, 0, 'at the end');
    // Walk back from the root with a fresh fid; every directory fd was evicted meanwhile.
    await c.walk(0, 2, []);
    for (const n of names.slice(0, -1)) await c.walk(2, 2, [n]);
    await c.walk(2, 3, [names.at(-1)!]);
    await c.lopen(3, 0);
    expect(td.decode(await c.read(3, 0, 100))).toBe('at the end');
    await c.renameat(2, names.at(-1)!, 0, 'moved');
    expect(fs.readFileSync(path.join(share, 'moved'), 'utf8')).toBe('at the end');
    // '..' from the deepest directory still stops at the root.
    await c.walk(2, 4, new Array(16).fill('..'));
    expect((await c.getattr(4)).qid.path).toBe((await c.getattr(0)).qid.path);
  });
});

describe('HostFs mapped metadata, two shares of one folder', () => {
  it('keeps writing records after the other one removed the emptied store (the lab shares one folder over 9p and virtio-fs)', async () => {
    const { share } = setup();
    const a = await client(new HostFs(share));
    const b = await client(new HostFs(share));
    for (const c of [a, b]) {
      await c.attach(1, 0);
      await c.walk(1, 2, []);
    }
    await a.lcreate(2, 'first', O_RDWR, 0o4755); // a record, and A holds the store open
    expect(records(share)).toHaveLength(1);
    await b.unlinkat(2, 'first'); // B drops the last record and removes the store
    expect(fs.existsSync(path.join(share, META_DIR))).toBe(false);
    await a.walk(1, 3, []); // Tlcreate turned fid 2 into the file
    await a.lcreate(3, 'second', O_RDWR, 0o4755);
    await a.walk(1, 9, ['second']);
    expect((await a.getattr(9)).mode).toBe(S_IFREG | 0o4755);
    expect(records(share)).toHaveLength(1);
  });
});

describe('HostFs passthrough', () => {
  it("keeps the host's metadata: exact create modes (no second umask), ctime-only setattr, no store", async () => {
    const { share } = setup();
    const c = await client(new HostFs(share, { mode: 'passthrough' }));
    await c.walk(0, 1, []);
    await c.lcreate(1, 'f', O_RDWR, 0o757);
    expect(fs.statSync(path.join(share, 'f')).mode & 0o7777).toBe(0o757);
    await c.walk(0, 2, []);
    await c.mkdir(2, 'd', 0o777);
    expect(fs.statSync(path.join(share, 'd')).mode & 0o7777).toBe(0o777);
    await c.walk(0, 3, ['f']);
    const before = fs.statSync(path.join(share, 'f'), { bigint: true }).ctimeNs;
    await new Promise((r) => setTimeout(r, 20));
    await c.setattr(3, { valid: 0x40 });
    expect(fs.statSync(path.join(share, 'f'), { bigint: true }).ctimeNs).toBeGreaterThan(before);
    expect(fs.existsSync(path.join(share, META_DIR))).toBe(false);
  });
});
