/**
 * The boot cache's parts that need no guest: the console markers and the handshake, the
 * read-recording disk, the entry format's checks, the key and the code identity, the cache folder
 * rules and the LRU bound.
 */
import { mkdirSync, mkdtempSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
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
  codeIdentity,
  decodeEntry,
  encodeEntry,
  entrySummary,
  type EntryHeader,
  listEntries,
  maxBytes,
  prune,
  writeEntry,
} from '../src/node/boot-cache.js';
import { ConsoleMarkers, CTL_LINE_MAX, EarlyConsole, Handshake, type HandshakeEvent, pendingHandshake, READY_MARKER, restoredHandshake } from '../src/machine/boot-handshake.js';
import { storvmVersion } from '../src/node/version.js';
import { main } from '../src/node/cli.js';
import { ctlLine } from '../src/machine/boot-handshake.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (chunks: Uint8Array[]) => Buffer.concat(chunks).toString('latin1');

describe('ConsoleMarkers', () => {
  const run = (chunks: Uint8Array[]) => {
    const out: Uint8Array[] = [];
    const events: Array<HandshakeEvent & { at: number }> = [];
    const f = new ConsoleMarkers((b) => out.push(b.slice()), (e) => events.push({ ...e, at: dec(out).length }));
    for (const c of chunks) f.push(c);
    return { text: dec(out), events };
  };
  const marker = Buffer.from(READY_MARKER).toString('latin1');
  const exit = (n: number) => `\x1b]5379;storvm-exit;${n}\x07`;

  it('takes the markers out and reports them where they were, wherever the chunks split them', () => {
    const whole = enc(`boot log\n${marker}after${exit(3)}tail`);
    const want = { text: 'boot log\naftertail', events: [{ kind: 'ready', at: 9 }, { kind: 'exit', status: 3, at: 14 }] };
    for (let cut = 0; cut <= whole.length; cut++) expect(run([whole.subarray(0, cut), whole.subarray(cut)])).toEqual(want);
    expect(run([...whole].map((b) => Uint8Array.of(b)))).toEqual(want);
  });

  it('gives back sequences that turn out not to be markers, including one that restarts one', () => {
    const fake = `${marker.slice(0, 5)}X\x1b${marker.slice(0, 3)}Y\x1b]5379;other\x07\x1b]5379;storvm-exit;256\x07\x1b]5379;${'a'.repeat(40)}\x07\x1b[1m`;
    expect(run([enc(fake)])).toEqual({ text: fake, events: [] });
    expect(run([enc(`\x1b${marker}z`)])).toEqual({ text: '\x1bz', events: [{ kind: 'ready', at: 1 }] });
    // Output without an escape byte passes as the same chunk.
    const chunk = enc('plain output');
    const seen: Uint8Array[] = [];
    new ConsoleMarkers((b) => seen.push(b), () => {}).push(chunk);
    expect(seen).toEqual([chunk]);
    expect(seen[0]).toBe(chunk);
  });
});

describe('Handshake', () => {
  const fake = () => {
    const m = { typed: [] as string[], off: undefined as number | undefined, input: (b: Uint8Array) => m.typed.push(Buffer.from(b).toString()), powerOff: (n: number) => (m.off = n) };
    return m;
  };

  it('types the line on the ready marker, holds user input until then, and powers off on the exit marker', () => {
    const m = fake();
    const out: Uint8Array[] = [];
    const h = new Handshake("cmd=$'x'", (b) => out.push(b));
    h.attach(m);
    h.input(enc('early'));
    expect(m.typed).toEqual([]);
    expect(h.pending()).toEqual({ line: "cmd=$'x'", ready: false });
    h.output(enc(`log${Buffer.from(READY_MARKER).toString('latin1')}`));
    expect(m.typed).toEqual(["cmd=$'x'\n", 'early']);
    expect(h.pending()).toBeUndefined();
    h.input(enc('later'));
    expect(m.typed.at(-1)).toBe('later');
    h.output(enc('done\x1b]5379;storvm-exit;7\x07'));
    expect(m.off).toBe(7);
    expect(dec(out)).toBe('logdone');
  });

  it('gives out chunks that own their bytes, so a consumer may transfer each buffer (the browser worker does)', () => {
    const m = fake();
    const out: string[] = [];
    const h = new Handshake('L', (b) => {
      out.push(Buffer.from(b).toString('latin1'));
      structuredClone(b, { transfer: [b.buffer as ArrayBuffer] }); // detaches it, as postMessage does
    });
    h.attach(m);
    h.output(enc(`hello \x1b[1mbold init${Buffer.from(READY_MARKER).toString('latin1')} out\x1b]5379;storvm-exit;3\x07`));
    expect(out.join('')).toBe('hello \x1b[1mbold init out');
    expect(m.typed).toEqual(['L\n']);
    expect(m.off).toBe(3);
  });

  it('with onReady waits for deliver(); a restored one that is ready already types at deliver(); without a line passes input', () => {
    const m = fake();
    let readies = 0;
    const h = new Handshake('L', () => {}, { onReady: () => readies++ });
    h.attach(m);
    h.output(READY_MARKER);
    h.output(READY_MARKER); // only the first one counts
    expect([readies, m.typed, h.pending()]).toEqual([1, [], { line: 'L', ready: true }]);
    h.deliver();
    h.deliver();
    expect(m.typed).toEqual(['L\n']);
    const m2 = fake();
    const none = new Handshake(undefined, () => {});
    none.attach(m2);
    none.input(enc('x'));
    expect([m2.typed, none.pending()]).toEqual([['x'], undefined]);
  });

  it('pendingHandshake takes only a well-formed record from a snapshot', () => {
    expect(pendingHandshake({ line: "cmd=$'ls'", ready: true }, 100)).toEqual({ line: "cmd=$'ls'", ready: true });
    for (const bad of [undefined, null, 'x', { line: 1, ready: true }, { line: 'a', ready: 'yes' }, { line: 'a\nb', ready: false }, { line: 'x'.repeat(101), ready: false }]) {
      expect(pendingHandshake(bad, 100)).toBeUndefined();
    }
  });

  it('restoredHandshake resumes what a snapshot kept: typed at once when init was ready, on its marker when not, nothing when META cannot be read', async () => {
    const marker = Buffer.from(READY_MARKER).toString('latin1');
    // Ready when saved: the caller delivers at once (here with META read asynchronously, as the CLI does).
    const ready = await restoredHandshake(async () => ({ handshake: { line: 'L1', ready: true } }), () => {});
    expect([ready.deliver, ready.handshake.pending(), ready.handshake.isReady]).toEqual([true, { line: 'L1', ready: true }, true]);
    const m1 = fake();
    ready.handshake.attach(m1);
    ready.handshake.input(enc('held'));
    ready.handshake.deliver();
    expect(m1.typed).toEqual(['L1\n', 'held']);
    // Not ready when saved: nothing to deliver now, the line goes when init prints its marker.
    const waiting = await restoredHandshake(() => ({ other: 1, handshake: { line: 'L2', ready: false } }), () => {});
    expect([waiting.deliver, waiting.handshake.pending()]).toEqual([false, { line: 'L2', ready: false }]);
    const m2 = fake();
    waiting.handshake.attach(m2);
    waiting.handshake.output(enc(marker));
    expect(m2.typed).toEqual(['L2\n']);
    // The line's bound is init's: CTL_LINE_MAX is taken, one more is not.
    expect((await restoredHandshake(() => ({ handshake: { line: 'x'.repeat(CTL_LINE_MAX), ready: true } }), () => {})).deliver).toBe(true);
    // No pending line: a META that throws or rejects, none kept, or one too long. Input passes,
    // the exit marker still powers off, and the ready marker types nothing.
    for (const meta of [
      () => {
        throw new Error('bad magic');
      },
      () => Promise.reject(new Error('bad magic')),
      () => ({}),
      () => ({ handshake: { line: 'x'.repeat(CTL_LINE_MAX + 1), ready: true } }),
    ]) {
      const out: Uint8Array[] = [];
      const none = await restoredHandshake(meta, (b) => out.push(b));
      expect([none.deliver, none.handshake.pending()]).toEqual([false, undefined]);
      const m = fake();
      none.handshake.attach(m);
      none.handshake.input(enc('x'));
      none.handshake.output(enc(`a${marker}b\x1b]5379;storvm-exit;4\x07`));
      expect([m.typed, m.off, dec(out)]).toEqual([['x'], 4, 'ab']);
    }
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
    // At most RECORD_MAX_BLOCKS (64 MiB) in all, however the runs split them.
    const big = 1 << 30;
    expect(validRuns([[0, 16384]], big)).toBe(true);
    expect(validRuns([[0, 16385]], big)).toBe(false);
    expect(validRuns([[0, 8192], [10000, 8193]], big)).toBe(false);
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
    const k = { code: 'c1', kernel: enc('K'), initrd: enc('I'), bootargs: 'console=ttyS0', memoryMiB: 256, cpu: 'interp', deterministic: false, devices: [{ kind: 'blk' as const, size: 4096, readOnly: false, discard: true, writeZeroes: true, serial: 's' }] };
    const base = cacheKey(k);
    expect(cacheKey({ ...k })).toBe(base);
    const variants = [
      { ...k, code: 'c2' },
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

  it('the code identity hashes the code files, names and contents, and skips the browser, testing and lab folders', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-code-'));
    const url = () => pathToFileURL(dir + '/');
    mkdirSync(join(dir, 'machine'));
    mkdirSync(join(dir, 'browser'));
    writeFileSync(join(dir, 'machine', 'a.js'), 'one');
    writeFileSync(join(dir, 'index.js'), 'two');
    const base = codeIdentity(url());
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    writeFileSync(join(dir, 'browser', 'page.js'), 'x');
    writeFileSync(join(dir, 'machine', 'a.d.ts'), 'x');
    writeFileSync(join(dir, 'notes.md'), 'x');
    expect(codeIdentity(url())).toBe(base);
    writeFileSync(join(dir, 'machine', 'a.js'), 'One');
    const changed = codeIdentity(url());
    expect(changed).not.toBe(base);
    writeFileSync(join(dir, 'machine', 'b.ts'), '');
    expect(codeIdentity(url())).not.toBe(changed);
    // The running code's own identity is stable within a process.
    expect(codeIdentity()).toBe(codeIdentity());
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
      expect(await entrySummary(join(dir, 'boot', 'abcdef0123456789.snap'))).toBe(`s, storvm ${storvmVersion()}`);
      writeFileSync(join(dir, 'boot', 'bad.snap'), 'STORVM-BOOTCACHX\x02\0\0\0{}');
      expect(await entrySummary(join(dir, 'boot', 'bad.snap'))).toBeUndefined(); // wrong magic
      out = '';
      expect(await main(['cache', 'clear'], o, e)).toBe(0);
      expect(out).toMatch(/^removed 2 file\(s\)/);
      expect(await main(['cache', 'wipe'], o, e)).toBe(2);
      expect(err).toBe("storvm: usage: storvm cache info|clear (unknown subcommand 'wipe')\n");
    } finally {
      delete process.env.STORVM_CACHE_DIR;
    }
  });
});
