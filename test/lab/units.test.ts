/** The storage lab's parts without a guest: trace hooks, trace decoding, sparse images, tar, options. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { MemFs } from '../../src/backends/fs/mem-fs.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { BytesIn, BytesOut, P9Server } from '../../src/devices/p9/server.js';
import { Encoder, P9 } from '../../src/devices/p9/wire.js';
import { parseBenchArgs } from '../../src/node/lab/bench.js';
import { guestScript, VARIANTS, WORKLOADS } from '../../src/lab/plan.js';
import { packSparse, unpackSparse, unpackSparseToFile } from '../../src/node/lab/sparse-image.js';
import { tarDirectory } from '../../src/node/lab/tar.js';
import { describeReply, describeRequest, formatBlk, fuseTracer, p9Tracer, TraceTally } from '../../src/node/lab/trace.js';
import { FuseServer } from '../../src/devices/fs/server.js';
import { Args, FUSE } from '../support/fuse.js';
import { UsageError } from '../../src/node/options.js';
import { DeferredDisk, pattern, read, S_OK, segments, T_DISCARD, header, write } from '../../src/testing/index.js';
import { TestDriver } from '../../src/testing/index.js';

const MiB = 1 << 20;

describe('VirtioBlk trace hook', () => {
  it('reports type, sector, bytes and status of each request, also when the backend answers later', async () => {
    const seen: string[] = [];
    const trace = (type: number, sector: number, bytes: number) => {
      seen.push(`start ${type} ${sector} ${bytes}`);
      return (status: number) => seen.push(`end ${type} ${status}`);
    };
    const drv = new TestDriver(new VirtioBlk(new MemoryDisk(MiB), { trace })).init();
    const q = drv.queues[0]!;
    expect((await write(q, 8, pattern(4096))).status).toBe(S_OK);
    expect((await read(q, 8, 1024)).status).toBe(S_OK);
    const r = await q.submit({ readable: [header(T_DISCARD), segments([16, 8], [64, 16])], writable: [1] });
    expect(r.used.len).toBe(1);
    expect(seen).toEqual(['start 1 8 4096', 'end 1 0', 'start 0 8 1024', 'end 0 0', 'start 11 16 12288', 'end 11 0']);

    const deferred = new DeferredDisk(MiB);
    const late: string[] = [];
    const drv2 = new TestDriver(new VirtioBlk(deferred, { trace: (t) => (late.push(`start ${t}`), (s) => late.push(`end ${s}`)) })).init();
    const p = read(drv2.queues[0]!, 0, 512);
    await new Promise((r) => setTimeout(r, 0));
    expect(late).toEqual(['start 0']);
    for (const op of deferred.waiting.splice(0)) {
      op.run();
      op.resolve();
    }
    expect((await p).status).toBe(S_OK);
    expect(late).toEqual(['start 0', 'end 0']);
  });
});

function tmsg(type: number, tag: number, body: (e: Encoder) => void): Uint8Array {
  const e = new Encoder(new Uint8Array(8192));
  e.begin(type, tag, 8192);
  body(e);
  return e.buf.slice(0, e.finish());
}

describe('P9Server trace hook and 9P decoding', () => {
  it('hands the hook each request and reply, decoded into one line with its latency', () => {
    const lines: string[] = [];
    const tally = new TraceTally();
    let t = 0;
    const server = new P9Server(new MemFs(), { trace: p9Tracer(() => (t += 0.5), (s) => lines.push(s), tally) });
    const send = (m: Uint8Array) => server.handle(new BytesIn(m), new BytesOut(new Uint8Array(8192)));
    send(tmsg(P9.Tversion, 0xffff, (e) => (e.u32(8192), e.str('9P2000.L'))));
    send(tmsg(P9.Tattach, 1, (e) => (e.u32(1), e.u32(0xffffffff), e.str('root'), e.str(''), e.u32(0))));
    send(tmsg(P9.Twalk, 2, (e) => (e.u32(1), e.u32(2), e.u16(1), e.str('missing'))));
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^9p {2}Tversion tag=65535 size=\d+ msize=8192 "9P2000.L" {2}-> {2}Rversion size=\d+ msize=8192 {2}0.500 ms\n$/);
    expect(lines[1]).toContain('Tattach tag=1');
    expect(lines[1]).toContain('Rattach');
    expect(lines[2]).toContain('Twalk tag=2 size=');
    expect(lines[2]).toContain('fid=1 newfid=2 ["missing"]  ->  Rlerror size=11 ENOENT (2)');
    expect(tally.count).toBe(3);
  });

  it('decodes Twrite headers and Rread counts', () => {
    const w = tmsg(P9.Twrite, 5, (e) => (e.u32(3), e.u64(4096), e.u32(2)));
    expect(describeRequest(w.subarray(0, 23))).toBe(`Twrite tag=5 size=${w.length} fid=3 offset=4096 count=2`);
    const r = tmsg(P9.Rread, 5, (e) => e.u32(700));
    expect(describeReply(r)).toBe(`Rread size=${r.length} count=700`);
    expect(describeReply(new Uint8Array(0))).toBe('(no reply)');
    expect(formatBlk('vda', 0, 2048, 4096, 0, 0.25)).toMatch(/^blk vda READ +sector +2048 +4096 B {2}OK {2}0.250 ms\n$/);
  });
});

describe('FuseServer trace hook and FUSE decoding', () => {
  it('hands the hook each request and reply, decoded into one line with its latency and data bytes', () => {
    const lines: string[] = [];
    const tally = new TraceTally();
    let t = 0;
    const server = new FuseServer(new MemFs({ tree: { f: 'hello' } }), { trace: fuseTracer('vfs', () => (t += 0.25), (s) => lines.push(s), tally) });
    const send = (op: number, nodeid: bigint, body: Uint8Array) => {
      const m = new Uint8Array(40 + body.length);
      const dv = new DataView(m.buffer);
      dv.setUint32(0, m.length, true);
      dv.setUint32(4, op, true);
      dv.setBigUint64(16, nodeid, true);
      m.set(body, 40);
      const out = new BytesOut(new Uint8Array(8192));
      server.handle(new BytesIn(m), out);
      return new DataView(out.buf.buffer);
    };
    send(FUSE.INIT, 0n, new Args().u32(7).u32(41).u32(65536).u32(0).zeros(48).done());
    const node = send(FUSE.LOOKUP, 1n, new Args().str('f').done()).getBigUint64(16, true);
    send(FUSE.LOOKUP, 1n, new Args().str('nope').done());
    const fh = send(FUSE.OPEN, node, new Args().u32(0).u32(0).done()).getBigUint64(16, true);
    send(FUSE.READ, node, new Args().u64(fh).u64(0).u32(100).u32(0).u64(0).u32(0).u32(0).done());
    send(FUSE.FORGET, node, new Args().u64(1).done());
    expect(lines).toHaveLength(6);
    expect(lines[0]).toBe('fuse vfs INIT node=0 len=104  ->  OK len=80  0.250 ms\n');
    expect(lines[1]).toBe('fuse vfs LOOKUP node=1 len=42 "f"  ->  OK len=144  0.250 ms\n');
    expect(lines[2]).toBe('fuse vfs LOOKUP node=1 len=45 "nope"  ->  ENOENT (2)  0.250 ms\n');
    expect(lines[4]).toBe(`fuse vfs READ node=${node} len=80 fh=${fh} offset=0 size=100  ->  OK len=21  0.250 ms\n`);
    expect(lines[5]).toBe(`fuse vfs FORGET node=${node} len=48 nlookup=1  ->  (no reply)  0.250 ms\n`);
    expect(tally.count).toBe(6);
    expect(tally.bytes).toBe(5);
  });
});

describe('sparse images and tar', () => {
  it('packs only non-zero blocks and unpacks into a sparse MemoryDisk with the same bytes', () => {
    const img = new Uint8Array(4 * MiB);
    img.set(pattern(5000, 3), 8192);
    img[4 * MiB - 1] = 9;
    const gz = packSparse(img);
    expect(gz.length).toBeLessThan(8000);
    const disk = unpackSparse(gz);
    const back = new Uint8Array(4 * MiB);
    disk.read(0, back);
    expect(Buffer.compare(back, img)).toBe(0); // (toEqual walks 4 Mi elements one by one: a minute under load)
    expect(disk.allocatedBytes).toBe(2 * 64 * 1024);
    expect(() => unpackSparse(packSparse(new Uint8Array(4096)).subarray(0, 10))).toThrow();
  });

  it('unpacks to a sparse host file with the same bytes as the in-memory disk', () => {
    const img = new Uint8Array(4 * MiB);
    img.set(pattern(5000, 7), 12288);
    img[4 * MiB - 1] = 5;
    const path = join(mkdtempSync(join(tmpdir(), 'storvm-sparse-')), 'disk.img');
    unpackSparseToFile(packSparse(img), path);
    const file = readFileSync(path);
    expect(file.length).toBe(img.length);
    expect(Buffer.compare(file, img)).toBe(0);
    expect(statSync(path).blocks * 512).toBeLessThan(1 * MiB); // holes stay holes
  });

  it('the committed lab ext4 image is a 1 GiB ext4 filesystem', () => {
    const disk = unpackSparse(readFileSync(new URL('../../guest-images/lab-ext4.sparse.gz', import.meta.url)));
    expect(disk.size).toBe(1 << 30);
    const sb = new Uint8Array(2);
    disk.read(1024 + 0x38, sb); // the superblock's s_magic
    expect(sb).toEqual(Uint8Array.of(0x53, 0xef));
  });

  it('tars a directory tree that tar(1) unpacks byte for byte', (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-tar-'));
    mkdirSync(join(dir, 'tree/a/b'), { recursive: true });
    writeFileSync(join(dir, 'tree/top.txt'), 'top\n');
    writeFileSync(join(dir, 'tree/a/b/data.bin'), pattern(1000, 2));
    const t = tarDirectory(join(dir, 'tree'), 'src');
    expect(t.entries).toBe(5);
    expect(t.contentBytes).toBe(1004);
    expect(t.bytes.length % 512).toBe(0);
    writeFileSync(join(dir, 't.tar'), t.bytes);
    try {
      execFileSync('tar', ['-xf', 't.tar'], { cwd: dir });
    } catch {
      ctx.skip(); // no tar(1) on this host
    }
    expect(readFileSync(join(dir, 'src/a/b/data.bin'))).toEqual(Buffer.from(pattern(1000, 2)));
  });
});

describe('storvm bench options and plan', () => {
  it('parses its options and rejects bad ones with a UsageError', () => {
    expect(parseBenchArgs([])).toEqual({ sizeMiB: 16, files: 200 });
    expect(parseBenchArgs(['--trace', 'fuse']).trace).toBe('fuse');
    expect(parseBenchArgs(['--cpu', 'wasm']).cpu).toBe('wasm');
    expect(parseBenchArgs(['--size', '2', '--files', '7', '--json', 'a', '--csv', 'b', '--trace', '9p', '--variants', 'tmpfs,blk-raw'])).toEqual({
      sizeMiB: 2, files: 7, json: 'a', csv: 'b', trace: '9p', variants: ['tmpfs', 'blk-raw'],
    });
    for (const bad of [['--size', '0'], ['--size', '1.5'], ['--size', '257'], ['--files'], ['--trace', 'nvme'], ['--variants', 'floppy'], ['--cpu', 'jit'], ['--cpu'], ['--what'], ['x']]) {
      expect(() => parseBenchArgs(bad), bad.join(' ')).toThrow(UsageError);
    }
  });

  it('runs every workload on every variant it is given', () => {
    const s = guestScript({ sizeMiB: 2, files: 3, ops: 64, tarEntries: 9, markers: { '9p-none': 'A', '9p-loose': 'B', 'blk-ext4': 'C' } });
    for (const v of VARIANTS) expect(s).toContain(`# ${v.id}:`);
    expect(s).toContain('msize=8192,cache=none');
    expect(s).toContain('msize=512000,cache=mmap');
    for (const w of WORKLOADS) expect(s).toContain(` ${w.id} `);
    const only = guestScript({ sizeMiB: 2, files: 3, ops: 64, tarEntries: 9, markers: { '9p-none': 'A', '9p-loose': 'B', 'blk-ext4': 'C' }, variants: ['tmpfs'] });
    expect(only).not.toContain('# blk-raw:');
    expect(s).toContain('mount -t virtiofs vfs-none /mnt/vfs');
    expect(s).toContain('mount -t virtiofs vfs-always /mnt/vfs');
  });

  it('runs the variants it is given in that order (bench/virtiofs.ts rotates them)', () => {
    const s = guestScript({ sizeMiB: 1, files: 1, ops: 64, tarEntries: 1, markers: {}, variants: ['vfs-auto', 'tmpfs', '9p-512k-none'] });
    const at = (id: string) => s.indexOf(`# ${id}:`);
    expect(at('vfs-auto')).toBeGreaterThan(0);
    expect(at('vfs-auto')).toBeLessThan(at('tmpfs'));
    expect(at('tmpfs')).toBeLessThan(at('9p-512k-none'));
    expect(s).not.toContain('# blk-raw:');
    const twice = guestScript({ sizeMiB: 1, files: 1, ops: 64, tarEntries: 1, markers: {}, variants: ['tmpfs', 'tmpfs'] });
    expect(twice.split('# tmpfs:').length).toBe(2); // a repeated name runs once, as setup counts it
  });

  it('says why virtio-fs does not apply where it cannot run (QEMU without virtiofsd)', () => {
    const s = guestScript({ sizeMiB: 1, files: 1, ops: 64, tarEntries: 1, markers: { '9p-none': 'A', '9p-loose': 'B', 'blk-ext4': 'C' }, noVirtiofs: 'no virtiofsd here' });
    expect(s).not.toContain('mount -t virtiofs');
    expect(s).toContain('say na vfs-auto $w "no virtiofsd here"');
  });
});
