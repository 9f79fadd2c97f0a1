/**
 * The hostile-guest lines for FUSE (shared/docs/hostile-guest.md 52-53, docs/hostile-guest.md
 * §virtio-fs): lengths that disagree, names without NUL or too long, unknown node ids and
 * handles, counts and offsets that overflow, FORGETs of more than was given. Each gets an error
 * reply (or, for FORGET, no effect on anything else), never an exception.
 */
import { describe, expect, it } from 'vitest';
import { MemFs } from '../../src/backends/fs/mem-fs.js';
import { VirtioFs } from '../../src/devices/fs/device.js';
import { FUSE_WRITE_KILL_SUIDGID, IN_HEADER_SIZE } from '../../src/devices/fs/fuse.js';
import * as E from '../../src/backends/fs/errno.js';
import { Args, FUSE, FuseClient } from '../support/fuse.js';
import { lateOnce } from '../support/late-fs.js';

const ROOT = 1n;
const enc = (s: string) => new TextEncoder().encode(s);

async function ready(opts: ConstructorParameters<typeof VirtioFs>[1] = {}) {
  const dev = new VirtioFs(new MemFs({ tree: { f: 'hello', d: { inner: 'x' } } }), opts);
  const c = new FuseClient(dev);
  await c.init();
  return { c, dev };
}

const readIn = (fh: bigint, offset: number | bigint, size: number) => new Args().u64(fh).u64(offset).u32(size).u32(0).u64(0).u32(0).u32(0).done();

describe('FUSE hostile guest: lengths', () => {
  it('in.len above or below the bytes delivered -> EINVAL, the session goes on', async () => {
    const { c } = await ready();
    const body = new Args().str('f').done();
    for (const len of [IN_HEADER_SIZE + body.length + 1, IN_HEADER_SIZE + body.length - 1, 0, 0xffffffff]) {
      const r = await c.raw(c.message(FUSE.LOOKUP, ROOT, body, { len }));
      expect(r.error).toBe(-E.EINVAL);
      expect(r.len).toBe(16);
    }
    expect((await c.lookup(ROOT, 'f')).attr.size).toBe(5);
  });

  it('a request shorter than the 40-byte header gets no reply (used length 0)', async () => {
    const { c } = await ready();
    const r = await c.raw(new Uint8Array(39));
    expect(r.used).toBe(0);
  });

  it('argument structs cut short -> EINVAL', async () => {
    const { c } = await ready();
    expect(await c.errno(FUSE.GETATTR, ROOT, new Uint8Array(4))).toBe(E.EINVAL);
    expect(await c.errno(FUSE.SETATTR, ROOT, new Uint8Array(40))).toBe(E.EINVAL);
    expect(await c.errno(FUSE.READ, ROOT, new Uint8Array(10))).toBe(E.EINVAL);
    expect(await c.errno(FUSE.WRITE, ROOT, new Uint8Array(20))).toBe(E.EINVAL);
    expect(await c.errno(FUSE.INIT, ROOT, new Uint8Array(8))).toBe(E.EINVAL);
    expect(await c.errno(FUSE.RENAME, ROOT, new Uint8Array(4))).toBe(E.EINVAL);
  });

  it('WRITE whose size disagrees with the payload -> EINVAL, nothing written', async () => {
    const { c } = await ready();
    const f = await c.lookup(ROOT, 'f');
    const { fh } = await c.open(f.nodeid, 2);
    for (const size of [4, 6, 0xffffffff]) {
      const w = new Args().u64(fh).u64(0).u32(size).u32(0).u64(0).u32(0).u32(0).bytes(enc('XXXXX')).done();
      expect(await c.errno(FUSE.WRITE, f.nodeid, w)).toBe(E.EINVAL);
    }
    expect(new TextDecoder().decode(await c.read(f.nodeid, fh, 0, 10))).toBe('hello');
  });

  it('a reply space too small for the header gets no reply; a READ never writes past the reply space', async () => {
    const { c } = await ready();
    const f = await c.lookup(ROOT, 'f');
    const { fh } = await c.open(f.nodeid, 0);
    const r0 = await c.raw(c.message(FUSE.READ, f.nodeid, readIn(fh, 0, 4096)), { replyBytes: 15 });
    expect(r0.used).toBe(0);
    const r = await c.raw(c.message(FUSE.READ, f.nodeid, readIn(fh, 0, 4096)), { replyBytes: 19 });
    expect(r.used).toBe(19);
    expect(r.len).toBe(19);
    expect(new TextDecoder().decode(r.raw.subarray(16))).toBe('hel');
  });

  it('a request larger than any non-WRITE message -> E2BIG', async () => {
    const { c } = await ready();
    const big = new Uint8Array(200_000);
    big.set(enc('user.a'), 8);
    expect(await c.errno(FUSE.SETXATTR, ROOT, big)).toBe(E.E2BIG);
  });
});

describe('FUSE hostile guest: names', () => {
  it('a name without its NUL -> EINVAL', async () => {
    const { c } = await ready();
    expect(await c.errno(FUSE.LOOKUP, ROOT, enc('f'))).toBe(E.EINVAL);
    expect(await c.errno(FUSE.MKDIR, ROOT, new Args().u32(0o755).u32(0).bytes(enc('nonul')).done())).toBe(E.EINVAL);
    expect(await c.errno(FUSE.RENAME, ROOT, new Args().u64(ROOT).str('f').bytes(enc('g')).done())).toBe(E.EINVAL);
    expect(await c.errno(FUSE.SYMLINK, ROOT, new Args().str('s').bytes(enc('target')).done())).toBe(E.EINVAL);
    expect(await c.errno(FUSE.SETXATTR, ROOT, new Args().u32(0).u32(0).bytes(enc('user.x')).done())).toBe(E.EINVAL);
  });

  it('a name longer than NAME_MAX -> ENAMETOOLONG; 255 bytes is fine', async () => {
    const { c } = await ready();
    const long = 'n'.repeat(256);
    expect(await c.errno(FUSE.LOOKUP, ROOT, new Args().str(long).done())).toBe(E.ENAMETOOLONG);
    expect(await c.errno(FUSE.MKDIR, ROOT, new Args().u32(0o755).u32(0).str(long).done())).toBe(E.ENAMETOOLONG);
    expect(await c.errno(FUSE.CREATE, ROOT, new Args().u32(2).u32(0o100644).u32(0).u32(0).str('é'.repeat(128)).done())).toBe(E.ENAMETOOLONG);
    expect(await c.errno(FUSE.MKDIR, ROOT, new Args().u32(0o755).u32(0).str('n'.repeat(255)).done())).toBe(0);
  });

  it("empty names, '/' inside, '.' and '..' as new names are refused", async () => {
    const { c } = await ready();
    expect(await c.errno(FUSE.LOOKUP, ROOT, new Args().str('').done())).toBe(E.ENOENT);
    expect(await c.errno(FUSE.LOOKUP, ROOT, new Args().str('d/inner').done())).toBe(E.ENOENT);
    expect(await c.errno(FUSE.MKDIR, ROOT, new Args().u32(0o755).u32(0).str('a/b').done())).toBe(E.EINVAL);
    expect(await c.errno(FUSE.MKDIR, ROOT, new Args().u32(0o755).u32(0).str('..').done())).toBe(E.EEXIST);
    expect(await c.errno(FUSE.UNLINK, ROOT, new Args().str('.').done())).toBe(E.EINVAL);
    expect(await c.errno(FUSE.RENAME, ROOT, new Args().u64(ROOT).str('f').str('..').done())).toBe(E.EINVAL);
    // '..' of the root stays at the root.
    const up = await c.lookup(ROOT, '..');
    expect(up.attr.ino).toBe((await c.getattr(ROOT)).ino);
  });
});

describe('FUSE hostile guest: node ids and handles', () => {
  it('an unknown node id -> ENOENT for every operation that names one', async () => {
    const { c } = await ready();
    const bad = 0xdead_beefn;
    expect(await c.errno(FUSE.LOOKUP, bad, new Args().str('f').done())).toBe(E.ENOENT);
    expect(await c.errno(FUSE.GETATTR, bad, new Args().zeros(16).done())).toBe(E.ENOENT);
    expect(await c.errno(FUSE.OPEN, bad, new Args().u32(0).u32(0).done())).toBe(E.ENOENT);
    expect(await c.errno(FUSE.MKDIR, bad, new Args().u32(0o755).u32(0).str('x').done())).toBe(E.ENOENT);
    expect(await c.errno(FUSE.RENAME, ROOT, new Args().u64(bad).str('f').str('g').done())).toBe(E.ENOENT);
    expect(await c.errno(FUSE.LINK, ROOT, new Args().u64(bad).str('g').done())).toBe(E.ENOENT);
    expect(await c.errno(FUSE.GETXATTR, bad, new Args().u32(0).u32(0).str('user.a').done())).toBe(E.ENOENT);
    expect(await c.errno(FUSE.READLINK, bad)).toBe(E.ENOENT);
    expect(await c.errno(FUSE.GETATTR, 0n, new Args().zeros(16).done())).toBe(E.ENOENT);
  });

  it('an unknown, released or wrong-kind fh -> EBADF / EISDIR / ENOTDIR', async () => {
    const { c } = await ready();
    const f = await c.lookup(ROOT, 'f');
    const { fh } = await c.open(f.nodeid, 0);
    const dh = await c.open(ROOT, 0, true);
    expect(await c.errno(FUSE.READ, f.nodeid, readIn(999n, 0, 10))).toBe(E.EBADF);
    expect(await c.errno(FUSE.READ, f.nodeid, readIn(dh.fh, 0, 10))).toBe(E.EISDIR);
    expect(await c.errno(FUSE.READDIR, ROOT, readIn(fh, 0, 4096))).toBe(E.ENOTDIR);
    expect(await c.errno(FUSE.RELEASEDIR, ROOT, new Args().u64(fh).zeros(16).done())).toBe(E.ENOTDIR);
    await c.release(f.nodeid, fh);
    expect(await c.errno(FUSE.READ, f.nodeid, readIn(fh, 0, 10))).toBe(E.EBADF);
    expect(await c.errno(FUSE.RELEASE, f.nodeid, new Args().u64(fh).zeros(16).done())).toBe(E.EBADF);
    expect(await c.errno(FUSE.GETATTR, f.nodeid, new Args().u32(1).u32(0).u64(fh).done())).toBe(E.EBADF);
    const sa = new Args().u32(64 | 8).u32(0).u64(fh).u64(0).zeros(64).done();
    expect(await c.errno(FUSE.SETATTR, f.nodeid, sa)).toBe(E.EBADF);
    expect(await c.errno(FUSE.FLUSH, f.nodeid, new Args().u64(fh).zeros(16).done())).toBe(E.EBADF);
  });

  it('OPEN of a directory -> EISDIR, OPENDIR of a file -> ENOTDIR', async () => {
    const { c } = await ready();
    const f = await c.lookup(ROOT, 'f');
    expect(await c.errno(FUSE.OPEN, ROOT, new Args().u32(0).u32(0).done())).toBe(E.EISDIR);
    expect(await c.errno(FUSE.OPENDIR, f.nodeid, new Args().u32(0).u32(0).done())).toBe(E.ENOTDIR);
  });

  it('node ids and handles are capped: ENFILE and EMFILE past the caps', async () => {
    const { c, dev } = await ready({ maxNodes: 3, maxHandles: 2 });
    await c.lookup(ROOT, 'f');
    await c.lookup(ROOT, 'd');
    expect(await c.errno(FUSE.MKDIR, ROOT, new Args().u32(0o755).u32(0).str('x').done())).toBe(E.ENFILE);
    expect(dev.server.nodeCount).toBe(3);
    await c.open(ROOT, 0, true);
    await c.open(ROOT, 0, true);
    expect(await c.errno(FUSE.OPENDIR, ROOT, new Args().u32(0).u32(0).done())).toBe(E.EMFILE);
    expect(dev.server.handleCount).toBe(2);
  });
});

describe('FUSE hostile guest: counts and offsets', () => {
  it('offsets and sizes that overflow -> an error, never a wrapped position', async () => {
    const { c } = await ready();
    const f = await c.lookup(ROOT, 'f');
    const { fh } = await c.open(f.nodeid, 2);
    expect(await c.errno(FUSE.READ, f.nodeid, readIn(fh, 2n ** 63n, 10))).toBe(E.EINVAL);
    expect(await c.errno(FUSE.READ, f.nodeid, readIn(fh, 2n ** 64n - 1n, 10))).toBe(E.EINVAL);
    const w = (off: bigint) => new Args().u64(fh).u64(off).u32(1).u32(0).u64(0).u32(0).u32(0).bytes(enc('x')).done();
    expect(await c.errno(FUSE.WRITE, f.nodeid, w(2n ** 64n - 1n))).toBe(E.EFBIG);
    expect(await c.errno(FUSE.WRITE, f.nodeid, w(2n ** 53n - 1n))).toBe(E.EFBIG);
    const sa = new Args().u32(8).u32(0).u64(0).u64(2n ** 62n).zeros(64).done();
    expect(await c.errno(FUSE.SETATTR, f.nodeid, sa)).toBe(E.EFBIG);
    const fa = new Args().u64(fh).u64(2n ** 60n).u64(2n ** 60n).u32(0).u32(0).done();
    expect(await c.errno(FUSE.FALLOCATE, f.nodeid, fa)).toBe(E.EFBIG);
    const cp = new Args().u64(fh).u64(2n ** 63n).u64(f.nodeid).u64(fh).u64(0).u64(10).u64(0).done();
    expect(await c.errno(FUSE.COPY_FILE_RANGE, f.nodeid, cp)).toBe(E.EFBIG);
    // Nanoseconds of a second or more are no time.
    const st = new Args().u32(16).u32(0).u64(0).u64(0).u64(0).u64(5).u64(0).u64(0).u32(1e9).u32(0).u32(0).u32(0).zeros(16).done();
    expect(await c.errno(FUSE.SETATTR, f.nodeid, st)).toBe(E.EINVAL);
    expect((await c.getattr(f.nodeid)).size).toBe(5);
  });

  it('a WRITE larger than max_write -> E2BIG', async () => {
    const { c } = await ready({ maxWrite: 4096 });
    const f = await c.lookup(ROOT, 'f');
    const { fh } = await c.open(f.nodeid, 2);
    const data = new Uint8Array(4097);
    const w = new Args().u64(fh).u64(0).u32(data.length).u32(0).u64(0).u32(0).u32(0).bytes(data).done();
    expect(await c.errno(FUSE.WRITE, f.nodeid, w)).toBe(E.E2BIG);
  });

  it('a READDIR at a forged offset lists nothing; tiny sizes list nothing rather than overflow', async () => {
    const { c } = await ready();
    const { fh } = await c.open(ROOT, 0, true);
    expect(await c.readdir(ROOT, fh, 2 ** 52, 4096)).toEqual([]);
    const r = await c.call(FUSE.READDIR, ROOT, readIn(fh, 2n ** 64n - 1n, 4096));
    expect(r.byteLength).toBe(0);
    expect(await c.readdir(ROOT, fh, 0, 8)).toEqual([]);
    expect(await c.readdir(ROOT, fh, 0, 8, true)).toEqual([]);
  });

  it('SETXATTR size beyond 64 KiB -> E2BIG, disagreeing with the value -> EINVAL; GETXATTR too small -> ERANGE', async () => {
    const { c } = await ready();
    const f = await c.lookup(ROOT, 'f');
    expect(await c.errno(FUSE.SETXATTR, f.nodeid, new Args().u32(65537).u32(0).str('user.a').bytes(new Uint8Array(65537)).done())).toBe(E.E2BIG);
    expect(await c.errno(FUSE.SETXATTR, f.nodeid, new Args().u32(10).u32(0).str('user.a').bytes(enc('short')).done())).toBe(E.EINVAL);
    expect(await c.errno(FUSE.SETXATTR, f.nodeid, new Args().u32(5).u32(0).str('user.a').bytes(enc('value')).done())).toBe(0);
    expect(await c.errno(FUSE.GETXATTR, f.nodeid, new Args().u32(4).u32(0).str('user.a').done())).toBe(E.ERANGE);
    expect(await c.errno(FUSE.LISTXATTR, f.nodeid, new Args().u32(3).u32(0).done())).toBe(E.ERANGE);
  });

  it('BATCH_FORGET whose count runs past the message forgets nothing', async () => {
    const { c, dev } = await ready();
    const f = await c.lookup(ROOT, 'f');
    await c.noReply(FUSE.BATCH_FORGET, 0, new Args().u32(3).u32(0).u64(f.nodeid).u64(1).done());
    await c.noReply(FUSE.BATCH_FORGET, 0, new Args().u32(0xffffffff).u32(0).u64(f.nodeid).u64(1).done());
    expect(dev.server.lookupCount(f.nodeid)).toBe(1);
  });
});

describe('FUSE hostile guest: FORGET', () => {
  it('FORGET of more lookups than were given drops that node id and nothing else', async () => {
    const { c, dev } = await ready();
    const f = await c.lookup(ROOT, 'f');
    const d = await c.lookup(ROOT, 'd');
    const inner = await c.lookup(d.nodeid, 'inner');
    expect(await c.forget(d.nodeid, 1_000_000)).toBe(0);
    expect(dev.server.lookupCount(d.nodeid)).toBe(0);
    expect(dev.server.lookupCount(f.nodeid)).toBe(1);
    expect(dev.server.lookupCount(inner.nodeid)).toBe(1);
    expect((await c.getattr(inner.nodeid)).size).toBe(1);
    expect((await c.getattr(f.nodeid)).size).toBe(5);
  });

  it('FORGET of an unknown node id, of the root, or with a huge count changes nothing else', async () => {
    const { c, dev } = await ready();
    const f = await c.lookup(ROOT, 'f');
    const before = dev.server.nodeCount;
    await c.forget(0x1234n, 1);
    await c.forget(0n, 1);
    await c.forget(1n, 2 ** 52);
    await c.noReply(FUSE.FORGET, f.nodeid, new Args().u64(2n ** 64n - 1n).done()); // drops f, nothing else
    expect(dev.server.nodeCount).toBe(before - 1);
    expect((await c.getattr(ROOT)).mode & 0o170000).toBe(0o040000);
    expect((await c.lookup(ROOT, 'd')).attr.mode & 0o170000).toBe(0o040000);
  });

  it('FORGET with a short body, or before INIT, is ignored', async () => {
    const dev = new VirtioFs(new MemFs());
    const c = new FuseClient(dev);
    expect(await c.noReply(FUSE.FORGET, 1n, new Args().u64(1).done())).toBe(0);
    await c.init();
    expect(await c.noReply(FUSE.FORGET, 1n, new Uint8Array(3))).toBe(0);
    expect(dev.server.lookupCount(1n)).toBe(1);
  });

  it('a device reset drops every node id and handle', async () => {
    const { c, dev } = await ready();
    const f = await c.lookup(ROOT, 'f');
    await c.open(f.nodeid, 0);
    c.drv.write(0x070, 0);
    expect(dev.server.nodeCount).toBe(0);
    expect(dev.server.handleCount).toBe(0);
    expect(dev.server.initialized).toBe(false);
  });
});

describe('FUSE hostile guest: a backend that answers after a reset (line 49)', () => {
  const settle = async (calls: number[]) => {
    for (let i = 0; i < 100 && calls.length === 0; i++) await new Promise((r) => setImmediate(r));
  };

  it('49: READ: no further buffer is read into and no header written once the device was reset', async () => {
    const late = lateOnce(new MemFs({ tree: { f: 'AAAABBBB' } }), 'read', false);
    const dev = new VirtioFs(late.fs);
    const c = new FuseClient(dev);
    await c.init();
    const f = await c.lookup(ROOT, 'f');
    const { fh } = await c.open(f.nodeid, 0);
    late.arm();
    // 16 header bytes and 4 data bytes in one buffer, 4 data bytes in the next.
    const p = c.raw(c.message(FUSE.READ, f.nodeid, readIn(fh, 0, 8)), { replyBytes: 24, piece: 20 });
    await settle(late.calls);
    c.drv.write(0x070, 0);
    late.release();
    await expect(p).rejects.toThrow(/got 0/);
    expect(late.calls).toEqual([0]);
    const reply = (c as unknown as { reply: number }).reply;
    expect([...c.mem.view(reply, 16)]).toEqual(new Array(16).fill(0xee));
    expect([...c.mem.view(reply + 20, 4)]).toEqual(new Array(4).fill(0xee));
  });

  it('49: WRITE: the second request buffer is never read once the device was reset', async () => {
    const mem = new MemFs({ tree: { f: '' } });
    const late = lateOnce(mem, 'write', false);
    const dev = new VirtioFs(late.fs);
    const c = new FuseClient(dev);
    await c.init();
    const f = await c.lookup(ROOT, 'f');
    const { fh } = await c.open(f.nodeid, 2);
    late.arm();
    const args = new Args().u64(fh).u64(0).u32(8).u32(0).u64(0).u32(0).u32(0).bytes(enc('CCCCDDDD')).done();
    const msg = c.message(FUSE.WRITE, f.nodeid, args);
    // The header, write_in and 4 data bytes in one buffer, 4 in the next.
    const p = c.raw(msg, { requestPiece: msg.length - 4 });
    await settle(late.calls);
    c.drv.write(0x070, 0);
    late.release();
    await expect(p).rejects.toThrow(/got 0/);
    expect(late.calls).toEqual([0]);
    expect(mem.getattr(mem.lookup(mem.root() as never, 'f') as never)).toHaveProperty('size', 4);
  });

  it('49: WRITE with WRITE_KILL_SUIDGID: data written before the reset still clears set-user-ID, with no reply', async () => {
    const mem = new MemFs({ tree: { f: '' } });
    const node = mem.lookup(mem.root() as never, 'f') as never;
    mem.setattr(node, { mode: 0o6755 });
    const late = lateOnce(mem, 'write', false);
    const dev = new VirtioFs(late.fs);
    const c = new FuseClient(dev);
    await c.init();
    const f = await c.lookup(ROOT, 'f');
    const { fh } = await c.open(f.nodeid, 2);
    late.arm();
    const args = new Args().u64(fh).u64(0).u32(4).u32(FUSE_WRITE_KILL_SUIDGID).u64(0).u32(0).u32(0).bytes(enc('EEEE')).done();
    const p = c.raw(c.message(FUSE.WRITE, f.nodeid, args));
    await settle(late.calls);
    c.drv.write(0x070, 0);
    late.release();
    await expect(p).rejects.toThrow(/got 0/);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(mem.getattr(node)).toMatchObject({ size: 4, mode: expect.any(Number) });
    expect((mem.getattr(node) as { mode: number }).mode & 0o7777).toBe(0o755);
  });
});
