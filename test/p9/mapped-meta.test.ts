/**
 * The mapped metadata model (src/backends/fs/mapped-meta.ts) on its own: record encoding, what a
 * record may and may not change about a host inode (docs/hostile-guest.md line 55), and a store
 * whose writer dies at any step.
 */
import { describe, expect, it } from 'vitest';
import { S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from '../../src/backends/fs/backend.js';
import { EIO, ENOSPC, fsError } from '../../src/backends/fs/errno.js';
import {
  type HostFacts,
  type MetaFiles,
  type MetaRecord,
  META_MAX_XATTR,
  MetaStore,
  decodeRecord,
  encodeRecord,
  mappedStat,
  newRecord,
  recordFromHost,
  recordSetXattr,
} from '../../src/backends/fs/mapped-meta.js';

const host = (over: Partial<HostFacts> = {}): HostFacts => ({
  ino: 42n,
  mode: S_IFREG | 0o600,
  uid: 1000,
  gid: 1000,
  nlink: 1,
  rdev: 0,
  size: 0,
  blksize: 4096,
  blocks: 0,
  atime: { sec: 10, nsec: 5000 },
  mtime: { sec: 20, nsec: 6000 },
  ctime: { sec: 30, nsec: 7000 },
  btime: 99n,
  ...over,
});
const now = { sec: 40, nsec: 1 };
const te = new TextEncoder();

describe('mapped metadata records', () => {
  it('round-trip through their encoding, xattrs and nanosecond times included', () => {
    const rec = newRecord(host(), S_IFCHR | 0o620, { uid: 5, gid: 6 }, (4 << 8) | 1, now);
    rec.mtime = { host: 20_000_006_000n, t: { sec: 2000, nsec: 987654321 } };
    expect(recordSetXattr(rec, 'user.a', te.encode('alpha'), 0)).toBeUndefined();
    expect(recordSetXattr(rec, 'system.posix_acl_access', new Uint8Array([2, 0, 0, 0, 1, 0, 6]), 0)).toBeUndefined();
    const back = decodeRecord(encodeRecord(rec))!;
    expect(back).toEqual(rec);
    const st = mappedStat(host(), back);
    expect(st.mode).toBe(S_IFCHR | 0o620);
    expect([st.uid, st.gid, st.rdev]).toEqual([5, 6, (4 << 8) | 1]);
    expect(st.mtime).toEqual({ sec: 2000, nsec: 987654321 });
    expect(st.ctime).toEqual(now); // later than the host's
    // Once the host's mtime moves (a write), the host's time shows again.
    expect(mappedStat(host({ mtime: { sec: 50, nsec: 0 } }), back).mtime).toEqual({ sec: 50, nsec: 0 });
  });

  it('55: refuse anything that is not exactly a record', () => {
    const good = new TextDecoder().decode(encodeRecord(newRecord(host(), S_IFREG | 0o644, { uid: 1, gid: 1 }, 0, now)));
    for (const bad of [
      '',
      'null',
      '[]',
      '{',
      good.slice(0, -1),
      good.replace('"v":1', '"v":2'),
      good.replace(/"m":\d+/, '"m":-1'),
      good.replace(/"m":\d+/, '"m":1.5'),
      good.replace(/"u":\d+/, '"u":4294967296'),
      good.replace(/"b":"\d+"/, '"b":7'),
      good.replace('"x":{}', '"x":{"user.a":"!!!!"}'),
      good.replace('"x":{}', '"x":[]'),
      good.replace(/"c":\[[^\]]*\]/, '"c":[1,1000000000]'),
    ]) {
      expect(decodeRecord(te.encode(bad)), bad).toBeUndefined();
    }
    expect(decodeRecord(new Uint8Array([0xff, 0xfe, 0x7b]))).toBeUndefined();
  });

  it('55: never change what the host says an inode is, except a regular file into a node', () => {
    const forged = (mode: number): MetaRecord => ({ btime: 99n, mode, uid: 0, gid: 0, rdev: 0, xattrs: new Map() });
    expect(mappedStat(host(), forged(S_IFDIR | 0o755)).mode & S_IFMT).toBe(S_IFREG);
    expect(mappedStat(host(), forged(S_IFLNK | 0o777)).mode & S_IFMT).toBe(S_IFREG);
    expect(mappedStat(host(), forged(S_IFIFO | 0o644)).mode).toBe(S_IFIFO | 0o644);
    expect(mappedStat(host({ mode: S_IFDIR | 0o700 }), forged(S_IFREG | 0o644)).mode).toBe(S_IFDIR | 0o644);
    expect(mappedStat(host({ mode: S_IFLNK | 0o777 }), forged(S_IFCHR | 0o644)).mode).toBe(S_IFLNK | 0o777);
    // A record written for an earlier inode with the same number (another birth time) is ignored.
    expect(mappedStat(host({ btime: 100n }), forged(S_IFIFO | 0o644))).toEqual(mappedStat(host({ btime: 100n }), undefined));
    expect(recordFromHost(host({ btime: 100n }), forged(S_IFIFO | 0o644)).mode).toBe(S_IFREG | 0o600);
  });

  it('cap the xattr bytes one inode holds', () => {
    const rec = newRecord(host(), S_IFREG | 0o644, { uid: 0, gid: 0 }, 0, now);
    expect(recordSetXattr(rec, 'user.big', new Uint8Array(META_MAX_XATTR - 8), 0)).toBeUndefined();
    expect(recordSetXattr(rec, 'user.more', new Uint8Array(64), 0)).toEqual(fsError(ENOSPC));
    expect(recordSetXattr(rec, 'user.big', new Uint8Array(16), 0)).toBeUndefined();
  });
});

/**
 * Blobs written the way a crash-safe store must: to a temporary, then renamed over. `dieAt` kills
 * the writer before step n (0: before the temporary, 1: halfway through it, 2: before the rename).
 */
class FakeFiles implements MetaFiles {
  blobs = new Map<string, Uint8Array>();
  temps = new Map<string, Uint8Array>();
  dieAt = -1;
  read(key: string): Uint8Array | undefined {
    return this.blobs.get(key);
  }
  write(key: string, data: Uint8Array) {
    if (this.dieAt === 0) return fsError(EIO);
    this.temps.set(key, data.subarray(0, this.dieAt === 1 ? data.length >> 1 : data.length));
    if (this.dieAt >= 1) return fsError(EIO);
    this.blobs.set(key, this.temps.get(key)!);
    this.temps.delete(key);
    return undefined;
  }
  remove(key: string): void {
    this.blobs.delete(key);
  }
}

describe('MetaStore', () => {
  it('keeps the old record whole when its writer dies at any step of an update', () => {
    for (const step of [0, 1, 2]) {
      const files = new FakeFiles();
      const first = new MetaStore(files);
      const h = host();
      const rec = newRecord(h, S_IFIFO | 0o640, { uid: 7, gid: 7 }, 0, now);
      expect(first.put(h.ino, rec)).toBeUndefined();
      files.dieAt = step;
      expect(first.put(h.ino, { ...rec, mode: S_IFIFO | 0o777, uid: 8 })).toEqual(fsError(EIO));
      // What a restarted storvm reads (a fresh store, no cache): the old record, not a mix.
      const after = new MetaStore(files).get(h) as MetaRecord;
      expect(after.mode).toBe(S_IFIFO | 0o640);
      expect(after.uid).toBe(7);
      // The running store didn't keep the value it failed to write either.
      expect((first.get(h) as MetaRecord).uid).toBe(7);
    }
  });

  it('caches misses, forgets dropped inodes, and ignores records of a reused inode number', () => {
    const files = new FakeFiles();
    const store = new MetaStore(files, 2);
    const h = host();
    expect(store.get(h)).toBeUndefined();
    store.put(h.ino, newRecord(h, S_IFIFO | 0o600, { uid: 0, gid: 0 }, 0, now));
    expect(store.get(host({ btime: 12345n }))).toBeUndefined();
    void store.drop(h.ino);
    expect(files.blobs.size).toBe(0);
    expect(store.get(h)).toBeUndefined();
  });
});
