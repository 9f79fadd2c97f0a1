/**
 * POSIX locks kept by the FUSE server (GETLK, SETLK, SETLKW with `posixLocks`), and the lock table
 * the 9P and FUSE servers share (src/devices/locks.ts): ranges per owner, conflicts, waiting,
 * deadlock refusal, interruption and reset.
 */
import { describe, expect, it } from 'vitest';
import { MemFs } from '../../src/backends/fs/mem-fs.js';
import * as E from '../../src/backends/fs/errno.js';
import { VirtioFs } from '../../src/devices/fs/device.js';
import { FOPEN_NOFLUSH, FUSE, IN_HEADER_SIZE, INIT, OFFSET_MAX } from '../../src/devices/fs/fuse.js';
import { FuseServer, type FuseServerOptions } from '../../src/devices/fs/server.js';
import { F_RDLCK, F_UNLCK, F_WRLCK, LockTable, type LockRange } from '../../src/devices/locks.js';
import { LOCK_TYPE_RDLCK, LOCK_TYPE_UNLCK, LOCK_TYPE_WRLCK } from '../../src/devices/p9/wire.js';
import { BytesIn, BytesOut } from '../../src/devices/p9/io.js';
import { Args, FuseClient } from '../support/fuse.js';

const ROOT = 1n;

/** A FUSE server driven directly, so a SETLKW can stay pending while other requests run. */
class Direct {
  readonly server: FuseServer;
  private unique = 100n;
  constructor(opts: FuseServerOptions = { posixLocks: true }) {
    this.server = new FuseServer(new MemFs(), opts);
  }
  send(op: number, nodeid: bigint, body: Uint8Array, unique = this.unique++): { errno: number; body: DataView } | Promise<{ errno: number; body: DataView }> {
    const m = new Uint8Array(IN_HEADER_SIZE + body.length);
    const dv = new DataView(m.buffer);
    dv.setUint32(0, m.length, true);
    dv.setUint32(4, op, true);
    dv.setBigUint64(8, unique, true);
    dv.setBigUint64(16, nodeid, true);
    m.set(body, IN_HEADER_SIZE);
    const out = new BytesOut(new Uint8Array(4096));
    const parse = (n: number) => {
      const r = new DataView(out.buf.buffer, 0, n);
      return { errno: n === 0 ? -1 : -r.getInt32(4, true) || 0, body: new DataView(out.buf.buffer, 16, Math.max(0, n - 16)) };
    };
    const r = this.server.handle(new BytesIn(m), out);
    return r instanceof Promise ? r.then(parse) : parse(r);
  }
  now(op: number, nodeid: bigint, body: Uint8Array, unique?: bigint): { errno: number; body: DataView } {
    const r = this.send(op, nodeid, body, unique);
    if (r instanceof Promise) throw new Error(`op ${op} did not answer at once`);
    return r;
  }
  init(flags = 0xffffffff): number {
    return this.now(FUSE.INIT, 0n, new Args().u32(7).u32(41).u32(65536).u32(flags).zeros(48).done()).body.getUint32(12, true);
  }
  /** CREATE: the node id, the handle and the open flags. */
  create(name: string): { nodeid: bigint; fh: bigint; openFlags: number } {
    const r = this.now(FUSE.CREATE, ROOT, new Args().u32(0o102).u32(0o100644).u32(0).u32(0).str(name).done());
    expect(r.errno).toBe(0);
    return { nodeid: r.body.getBigUint64(0, true), fh: r.body.getBigUint64(128, true), openFlags: r.body.getUint32(136, true) };
  }
  open(nodeid: bigint): bigint {
    const r = this.now(FUSE.OPEN, nodeid, new Args().u32(2).u32(0).done());
    expect(r.errno).toBe(0);
    return r.body.getBigUint64(0, true);
  }
}

/** fuse_lk_in as fuse_lk_fill builds it (end inclusive, OFFSET_MAX for "to the end"). */
const lk = (fh: bigint, owner: bigint, start: number | bigint, end: number | bigint, type: number, pid = 0, flags = 0) =>
  new Args().u64(fh).u64(owner).u64(start).u64(end).u32(type).u32(pid).u32(flags).u32(0).done();
const flushIn = (fh: bigint, owner: bigint) => new Args().u64(fh).u32(0).u32(0).u64(owner).done();

describe('LockTable (shared by the 9P and FUSE servers)', () => {
  const range = (start: number, end: number, type: number, owner: string, pid = 0): LockRange => ({ start, end, type, owner, pid, clientId: '' });

  it("uses Linux's lock type values, which 9P's are too", () => {
    expect([F_RDLCK, F_WRLCK, F_UNLCK]).toEqual([0, 1, 2]);
    expect([LOCK_TYPE_RDLCK, LOCK_TYPE_WRLCK, LOCK_TYPE_UNLCK]).toEqual([F_RDLCK, F_WRLCK, F_UNLCK]);
  });

  it('replaces and splits an owner’s ranges, and conflicts only across owners', () => {
    const t = new LockTable();
    expect(t.set(1n, range(0, 100, F_WRLCK, 'a'))).toBe('ok');
    expect(t.set(1n, range(40, 60, F_UNLCK, 'a'))).toBe('ok');
    expect(t.size).toBe(2);
    expect(t.conflict(1n, range(50, 55, F_WRLCK, 'b'))).toBeUndefined();
    expect(t.conflict(1n, range(59, 61, F_RDLCK, 'b'))).toMatchObject({ start: 60, end: 100 });
    expect(t.conflict(1n, range(0, 100, F_WRLCK, 'a'))).toBeUndefined();
    expect(t.conflict(2n, range(0, 100, F_WRLCK, 'b'))).toBeUndefined();
    expect(t.set(1n, range(0, 10, F_RDLCK, 'b'))).toBe('blocked');
    t.unlockOwner(1n, 'a');
    expect(t.size).toBe(0);
  });

  it('grants waiters in order once the range is free, refuses a deadlock, and cancels', async () => {
    const t = new LockTable();
    t.set(1n, range(0, 10, F_WRLCK, 'a'));
    t.set(2n, range(0, 10, F_WRLCK, 'b'));
    const order: string[] = [];
    const bWaits = t.setWait(1n, range(0, 10, F_WRLCK, 'b'), 'tb');
    const cWaits = t.setWait(1n, range(5, 6, F_RDLCK, 'c'), 'tc');
    expect(bWaits).toBeInstanceOf(Promise);
    expect(cWaits).toBeInstanceOf(Promise);
    void (bWaits as Promise<string>).then((v) => order.push('b:' + v));
    void (cWaits as Promise<string>).then((v) => order.push('c:' + v));
    // a waiting for b's range on inode 2 while b waits for a's: a cycle.
    expect(t.setWait(2n, range(0, 1, F_RDLCK, 'a'), 'ta')).toBe('deadlock');
    expect(t.waiting).toBe(2);
    t.set(1n, range(0, Infinity, F_UNLCK, 'a'));
    await Promise.resolve();
    expect(order).toEqual(['b:ok']); // c still conflicts with b's new write lock
    expect(t.cancel('tc')).toBe(true);
    expect(t.cancel('tc')).toBe(false);
    await Promise.resolve();
    expect(order).toEqual(['b:ok', 'c:cancelled']);
    const d = t.setWait(1n, range(0, 1, F_WRLCK, 'd'), 'td') as Promise<string>;
    t.clear();
    expect(await d).toBe('cancelled');
    expect(t.size).toBe(0);
  });

  it('caps ranges and waiters', () => {
    const t = new LockTable(2, 1);
    expect(t.set(1n, range(0, 1, F_WRLCK, 'a'))).toBe('ok');
    expect(t.set(1n, range(2, 3, F_WRLCK, 'a'))).toBe('ok');
    expect(t.set(1n, range(4, 5, F_WRLCK, 'a'))).toBe('full');
    expect(t.setWait(1n, range(0, 1, F_WRLCK, 'b'), 1)).toBeInstanceOf(Promise);
    expect(t.setWait(1n, range(0, 1, F_WRLCK, 'c'), 2)).toBe('full');
    t.clear();
  });
});

describe('FUSE POSIX locks (posixLocks)', () => {
  it('are offered at INIT only with posixLocks; without them the lock opcodes answer ENOSYS', () => {
    const off = new Direct({});
    expect(off.init() & INIT.POSIX_LOCKS).toBe(0);
    const f = off.create('f');
    expect(f.openFlags & FOPEN_NOFLUSH).toBe(FOPEN_NOFLUSH);
    expect(off.now(FUSE.GETLK, f.nodeid, lk(f.fh, 1n, 0, OFFSET_MAX, F_WRLCK)).errno).toBe(E.ENOSYS);
    expect(off.now(FUSE.SETLK, f.nodeid, lk(f.fh, 1n, 0, OFFSET_MAX, F_WRLCK)).errno).toBe(E.ENOSYS);
    const on = new Direct();
    expect(on.init() & INIT.POSIX_LOCKS).toBe(INIT.POSIX_LOCKS);
    // The kernel must FLUSH at close, since that is where a closer's locks go.
    expect(on.create('f').openFlags & FOPEN_NOFLUSH).toBe(0);
    const refused = new Direct();
    expect(refused.init(INIT.BIG_WRITES) & INIT.POSIX_LOCKS).toBe(0);
    const g = refused.create('g');
    expect(refused.now(FUSE.SETLK, g.nodeid, lk(g.fh, 1n, 0, 9, F_WRLCK)).errno).toBe(E.ENOSYS);
  });

  it('SETLK sets, conflicts with EAGAIN across owners, and GETLK reports the holder with an inclusive end', () => {
    const d = new Direct();
    d.init();
    const f = d.create('f');
    const fh2 = d.open(f.nodeid);
    expect(d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 0xa1n, 10, 19, F_WRLCK, 41)).errno).toBe(0);
    expect(d.now(FUSE.SETLK, f.nodeid, lk(fh2, 0xb2n, 15, 15, F_RDLCK, 42)).errno).toBe(E.EAGAIN);
    expect(d.now(FUSE.SETLK, f.nodeid, lk(fh2, 0xb2n, 20, OFFSET_MAX, F_WRLCK, 42)).errno).toBe(0);
    const g = d.now(FUSE.GETLK, f.nodeid, lk(fh2, 0xb2n, 0, OFFSET_MAX, F_RDLCK, 42));
    expect(g.errno).toBe(0);
    expect([g.body.getBigUint64(0, true), g.body.getBigUint64(8, true), g.body.getUint32(16, true), g.body.getUint32(20, true)]).toEqual([10n, 19n, F_WRLCK, 41]);
    const g2 = d.now(FUSE.GETLK, f.nodeid, lk(f.fh, 0xa1n, 0, 5, F_WRLCK, 41));
    expect(g2.body.getUint32(16, true)).toBe(F_UNLCK); // nothing of another owner there
    const g3 = d.now(FUSE.GETLK, f.nodeid, lk(f.fh, 0xa1n, 100, 100, F_RDLCK, 41));
    expect([g3.body.getBigUint64(0, true), g3.body.getBigUint64(8, true), g3.body.getUint32(16, true), g3.body.getUint32(20, true)]).toEqual([20n, OFFSET_MAX, F_WRLCK, 42]);
    expect(d.server.session.locks.size).toBe(2);
    // An unlock (the kernel sends pid 0) by the owner frees its range.
    expect(d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 0xa1n, 0, OFFSET_MAX, F_UNLCK, 0)).errno).toBe(0);
    expect(d.now(FUSE.SETLK, f.nodeid, lk(fh2, 0xc3n, 10, 19, F_WRLCK, 43)).errno).toBe(0);
  });

  it('FLUSH (close) drops the closing owner’s locks on that file only', () => {
    const d = new Direct();
    d.init();
    const f = d.create('f');
    const h = d.create('h');
    d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 1n, 0, OFFSET_MAX, F_WRLCK, 7));
    d.now(FUSE.SETLK, h.nodeid, lk(h.fh, 1n, 0, OFFSET_MAX, F_WRLCK, 7));
    d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 2n, 0, OFFSET_MAX, F_UNLCK, 0));
    expect(d.now(FUSE.FLUSH, f.nodeid, flushIn(f.fh, 2n)).errno).toBe(0);
    expect(d.server.session.locks.size).toBe(2); // another owner's close changes nothing
    expect(d.now(FUSE.FLUSH, f.nodeid, flushIn(f.fh, 1n)).errno).toBe(0);
    expect(d.server.session.locks.size).toBe(1);
    expect(d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 2n, 0, OFFSET_MAX, F_WRLCK, 8)).errno).toBe(0);
    expect(d.now(FUSE.SETLK, h.nodeid, lk(h.fh, 2n, 0, OFFSET_MAX, F_WRLCK, 8)).errno).toBe(E.EAGAIN);
  });

  it('SETLKW waits until the range is free, then answers; a deadlock answers EDEADLK', async () => {
    const d = new Direct();
    d.init();
    const f = d.create('f');
    const h = d.create('h');
    d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 1n, 0, 99, F_WRLCK, 7));
    d.now(FUSE.SETLK, h.nodeid, lk(h.fh, 2n, 0, 99, F_WRLCK, 8));
    let answered: number | undefined;
    const w = d.send(FUSE.SETLKW, f.nodeid, lk(f.fh, 2n, 50, 60, F_WRLCK, 8));
    expect(w).toBeInstanceOf(Promise);
    void (w as Promise<{ errno: number }>).then((r) => (answered = r.errno));
    // Owner 1 now waiting for owner 2's range on h would close the cycle.
    expect(d.now(FUSE.SETLKW, h.nodeid, lk(h.fh, 1n, 0, 0, F_RDLCK, 7)).errno).toBe(E.EDEADLK);
    // Other requests go on meanwhile.
    expect(d.now(FUSE.GETATTR, f.nodeid, new Args().u32(0).u32(0).u64(0).done()).errno).toBe(0);
    await Promise.resolve();
    expect(answered).toBeUndefined();
    d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 1n, 0, 49, F_UNLCK, 0));
    await Promise.resolve();
    expect(answered).toBeUndefined(); // 50..60 is still owner 1's
    expect(d.now(FUSE.FLUSH, f.nodeid, flushIn(f.fh, 1n)).errno).toBe(0);
    expect((await w).errno).toBe(0);
    const g = d.now(FUSE.GETLK, f.nodeid, lk(f.fh, 1n, 55, 55, F_RDLCK, 7));
    expect(g.body.getUint32(20, true)).toBe(8);
    // A SETLKW that can be granted at once answers at once.
    expect(d.now(FUSE.SETLKW, f.nodeid, lk(f.fh, 1n, 200, 300, F_WRLCK, 7)).errno).toBe(0);
  });

  it('INTERRUPT of a waiting SETLKW, DESTROY and INIT end the wait with EINTR', async () => {
    const d = new Direct();
    d.init();
    const f = d.create('f');
    d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 1n, 0, OFFSET_MAX, F_WRLCK, 7));
    const w = d.send(FUSE.SETLKW, f.nodeid, lk(f.fh, 2n, 0, 0, F_WRLCK, 8), 5000n) as Promise<{ errno: number }>;
    expect(d.send(FUSE.INTERRUPT, 0n, new Args().u64(4999n).done())).toMatchObject({ errno: -1 }); // no reply, nothing cancelled
    expect(d.server.session.locks.waiting).toBe(1);
    d.send(FUSE.INTERRUPT, 0n, new Args().u64(5000n).done());
    expect((await w).errno).toBe(E.EINTR);
    const w2 = d.send(FUSE.SETLKW, f.nodeid, lk(f.fh, 2n, 0, 0, F_WRLCK, 8)) as Promise<{ errno: number }>;
    d.now(FUSE.DESTROY, 0n, new Uint8Array(0));
    expect((await w2).errno).toBe(E.EINTR);
    expect(d.server.session.locks.size).toBe(0);
  });

  it('refuses a bad lock request: unknown handle, bad type, end before start, start past 2^53, flock', () => {
    const d = new Direct();
    d.init();
    const f = d.create('f');
    expect(d.now(FUSE.SETLK, f.nodeid, lk(999n, 1n, 0, 9, F_WRLCK)).errno).toBe(E.EBADF);
    expect(d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 1n, 0, 9, 3)).errno).toBe(E.EINVAL);
    expect(d.now(FUSE.GETLK, f.nodeid, lk(f.fh, 1n, 0, 9, F_UNLCK)).errno).toBe(E.EINVAL);
    expect(d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 1n, 10, 9, F_WRLCK)).errno).toBe(E.EINVAL);
    expect(d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 1n, 2n ** 60n, OFFSET_MAX, F_WRLCK)).errno).toBe(E.EINVAL);
    expect(d.now(FUSE.SETLK, f.nodeid, lk(f.fh, 1n, 0, 9, F_WRLCK, 0, 1)).errno).toBe(E.EINVAL);
    expect(d.now(FUSE.SETLK, f.nodeid, new Args().u64(f.fh).u64(1n).done()).errno).toBe(E.EINVAL); // short
    expect(d.server.session.locks.size).toBe(0);
    // The table's cap answers ENOLCK.
    const small = new Direct({ posixLocks: true, maxLocks: 2 });
    small.init();
    const g = small.create('g');
    expect(small.now(FUSE.SETLK, g.nodeid, lk(g.fh, 1n, 0, 0, F_WRLCK)).errno).toBe(0);
    expect(small.now(FUSE.SETLK, g.nodeid, lk(g.fh, 1n, 2, 2, F_WRLCK)).errno).toBe(0);
    expect(small.now(FUSE.SETLK, g.nodeid, lk(g.fh, 1n, 4, 4, F_WRLCK)).errno).toBe(E.ENOLCK);
  });

  it('a device reset ends a waiting SETLKW without writing guest memory, and the device drains', async () => {
    const dev = new VirtioFs(new MemFs(), { posixLocks: true });
    const c = new FuseClient(dev);
    await c.init();
    const { entry, fh } = await c.create(ROOT, 'f');
    expect(await c.errno(FUSE.SETLK, entry.nodeid, lk(fh, 1n, 0, OFFSET_MAX, F_WRLCK, 7))).toBe(0);
    // Post a SETLKW by hand (the client's calls wait for completion, which this one never gets).
    const q = c.drv.queues[1]!;
    const msg = c.message(FUSE.SETLKW, entry.nodeid, lk(fh, 2n, 0, 0, F_WRLCK, 8));
    const at = c.drv.allocator.alloc(4096, 4096);
    c.mem.write(at, msg);
    c.mem.fill(at + 1024, 256, 0xee);
    q.writeDesc(0, { addr: at, len: msg.length, flags: 1, next: 1 });
    q.writeDesc(1, { addr: at + 1024, len: 256, flags: 2, next: 0 });
    q.publish(0);
    q.kick();
    await new Promise((r) => setTimeout(r, 10));
    expect(dev.pending).toBe(1);
    dev.reset();
    await new Promise((r) => setTimeout(r, 0));
    expect(dev.pending).toBe(0);
    expect([...c.mem.view(at + 1024, 256)].every((b) => b === 0xee)).toBe(true);
  });
});

describe('virtio-fs hiprio notifications', () => {
  it('FORGET completions share one interrupt at the end of the burst; request replies interrupt at once', async () => {
    const dev = new VirtioFs(new MemFs());
    const c = new FuseClient(dev);
    await c.init();
    const a = await c.mkdir(ROOT, 'a');
    const b = await c.mkdir(ROOT, 'b');
    c.drv.ackInterrupt();
    const raisedBefore = c.drv.irq.raised;
    // Two FORGETs posted and kicked in one synchronous burst: completed, but no interrupt yet.
    const q = c.drv.queues[0]!;
    const at = c.drv.allocator.alloc(512, 64);
    [a.nodeid, b.nodeid].forEach((id, i) => {
      const m = c.message(FUSE.FORGET, id, new Args().u64(1).done());
      c.mem.write(at + 128 * i, m);
      q.writeDesc(i, { addr: at + 128 * i, len: m.length, flags: 0, next: 0 });
      q.publish(i);
      q.kick();
    });
    expect(dev.server.lookupCount(a.nodeid)).toBe(0);
    expect(dev.server.lookupCount(b.nodeid)).toBe(0);
    expect(c.drv.irq.level).toBe(false);
    await Promise.resolve();
    expect(c.drv.irq.level).toBe(true);
    expect(c.drv.irq.raised - raisedBefore).toBe(1);
    expect(q.takeUsed()).toHaveLength(2);
    c.drv.ackInterrupt();
    // A request on a request queue signals right away, and carries a pending FORGET's with it.
    // (As virtqueue_enable_cb does, the driver asks to hear of the next used entry of each queue.)
    q.setUsedEvent(q.usedIdx);
    const rq = c.drv.queues[1]!;
    rq.takeUsed();
    rq.setUsedEvent(rq.usedIdx);
    const m = c.message(FUSE.FORGET, a.nodeid, new Args().u64(1).done());
    c.mem.write(at, m);
    q.writeDesc(0, { addr: at, len: m.length, flags: 0, next: 0 });
    q.publish(0);
    q.kick();
    expect(c.drv.irq.level).toBe(false);
    const g = c.message(FUSE.GETATTR, ROOT, new Args().u32(0).u32(0).u64(0).done());
    c.mem.write(at + 128, g);
    rq.writeDesc(0, { addr: at + 128, len: g.length, flags: 1, next: 1 });
    rq.writeDesc(1, { addr: at + 256, len: 200, flags: 2, next: 0 });
    rq.publish(0);
    rq.kick();
    expect(c.drv.irq.level).toBe(true);
    const raised = c.drv.irq.raised;
    c.drv.ackInterrupt();
    await Promise.resolve();
    expect(c.drv.irq.raised).toBe(raised); // nothing left to signal
    expect(rq.takeUsed()).toHaveLength(1);
    expect(q.takeUsed()).toHaveLength(1);
  });
});
