/**
 * The path-keyed record store of the mapped metadata model (src/backends/fs/path-meta.ts): the
 * one rule it adds (a file may be shown as a symlink; never anything as a directory), when a
 * record is needed at all, and how records follow a rename.
 */
import { describe, expect, it } from 'vitest';
import { S_IFDIR, S_IFLNK, S_IFREG } from '../../src/backends/fs/backend.js';
import { type HostFacts, type MetaRecord, decodeRecord, mappedStat } from '../../src/backends/fs/mapped-meta.js';
import { PathMetaStore, pathStat, recordRedundant } from '../../src/backends/fs/path-meta.js';

const t = { sec: 10, nsec: 0 };
const host = (mode: number): HostFacts => ({ ino: 5n, mode, uid: 0, gid: 0, nlink: 1, rdev: 0, size: 3, blksize: 4096, blocks: 1, atime: t, mtime: t, ctime: t, btime: 0n });
const rec = (mode: number, extra: Partial<MetaRecord> = {}): MetaRecord => ({ btime: 0n, mode, uid: 0, gid: 0, rdev: 0, xattrs: new Map(), ...extra });

describe('path-keyed mapped metadata', () => {
  it('shows a host file as a symlink when its record says so (the inode store never does); never a directory', () => {
    expect(pathStat(host(S_IFREG | 0o644), rec(S_IFLNK | 0o777)).mode).toBe(S_IFLNK | 0o777);
    expect(mappedStat(host(S_IFREG | 0o644), rec(S_IFLNK | 0o777)).mode & 0o170000).toBe(S_IFREG);
    expect(pathStat(host(S_IFREG | 0o644), rec(S_IFDIR | 0o755)).mode & 0o170000).toBe(S_IFREG);
    expect(pathStat(host(S_IFDIR | 0o755), rec(S_IFLNK | 0o777)).mode & 0o170000).toBe(S_IFDIR);
  });

  it('needs a record only for what the host does not show', () => {
    expect(recordRedundant(host(S_IFREG | 0o644), rec(S_IFREG | 0o644, { ctime: t }))).toBe(true);
    expect(recordRedundant(host(S_IFREG | 0o644), rec(S_IFREG | 0o600))).toBe(false);
    expect(recordRedundant(host(S_IFREG | 0o644), rec(S_IFREG | 0o644, { uid: 1 }))).toBe(false);
    expect(recordRedundant(host(S_IFREG | 0o644), rec(S_IFREG | 0o644, { xattrs: new Map([['user.a', new Uint8Array(1)]]) }))).toBe(false);
    expect(recordRedundant(host(S_IFREG | 0o644), rec(S_IFREG | 0o644, { mtime: { host: 10_000_000_000n, t: { sec: 1, nsec: 2 } } }))).toBe(false);
  });

  it('stores, moves and drops records by directory and name; a redundant one is removed, not written', async () => {
    const files = new Map<string, Uint8Array>();
    const key = (d: string, n: string) => `${d}/${n}`;
    const store = new PathMetaStore<string>({
      read: (d, n) => files.get(key(d, n)),
      write: (d, n, b) => void files.set(key(d, n), b),
      remove: (d, n) => void files.delete(key(d, n)),
    });
    const h = host(S_IFREG | 0o644);
    await store.put('a', 'f', h, rec(S_IFREG | 0o600, { uid: 7 }));
    expect(decodeRecord(files.get('a/f')!)?.uid).toBe(7);
    await store.put('a', 'g', h, rec(S_IFREG | 0o644));
    expect(files.has('a/g')).toBe(false);
    files.set('b/stale', new TextEncoder().encode('left by an earlier entry'));
    await store.move('a', 'f', 'b', 'stale', h, (await store.get('a', 'f'))!);
    expect([...files.keys()]).toEqual(['b/stale']);
    expect((await store.get('b', 'stale'))?.uid).toBe(7);
    files.set('c/x', new TextEncoder().encode('stale'));
    await store.move('b', 'stale', 'c', 'x', h, rec(S_IFREG | 0o644)); // nothing to keep: both go
    expect(files.size).toBe(0);
    files.set('d/bad', new TextEncoder().encode('{"v":2}'));
    expect(await store.get('d', 'bad')).toBeUndefined();
  });
});
