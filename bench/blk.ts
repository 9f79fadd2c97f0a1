/**
 * bench/blk.ts — virtio-blk reads through the driver harness, device level.
 *
 * MemoryDisk: 4 KiB random reads (IOPS) and 1 MiB sequential reads (MB/s), at queue depth 1 and
 * 32. Each round the driver rewrites the sector field of QD prebuilt IN requests (header, one data
 * buffer, status), publishes them, kicks, and checks every status byte. In the same run the same
 * bytes are copied with Uint8Array.prototype.set from a plain buffer (the memcpy ceiling).
 * FileDisk: the same reads of a host file through the device, against plain positional
 * FileHandle reads of the same file at the same depth (the ratio is what matters).
 * Device and baseline runs alternate (5 each) so drift on a busy machine hits both; figures are
 * medians.
 *
 *   npx tsx bench/blk.ts [--seconds S] [--file-mib N]
 */
import { type FileHandle, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlockBackend } from '../src/backends/block/backend.js';
import { MemoryDisk } from '../src/backends/block/memory-disk.js';
import { VirtioBlk } from '../src/devices/blk/device.js';
import { FlatRam } from '../src/memory/flat-ram.js';
import { DESC_F_NEXT, DESC_F_WRITE } from '../src/virtio/constants.js';
import { FileDisk } from '../src/node/file-disk.js';
import { RAM_BASE, TestDriver } from '../src/testing/index.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const SECONDS = arg('--seconds', 0.5);
const FILE_MIB = arg('--file-mib', 256);
const DISK_MIB = 256;
const RUNS = 5;

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

/** Random 4 KiB-aligned offsets, or sequential ones, for `n` requests of `len` bytes over `size`. */
function offsets(kind: 'random' | 'seq', len: number, size: number, n = 1 << 16): Float64Array {
  const out = new Float64Array(n);
  const slots = Math.floor(size / len);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (kind === 'random' ? x % slots : i % slots) * len;
  }
  return out;
}

type Round = () => void | Promise<void>;

/** Rounds per second of `round` over one run of SECONDS. */
async function oneRun(round: Round): Promise<number> {
  let rounds = 0;
  const t0 = process.hrtime.bigint();
  const deadline = t0 + BigInt(Math.round(SECONDS * 1e9));
  let now = t0;
  while (now < deadline) {
    for (let i = 0; i < 10; i++) await round();
    rounds += 10;
    now = process.hrtime.bigint();
  }
  return rounds / (Number(now - t0) / 1e9);
}

/**
 * Warms both rounds up, then times them in alternation, RUNS times each, so drift on a busy
 * machine hits both alike. Returns the rounds per second of each run.
 */
async function timedPair(a: Round, b: Round): Promise<[number[], number[]]> {
  for (let i = 0; i < 200; i++) {
    await a();
    await b();
  }
  const ra: number[] = [];
  const rb: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    ra.push(await oneRun(a));
    rb.push(await oneRun(b));
  }
  return [ra, rb];
}

/** One round of QD reads of `len` bytes through VirtioBlk over `backend`. */
function deviceReads(backend: BlockBackend, len: number, qd: number, kind: 'random' | 'seq', sync: boolean): Round {
  const ramSize = Math.max(16 << 20, qd * (len + 64) + (1 << 20));
  const mem = new FlatRam(RAM_BASE, ramSize);
  const drv = new TestDriver(new VirtioBlk(backend), mem).init();
  const q = drv.queues[0]!;
  const a = drv.allocator;
  const heads: number[] = [];
  const hdrs: number[] = [];
  const statuses: number[] = [];
  for (let c = 0; c < qd; c++) {
    const hdr = a.alloc(16, 16);
    const data = a.alloc(len, 4096);
    const st = a.alloc(1, 1);
    mem.writeU32(hdr, 0); // VIRTIO_BLK_T_IN
    q.writeDesc(3 * c, { addr: hdr, len: 16, flags: DESC_F_NEXT, next: 3 * c + 1 });
    q.writeDesc(3 * c + 1, { addr: data, len, flags: DESC_F_WRITE | DESC_F_NEXT, next: 3 * c + 2 });
    q.writeDesc(3 * c + 2, { addr: st, len: 1, flags: DESC_F_WRITE, next: 0 });
    heads.push(3 * c);
    hdrs.push(hdr);
    statuses.push(st);
  }
  const offs = offsets(kind, len, backend.size);
  let next = 0;
  let availIdx = 0;
  let usedSeen = 0;
  const size = q.size;
  const publish = (): void => {
    for (let i = 0; i < qd; i++) {
      const sector = offs[next++ & (offs.length - 1)]! / 512;
      mem.writeU32(hdrs[i]! + 8, sector % 2 ** 32);
      mem.writeU32(hdrs[i]! + 12, Math.floor(sector / 2 ** 32));
      mem.writeU8(statuses[i]!, 0xff);
      mem.writeU16(q.avail + 4 + 2 * ((availIdx + i) & (size - 1)), heads[i]!);
    }
    availIdx = (availIdx + qd) & 0xffff;
    mem.writeU16(q.avail + 2, availIdx);
    q.setUsedEvent(availIdx - 1);
    q.kick();
  };
  const check = (): void => {
    const used = mem.readU16(q.used + 2);
    if (((used - usedSeen) & 0xffff) !== qd) throw new Error('device did not complete the batch');
    usedSeen = used;
    for (let i = 0; i < qd; i++) if (mem.readU8(statuses[i]!) !== 0) throw new Error('request failed');
    drv.ackInterrupt();
  };
  return sync
    ? () => {
        publish();
        check();
      }
    : async () => {
        publish();
        await drv.transport.idle();
        check();
      };
}

/** One round of QD copies of `len` bytes with Uint8Array.prototype.set. */
function memcpy(src: Uint8Array, len: number, qd: number, kind: 'random' | 'seq'): Round {
  const dsts = Array.from({ length: qd }, () => new Uint8Array(len));
  const offs = offsets(kind, len, src.length);
  let next = 0;
  return () => {
    for (let i = 0; i < qd; i++) {
      const o = offs[next++ & (offs.length - 1)]!;
      dsts[i]!.set(src.subarray(o, o + len));
    }
  };
}

/** One round of QD concurrent positional reads of `len` bytes on an open FileHandle. */
function plainFileReads(fh: FileHandle, size: number, len: number, qd: number, kind: 'random' | 'seq'): Round {
  const bufs = Array.from({ length: qd }, () => new Uint8Array(len));
  const offs = offsets(kind, len, size);
  let next = 0;
  return async () => {
    await Promise.all(bufs.map((b) => fh.read(b, 0, len, offs[next++ & (offs.length - 1)]!)));
  };
}

const cases: Array<{ name: string; len: number; qd: number; kind: 'random' | 'seq' }> = [
  { name: '4 KiB random reads, QD1', len: 4096, qd: 1, kind: 'random' },
  { name: '4 KiB random reads, QD32', len: 4096, qd: 32, kind: 'random' },
  { name: '1 MiB sequential reads, QD1', len: 1 << 20, qd: 1, kind: 'seq' },
  { name: '1 MiB sequential reads, QD32', len: 1 << 20, qd: 32, kind: 'seq' },
];

function fmt(len: number, qd: number, rounds: number): string {
  const ops = rounds * qd;
  return len === 4096 ? `${(ops / 1000).toFixed(0).padStart(6)} K IOPS` : `${((ops * len) / 1e6).toFixed(0).padStart(6)} MB/s `;
}

console.log(`storvm blk bench — node ${process.version}, ${SECONDS}s per run, median of ${RUNS}, ${new Date().toISOString().slice(0, 10)}`);

// MemoryDisk, fully written so every read copies real chunks.
const disk = new MemoryDisk(DISK_MIB << 20);
const fillBuf = new Uint8Array(1 << 20);
for (let i = 0; i < fillBuf.length; i++) fillBuf[i] = (i * 7) & 0xff;
for (let at = 0; at < disk.size; at += fillBuf.length) disk.write(at, fillBuf);
const flat = new Uint8Array(DISK_MIB << 20);
for (let at = 0; at < flat.length; at += fillBuf.length) flat.set(fillBuf, at);

console.log('\nMemoryDisk through VirtioBlk vs Uint8Array.prototype.set (memcpy ceiling)');
for (const c of cases) {
  const [devRuns, cpyRuns] = await timedPair(deviceReads(disk, c.len, c.qd, c.kind, true), memcpy(flat, c.len, c.qd, c.kind));
  const dev = median(devRuns);
  const cpy = median(cpyRuns);
  console.log(`${c.name.padEnd(30)} device ${fmt(c.len, c.qd, dev)}   memcpy ${fmt(c.len, c.qd, cpy)}   device/memcpy ${((100 * dev) / cpy).toFixed(0)}%`);
}

// FileDisk over a host file of FILE_MIB MiB (in the page cache after the first pass).
const path = join(tmpdir(), `storvm-bench-${process.pid}.img`);
{
  const fh = await open(path, 'w');
  for (let at = 0; at < FILE_MIB << 20; at += fillBuf.length) await fh.write(fillBuf, 0, fillBuf.length, at);
  await fh.close();
}
try {
  console.log(`\nFileDisk (${FILE_MIB} MiB file, page cache) through VirtioBlk vs plain positional FileHandle reads`);
  const fd = await FileDisk.open(path, { readOnly: true });
  const fh = await open(path, 'r');
  for (const c of cases) {
    const [devRuns, plainRuns] = await timedPair(
      deviceReads(fd, c.len, c.qd, c.kind, false),
      plainFileReads(fh, FILE_MIB << 20, c.len, c.qd, c.kind),
    );
    const dev = median(devRuns);
    const plain = median(plainRuns);
    console.log(`${c.name.padEnd(30)} device ${fmt(c.len, c.qd, dev)}   plain ${fmt(c.len, c.qd, plain)}   device/plain ${((100 * dev) / plain).toFixed(0)}%`);
  }
  await fd.close();
  await fh.close();
} finally {
  await rm(path, { force: true });
}
