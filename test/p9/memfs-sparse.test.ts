/**
 * Sparse, chunked MemFs files: a file may be far larger than the memory it takes, holes read as
 * zeros, and truncate, hole punching and the snapshot image agree with a plain byte array.
 */
import { describe, expect, it } from 'vitest';
import { O_RDWR, S_IFDIR, S_IFREG } from '../../src/backends/fs/backend.js';
import { EFBIG, ENOSPC, EOPNOTSUPP, FsError } from '../../src/backends/fs/errno.js';
import { CHUNK, FileData } from '../../src/backends/fs/mem-data.js';
import { type MemFile, MemFs, type MemNode, loadMemFs } from '../../src/backends/fs/mem-fs.js';
import { MemFsImageError, saveMemFs } from '../../src/backends/fs/mem-fs-image.js';
import { VirtioFs } from '../../src/devices/fs/device.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { P9Client, P9Error } from '../../src/testing/index.js';
import { Args, FUSE, FuseClient } from '../support/fuse.js';

const GiB = 2 ** 30;
const creds = { uid: 0, gid: 0 };

function file(fs: MemFs, name = 'f'): MemFile {
  const f = fs.create(fs.rootNode, name, O_RDWR, 0o644, creds);
  if (f instanceof FsError || f instanceof Promise) throw new Error('create failed');
  return f;
}
function ok<T>(r: T | FsError | Promise<unknown>): T {
  if (r instanceof FsError) throw new Error(`errno ${r.errno}`);
  if (r instanceof Promise) throw new Error('MemFs answered later');
  return r;
}
function read(fs: MemFs, f: MemFile, offset: number, n: number): Uint8Array {
  const dst = new Uint8Array(n).fill(0xee); // stale bytes a short read would leave
  const got = ok(fs.read(f, offset, dst));
  return dst.subarray(0, got);
}
/** Where two byte arrays first differ (-1 when equal): toEqual on big arrays is very slow. */
function differs(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}
function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + 1) & 0xff || 1;
  return b;
}

describe('sparse MemFs files', () => {
  it('writes at 3 GiB in a filesystem of 1 MiB: one chunk held, holes read as zeros', () => {
    const fs = new MemFs({ capacity: 1 << 20 });
    const f = file(fs);
    const data = pattern(5000, 1);
    expect(ok(fs.write(f, 3 * GiB, data))).toBe(5000);
    expect(f.node.size).toBe(3 * GiB + 5000);
    expect(f.node.data.chunkCount).toBe(1);
    expect(fs.used).toBe(5000);
    expect(differs(read(fs, f, 3 * GiB, 6000), data)).toBe(-1);
    expect(differs(read(fs, f, 3 * GiB - 100, 200), Uint8Array.from([...new Uint8Array(100), ...data.subarray(0, 100)]))).toBe(-1);
    expect(differs(read(fs, f, GiB, 4096), new Uint8Array(4096))).toBe(-1);
    const st = ok(fs.getattr(f.node));
    expect(st.size).toBe(3 * GiB + 5000);
    expect(st.blocks).toBe(Math.ceil(5000 / 512)); // what is held, not the size
    // Just past 2 GiB, as pjdfstest's open/25.t writes: no EFBIG any more.
    expect(ok(fs.write(f, 2 ** 31 + 1, new Uint8Array([7])))).toBe(1);
    expect(differs(read(fs, f, 2 ** 31, 3), new Uint8Array([0, 7, 0]))).toBe(-1);
    expect(fs.used).toBe(5000 + 2);
  });

  it('refuses a write that does not fit, changing nothing; past 2^53 is EFBIG', () => {
    const fs = new MemFs({ capacity: 3 * CHUNK });
    const f = file(fs);
    ok(fs.write(f, 0, pattern(2 * CHUNK, 2)));
    const used = fs.used;
    // Spans a held chunk and two new ones: more than is left.
    expect((fs.write(f, CHUNK + 10, pattern(2 * CHUNK, 3)) as FsError).errno).toBe(ENOSPC);
    expect(fs.used).toBe(used);
    expect(f.node.size).toBe(2 * CHUNK);
    expect(differs(read(fs, f, 0, 2 * CHUNK), pattern(2 * CHUNK, 2))).toBe(-1);
    expect((fs.write(f, 2 ** 53 - 2, new Uint8Array(4)) as FsError).errno).toBe(EFBIG);
    // A hole costs nothing, so a huge truncate-up succeeds.
    ok(fs.setattr(f.node, { size: 1e15 }));
    expect(fs.used).toBe(used);
    expect(differs(read(fs, f, 1e15 - 10, 20), new Uint8Array(10))).toBe(-1);
  });

  it('truncate frees what lies past the end, and growing again reads zeros there', () => {
    const fs = new MemFs();
    const f = file(fs);
    ok(fs.write(f, 0, pattern(3 * CHUNK + 100, 4)));
    ok(fs.setattr(f.node, { size: CHUNK + 7 }));
    expect(fs.used).toBe(CHUNK + 7);
    expect(f.node.data.chunkCount).toBe(2);
    ok(fs.setattr(f.node, { size: 3 * CHUNK }));
    const back = read(fs, f, 0, 3 * CHUNK);
    expect(differs(back.subarray(0, CHUNK + 7), pattern(3 * CHUNK + 100, 4).subarray(0, CHUNK + 7))).toBe(-1);
    expect(back.subarray(CHUNK + 7).every((b) => b === 0)).toBe(true);
    // A write after a truncate into a chunk's middle never shows the old bytes past the cut.
    ok(fs.write(f, CHUNK + 20, new Uint8Array([9])));
    expect(differs(read(fs, f, CHUNK + 5, 20), Uint8Array.from([...pattern(3 * CHUNK + 100, 4).subarray(CHUNK + 5, CHUNK + 7), ...new Uint8Array(13), 9, 0, 0, 0, 0]))).toBe(-1);
    ok(fs.setattr(f.node, { size: 0 }));
    expect(fs.used).toBe(0);
    expect(f.node.data.chunkCount).toBe(0);
  });

  it('data is freed when the last link and open go', () => {
    const fs = new MemFs();
    const f = file(fs);
    ok(fs.write(f, 5 * GiB, pattern(3 * CHUNK, 5)));
    ok(fs.unlink(fs.rootNode, 'f', false));
    expect(fs.used).toBe(3 * CHUNK);
    fs.close(f);
    expect(fs.used).toBe(0);
  });

  it('punchHole frees whole chunks, zeroes the rest, keeps the size', () => {
    const fs = new MemFs();
    const f = file(fs);
    const all = pattern(4 * CHUNK, 6);
    ok(fs.write(f, 0, all));
    ok(fs.punchHole(f, 100, 2 * CHUNK)); // [100, 2 CHUNK + 100): chunk 1 whole, parts of 0 and 2
    expect(f.node.size).toBe(4 * CHUNK);
    expect(f.node.data.chunkCount).toBe(3);
    const want = all.slice();
    want.fill(0, 100, 2 * CHUNK + 100);
    expect(differs(read(fs, f, 0, 4 * CHUNK), want)).toBe(-1);
    // Chunk 0's extent is cut to 100; chunks 2 and 3 keep theirs.
    expect(fs.used).toBe(100 + 2 * CHUNK);
    // A punch reaching past the end changes nothing beyond it, and the size stays.
    ok(fs.punchHole(f, 3 * CHUNK + 10, 10 * CHUNK));
    want.fill(0, 3 * CHUNK + 10);
    expect(differs(read(fs, f, 0, 4 * CHUNK), want)).toBe(-1);
    expect(f.node.size).toBe(4 * CHUNK);
    expect(fs.used).toBe(100 + CHUNK + 10);
  });

  it('agrees with a plain byte array over random writes, truncates and punches', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const fs = new MemFs();
    const f = file(fs);
    const MAX = 5 * CHUNK;
    let model = new Uint8Array(0);
    for (let step = 0; step < 1500; step++) {
      const op = rnd(10);
      if (op < 5) {
        const off = rnd(MAX);
        const len = 1 + rnd(op === 0 ? 2 * CHUNK : 300);
        const data = pattern(len, step);
        ok(fs.write(f, off, data));
        if (off + len > model.length) {
          const m = new Uint8Array(off + len);
          m.set(model);
          model = m;
        }
        model.set(data, off);
      } else if (op < 7) {
        const size = rnd(MAX);
        ok(fs.setattr(f.node, { size }));
        const m = new Uint8Array(size);
        m.set(model.subarray(0, size));
        model = m;
      } else if (op < 8) {
        const off = rnd(MAX);
        const len = 1 + rnd(2 * CHUNK);
        ok(fs.punchHole(f, off, len));
        model.fill(0, off, off + len);
      } else {
        const off = rnd(MAX);
        const len = rnd(2 * CHUNK);
        expect(differs(read(fs, f, off, len), model.subarray(off, Math.min(model.length, off + len)))).toBe(-1);
      }
      expect(f.node.size).toBe(model.length);
      expect(fs.used).toBe(f.node.data.held);
      expect(f.node.data.held).toBeLessThanOrEqual(model.length);
    }
    expect(differs(read(fs, f, 0, model.length), model)).toBe(-1);
  });

  it('FileData: a small file takes about its size; a chunk buffer grows to CHUNK at most', () => {
    const d = new FileData();
    d.write(0, new Uint8Array(10));
    expect(d.held).toBe(10);
    d.write(CHUNK - 1, new Uint8Array(2));
    expect(d.chunkCount).toBe(2);
    expect(d.held).toBe(CHUNK + 1);
  });
});

describe('sparse MemFs files through the servers', () => {
  it('9P: Twrite at 3 GiB and Tread across the hole, in a 1 MiB filesystem', async () => {
    const fs = new MemFs({ capacity: 1 << 20 });
    const c = new P9Client(new Virtio9p(fs));
    await c.mount(65536);
    await c.walk(0, 1, []);
    await c.lcreate(1, 'big', O_RDWR);
    const data = pattern(40000, 7);
    expect(await c.write(1, 3 * GiB, data)).toBe(40000);
    expect((await c.getattr(1)).size).toBe(3 * GiB + 40000);
    expect(differs(await c.read(1, 3 * GiB - 8, 40016), Uint8Array.from([...new Uint8Array(8), ...data]))).toBe(-1);
    expect(differs(await c.read(1, 2 * GiB, 4096), new Uint8Array(4096))).toBe(-1);
    // Tsetattr size down into the data, then up again: the cut bytes read as zeros.
    await c.setattr(1, { valid: 8, size: 3 * GiB + 100 });
    await c.setattr(1, { valid: 8, size: 4 * GiB });
    const back = await c.read(1, 3 * GiB + 90, 20);
    expect(back).toEqual(Uint8Array.from([...data.subarray(90, 100), ...new Uint8Array(10)]));
    expect(fs.used).toBe(100);
    // Still bounded: more real data than the capacity is refused.
    let errno = 0;
    for (let i = 0; i < 20 && errno === 0; i++) {
      errno = await c.write(1, i << 20, new Uint8Array(60000)).then(
        () => 0,
        (err: unknown) => (err instanceof P9Error ? err.errno : -1),
      );
    }
    expect(errno).toBe(ENOSPC);
    expect(fs.used).toBeLessThanOrEqual(1 << 20);
  });

  it('virtio-fs: FALLOCATE PUNCH_HOLE|KEEP_SIZE punches; PUNCH_HOLE alone stays EOPNOTSUPP', async () => {
    const fs = new MemFs();
    const c = new FuseClient(new VirtioFs(fs));
    await c.init();
    const { entry, fh } = await c.create(1n, 'f');
    await c.write(entry.nodeid, fh, 0, pattern(3 * CHUNK, 8));
    await c.call(FUSE.FALLOCATE, entry.nodeid, new Args().u64(fh).u64(10).u64(2 * CHUNK).u32(3).u32(0).done());
    expect((await c.getattr(entry.nodeid)).size).toBe(3 * CHUNK);
    const want = pattern(3 * CHUNK, 8);
    want.fill(0, 10, 2 * CHUNK + 10);
    expect(differs(await c.read(entry.nodeid, fh, 0, 3 * CHUNK), want)).toBe(-1);
    expect(fs.used).toBe(10 + CHUNK);
    expect(await c.errno(FUSE.FALLOCATE, entry.nodeid, new Args().u64(fh).u64(0).u64(10).u32(2).u32(0).done())).toBe(EOPNOTSUPP);
  });
});

/** A version-1 image by hand: the root and one 5-byte file "f". */
function versionOneImage(version = 1): Uint8Array {
  const out: number[] = [...new TextEncoder().encode('STVMMEMF')];
  const u32 = (v: number) => out.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  const u64 = (v: number) => (u32(v % 2 ** 32), u32(Math.floor(v / 2 ** 32)));
  const meta = (mode: number) => {
    u32(mode);
    u32(0);
    u32(0);
    u32(0);
    for (let i = 0; i < 3; i++) (u64(1000 + i), u32(0));
  };
  u32(version);
  u32(2);
  meta(S_IFDIR | 0o755);
  u32(1);
  u32(1);
  out.push(0x66); // "f"
  u32(1);
  u32(0); // no xattrs
  meta(S_IFREG | 0o600);
  u64(5);
  out.push(...new TextEncoder().encode('hello'));
  u32(0);
  return Uint8Array.from(out);
}

describe('the MemFs image carries sparse files', () => {
  it('saves a 3 GiB sparse file in a small image and loads it back whole', () => {
    const fs = new MemFs({ capacity: 1 << 20 });
    const f = file(fs);
    ok(fs.write(f, 0, pattern(100, 9)));
    ok(fs.write(f, 3 * GiB - 10, pattern(30, 10))); // across a chunk boundary
    ok(fs.setattr(f.node, { size: 4 * GiB })); // a hole at the end too
    fs.close(f);
    const image = saveMemFs(fs);
    // A chunk is held from its start, so the 10 bytes before 3 GiB cost most of one chunk.
    expect(fs.used).toBe(100 + CHUNK + 20);
    expect(image.length).toBeLessThan(fs.used + 1000);
    const back = loadMemFs(image, { capacity: 1 << 20 });
    const node = back.lookup(back.rootNode, 'f') as MemNode;
    expect(node.size).toBe(4 * GiB);
    expect(back.used).toBe(fs.used);
    const g = ok(back.open(node, 0));
    expect(differs(read(back, g, 0, 100), pattern(100, 9))).toBe(-1);
    expect(differs(read(back, g, 3 * GiB - 20, 50), Uint8Array.from([...new Uint8Array(10), ...pattern(30, 10), ...new Uint8Array(10)]))).toBe(-1);
    expect(differs(read(back, g, 4 * GiB - 10, 100), new Uint8Array(10))).toBe(-1);
    expect(differs(saveMemFs(back), image)).toBe(-1);
  });

  it('loads a version-1 image; refuses other versions and bad pieces clearly', () => {
    const v1 = loadMemFs(versionOneImage());
    const node = v1.lookup(v1.rootNode, 'f') as MemNode;
    expect(new TextDecoder().decode(node.data.bytes(node.size))).toBe('hello');
    expect(node.mode).toBe(S_IFREG | 0o600);
    expect(v1.used).toBe(5);
    // Saved again, it is a version-2 image that loads the same.
    const v2 = saveMemFs(v1);
    expect(new DataView(v2.buffer).getUint32(8, true)).toBe(2);
    expect(new TextDecoder().decode((loadMemFs(v2).lookup(loadMemFs(v2).rootNode, 'f') as MemNode).data.bytes(5))).toBe('hello');
    expect(() => loadMemFs(versionOneImage(3))).toThrow(/unsupported image version 3 \(this storvm reads versions 1 and 2\)/);

    // A version-2 image with one piece, then tampered: overlapping, empty, past the size, too long.
    const fs = new MemFs();
    const f = file(fs);
    ok(fs.write(f, CHUNK, pattern(10, 11)));
    ok(fs.write(f, 2 * CHUNK, pattern(10, 12)));
    fs.close(f);
    const good = saveMemFs(fs);
    expect(() => loadMemFs(good)).not.toThrow();
    // The file's record: find its two pieces (u64 offset, u32 length) near the end.
    const dv = new DataView(good.buffer);
    const at2 = good.length - 4 - 10 - 4 - 8; // second piece's offset field
    const at1 = at2 - 10 - 4 - 8;
    expect(dv.getUint32(at1, true)).toBe(CHUNK);
    expect(dv.getUint32(at2, true)).toBe(2 * CHUNK);
    const tamper = (fn: (d: DataView) => void) => {
      const b = good.slice();
      fn(new DataView(b.buffer));
      return b;
    };
    expect(() => loadMemFs(tamper((d) => d.setUint32(at2, CHUNK + 5, true)))).toThrow(MemFsImageError); // overlaps the first
    expect(() => loadMemFs(tamper((d) => d.setUint32(at2 + 8, 0, true)))).toThrow(MemFsImageError);
    expect(() => loadMemFs(tamper((d) => d.setUint32(at2, 3 * CHUNK, true)))).toThrow(/bad file piece/); // past the size
    expect(() => loadMemFs(tamper((d) => d.setUint32(at1 - 4, 1e6, true)))).toThrow(/bad piece count/);
  });

  it('a snapshot of a 9P share over MemFs carries a sparse file', async () => {
    const fs = new MemFs({ capacity: 1 << 20 });
    const f = file(fs);
    ok(fs.write(f, 3 * GiB, pattern(1000, 13)));
    const image = fs.saveContents();
    const into = new MemFs({ capacity: 1 << 20 });
    into.loadContents(image);
    const c = new P9Client(new Virtio9p(into));
    await c.mount(65536);
    await c.walk(0, 1, ['f']);
    await c.lopen(1, 0);
    expect(differs(await c.read(1, 3 * GiB - 4, 1004), Uint8Array.from([0, 0, 0, 0, ...pattern(1000, 13)]))).toBe(-1);
  });
});
