/**
 * The boot cache's parts that need no guest: the console marker filter, the read-recording disk,
 * the entry format's checks, the cache folder rules and the LRU bound.
 */
import { mkdtempSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryDisk } from '../src/backends/block/memory-disk.js';
import { OverlayDisk } from '../src/backends/block/overlay-disk.js';
import { hashDisk } from '../src/backends/block/identity.js';
import { hashBlocks, ReadRecordingDisk, validRuns } from '../src/backends/block/read-record.js';
import {
  BadEntry,
  BOOT_CACHE_FORMAT,
  cacheDir,
  cacheKey,
  clearCache,
  decodeEntry,
  EarlyConsole,
  encodeEntry,
  type EntryHeader,
  listEntries,
  MarkerFilter,
  maxBytes,
  prune,
  READY_MARKER,
  writeEntry,
} from '../src/node/boot-cache.js';
import { storvmVersion } from '../src/node/version.js';
import { main } from '../src/node/cli.js';
import { ctlLine } from '../src/node/launch.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (chunks: Uint8Array[]) => Buffer.concat(chunks).toString('latin1');

describe('MarkerFilter', () => {
  const run = (chunks: Uint8Array[]) => {
    const out: Uint8Array[] = [];
    let at = -1;
    const f = new MarkerFilter((b) => out.push(b), () => (at = dec(out).length));
    for (const c of chunks) f.push(c);
    return { text: dec(out), at, found: f.found };
  };
  const marker = Buffer.from(READY_MARKER).toString('latin1');

  it('takes the marker out and fires once, wherever the chunks split it', () => {
    const whole = enc(`boot log\n${marker}after${marker}`);
    for (let cut = 0; cut <= whole.length; cut++) {
      const r = run([whole.subarray(0, cut), whole.subarray(cut)]);
      // Only the first marker is the signal; a second one is guest output like any other.
      expect(r).toEqual({ text: `boot log\nafter${marker}`, at: 9, found: true });
    }
    const bytes = [...whole].map((b) => Uint8Array.of(b));
    expect(run(bytes)).toEqual({ text: `boot log\nafter${marker}`, at: 9, found: true });
  });

  it('gives back a prefix that turns out not to be the marker, including one that restarts it', () => {
    const fake = `${marker.slice(0, 5)}X\x1b${marker.slice(0, 3)}Y`;
    expect(run([enc(fake)])).toEqual({ text: fake, at: -1, found: false });
    expect(run([enc(`\x1b${marker}z`)])).toEqual({ text: '\x1bz', at: 1, found: true });
  });
});

describe('EarlyConsole', () => {
  it('keeps what the guest printed up to its bound, then nothing, and says so', () => {
    const e = new EarlyConsole(10);
    e.push(enc('12345'));
    e.push(enc('67890'));
    expect(Buffer.from(e.bytes()).toString()).toBe('1234567890');
    expect(e.overflowed).toBe(false);
    e.push(enc('x'));
    expect(e.overflowed).toBe(true);
    expect(e.bytes().length).toBe(0);
    for (let i = 0; i < 1000; i++) e.push(new Uint8Array(1000));
    expect((e as unknown as { chunks: unknown[] }).chunks.length).toBe(0); // holds nothing more
  });
});

describe('ReadRecordingDisk', () => {
  const disk = () => {
    const d = new MemoryDisk(1 << 20);
    d.write(0, enc('partition table'));
    return d;
  };

  it('records the 4 KiB blocks read as runs, and hashes them', async () => {
    const inner = disk();
    const r = new ReadRecordingDisk(inner);
    r.read(0, new Uint8Array(512));
    r.read(4096 * 3 - 1, new Uint8Array(2)); // blocks 2 and 3
    r.read(4096 * 10, new Uint8Array(4096));
    expect(r.recordedRuns()).toEqual([[0, 1], [2, 2], [10, 1]]);
    r.read(4096 * 100, new Uint8Array(1)); // after the freeze: not recorded
    expect(r.recordedRuns()).toEqual([[0, 1], [2, 2], [10, 1]]);
    const h = await hashBlocks(inner, r.recordedRuns());
    expect(await r.identity()).toBe(`boot-blocks:${h}`);
    // A change inside a recorded block changes the hash, one outside does not.
    const other = disk();
    other.write(4096 * 50, enc('elsewhere'));
    expect(await hashBlocks(other, r.recordedRuns())).toBe(h);
    other.write(4096 * 10 + 7, enc('!'));
    expect(await hashBlocks(other, r.recordedRuns())).not.toBe(h);
    expect(r.wrote).toBe(false);
  });

  it('notes writes while recording, mirrors the inner features, and is transparent out of boot-cache mode', async () => {
    const base = disk();
    const cow = new OverlayDisk(base);
    const r = new ReadRecordingDisk(cow);
    expect(r.discard !== undefined).toBe(cow.discard !== undefined);
    expect(r.writeZeroes !== undefined).toBe(cow.writeZeroes !== undefined);
    expect(new ReadRecordingDisk({ size: 4096, readOnly: true, read() {}, write() {}, flush() {} }).discard).toBeUndefined();
    // Boot-cache mode hides the copy-on-write layer; afterwards a snapshot sees it as usual.
    expect(r.snapshotLayer).toBeUndefined();
    r.write(0, enc('x'));
    expect(r.wrote).toBe(true);
    r.bootCacheMode = false;
    expect(r.snapshotLayer?.().base).toBe(base);
    expect(r.restoreLayer).toBeTypeOf('function');
    const plain = new ReadRecordingDisk(base);
    plain.bootCacheMode = false;
    expect(await plain.identity()).toBe(await hashDisk(base));
  });

  it('validRuns refuses block lists a damaged entry could carry', () => {
    const size = 1 << 20; // 256 blocks
    expect(validRuns([[0, 1], [5, 251]], size)).toBe(true);
    for (const bad of [null, {}, [[0]], [[0, 0]], [[-1, 1]], [[5, 1], [0, 1]], [[0, 2], [1, 1]], [[255, 2]], [[0.5, 1]], [['0', 1]], [[2 ** 60, 1]]]) {
      expect(validRuns(bad, size)).toBe(false);
    }
  });
});

describe('the console line init evals', () => {
  it('is printable ASCII: quotes, backslashes, control bytes, newlines and UTF-8 as octal escapes', () => {
    const line = ctlLine(['host:/mnt/host', 'data:/mnt/data:ro'], "a'b\\c\n\x01\x03\x15\ré ok");
    expect(line).toBe("shares='host:/mnt/host data:/mnt/data:ro'; cmd=$'a\\047b\\134c\\012\\001\\003\\025\\015\\303\\251 ok'");
    expect([...line].every((c) => c >= ' ' && c <= '~')).toBe(true);
    expect(ctlLine([], '')).toBe("shares=''; cmd=$''");
  });
});

describe('entries', () => {
  const header = (key: string): EntryHeader => ({ format: BOOT_CACHE_FORMAT, key, storvm: storvmVersion(), created: '', summary: 's', disks: [{ runs: [[0, 1]], hash: 'h' }], console: '' });
  const snap = Uint8Array.of(1, 2, 3);

  it('round-trips, and refuses other keys, versions, disk counts and damage as BadEntry', () => {
    const e = encodeEntry(header('k1'), snap);
    expect(decodeEntry(e, 'k1', [4096]).snapshot).toEqual(snap);
    const bad: Array<[Uint8Array, string, number[]]> = [
      [e, 'k2', [4096]],
      [e, 'k1', []],
      [encodeEntry({ ...header('k1'), disks: [{ runs: [[1, 1]], hash: 'h' }] }, snap), 'k1', [4096]], // a run outside the disk
      [e.subarray(0, 20), 'k1', [4096]],
      [encodeEntry({ ...header('k1'), storvm: '0.0.0-other' }, snap), 'k1', [4096]],
      [encodeEntry({ ...header('k1'), format: 99 }, snap), 'k1', [4096]],
      [Uint8Array.from([...e.subarray(0, 21), 0x7b ^ 0xff, ...e.subarray(22)]), 'k1', [4096]],
      [enc('something else entirely'), 'k1', [4096]],
    ];
    for (const [bytes, key, sizes] of bad) expect(() => decodeEntry(bytes, key, sizes)).toThrow(BadEntry);
  });

  it('keys differ for every input that changes what the kernel saw', () => {
    const k = { kernel: enc('K'), initrd: enc('I'), bootargs: 'console=ttyS0', memoryMiB: 256, cpu: 'interp', deterministic: false, devices: [{ kind: 'blk' as const, size: 4096, readOnly: false, discard: true, writeZeroes: true, serial: 's' }] };
    const base = cacheKey(k);
    expect(cacheKey({ ...k })).toBe(base);
    const variants = [
      { ...k, kernel: enc('K2') },
      { ...k, initrd: enc('I2') },
      { ...k, bootargs: 'console=ttyS0 x' },
      { ...k, memoryMiB: 128 },
      { ...k, cpu: 'wasm' },
      { ...k, deterministic: true },
      { ...k, devices: [{ ...k.devices[0]!, size: 8192 }] },
      { ...k, devices: [{ ...k.devices[0]!, readOnly: true }] },
      { ...k, devices: [] },
    ];
    for (const v of variants) expect(cacheKey(v)).not.toBe(base);
  });

  it('the folder follows XDG on Linux, the platform convention elsewhere, and STORVM_CACHE_DIR first', () => {
    expect(cacheDir({}, 'linux', '/home/u')).toBe('/home/u/.cache/storvm');
    expect(cacheDir({ XDG_CACHE_HOME: '/xdg' }, 'linux', '/home/u')).toBe('/xdg/storvm');
    expect(cacheDir({ XDG_CACHE_HOME: 'relative' }, 'linux', '/home/u')).toBe('/home/u/.cache/storvm');
    expect(cacheDir({}, 'darwin', '/Users/u')).toBe('/Users/u/Library/Caches/storvm');
    expect(cacheDir({ STORVM_CACHE_DIR: '/c' }, 'linux', '/home/u')).toBe('/c');
    expect(maxBytes({})).toBe(512 * 1024 * 1024);
    expect(maxBytes({ STORVM_CACHE_MAX_MB: '10' })).toBe(10 * 1024 * 1024);
  });

  it('drops the least recently used entries beyond the bound, keeping the one just written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-lru-'));
    const t = Date.now() / 1000;
    for (const [i, name] of ['a', 'b', 'c'].entries()) {
      writeFileSync(join(dir, `${name}.snap`), new Uint8Array(1000));
      utimesSync(join(dir, `${name}.snap`), t - 100 + i, t - 100 + i); // a oldest, c newest
    }
    expect((await listEntries(dir)).map((e) => e.key)).toEqual(['c', 'b', 'a']);
    expect(await prune(dir, 2500)).toEqual([join(dir, 'a.snap')]);
    // Writing a new entry keeps it even when it alone is over the bound; older ones go.
    await writeEntry(join(dir, 'd.snap'), new Uint8Array(3000), dir, 2500);
    expect(readdirSync(dir).sort()).toEqual(['d.snap']);
    expect(statSync(join(dir, 'd.snap')).size).toBe(3000);
    writeFileSync(join(dir, '.tmp-1-dead'), 'x');
    expect(await clearCache(dir)).toEqual({ files: 2, bytes: 3001 });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('storvm cache info and clear report the folder; bad subcommands are usage errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-cachecli-'));
    process.env.STORVM_CACHE_DIR = dir;
    try {
      let out = '';
      let err = '';
      const o = { write: (s: string | Uint8Array) => (out += String(s)) };
      const e = { write: (s: string | Uint8Array) => (err += String(s)) };
      await writeEntry(join(dir, 'boot', 'abcdef0123456789.snap'), encodeEntry(header('abcdef0123456789'), snap), join(dir, 'boot'));
      expect(await main(['cache', 'info'], o, e)).toBe(0);
      expect(out).toContain(`boot cache: ${join(dir, 'boot')}`);
      expect(out).toMatch(/^1 entry, 0\.0 MB of at most 536\.9 MB/m);
      expect(out).toMatch(/^abcdef012345 .* s, storvm /m);
      out = '';
      expect(await main(['cache', 'clear'], o, e)).toBe(0);
      expect(out).toMatch(/^removed 1 file\(s\)/);
      expect(await main(['cache', 'wipe'], o, e)).toBe(2);
      expect(err).toBe("storvm: usage: storvm cache info|clear (unknown subcommand 'wipe')\n");
    } finally {
      delete process.env.STORVM_CACHE_DIR;
    }
  });
});
