/**
 * 9P2000.L conformance through the virtio harness, against every backend where it applies.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from '../../src/backends/fs/backend.js';
import {
  E2BIG,
  EBADF,
  EEXIST,
  EINVAL,
  EISDIR,
  EMSGSIZE,
  ENAMETOOLONG,
  ENODATA,
  ENOENT,
  ENOTDIR,
  ENOTEMPTY,
  EPERM,
} from '../../src/backends/fs/errno.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { AT_REMOVEDIR, LOCK_BLOCKED, LOCK_SUCCESS, LOCK_TYPE_RDLCK, LOCK_TYPE_UNLCK, LOCK_TYPE_WRLCK, QT_DIR, QT_SYMLINK } from '../../src/devices/p9/wire.js';
import { DEVICE_ID_9P, F_INDIRECT_DESC, MMIO, bit } from '../../src/virtio/constants.js';
import { cases } from './backends.js';
import { P9Client, errnoOf } from '../../src/testing/index.js';

const O_RDONLY = 0;
const O_WRONLY = 1;
const O_RDWR = 2;
const O_TRUNC = 0o1000;
const td = new TextDecoder();

// Every backend on split rings; MemFs once more on packed rings (VIRTIO_F_RING_PACKED).
const runs = [...cases.map((bc) => ({ bc, packed: false })), ...cases.filter((bc) => bc.name === 'MemFs').map((bc) => ({ bc, packed: true }))];

for (const { bc, packed } of runs) {
  describe(`9P2000.L over ${bc.name}${packed ? ', packed ring' : ''}`, () => {
    afterAll(() => bc.cleanup());

    const mounted = async (msize = 8192): Promise<P9Client> => {
      const c = new P9Client(new Virtio9p(bc.make(), { tag: 'share' }), { packed });
      await c.mount(msize);
      return c;
    };

    it('is device 9 with a mount tag, one big queue and indirect descriptors', () => {
      const dev = new Virtio9p(bc.make(), { tag: 'hostshare' });
      const c = new P9Client(dev, { packed });
      expect(c.drv.read(MMIO.DeviceID)).toBe(DEVICE_ID_9P);
      expect(c.drv.features & 1n).toBe(1n);
      expect(c.drv.features & bit(F_INDIRECT_DESC)).toBe(bit(F_INDIRECT_DESC));
      expect(c.drv.config(0, 2)).toBe(9);
      const tag = Array.from({ length: 9 }, (_, i) => c.drv.config(2 + i, 1));
      expect(String.fromCharCode(...tag)).toBe('hostshare');
      expect(c.drv.config(11, 1)).toBe(0);
      c.drv.write(MMIO.QueueSel, 0);
      expect(c.drv.read(MMIO.QueueNumMax)).toBeGreaterThanOrEqual(128);
      c.drv.write(MMIO.QueueSel, 1);
      expect(c.drv.read(MMIO.QueueNumMax)).toBe(0);
    });

    it('negotiates msize: clamps above 512000, refuses below 4096, answers unknown versions', async () => {
      const c = new P9Client(new Virtio9p(bc.make()), { packed });
      expect(await c.version(1 << 20)).toEqual({ msize: 512000, version: '9P2000.L' });
      expect(await c.version(8192)).toEqual({ msize: 8192, version: '9P2000.L' });
      expect(await errnoOf(c.version(4095))).toBe(EMSGSIZE);
      expect((await c.version(8192, '9P2000')).version).toBe('unknown');
      expect(await c.version(4096)).toEqual({ msize: 4096, version: '9P2000.L' });
      const root = await c.attach(0);
      expect(root.type).toBe(QT_DIR);
    });

    it('walks: none, 16 names, "..", missing first and second element, no slash', async () => {
      const c = await mounted();
      const root = (await c.walk(0, 1, []))[0];
      expect(root).toBeUndefined();
      const names = Array.from({ length: 16 }, (_, i) => `d${i}`);
      await c.walk(0, 2, []);
      for (const n of names) {
        await c.mkdir(2, n);
        await c.walk(2, 2, [n]);
      }
      const qids = await c.walk(0, 3, names);
      expect(qids).toHaveLength(16);
      expect(qids.every((q) => q.type === QT_DIR)).toBe(true);
      expect(new Set(qids.map((q) => q.path)).size).toBe(16);
      expect(await errnoOf(c.walk(0, 4, [...names, 'x']))).toBe(EINVAL);
      // '..' from the root stays at the root; from d0 goes back to the root.
      const rootQid = await c.attach(9);
      expect((await c.walk(0, 4, ['..']))[0]!.path).toBe(rootQid.path);
      expect((await c.walk(0, 5, ['d0', '..']))[1]!.path).toBe(rootQid.path);
      // Missing first element: Rlerror, newfid not created.
      expect(await errnoOf(c.walk(0, 6, ['nope']))).toBe(ENOENT);
      expect(await errnoOf(c.getattr(6))).toBe(EBADF);
      // Missing second element: Rwalk with one qid, newfid not created.
      const part = await c.walk(0, 6, ['d0', 'nope']);
      expect(part).toHaveLength(1);
      expect(await errnoOf(c.getattr(6))).toBe(EBADF);
      // Names with a slash are refused, not split.
      expect(await errnoOf(c.walk(0, 6, ['d0/d1']))).toBe(ENOENT);
      expect(await errnoOf(c.walk(0, 6, ['']))).toBe(ENOENT);
      // Walking through a file.
      await c.walk(0, 7, []);
      await c.lcreate(7, 'f', O_RDWR);
      expect(await errnoOf(c.walk(7, 8, ['x']))).toBe(ENOTDIR);
      expect(await c.walk(0, 8, ['f', 'x'])).toHaveLength(1);
      expect(await errnoOf(c.getattr(8))).toBe(EBADF);
    });

    it('opens, writes and reads back; O_TRUNC; Tlopen on an open fid is EINVAL', async () => {
      const c = await mounted();
      await c.walk(0, 1, []);
      const q = await c.lcreate(1, 'file', O_RDWR, 0o640);
      expect(q.type).toBe(0);
      expect(await c.write(1, 0, 'hello world')).toBe(11);
      expect(await c.write(1, 20, 'tail')).toBe(4);
      const back = await c.read(1, 0, 100);
      expect(back.length).toBe(24);
      expect(td.decode(back.subarray(0, 11))).toBe('hello world');
      expect([...back.subarray(11, 20)]).toEqual(new Array(9).fill(0));
      expect(await c.read(1, 1000, 10)).toHaveLength(0);
      expect(await errnoOf(c.lopen(1, O_RDONLY))).toBe(EINVAL);
      await c.clunk(1);
      await c.walk(0, 2, ['file']);
      const st = await c.getattr(2);
      expect(st.size).toBe(24);
      expect(st.mode).toBe(S_IFREG | 0o640);
      await c.lopen(2, O_WRONLY | O_TRUNC);
      expect((await c.getattr(2)).size).toBe(0);
      expect(await errnoOf(c.read(2, 0, 10))).toBe(EBADF);
      // A directory can't be opened for writing; any read flags work.
      await c.walk(0, 3, []);
      expect(await errnoOf(c.lopen(3, O_WRONLY))).toBe(EISDIR);
      await c.lopen(3, 0o100000 /* O_LARGEFILE */);
    });

    it('moves a large read and write at msize 512000 through 125 page-sized segments', async () => {
      const c = await mounted(512000);
      await c.walk(0, 1, []);
      await c.lcreate(1, 'big', O_RDWR);
      const data = new Uint8Array(500_000).map((_, i) => (i * 7 + 3) & 0xff);
      // The request split in pages as Linux's zero-copy path does (header then pages).
      expect(await c.write(1, 0, data, { requestPiece: 4096, indirect: true })).toBe(data.length);
      const back = await c.read(1, 0, 500_000, { replyFirst: 11, pieceSize: 4096, indirect: true, replySize: 11 + 500_000 });
      expect(back.length).toBe(500_000);
      expect(Buffer.compare(back, data)).toBe(0);
      // A reply never exceeds msize: asking for more gets msize - 11 bytes.
      await c.write(1, 500_000, data.subarray(0, 100_000));
      const capped = await c.read(1, 0, 600_000, { replySize: 512000 });
      expect(capped.length).toBe(512000 - 11);
    });

    it('lists a directory split at 128/256/512 bytes with every entry exactly once', async () => {
      const c = await mounted();
      await c.walk(0, 1, []);
      await c.mkdir(1, 'dir');
      await c.walk(1, 1, ['dir']);
      const want = new Set<string>(['.', '..']);
      for (let i = 0; i < 150; i++) {
        const name = `entry-${i}-${'x'.repeat(i % 40)}`;
        await c.walk(1, 2, []);
        await c.lcreate(2, name, O_RDWR);
        await c.clunk(2);
        want.add(name);
      }
      await c.lopen(1, O_RDONLY);
      for (const count of [128, 256, 512]) {
        const got = await c.readdirAll(1, count);
        const names = got.map((e) => e.name);
        expect(names.length).toBe(want.size);
        expect(new Set(names)).toEqual(want);
        const dot = got.find((e) => e.name === '.')!;
        expect(dot.type).toBe(4);
        expect(got.find((e) => e.name === 'entry-3-xxx')!.type).toBe(8);
      }
      // Entries removed mid-listing never make others repeat or vanish.
      const first = await c.readdir(1, 0, 512);
      await c.walk(0, 3, ['dir']);
      const removed = new Set<string>();
      for (let i = 0; i < 150; i += 2) {
        const name = `entry-${i}-${'x'.repeat(i % 40)}`;
        if (first.some((e) => e.name === name)) continue;
        await c.unlinkat(3, name);
        removed.add(name);
      }
      expect(removed.size).toBeGreaterThan(40);
      let off = first[first.length - 1]!.offset;
      const seen = new Set(first.map((e) => e.name));
      for (;;) {
        const part = await c.readdir(1, off, 256);
        if (part.length === 0) break;
        for (const e of part) {
          expect(seen.has(e.name)).toBe(false);
          expect(removed.has(e.name)).toBe(false);
          seen.add(e.name);
        }
        off = part[part.length - 1]!.offset;
      }
      expect(seen.size).toBe(want.size - removed.size);
    });

    it('creates and unlinks directories, files, symlinks, hard links and nodes', async () => {
      const c = await mounted();
      await c.walk(0, 1, []);
      const dq = await c.mkdir(1, 'sub', 0o750);
      expect(dq.type).toBe(QT_DIR);
      expect(await errnoOf(c.mkdir(1, 'sub'))).toBe(EEXIST);
      for (const bad of ['.', '..']) {
        expect(await errnoOf(c.mkdir(1, bad))).toBe(EEXIST);
        expect(await errnoOf(c.symlink(1, bad, 'x'))).toBe(EEXIST);
        await c.walk(0, 9, []);
        expect(await errnoOf(c.lcreate(9, bad, O_RDWR))).toBe(EEXIST);
        await c.clunk(9);
      }
      const sq = await c.symlink(1, 'ln', '../../../etc/passwd');
      expect(sq.type).toBe(QT_SYMLINK);
      await c.walk(0, 2, ['ln']);
      expect(await c.readlink(2)).toBe('../../../etc/passwd');
      expect(((await c.getattr(2)).mode & S_IFMT) >>> 0).toBe(S_IFLNK);
      // Walking through a symlink does not follow it.
      expect(await errnoOf(c.walk(2, 3, ['x']))).toBe(ENOTDIR);
      expect(await c.walk(0, 3, ['ln', 'x'])).toHaveLength(1);
      await c.walk(0, 3, []);
      await c.lcreate(3, 'orig', O_RDWR);
      await c.write(3, 0, 'shared');
      if (bc.hardLinks === false) {
        // A host without hard links (a browser's directory handles) says so, as FAT does.
        expect(await errnoOf(c.link(1, 3, 'hard'))).toBe(EPERM);
        await c.unlinkat(1, 'orig');
      } else {
        await c.link(1, 3, 'hard');
        expect(await errnoOf(c.link(1, 3, 'hard'))).toBe(EEXIST);
        expect(await errnoOf(c.link(1, 3, '.'))).toBe(EEXIST);
        await c.walk(0, 4, ['hard']);
        expect((await c.getattr(4)).nlink).toBe(2);
        expect((await c.getattr(4)).qid.path).toBe((await c.getattr(3)).qid.path);
        await c.lopen(4, O_RDONLY);
        expect(td.decode(await c.read(4, 0, 100))).toBe('shared');
        await c.unlinkat(1, 'orig');
        expect((await c.getattr(4)).nlink).toBe(1);
        await c.unlinkat(1, 'hard');
      }
      await c.unlinkat(1, 'ln');
      expect(await errnoOf(c.walk(0, 5, ['ln']))).toBe(ENOENT);
      // rmdir needs AT_REMOVEDIR and an empty directory.
      await c.walk(0, 5, ['sub']);
      await c.mkdir(5, 'inner');
      expect(await errnoOf(c.unlinkat(1, 'sub'))).toBe(EISDIR);
      expect(await errnoOf(c.unlinkat(1, 'sub', AT_REMOVEDIR))).toBe(ENOTEMPTY);
      await c.unlinkat(5, 'inner', AT_REMOVEDIR);
      await c.unlinkat(1, 'sub', AT_REMOVEDIR);
      expect(await errnoOf(c.walk(0, 6, ['sub']))).toBe(ENOENT);
      const fq = await c.mknod(1, 'fifo', S_IFIFO | 0o644);
      expect(fq.type).toBe(0);
      await c.mknod(1, 'tty', S_IFCHR | 0o600, 4, 1);
      await c.walk(0, 7, ['tty']);
      const st = await c.getattr(7);
      expect(st.mode).toBe(S_IFCHR | 0o600);
      expect(st.rdev).toBe((4 << 8) | 1);
    });

    it('keeps an open fid working after its file is unlinked', async () => {
      const c = await mounted();
      await c.walk(0, 1, []);
      await c.lcreate(1, 'gone', O_RDWR);
      await c.write(1, 0, 'still here');
      await c.unlinkat(0, 'gone');
      expect(await errnoOf(c.walk(0, 2, ['gone']))).toBe(ENOENT);
      expect(td.decode(await c.read(1, 0, 100))).toBe('still here');
      expect(await c.write(1, 10, '!')).toBe(1);
      expect(td.decode(await c.read(1, 0, 100))).toBe('still here!');
      const st = await c.getattr(1);
      expect(st.nlink).toBe(0);
      expect(st.size).toBe(11);
      await c.clunk(1);
    });

    it('renames with Trenameat and Trename; fids follow', async () => {
      const c = await mounted();
      await c.walk(0, 1, []);
      await c.mkdir(1, 'a');
      await c.mkdir(1, 'b');
      await c.walk(0, 2, ['a']);
      await c.walk(0, 3, ['b']);
      await c.walk(2, 4, []);
      await c.lcreate(4, 'f', O_RDWR);
      await c.write(4, 0, 'x');
      await c.renameat(2, 'f', 3, 'g');
      expect(await errnoOf(c.walk(2, 5, ['f']))).toBe(ENOENT);
      await c.walk(3, 5, ['g']);
      await c.rename(5, 2, 'h');
      await c.walk(2, 6, ['h']);
      expect((await c.getattr(6)).size).toBe(1);
      // A directory can't move below itself.
      expect(await errnoOf(c.renameat(0, 'a', 2, 'inside'))).toBe(EINVAL);
    });

    it('answers getattr, setattr, statfs and fsync', async () => {
      const c = await mounted();
      await c.walk(0, 1, []);
      await c.lcreate(1, 'f', O_RDWR, 0o600);
      await c.write(1, 0, new Uint8Array(5000));
      await c.setattr(1, { valid: 0x1 | 0x8 | 0x10 | 0x20 | 0x80 | 0x100, mode: 0o4711, size: 100, atime: 1000, mtime: 2000 });
      const st = await c.getattr(1);
      expect(st.mode).toBe(S_IFREG | 0o4711);
      expect(st.size).toBe(100);
      expect(st.atime).toBe(1000);
      expect(st.mtime).toBe(2000);
      expect(st.valid & 0x7ffn).toBe(0x7ffn);
      const root = await c.getattr(0);
      expect(root.mode & S_IFMT).toBe(S_IFDIR);
      const sf = await c.statfs(0);
      expect(sf.bsize).toBeGreaterThan(0);
      expect(sf.namelen).toBeGreaterThanOrEqual(255);
      await c.fsync(1);
      expect(await errnoOf(c.fsync(0))).toBe(EBADF);
    });

    it('keeps the mode bits, owner and nanosecond times exactly as sent; a ctime-only setattr moves ctime', async () => {
      const c = await mounted();
      await c.attach(1, 65534);
      await c.walk(1, 2, []);
      // A host umask (022 here) must not apply a second time.
      await c.lcreate(2, 'f', O_RDWR, 0o4777, 65533);
      let st = await c.getattr(2);
      expect(st.mode).toBe(S_IFREG | 0o4777);
      expect([st.uid, st.gid]).toEqual([65534, 65533]);
      await c.walk(1, 3, []);
      await c.mkdir(3, 'd', 0o1777, 65533);
      await c.walk(1, 4, ['d']);
      st = await c.getattr(4);
      expect(st.mode).toBe(S_IFDIR | 0o1777);
      expect([st.uid, st.gid]).toEqual([65534, 65533]);
      await c.setattr(2, { valid: 0x10 | 0x20 | 0x80 | 0x100, atime: 1000, atimeNsec: 123456789, mtime: 2000, mtimeNsec: 987654321 });
      st = await c.getattr(2);
      expect([st.atime, st.atimeNsec, st.mtime, st.mtimeNsec]).toEqual([1000, 123456789, 2000, 987654321]);
      // chown(f, -1, -1): Linux sends a setattr with only ATTR_CTIME.
      const before = st.ctime * 1e9 + st.ctimeNsec;
      await new Promise((r) => setTimeout(r, 20));
      await c.setattr(2, { valid: 0x40 });
      st = await c.getattr(2);
      expect(st.ctime * 1e9 + st.ctimeNsec).toBeGreaterThan(before);
      expect([st.atimeNsec, st.mtimeNsec]).toEqual([123456789, 987654321]);
    });

    it('never gives a regular file qid version 0 (Linux would then bypass cache=loose)', async () => {
      const c = await mounted();
      await c.walk(0, 1, []);
      const made = await c.lcreate(1, 'fresh', O_RDWR);
      await c.walk(0, 2, ['fresh']);
      const walked = (await c.walk(0, 3, ['fresh']))[0]!;
      const opened = (await c.lopen(2, 0)).qid;
      const st = await c.getattr(3);
      for (const q of [made, walked, opened, st.qid]) expect(q.version).not.toBe(0);
    });

    it('follows a path deeper than 64 KiB', async () => {
      const c = await mounted();
      await c.walk(0, 1, []);
      const name = 'n'.repeat(250);
      let depth = 0;
      let failure = 0;
      while (depth * 251 <= 66_000) {
        try {
          await c.mkdir(1, name);
          await c.walk(1, 1, [name]);
        } catch (e) {
          failure = (e as { errno?: number }).errno ?? -1;
          break;
        }
        depth++;
      }
      expect(failure).toBe(0);
      await c.walk(1, 2, []);
      await c.lcreate(2, 'leaf', O_RDWR);
      await c.write(2, 0, 'deep');
      // Walk back to it from the root, 16 names per Twalk.
      await c.walk(0, 3, []);
      for (let left = depth; left > 0; left -= 16) {
        await c.walk(3, 3, new Array(Math.min(16, left)).fill(name));
      }
      await c.walk(3, 4, ['leaf']);
      await c.lopen(4, O_RDONLY);
      expect(td.decode(await c.read(4, 0, 10))).toBe('deep');
    });

    it('holds POSIX byte-range locks per owner', async () => {
      const c = await mounted();
      await c.walk(0, 1, []);
      await c.lcreate(1, 'lk', O_RDWR);
      expect(await c.lock(1, LOCK_TYPE_WRLCK, 0, 100, 1)).toBe(LOCK_SUCCESS);
      // Another owner conflicts; the same owner doesn't.
      expect(await c.lock(1, LOCK_TYPE_RDLCK, 50, 10, 2)).toBe(LOCK_BLOCKED);
      expect(await c.lock(1, LOCK_TYPE_RDLCK, 50, 10, 1)).toBe(LOCK_SUCCESS);
      expect(await c.lock(1, LOCK_TYPE_RDLCK, 100, 10, 2)).toBe(LOCK_SUCCESS);
      const g = await c.getlock(1, LOCK_TYPE_WRLCK, 0, 0, 2);
      expect(g).toMatchObject({ type: LOCK_TYPE_WRLCK, start: 0, length: 50, procId: 1 });
      // The same pid from another client is another owner.
      expect(await c.lock(1, LOCK_TYPE_WRLCK, 0, 10, 1, 'other')).toBe(LOCK_BLOCKED);
      // Unlocking everything of pid 1 lets pid 2 take the range.
      expect(await c.lock(1, LOCK_TYPE_UNLCK, 0, 0, 1)).toBe(LOCK_SUCCESS);
      expect(await c.lock(1, LOCK_TYPE_WRLCK, 0, 100, 2)).toBe(LOCK_SUCCESS);
      const held = await c.getlock(1, LOCK_TYPE_WRLCK, 105, 1, 1);
      expect(held).toMatchObject({ type: LOCK_TYPE_RDLCK, start: 100, length: 10, procId: 2 });
      // Unlocking the middle of a range splits it.
      expect(await c.lock(1, LOCK_TYPE_WRLCK, 1000, 100, 5)).toBe(LOCK_SUCCESS);
      expect(await c.lock(1, LOCK_TYPE_UNLCK, 1040, 20, 5)).toBe(LOCK_SUCCESS);
      expect(await c.getlock(1, LOCK_TYPE_WRLCK, 1000, 0, 6)).toMatchObject({ start: 1000, length: 40, procId: 5 });
      expect(await c.lock(1, LOCK_TYPE_WRLCK, 1045, 10, 6)).toBe(LOCK_SUCCESS);
      expect(await c.lock(1, LOCK_TYPE_WRLCK, 1060, 1, 6)).toBe(LOCK_BLOCKED);
      // Length 0 means to the end of the file.
      expect(await c.lock(1, LOCK_TYPE_RDLCK, 5000, 0, 7)).toBe(LOCK_SUCCESS);
      expect(await c.lock(1, LOCK_TYPE_WRLCK, 2 ** 40, 1, 8)).toBe(LOCK_BLOCKED);
      const none = await c.getlock(1, LOCK_TYPE_RDLCK, 500, 5, 1);
      expect(none).toMatchObject({ type: LOCK_TYPE_UNLCK, start: 500, length: 5, procId: 1 });
    });

    it('sets, lists, reads and removes xattrs within the 64 KiB limit', async () => {
      const c = await mounted(200_000);
      await c.walk(0, 1, []);
      await c.lcreate(1, 'x', O_RDWR);
      await c.clunk(1);
      await c.walk(0, 1, ['x']);
      const set = async (name: string, value: Uint8Array, flags = 0): Promise<void> => {
        await c.walk(1, 2, []);
        await c.xattrcreate(2, name, value.length, flags);
        if (value.length > 0) expect(await c.write(2, 0, value)).toBe(value.length);
        await c.clunk(2);
      };
      const supported = await c
        .walk(1, 2, [])
        .then(() => c.xattrcreate(2, 'user.probe', 1))
        .then(() => c.write(2, 0, 'p'))
        .then(() => c.clunk(2))
        .then(
          () => true,
          () => false,
        );
      // The limit is the server's, whatever the backend.
      await c.walk(1, 3, []);
      expect(await errnoOf(c.xattrcreate(3, 'user.big', 65537))).toBe(E2BIG);
      await c.clunk(3);
      // Both backends keep xattrs (HostFs in its metadata store).
      expect(supported).toBe(true);
      await set('user.a', new TextEncoder().encode('alpha'));
      await set('user.max', new Uint8Array(65536).fill(7));
      expect(await c.xattrwalk(1, 4, 'user.a')).toBe(5);
      expect(td.decode(await c.read(4, 0, 100))).toBe('alpha');
      expect(await c.read(4, 2 ** 53 + 10, 100)).toHaveLength(0);
      await c.clunk(4);
      const listLen = await c.xattrwalk(1, 4, '');
      const list = td.decode(await c.read(4, 0, listLen)).split('\0').filter((s) => s !== '');
      expect(list.sort()).toEqual(['user.a', 'user.max', 'user.probe']);
      await c.clunk(4);
      // Partially written: clunk says EINVAL and nothing is stored.
      await c.walk(1, 5, []);
      await c.xattrcreate(5, 'user.part', 10);
      await c.write(5, 0, 'abc');
      expect(await errnoOf(c.clunk(5))).toBe(EINVAL);
      expect(await errnoOf(c.xattrwalk(1, 6, 'user.part'))).toBe(ENODATA);
      // Writing past the declared size stores only what fits.
      await c.walk(1, 5, []);
      await c.xattrcreate(5, 'user.fit', 4);
      expect(await c.write(5, 2, 'abcdef')).toBe(2);
      expect(await c.write(5, 0, 'xy')).toBe(2);
      await c.clunk(5);
      await c.xattrwalk(1, 6, 'user.fit');
      expect(td.decode(await c.read(6, 0, 10))).toBe('xyab');
      await c.clunk(6);
      // Size 0 removes.
      await set('user.a', new Uint8Array(0));
      expect(await errnoOf(c.xattrwalk(1, 6, 'user.a'))).toBe(ENODATA);
    });
  });
}
