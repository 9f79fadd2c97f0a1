/**
 * The 9P session snapshot keeps its lock table across a JSON round trip, with whole-file locks
 * (end Infinity, saved as null) and owners intact; a bad range refuses the restore.
 */
import { describe, expect, it } from 'vitest';
import { MemFs } from '../../src/backends/fs/mem-fs.js';
import { F_RDLCK, F_WRLCK } from '../../src/devices/locks.js';
import { P9Server } from '../../src/devices/p9/server.js';
import { loadSession, saveSession } from '../../src/devices/p9/snapshot.js';

const owner = (pid: number, client: string) => `${pid}:${client}`;

describe('9P session snapshot: locks', () => {
  it('round-trips ranges, whole-file locks and owners through JSON', async () => {
    const fs = new MemFs();
    const a = new P9Server(fs);
    a.session.msize = 8192;
    a.session.locks.set(7n, { start: 0, end: 100, type: F_WRLCK, owner: owner(1, 'c'), pid: 1, clientId: 'c' });
    a.session.locks.set(7n, { start: 500, end: Infinity, type: F_RDLCK, owner: owner(2, 'c'), pid: 2, clientId: 'c' });
    const saved = JSON.parse(JSON.stringify(saveSession(a.session, fs)));
    expect(saved.locks[0].ranges.some((r: { end: unknown }) => r.end === null)).toBe(true);
    const b = new P9Server(fs);
    await loadSession(b.session, fs, saved, b.maxMsize);
    expect(b.lockCount).toBe(2);
    expect(b.session.locks.entries()).toEqual(a.session.locks.entries());
    // The restored table still decides conflicts by owner.
    expect(b.session.locks.conflict(7n, { start: 1000, end: 1001, type: F_WRLCK, owner: owner(3, 'c'), pid: 3, clientId: 'c' })).toMatchObject({ pid: 2, end: Infinity });
    expect(b.session.locks.conflict(7n, { start: 1000, end: 1001, type: F_WRLCK, owner: owner(2, 'c'), pid: 2, clientId: 'c' })).toBeUndefined();
  });

  it('reads the earlier form (procId, no owner), and refuses a range that ends before it starts', async () => {
    const fs = new MemFs();
    const b = new P9Server(fs);
    const legacy = { msize: 8192, rootIno: null, fids: [], locks: [{ ino: '9', ranges: [{ start: 0, end: 10, type: F_WRLCK, procId: 4, clientId: 'x' }] }] };
    await loadSession(b.session, fs, legacy, b.maxMsize);
    expect(b.session.locks.entries()[0]![1][0]).toMatchObject({ owner: owner(4, 'x'), pid: 4 });
    const bad = { ...legacy, locks: [{ ino: '9', ranges: [{ start: 10, end: 5, type: F_WRLCK, pid: 4, owner: 'o', clientId: 'x' }] }] };
    await expect(loadSession(new P9Server(fs).session, fs, bad, b.maxMsize)).rejects.toThrow(/lock range/);
  });
});
