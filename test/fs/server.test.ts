/**
 * The virtio-fs device and its FUSE server from the wire: requests built as Linux's virtio_fs
 * driver builds them, through the driver harness, over MemFs and HostFs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { VirtioFs } from '../../src/devices/fs/device.js';
import { FOPEN_CACHE_DIR, FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_NOFLUSH, INIT } from '../../src/devices/fs/fuse.js';
import { S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from '../../src/backends/fs/backend.js';
import * as E from '../../src/backends/fs/errno.js';
import { MMIO } from '../../src/virtio/constants.js';
import { MemFs } from '../../src/backends/fs/mem-fs.js';
import { Gate, gated } from '../p9/async-fs.js';
import { type BackendCase, cases as syncCases } from '../p9/backends.js';
import { Args, FUSE, FuseClient } from '../support/fuse.js';

const ROOT = 1n;

/** MemFs behind Promises that settle after random delays, so every asynchronous path runs. */
const asyncCase: BackendCase = {
  name: 'MemFs answering later',
  make: () => {
    const g = new Gate();
    g.auto = true;
    return gated(new MemFs(), g);
  },
  makeReadOnly: () => {
    const g = new Gate();
    g.auto = true;
    return gated(new MemFs({ tree: { f: 'hello', d: {} }, readOnly: true }), g);
  },
  cleanup: () => {},
};
const cases = [...syncCases, asyncCase];
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

afterAll(() => {
  for (const c of cases) c.cleanup();
});

describe('VirtioFs device', () => {
  it('is device 26 with the tag and the request queue count in config space (VIRTIO 1.2, 5.11.4)', () => {
    const c = new FuseClient(new VirtioFs(cases[0]!.make(), { tag: 'share', requestQueues: 2 }));
    expect(c.drv.read(MMIO.DeviceID)).toBe(26);
    const tag = [...Array(36).keys()].map((i) => c.drv.config(i, 1));
    expect(String.fromCharCode(...tag.slice(0, 5))).toBe('share');
    expect(tag.slice(5).every((b) => b === 0)).toBe(true);
    expect(c.drv.config(36)).toBe(2);
    expect(c.drv.device.queueMaxSizes).toHaveLength(3); // hiprio + 2 request queues
  });

  it('refuses a tag longer than 36 bytes or empty, and bad queue counts', () => {
    const fs = cases[0]!.make();
    expect(() => new VirtioFs(fs, { tag: 'x'.repeat(37) })).toThrow(RangeError);
    expect(() => new VirtioFs(fs, { tag: '' })).toThrow(RangeError);
    expect(() => new VirtioFs(fs, { requestQueues: 0 })).toThrow(RangeError);
    expect(() => new VirtioFs(fs, { cache: 'sometimes' as never })).toThrow(RangeError);
    expect(new VirtioFs(fs, { tag: 'x'.repeat(36) }).tag).toHaveLength(36);
  });

  it('negotiates FUSE 7.31 with the flags it offers, max_write and max_pages', async () => {
    const c = new FuseClient(new VirtioFs(cases[0]!.make(), { cache: 'auto' }));
    const d = await c.init();
    expect(d.getUint32(0, true)).toBe(7);
    expect(d.getUint32(4, true)).toBe(31);
    const flags = d.getUint32(12, true);
    for (const f of [INIT.BIG_WRITES, INIT.DO_READDIRPLUS, INIT.READDIRPLUS_AUTO, INIT.PARALLEL_DIROPS, INIT.MAX_PAGES, INIT.ASYNC_READ, INIT.AUTO_INVAL_DATA]) {
      expect(flags & f).toBe(f);
    }
    expect(flags & INIT.WRITEBACK_CACHE).toBe(0);
    const none = await new FuseClient(new VirtioFs(cases[0]!.make(), { cache: 'none' })).init();
    expect(none.getUint32(12, true) & INIT.DO_READDIRPLUS).toBe(0); // zero timeouts waste READDIRPLUS
    expect(flags & INIT.POSIX_LOCKS).toBe(0);
    expect(d.getUint32(20, true)).toBe(1 << 20); // max_write
    expect(d.getUint16(28, true)).toBe(256); // max_pages
    // Only flags the kernel offered are agreed.
    const c2 = new FuseClient(new VirtioFs(cases[0]!.make(), { cache: 'always' }));
    const d2 = await c2.init(INIT.BIG_WRITES | INIT.WRITEBACK_CACHE);
    expect(d2.getUint32(12, true)).toBe(INIT.BIG_WRITES | INIT.WRITEBACK_CACHE);
  });

  it('answers requests before INIT with EIO and unknown opcodes with ENOSYS', async () => {
    const c = new FuseClient(new VirtioFs(cases[0]!.make()));
    expect(await c.errno(FUSE.GETATTR, ROOT, new Args().zeros(16).done())).toBe(E.EIO);
    await c.init();
    expect(await c.errno(FUSE.GETATTR, ROOT, new Args().zeros(16).done())).toBe(0);
    for (const op of [FUSE.GETLK, FUSE.SETLK, FUSE.BMAP, FUSE.IOCTL, FUSE.POLL, FUSE.SETUPMAPPING, 999, 4096]) {
      expect(await c.errno(op, ROOT, new Args().zeros(64).done())).toBe(E.ENOSYS);
    }
  });
});

for (const bc of cases) {
  describe(`FUSE over ${bc.name}`, () => {
    const setup = async (opts: ConstructorParameters<typeof VirtioFs>[1] = {}) => {
      const dev = new VirtioFs(bc.make(), opts);
      const c = new FuseClient(dev);
      await c.init();
      return { c, dev };
    };

    it('creates, writes, reads back and stats a file; READ data may span many reply descriptors', async () => {
      const { c } = await setup();
      const { entry, fh } = await c.create(ROOT, 'f.txt');
      expect(entry.attr.mode & S_IFMT).toBe(S_IFREG);
      expect(entry.attr.mode & 0o777).toBe(0o644);
      const data = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
      expect(await c.write(entry.nodeid, fh, 0, data)).toBe(data.length);
      expect(await c.read(entry.nodeid, fh, 0, data.length, { piece: 4096 })).toEqual(data);
      expect(await c.read(entry.nodeid, fh, 299_990, 100)).toEqual(data.subarray(299_990));
      expect(await c.read(entry.nodeid, fh, 400_000, 100)).toEqual(new Uint8Array(0));
      const st = await c.getattr(entry.nodeid);
      expect(st.size).toBe(data.length);
      expect((await c.getattr(entry.nodeid, fh)).size).toBe(data.length);
      await c.release(entry.nodeid, fh);
      const again = await c.lookup(ROOT, 'f.txt');
      expect(again.nodeid).toBe(entry.nodeid); // the same inode keeps its node id
      expect(again.attr.ino).toBe(st.ino);
      const o = await c.open(again.nodeid, 0);
      expect(dec(await c.read(again.nodeid, o.fh, 0, 5))).toBe(String.fromCharCode(0, 7, 14, 21, 28));
      expect(await c.errno(FUSE.LOOKUP, ROOT, new Args().str('missing').done())).toBe(E.ENOENT);
    });

    it('open flags follow the cache mode: DIRECT_IO for none, KEEP_CACHE for always, NOFLUSH for all', async () => {
      for (const [cache, flag] of [['none', FOPEN_DIRECT_IO], ['auto', 0], ['always', FOPEN_KEEP_CACHE]] as const) {
        const { c } = await setup({ cache });
        const { openFlags, entry, fh } = await c.create(ROOT, 'x');
        expect(openFlags).toBe(flag | FOPEN_NOFLUSH);
        await c.release(entry.nodeid, fh);
        expect((await c.open(entry.nodeid, 0)).openFlags).toBe(flag | FOPEN_NOFLUSH);
        expect(entry.entryValid).toBe({ none: 0, auto: 1, always: 86400 }[cache]);
      }
    });

    it('each cache mode sends its own attribute timeout, directory open flags and INIT flags', async () => {
      const want = {
        none: { attr: 0, dir: 0, has: [] as number[], lacks: [INIT.DO_READDIRPLUS, INIT.AUTO_INVAL_DATA, INIT.WRITEBACK_CACHE, INIT.CACHE_SYMLINKS] },
        auto: { attr: 1, dir: 0, has: [INIT.DO_READDIRPLUS, INIT.AUTO_INVAL_DATA], lacks: [INIT.WRITEBACK_CACHE, INIT.CACHE_SYMLINKS] },
        always: { attr: 86400, dir: FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE, has: [INIT.DO_READDIRPLUS, INIT.WRITEBACK_CACHE, INIT.CACHE_SYMLINKS], lacks: [INIT.AUTO_INVAL_DATA] },
      };
      for (const cache of ['none', 'auto', 'always'] as const) {
        const dev = new VirtioFs(bc.make(), { cache });
        const c = new FuseClient(dev);
        const flags = (await c.init()).getUint32(12, true);
        for (const f of want[cache].has) expect(flags & f, `${cache} offers ${f}`).toBe(f);
        for (const f of want[cache].lacks) expect(flags & f, `${cache} does not offer ${f}`).toBe(0);
        const attr = await c.call(FUSE.GETATTR, ROOT, new Args().zeros(16).done());
        expect(Number(attr.getBigUint64(0, true))).toBe(want[cache].attr);
        expect((await c.open(ROOT, 0, true)).openFlags).toBe(want[cache].dir);
      }
    });

    it('O_TRUNC on OPEN truncates (ATOMIC_O_TRUNC), SETATTR changes size, mode and times', async () => {
      const { c } = await setup();
      const { entry, fh } = await c.create(ROOT, 'g');
      await c.write(entry.nodeid, fh, 0, enc('hello world'));
      await c.release(entry.nodeid, fh);
      const o = await c.open(entry.nodeid, 0o1002);
      expect((await c.getattr(entry.nodeid)).size).toBe(0);
      await c.write(entry.nodeid, o.fh, 0, enc('abcdef'));
      // valid = MODE|SIZE|MTIME with explicit time
      const sa = new Args().u32(1 | 8 | 32).u32(0).u64(0).u64(3).u64(0).u64(0).u64(1_600_000_000).u64(0).u32(0).u32(5).u32(0).u32(0o600).u32(0).u32(0).u32(0).u32(0).done();
      const d = await c.call(FUSE.SETATTR, entry.nodeid, sa);
      expect(d.getUint32(16 + 60, true) & 0o7777).toBe(0o600);
      const st = await c.getattr(entry.nodeid);
      expect(st.size).toBe(3);
      expect(st.mtime).toBe(1_600_000_000);
      expect(dec(await c.read(entry.nodeid, o.fh, 0, 100))).toBe('abc');
    });

    it('mkdir, symlink, readlink, link, mknod, rename, rename2 NOREPLACE, unlink and rmdir', async () => {
      const { c } = await setup();
      const d = await c.mkdir(ROOT, 'dir');
      expect(d.attr.mode & S_IFMT).toBe(S_IFDIR);
      const s = readEntryOf(await c.call(FUSE.SYMLINK, d.nodeid, new Args().str('ln').str('../target/anywhere').done()));
      expect(s.attr.mode & S_IFMT).toBe(S_IFLNK);
      const rl = await c.call(FUSE.READLINK, s.nodeid, undefined);
      expect(dec(new Uint8Array(rl.buffer, rl.byteOffset, rl.byteLength))).toBe('../target/anywhere');
      const f = await c.create(d.nodeid, 'a');
      await c.release(f.entry.nodeid, f.fh);
      const hard = bc.hardLinks !== false;
      if (hard) {
        const l = readEntryOf(await c.call(FUSE.LINK, ROOT, new Args().u64(f.entry.nodeid).str('hard').done()));
        expect(l.attr.nlink).toBe(2);
      } else expect(await c.errno(FUSE.LINK, ROOT, new Args().u64(f.entry.nodeid).str('hard').done())).toBe(E.EPERM);
      expect(await c.errno(FUSE.LINK, ROOT, new Args().u64(d.nodeid).str('dirlink').done())).toBe(E.EPERM);
      const fifo = await c.errno(FUSE.MKNOD, d.nodeid, new Args().u32(S_IFIFO | 0o644).u32(0).u32(0).u32(0).str('p').done());
      if (fifo === 0) expect((await c.lookup(d.nodeid, 'p')).attr.mode & S_IFMT).toBe(S_IFIFO);
      else expect(fifo).toBe(E.EPERM); // a host that refuses FIFOs
      await c.call(FUSE.RENAME, d.nodeid, new Args().u64(ROOT).str('a').str('moved').done());
      expect(await c.errno(FUSE.LOOKUP, d.nodeid, new Args().str('a').done())).toBe(E.ENOENT);
      expect((await c.lookup(ROOT, 'moved')).nodeid).toBe(f.entry.nodeid);
      const noreplace = new Args().u64(ROOT).u32(1).u32(0).str('ln').str('moved').done();
      expect(await c.errno(FUSE.RENAME2, d.nodeid, noreplace)).toBe(E.EEXIST);
      expect(await c.errno(FUSE.RENAME2, d.nodeid, new Args().u64(ROOT).u32(2).u32(0).str('ln').str('moved').done())).toBe(E.EINVAL);
      await c.call(FUSE.RENAME2, d.nodeid, new Args().u64(ROOT).u32(1).u32(0).str('ln').str('ln2').done());
      const keep = await c.create(d.nodeid, 'keep');
      await c.release(keep.entry.nodeid, keep.fh);
      expect(await c.errno(FUSE.RMDIR, ROOT, new Args().str('dir').done())).toBe(E.ENOTEMPTY);
      await c.call(FUSE.UNLINK, d.nodeid, new Args().str('keep').done());
      if (fifo === 0) await c.call(FUSE.UNLINK, d.nodeid, new Args().str('p').done());
      await c.call(FUSE.RMDIR, ROOT, new Args().str('dir').done());
      await c.call(FUSE.UNLINK, ROOT, new Args().str('moved').done());
      if (hard) await c.call(FUSE.UNLINK, ROOT, new Args().str('hard').done());
      await c.call(FUSE.UNLINK, ROOT, new Args().str('ln2').done());
      const names = (await c.listAll(ROOT)).map((e) => e.name).sort();
      expect(names).toEqual(['.', '..']);
    });

    it('READDIR and READDIRPLUS with small buffers return every entry exactly once, PLUS with lookups counted', async () => {
      const { c, dev } = await setup();
      const made = new Set<string>();
      for (let i = 0; i < 60; i++) {
        const n = `file-${i}-${'x'.repeat(i % 17)}`;
        const { entry, fh } = await c.create(ROOT, n);
        await c.release(entry.nodeid, fh);
        await c.forget(entry.nodeid, 1);
        made.add(n);
      }
      expect(dev.server.nodeCount).toBe(1); // only the root is held
      for (const size of [128, 256, 512, 4096]) {
        const names = (await c.listAll(ROOT, size)).map((e) => e.name);
        expect(names.length).toBe(62);
        expect(new Set(names)).toEqual(new Set([...made, '.', '..']));
      }
      const plus = await c.listAll(ROOT, 1024, true);
      expect(plus.length).toBe(62);
      for (const e of plus) {
        if (e.name === '.' || e.name === '..') expect(e.entry!.nodeid).toBe(0n);
        else {
          expect(e.entry!.nodeid).toBeGreaterThan(1n);
          expect(e.entry!.attr.ino).toBe(e.ino);
          expect(e.type).toBe(S_IFREG >> 12);
          expect(dev.server.lookupCount(e.entry!.nodeid)).toBe(1);
        }
      }
      expect(dev.server.nodeCount).toBe(61);
    });

    it('FORGET and BATCH_FORGET give lookups back; a node id is gone at zero', async () => {
      const { c, dev } = await setup();
      const { entry, fh } = await c.create(ROOT, 'f');
      await c.release(entry.nodeid, fh);
      await c.lookup(ROOT, 'f');
      await c.lookup(ROOT, 'f');
      expect(dev.server.lookupCount(entry.nodeid)).toBe(3);
      expect(await c.forget(entry.nodeid, 1)).toBe(0);
      expect(dev.server.lookupCount(entry.nodeid)).toBe(2);
      const g = await c.mkdir(ROOT, 'g');
      await c.noReply(FUSE.BATCH_FORGET, 0, new Args().u32(2).u32(0).u64(entry.nodeid).u64(2).u64(g.nodeid).u64(1).done());
      expect(dev.server.lookupCount(entry.nodeid)).toBe(0);
      expect(dev.server.lookupCount(g.nodeid)).toBe(0);
      expect(await c.errno(FUSE.GETATTR, entry.nodeid, new Args().zeros(16).done())).toBe(E.ENOENT);
      const back = await c.lookup(ROOT, 'f');
      expect(back.nodeid).not.toBe(entry.nodeid); // ids are never reused
    });

    it('STATFS, ACCESS, FLUSH, FSYNC, FSYNCDIR, FALLOCATE, LSEEK, COPY_FILE_RANGE and DESTROY', async () => {
      const { c, dev } = await setup();
      const st = await c.call(FUSE.STATFS, ROOT);
      expect(st.byteLength).toBe(80);
      expect(st.getUint32(44, true)).toBe(255); // namelen
      const { entry, fh } = await c.create(ROOT, 'f');
      await c.write(entry.nodeid, fh, 0, enc('0123456789'));
      expect(await c.errno(FUSE.ACCESS, entry.nodeid, new Args().u32(6).u32(0).done())).toBe(0);
      expect(await c.errno(FUSE.ACCESS, entry.nodeid, new Args().u32(1).u32(0).done())).toBe(E.EACCES);
      expect(await c.errno(FUSE.ACCESS, entry.nodeid, new Args().u32(2).u32(0).done(), {})).toBe(0);
      // Nothing is buffered and no locks are kept: FLUSH answers ENOSYS, so the kernel stops sending it.
      expect(await c.errno(FUSE.FLUSH, entry.nodeid, new Args().u64(fh).u32(0).u32(0).u64(0).done())).toBe(E.ENOSYS);
      await c.call(FUSE.FSYNC, entry.nodeid, new Args().u64(fh).u32(1).u32(0).done());
      const dh = await c.open(ROOT, 0, true);
      await c.call(FUSE.FSYNCDIR, ROOT, new Args().u64(dh.fh).u32(0).u32(0).done());
      await c.call(FUSE.FALLOCATE, entry.nodeid, new Args().u64(fh).u64(0).u64(100).u32(0).u32(0).done());
      expect((await c.getattr(entry.nodeid)).size).toBe(100);
      expect(await c.errno(FUSE.FALLOCATE, entry.nodeid, new Args().u64(fh).u64(0).u64(100).u32(2).u32(0).done())).toBe(E.EOPNOTSUPP);
      const hole = await c.call(FUSE.LSEEK, entry.nodeid, new Args().u64(fh).u64(5).u32(4).u32(0).done());
      expect(Number(hole.getBigUint64(0, true))).toBe(100);
      expect(await c.errno(FUSE.LSEEK, entry.nodeid, new Args().u64(fh).u64(100).u32(3).u32(0).done())).toBe(E.ENXIO);
      const g = await c.create(ROOT, 'g');
      const cp = await c.call(FUSE.COPY_FILE_RANGE, entry.nodeid, new Args().u64(fh).u64(2).u64(g.entry.nodeid).u64(g.fh).u64(0).u64(5).u64(0).done());
      expect(cp.getUint32(0, true)).toBe(5);
      expect(dec(await c.read(g.entry.nodeid, g.fh, 0, 100))).toBe('23456');
      await c.call(FUSE.DESTROY, 0);
      expect(dev.server.handleCount).toBe(0);
      expect(dev.server.nodeCount).toBe(0);
      expect(await c.errno(FUSE.GETATTR, ROOT, new Args().zeros(16).done())).toBe(E.EIO);
    });

    it('extended attributes: set, size probe, get, list, ERANGE, remove, ENODATA', async () => {
      const { c } = await setup();
      const { entry } = await c.create(ROOT, 'f');
      const set = await c.errno(FUSE.SETXATTR, entry.nodeid, new Args().u32(3).u32(0).str('user.k').bytes(enc('val')).done());
      if (set === E.EOPNOTSUPP) return; // a host filesystem without user xattrs
      expect(set).toBe(0);
      const probe = await c.call(FUSE.GETXATTR, entry.nodeid, new Args().u32(0).u32(0).str('user.k').done());
      expect(probe.getUint32(0, true)).toBe(3);
      const v = await c.call(FUSE.GETXATTR, entry.nodeid, new Args().u32(64).u32(0).str('user.k').done());
      expect(dec(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))).toBe('val');
      expect(await c.errno(FUSE.GETXATTR, entry.nodeid, new Args().u32(2).u32(0).str('user.k').done())).toBe(E.ERANGE);
      const l = await c.call(FUSE.LISTXATTR, entry.nodeid, new Args().u32(256).u32(0).done());
      expect(dec(new Uint8Array(l.buffer, l.byteOffset, l.byteLength)).split('\0')).toContain('user.k');
      await c.call(FUSE.REMOVEXATTR, entry.nodeid, new Args().str('user.k').done());
      expect(await c.errno(FUSE.GETXATTR, entry.nodeid, new Args().u32(64).u32(0).str('user.k').done())).toBe(E.ENODATA);
    });

    it('a read-only share answers EROFS to every change and still reads', async () => {
      const dev = new VirtioFs(bc.makeReadOnly());
      const c = new FuseClient(dev);
      await c.init();
      const f = await c.lookup(ROOT, 'f');
      const o = await c.open(f.nodeid, 0);
      expect(dec(await c.read(f.nodeid, o.fh, 0, 10))).toBe('hello');
      expect(await c.errno(FUSE.OPEN, f.nodeid, new Args().u32(2).u32(0).done())).toBe(E.EROFS);
      expect(await c.errno(FUSE.CREATE, ROOT, new Args().u32(2).u32(0o100644).u32(0).u32(0).str('n').done())).toBe(E.EROFS);
      expect(await c.errno(FUSE.MKDIR, ROOT, new Args().u32(0o755).u32(0).str('n').done())).toBe(E.EROFS);
      expect(await c.errno(FUSE.UNLINK, ROOT, new Args().str('f').done())).toBe(E.EROFS);
      expect(await c.errno(FUSE.RENAME, ROOT, new Args().u64(ROOT).str('f').str('g').done())).toBe(E.EROFS);
      expect(await c.errno(FUSE.SETXATTR, f.nodeid, new Args().u32(1).u32(0).str('user.a').bytes(enc('v')).done())).toBe(E.EROFS);
      const sa = new Args().u32(8).u32(0).u64(0).u64(0).zeros(64).done();
      expect(await c.errno(FUSE.SETATTR, f.nodeid, sa)).toBe(E.EROFS);
      const wr = new Args().u64(o.fh).u64(0).u32(1).u32(0).u64(0).u32(0).u32(0).bytes(enc('x')).done();
      expect(await c.errno(FUSE.WRITE, f.nodeid, wr)).toBe(E.EROFS);
    });
  });
}

describe('FUSE over a backend that answers later although it says it is synchronous', () => {
  it('READ still fills the reply, through several descriptors', async () => {
    const g = new Gate();
    g.auto = true;
    const inner = gated(new MemFs({ tree: { f: 'x'.repeat(10_000) } }), g);
    const fs = new Proxy(inner, { get: (t, p, r) => (p === 'asynchronous' ? false : Reflect.get(t, p, r)) });
    const c = new FuseClient(new VirtioFs(fs));
    await c.init();
    const f = await c.lookup(ROOT, 'f');
    const { fh } = await c.open(f.nodeid, 0);
    expect(dec(await c.read(f.nodeid, fh, 0, 10_000, { piece: 1000 }))).toBe('x'.repeat(10_000));
  });
});

function readEntryOf(d: DataView) {
  return { nodeid: d.getBigUint64(0, true), attr: { mode: d.getUint32(40 + 60, true), nlink: d.getUint32(40 + 64, true) } };
}

