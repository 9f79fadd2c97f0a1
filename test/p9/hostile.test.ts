/**
 * A hostile guest against the 9P server: docs/hostile-guest.md lines 32–44 (HostFs-only lines
 * 35 and 36 are also in hostfs.test.ts), plus asynchronous backends and device reset.
 */
import { describe, expect, it } from 'vitest';
import { S_IFCHR, S_IFIFO, S_IFSOCK } from '../../src/backends/fs/backend.js';
import {
  E2BIG,
  EACCES,
  EBADF,
  EEXIST,
  EINVAL,
  EMSGSIZE,
  ENOENT,
  EOPNOTSUPP,
  EROFS,
} from '../../src/backends/fs/errno.js';
import { MemFs } from '../../src/backends/fs/mem-fs.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { Encoder, P9 } from '../../src/devices/p9/wire.js';
import { MMIO } from '../../src/virtio/constants.js';
import { Gate, gated } from './async-fs.js';
import { lateOnce } from '../support/late-fs.js';
import { P9Client, P9Error, errnoOf, parseReply } from '../../src/testing/index.js';

const O_RDWR = 2;
const O_WRONLY = 1;
const td = new TextDecoder();

async function mounted(fs = new MemFs(), msize = 8192): Promise<{ c: P9Client; dev: Virtio9p; fs: MemFs }> {
  const dev = new Virtio9p(fs);
  const c = new P9Client(dev);
  await c.mount(msize);
  return { c, dev, fs };
}

/** The errno of a raw reply, or -1 when it isn't Rlerror. */
function rlerror(raw: Uint8Array): number {
  if (raw.length !== 11 || raw[4] !== P9.Rlerror) return -1;
  return raw[7]! | (raw[8]! << 8) | (raw[9]! << 16) | (raw[10]! << 24);
}

describe('9P hostile guest', () => {
  it('32: a Twalk of more than 16 names fails before allocating anything', async () => {
    const { c, dev } = await mounted();
    const fids = dev.server.fidCount;
    const names = Array.from({ length: 17 }, () => 'a');
    expect(await errnoOf(c.walk(0, 1, names))).toBe(EINVAL);
    // nwname 65535 with no names behind it: refused on the count, not on the missing strings.
    const raw = await c.raw(
      c.build(P9.Twalk, 7, (e) => {
        e.u32(0);
        e.u32(1);
        e.u16(65535);
      }),
    );
    expect(rlerror(raw)).toBe(EINVAL);
    expect(dev.server.fidCount).toBe(fids);
  });

  it("33: empty names, '/' and NUL are refused; '..' at the export root stays there", async () => {
    const { c } = await mounted(new MemFs({ tree: { d: { f: 'x' } } }));
    for (const bad of ['', 'd/f', 'd\0', '/']) {
      expect(await errnoOf(c.walk(0, 1, [bad]))).toBe(ENOENT);
      await c.walk(0, 2, []);
      expect(await errnoOf(c.mkdir(2, bad))).toBe(EINVAL);
      expect(await errnoOf(c.lcreate(2, bad, O_RDWR))).toBe(EINVAL);
      expect(await errnoOf(c.symlink(2, bad, 't'))).toBe(EINVAL);
      expect(await errnoOf(c.unlinkat(2, bad))).toBe(EINVAL);
      await c.clunk(2);
    }
    const root = await c.getattr(0);
    const up = await c.walk(0, 3, ['..', '..', '..', '..']);
    expect(up.map((q) => q.path)).toEqual([root.qid.path, root.qid.path, root.qid.path, root.qid.path]);
    const back = await c.walk(0, 4, ['d', '..', '..', 'd', 'f']);
    expect(back).toHaveLength(5);
    expect(back[2]!.path).toBe(root.qid.path);
  });

  it("34: create, mkdir, mknod, symlink and link named '.' or '..' answer EEXIST", async () => {
    const { c } = await mounted(new MemFs({ tree: { f: 'x' } }));
    await c.walk(0, 1, ['f']);
    for (const name of ['.', '..']) {
      await c.walk(0, 2, []);
      expect(await errnoOf(c.lcreate(2, name, O_RDWR))).toBe(EEXIST);
      expect(await errnoOf(c.mkdir(2, name))).toBe(EEXIST);
      expect(await errnoOf(c.mknod(2, name, S_IFIFO | 0o644))).toBe(EEXIST);
      expect(await errnoOf(c.symlink(2, name, 'f'))).toBe(EEXIST);
      expect(await errnoOf(c.link(2, 1, name))).toBe(EEXIST);
      await c.clunk(2);
    }
  });

  it('36: device nodes, FIFOs, sockets and symlinks are never opened', async () => {
    const { c } = await mounted();
    await c.walk(0, 1, []);
    await c.mknod(1, 'fifo', S_IFIFO | 0o666);
    await c.mknod(1, 'chr', S_IFCHR | 0o666, 1, 3);
    await c.mknod(1, 'sock', S_IFSOCK | 0o666);
    await c.symlink(1, 'ln', '/dev/zero');
    let fid = 10;
    for (const name of ['fifo', 'chr', 'sock']) {
      await c.walk(0, fid, [name]);
      expect(await errnoOf(c.lopen(fid, 0))).toBe(EACCES);
      fid++;
    }
    await c.walk(0, fid, ['ln']);
    expect(await errnoOf(c.lopen(fid, 0))).not.toBe(0);
  });

  it('37: msize below 4096 is refused, above the maximum clamped, every reply fits msize', async () => {
    const dev = new Virtio9p(new MemFs({ tree: { long: MemFs.symlink('t'.repeat(5000)) } }), { maxMsize: 65536 });
    const c = new P9Client(dev);
    expect(await errnoOf(c.version(4095))).toBe(EMSGSIZE);
    expect(await errnoOf(c.version(0))).toBe(EMSGSIZE);
    expect((await c.version(0xffffffff)).msize).toBe(65536);
    await c.version(4096);
    await c.attach(0);
    await c.walk(0, 1, []);
    await c.lcreate(1, 'f', O_RDWR);
    await c.write(1, 0, new Uint8Array(4000).fill(1));
    // A read asking for more than msize gets msize - 11 bytes, in a reply of exactly msize.
    const raw = await c.raw(
      c.build(P9.Tread, 9, (e) => {
        e.u32(1);
        e.u64(0);
        e.u32(0xffffffff);
      }),
      { replySize: 100_000 },
    );
    expect(raw.length).toBeLessThanOrEqual(4096);
    expect(parseReply(raw, 9, P9.Rread).d.u32()).toBe(4000);
    // A reply that can't fit msize becomes Rlerror.
    await c.walk(0, 3, ['long']);
    expect(await errnoOf(c.readlink(3))).toBe(EMSGSIZE);
    // Nor the reply buffer: a 20-byte buffer gets an 11-byte Rlerror instead of a 160-byte Rgetattr.
    const small = await c.raw(
      c.build(P9.Tgetattr, 10, (e) => {
        e.u32(0);
        e.u64(0x7ff);
      }),
      { replySize: 20 },
    );
    expect(rlerror(small)).toBe(EMSGSIZE);
    // A reply buffer below 11 bytes gets nothing.
    const none = await c.raw(c.build(P9.Tclunk, 11, (e) => e.u32(1)), { replySize: 5 });
    expect(none.length).toBe(0);
    // Requests larger than msize are refused.
    const big = await c.raw(
      c.build(P9.Twrite, 12, (e) => {
        e.u32(1);
        e.u64(0);
        e.u32(5000);
        e.bytes(new Uint8Array(5000));
      }),
    );
    expect(rlerror(big)).toBe(EMSGSIZE);
  });

  it('38: a size field that disagrees, strings and counts past the buffer answer Rlerror', async () => {
    const { c } = await mounted();
    const good = c.build(P9.Tgetattr, 5, (e) => {
      e.u32(0);
      e.u64(0x7ff);
    });
    // Size too large, too small, and the bytes delivered short of the size.
    for (const size of [good.length + 1, good.length - 1, 0xffffffff, 7]) {
      const m = good.slice();
      new DataView(m.buffer).setUint32(0, size, true);
      expect(rlerror(await c.raw(m))).toBe(EINVAL);
    }
    expect(rlerror(await c.raw(good.subarray(0, good.length - 3)))).toBe(EINVAL);
    // A string whose length runs past the end.
    const str = c.build(P9.Twalk, 6, (e) => {
      e.u32(0);
      e.u32(1);
      e.u16(1);
      e.u16(200);
      e.bytes(new TextEncoder().encode('abc'));
    });
    expect(rlerror(await c.raw(str))).toBe(EINVAL);
    // A count promising more names than present.
    const cnt = c.build(P9.Twalk, 7, (e) => {
      e.u32(0);
      e.u32(1);
      e.u16(3);
      e.str('a');
    });
    expect(rlerror(await c.raw(cnt))).toBe(EINVAL);
    // A Twrite whose count disagrees with its payload.
    await c.walk(0, 1, []);
    await c.lcreate(1, 'f', O_RDWR);
    const w = c.build(P9.Twrite, 8, (e) => {
      e.u32(1);
      e.u64(0);
      e.u32(100);
      e.bytes(new Uint8Array(10));
    });
    expect(rlerror(await c.raw(w))).toBe(EINVAL);
    expect((await c.getattr(1)).size).toBe(0);
    // Shorter than a header: no tag to answer, so nothing is written.
    expect((await c.raw(new Uint8Array([1, 2, 3]))).length).toBe(0);
    // Unknown and legacy message types.
    for (const type of [0, 1, 99, 102, 112, 124, 255]) {
      const m = c.build(type, 9, (e) => e.u32(0));
      expect(rlerror(await c.raw(m))).toBe(EOPNOTSUPP);
    }
    // The session still works.
    expect(await c.write(1, 0, 'ok')).toBe(2);
  });

  it('39: fids in use, unknown, clunked or already open', async () => {
    const { c } = await mounted(new MemFs({ tree: { f: 'x' } }));
    await c.walk(0, 1, ['f']);
    expect(await errnoOf(c.walk(0, 1, ['f']))).toBe(EINVAL);
    expect(await errnoOf(c.attach(1))).toBe(EINVAL);
    expect(await errnoOf(c.xattrwalk(0, 1, 'user.x'))).toBe(EINVAL);
    for (const op of [
      () => c.getattr(77),
      () => c.walk(77, 78, []),
      () => c.lopen(77, 0),
      () => c.read(77, 0, 1),
      () => c.write(77, 0, 'x'),
      () => c.clunk(77),
      () => c.readdir(77, 0, 100),
      () => c.mkdir(77, 'd'),
      () => c.statfs(77),
    ]) {
      expect(await errnoOf(op())).toBe(EBADF);
    }
    await c.lopen(1, 0);
    expect(await errnoOf(c.lopen(1, 0))).toBe(EINVAL);
    await c.clunk(1);
    expect(await errnoOf(c.read(1, 0, 1))).toBe(EBADF);
    expect(await errnoOf(c.clunk(1))).toBe(EBADF);
    // Reading a fid that was walked but never opened.
    await c.walk(0, 2, ['f']);
    expect(await errnoOf(c.read(2, 0, 1))).toBe(EBADF);
  });

  it('40: Tversion in the middle of a session drops every fid and closes open files', async () => {
    const { c, dev, fs } = await mounted();
    await c.walk(0, 1, []);
    await c.lcreate(1, 'f', O_RDWR);
    await c.write(1, 0, new Uint8Array(5000));
    await c.unlinkat(0, 'f');
    await c.lock(1, 1, 0, 0, 1);
    expect(fs.used).toBe(5000);
    expect(dev.server.lockCount).toBe(1);
    await c.version(8192);
    expect(dev.server.fidCount).toBe(0);
    expect(dev.server.lockCount).toBe(0);
    // The unlinked file's last opener went, so its data did too.
    expect(fs.used).toBe(0);
    expect(await errnoOf(c.getattr(0))).toBe(EBADF);
    await c.attach(0);
    expect((await c.getattr(0)).nlink).toBe(2);
  });

  it('41: xattr sizes are capped, values are never uninitialised, offsets cannot overflow', async () => {
    const { c, dev } = await mounted(new MemFs({ tree: { f: 'x' } }), 100_000);
    await c.walk(0, 1, ['f']);
    expect(await errnoOf(c.xattrcreate(1, 'user.x', 65537))).toBe(E2BIG);
    expect(await errnoOf(c.xattrcreate(1, 'user.x', 2 ** 53))).toBe(E2BIG);
    expect(dev.server.xattrBytes).toBe(0);
    // Declared 16 bytes, the guest writes none of them: clunk refuses, nothing leaks.
    await c.xattrcreate(1, 'user.x', 16);
    expect(await errnoOf(c.clunk(1))).toBe(EINVAL);
    await c.walk(0, 1, ['f']);
    expect(await errnoOf(c.xattrwalk(1, 2, 'user.x'))).toBe(61);
    // Set 8 bytes by writing them in two halves out of order; the value is exactly those bytes.
    await c.walk(0, 3, ['f']);
    await c.xattrcreate(3, 'user.y', 8);
    await c.write(3, 4, new Uint8Array([5, 6, 7, 8]));
    await c.write(3, 0, new Uint8Array([1, 2, 3, 4]));
    await c.clunk(3);
    expect(await c.xattrwalk(1, 4, 'user.y')).toBe(8);
    expect([...(await c.read(4, 0, 1000))]).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const off of [8, 9, 2 ** 32, 2 ** 53, 2 ** 64 - 4096]) expect(await c.read(4, off, 0xffffffff)).toHaveLength(0);
    expect([...(await c.read(4, 6, 0xffffffff))]).toEqual([7, 8]);
    // Writing past the declared size.
    await c.walk(0, 5, ['f']);
    await c.xattrcreate(5, 'user.z', 4);
    expect(await errnoOf(c.write(5, 5, 'x'))).toBe(28);
    expect(await errnoOf(c.write(5, 2 ** 53, 'x'))).toBe(28);
    await c.clunk(5).catch(() => {});
    expect(dev.server.xattrBytes).toBe(8);
    await c.clunk(4);
    expect(dev.server.xattrBytes).toBe(0);
  });

  it('42: Treaddir with small counts and forged offsets', async () => {
    const tree: Record<string, string> = {};
    for (let i = 0; i < 40; i++) tree[`file-${i}`] = 'x';
    const { c } = await mounted(new MemFs({ tree }));
    await c.walk(0, 1, []);
    await c.lopen(1, 0);
    for (const count of [128, 256, 512]) {
      const names = (await c.readdirAll(1, count)).map((e) => e.name);
      expect(names).toHaveLength(42);
      expect(new Set(names).size).toBe(42);
    }
    for (const off of [2 ** 64 - 4096, 2 ** 53, 2 ** 40, 99999, 43, 44]) {
      expect(await c.readdir(1, off, 512)).toEqual([]);
    }
    expect((await c.readdir(1, 5, 8192)).length).toBeLessThan(42);
    // Counts too small for one entry, zero, and past msize.
    expect(await c.readdir(1, 0, 10)).toEqual([]);
    expect(await c.readdir(1, 0, 0)).toEqual([]);
    expect((await c.readdir(1, 0, 0xffffffff)).length).toBe(42);
    // A directory fid that isn't open, and a file fid.
    await c.walk(0, 2, []);
    expect(await errnoOf(c.readdir(2, 0, 512))).toBe(EBADF);
    await c.walk(0, 3, ['file-1']);
    await c.lopen(3, 0);
    expect(await errnoOf(c.readdir(3, 0, 512))).toBe(20);
  });

  it('43: Tflush answers after the request it flushes; async requests finish out of order', async () => {
    const gate = new Gate();
    const mem = new MemFs({ tree: { a: 'AAAA', b: 'BBBB', c: 'CCCC' } });
    const dev = new Virtio9p(gated(mem, gate));
    const c = new P9Client(dev);
    gate.auto = true;
    await c.mount();
    let fid = 1;
    for (const n of ['a', 'b', 'c']) {
      await c.walk(0, fid, [n]);
      await c.lopen(fid, 0);
      fid++;
    }
    gate.auto = false;
    // Three reads held by the backend, released in reverse order.
    const posts = [1, 2, 3].map((f, i) => {
      const tag = 100 + i;
      const msg = c.build(P9.Tread, tag, (e) => {
        e.u32(f);
        e.u64(0);
        e.u32(100);
      });
      return { tag, ...c.post(msg) };
    });
    c.kick();
    await gate.waitFor(3);
    // Tflush of the middle one: no answer while it is in flight.
    const flush = c.post(c.build(P9.Tflush, 200, (e) => e.u16(101)));
    // And of a tag nobody uses: answered at once.
    const flushNone = c.post(c.build(P9.Tflush, 201, (e) => e.u16(555)));
    c.kick();
    expect(dev.pending).toBe(4);
    const order: number[] = [];
    const heads = new Map([
      [posts[0]!.slot.head, 100],
      [posts[1]!.slot.head, 101],
      [posts[2]!.slot.head, 102],
      [flush.slot.head, 200],
      [flushNone.slot.head, 201],
    ]);
    const drain = (): void => {
      order.length = 0;
      for (const id of c.peekUsed()) order.push(heads.get(id)!);
    };
    drain();
    expect(order).toEqual([201]);
    gate.release([2, 1, 0]);
    await dev.idle();
    drain();
    // Out of order as the backend finished, and the flushed tag strictly before its Rflush.
    expect(order.slice(0, 3)).toEqual([201, 102, 101]);
    expect(order.sort()).toEqual([100, 101, 102, 200, 201]);
    drain();
    expect(order.indexOf(101)).toBeLessThan(order.indexOf(200));
    c.collect();
    const texts = await Promise.all(
      posts.map(async (p) => {
        const { len } = await p.done;
        const r = parseReply(c.replyOf(p.slot, len), p.tag, P9.Rread);
        return td.decode(r.d.bytes(r.d.u32()));
      }),
    );
    expect(texts).toEqual(['AAAA', 'BBBB', 'CCCC']);
    parseReply(c.replyOf(flush.slot, (await flush.done).len), 200, P9.Rflush);
    parseReply(c.replyOf(flushNone.slot, (await flushNone.done).len), 201, P9.Rflush);
  });

  it('async requests never write into guest memory after a device reset', async () => {
    const gate = new Gate();
    const dev = new Virtio9p(gated(new MemFs({ tree: { a: 'AAAA' } }), gate));
    const c = new P9Client(dev);
    gate.auto = true;
    await c.mount();
    await c.walk(0, 1, ['a']);
    await c.lopen(1, 0);
    gate.auto = false;
    const usedBefore = c.q.usedIdx;
    const p = c.post(
      c.build(P9.Tread, 50, (e) => {
        e.u32(1);
        e.u64(0);
        e.u32(100);
      }),
    );
    c.kick();
    await gate.waitFor(1);
    c.drv.write(MMIO.Status, 0);
    gate.release();
    await dev.idle();
    expect([...c.mem.view(p.slot.reply, 16)]).toEqual(new Array(16).fill(0xee));
    expect(c.q.usedIdx).toBe(usedBefore);
    expect(dev.server.fidCount).toBe(0);
  });

  it('49: a "synchronous" backend whose read answers after a reset gets no further guest buffer, and no reply is written', async () => {
    const late = lateOnce(new MemFs({ tree: { a: 'AAAABBBB' } }), 'read');
    const dev = new Virtio9p(late.fs);
    const c = new P9Client(dev);
    await c.mount();
    await c.walk(0, 1, ['a']);
    await c.lopen(1, 0);
    const usedBefore = c.q.usedIdx;
    // The reply in two buffers: the 11-byte Rread header and 4 data bytes, then 4 more.
    const p = c.post(
      c.build(P9.Tread, 51, (e) => {
        e.u32(1);
        e.u64(0);
        e.u32(8);
      }),
      { replySize: 19, replyFirst: 15, pieceSize: 4 },
    );
    c.kick();
    for (let i = 0; i < 100 && late.calls.length === 0; i++) await new Promise((r) => setImmediate(r));
    expect(late.calls).toEqual([0]);
    c.drv.write(MMIO.Status, 0);
    late.release();
    await dev.idle();
    // The header and the second buffer stay the driver's: no read into them, no header scattered.
    expect(late.calls).toEqual([0]);
    expect([...c.mem.view(p.slot.reply, 11)]).toEqual(new Array(11).fill(0xee));
    expect([...c.mem.view(p.slot.reply + 15, 4)]).toEqual(new Array(4).fill(0xee));
    expect(c.q.usedIdx).toBe(usedBefore);
  });

  it('49: a "synchronous" backend whose write answers after a reset reads no further guest buffer', async () => {
    const mem = new MemFs({ tree: { a: '' } });
    const late = lateOnce(mem, 'write');
    const dev = new Virtio9p(late.fs);
    const c = new P9Client(dev);
    await c.mount();
    await c.walk(0, 1, ['a']);
    await c.lopen(1, O_RDWR);
    // Twrite's 23-byte header and 4 data bytes in one buffer, 4 more in the next.
    const msg = c.build(P9.Twrite, 52, (e) => {
      e.u32(1);
      e.u64(0);
      e.u32(8);
      e.bytes(new TextEncoder().encode('CCCCDDDD'));
    });
    const usedBefore = c.q.usedIdx;
    c.post(msg, { requestPiece: 27 });
    c.kick();
    for (let i = 0; i < 100 && late.calls.length === 0; i++) await new Promise((r) => setImmediate(r));
    c.drv.write(MMIO.Status, 0);
    late.release();
    await dev.idle();
    expect(late.calls).toEqual([0]); // never asked to write the second buffer, which the driver owns again
    expect(c.q.usedIdx).toBe(usedBefore); // and no Rwrite completed
    const f = mem.lookup(mem.root() as never, 'a') as never;
    expect(mem.getattr(f)).toHaveProperty('size', 4); // the first buffer, written before the reset
  });

  it('44: a read-only export answers EROFS to every change; reads still work', async () => {
    const ro = new MemFs({ tree: { f: 'hello', d: { g: 'x' } }, readOnly: true });
    const { c } = await mounted(ro);
    await c.walk(0, 1, []);
    await c.walk(0, 2, ['f']);
    await c.walk(0, 3, ['d']);
    const checks: Array<() => Promise<unknown>> = [
      () => c.lcreate(1, 'new', O_RDWR),
      () => c.mkdir(1, 'nd'),
      () => c.mknod(1, 'nn', S_IFIFO | 0o644),
      () => c.symlink(1, 'ns', 'f'),
      () => c.link(1, 2, 'nl'),
      () => c.renameat(0, 'f', 0, 'g'),
      () => c.rename(2, 3, 'moved'),
      () => c.unlinkat(0, 'f'),
      () => c.setattr(2, { valid: 1, mode: 0o777 }),
      () => c.setattr(2, { valid: 8, size: 0 }),
      () => c.xattrcreate(2, 'user.a', 1),
      () => c.walk(0, 9, ['f']).then(() => c.lopen(9, O_WRONLY)),
      () => c.walk(0, 10, ['f']).then(() => c.lopen(10, 0o1000)),
    ];
    for (const op of checks) expect(await errnoOf(op())).toBe(EROFS);
    await c.lopen(2, 0);
    expect(td.decode(await c.read(2, 0, 100))).toBe('hello');
    expect(await errnoOf(c.write(2, 0, 'x'))).toBe(EROFS);
    expect(await c.readlink(2).catch((e: P9Error) => e.errno)).toBe(EINVAL);
  });
});
