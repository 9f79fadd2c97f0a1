/**
 * Helpers for virtio-blk tests and benchmarks: request headers, one-call requests through the
 * driver harness, and backends that answer late or fail on demand.
 */
import { type BlockBackend, BlockIoError, MemoryDisk } from '../index.js';
import type { DriverRing } from './driver.js';

export const T_IN = 0;
export const T_OUT = 1;
export const T_FLUSH = 4;
export const T_GET_ID = 8;
export const T_DISCARD = 11;
export const T_WRITE_ZEROES = 13;
export const S_OK = 0;
export const S_IOERR = 1;
export const S_UNSUPP = 2;

/** struct virtio_blk_req header: le32 type, le32 reserved, le64 sector. */
export function header(type: number, sector: number | bigint = 0): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint32(0, type, true);
  v.setBigUint64(8, BigInt(sector), true);
  return b;
}

/** struct virtio_blk_discard_write_zeroes segments. */
export function segments(...segs: Array<[sector: number | bigint, num: number, flags?: number]>): Uint8Array {
  const b = new Uint8Array(16 * segs.length);
  const v = new DataView(b.buffer);
  segs.forEach(([sector, num, flags], i) => {
    v.setBigUint64(16 * i, BigInt(sector), true);
    v.setUint32(16 * i + 8, num, true);
    v.setUint32(16 * i + 12, flags ?? 0, true);
  });
  return b;
}

export interface BlkResult {
  /** The status byte, or undefined when the device gave the chain back with length 0. */
  status: number | undefined;
  usedLen: number;
  /** The bytes before the status byte in the writable part. */
  data: Uint8Array;
}

/** Submits a request and returns its status and data. */
export async function request(
  q: DriverRing,
  readable: Uint8Array[],
  writable: number[],
  indirect = false,
): Promise<BlkResult> {
  const { sub, used } = await q.submit({ readable, writable, indirect });
  const all = q.readWritable(sub);
  if (used.len === 0) return { status: undefined, usedLen: 0, data: new Uint8Array(0) };
  return { status: all[all.length - 1], usedLen: used.len, data: all.subarray(0, all.length - 1) };
}

export function read(q: DriverRing, sector: number | bigint, len: number): Promise<BlkResult> {
  return request(q, [header(T_IN, sector)], [len, 1]);
}

export function write(q: DriverRing, sector: number | bigint, data: Uint8Array): Promise<BlkResult> {
  return request(q, [header(T_OUT, sector), data], [1]);
}

export function flush(q: DriverRing): Promise<BlkResult> {
  return request(q, [header(T_FLUSH)], [1]);
}

/** Bytes with a recognisable pattern derived from `seed`. */
export function pattern(len: number, seed = 1): Uint8Array {
  const b = new Uint8Array(len);
  let x = seed * 2654435761;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

type Op = { kind: 'read' | 'write' | 'flush' | 'discard' | 'zero'; run: () => void; resolve: () => void; reject: (e: unknown) => void };

/**
 * A backend over a MemoryDisk whose every operation returns a Promise that the test settles with
 * `release(order)`, so completion order is the test's choice.
 */
export class DeferredDisk implements BlockBackend {
  readonly inner: MemoryDisk;
  readonly waiting: Op[] = [];
  flushes = 0;
  constructor(sizeOrDisk: number | MemoryDisk) {
    this.inner = typeof sizeOrDisk === 'number' ? new MemoryDisk(sizeOrDisk) : sizeOrDisk;
  }
  get size(): number {
    return this.inner.size;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  private defer(kind: Op['kind'], run: () => void): Promise<void> {
    return new Promise((resolve, reject) => this.waiting.push({ kind, run, resolve, reject }));
  }
  read(offset: number, dst: Uint8Array): Promise<void> {
    return this.defer('read', () => this.inner.read(offset, dst));
  }
  write(offset: number, src: Uint8Array): Promise<void> {
    const copy = src.slice();
    return this.defer('write', () => this.inner.write(offset, copy));
  }
  flush(): Promise<void> {
    return this.defer('flush', () => this.flushes++);
  }
  discard(offset: number, length: number): Promise<void> {
    return this.defer('discard', () => this.inner.discard(offset, length));
  }
  writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    return this.defer('zero', () => this.inner.writeZeroes(offset, length, unmap));
  }
  /** Runs and resolves waiting operations by index into `waiting` (default all, FIFO). */
  release(order?: number[]): void {
    const pick = order ?? this.waiting.map((_, i) => i);
    const chosen = pick.map((i) => this.waiting[i]!);
    for (const op of chosen) this.waiting.splice(this.waiting.indexOf(op), 1);
    for (const op of chosen) {
      op.run();
      op.resolve();
    }
  }
  /** Rejects waiting operation `i` with an I/O error. */
  fail(i: number): void {
    const op = this.waiting.splice(i, 1)[0]!;
    op.reject(new BlockIoError('simulated I/O error'));
  }
}

/** A MemoryDisk-backed backend that fails chosen operations, synchronously or asynchronously. */
export class FaultyDisk implements BlockBackend {
  readonly inner: MemoryDisk;
  failRead = false;
  failWrite = false;
  failFlush = false;
  async = false;
  /** Sector range [from, to) whose accesses fail when failRead / failWrite are set. */
  badFrom = 0;
  badTo = Infinity;
  flushes = 0;
  writes = 0;
  /** Log of operations in order, for ordering checks. */
  readonly log: string[] = [];
  constructor(size: number, readOnly = false) {
    this.inner = new MemoryDisk(size, { readOnly });
  }
  get size(): number {
    return this.inner.size;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  private bad(offset: number, len: number): boolean {
    return offset / 512 < this.badTo && (offset + len) / 512 > this.badFrom;
  }
  private answer(fail: boolean, run: () => void): void | Promise<void> {
    if (!this.async) {
      if (fail) throw new BlockIoError('simulated I/O error');
      run();
      return;
    }
    return Promise.resolve().then(() => {
      if (fail) throw new BlockIoError('simulated I/O error');
      run();
    });
  }
  read(offset: number, dst: Uint8Array): void | Promise<void> {
    this.log.push('read');
    return this.answer(this.failRead && this.bad(offset, dst.length), () => this.inner.read(offset, dst));
  }
  write(offset: number, src: Uint8Array): void | Promise<void> {
    this.log.push('write');
    return this.answer(this.failWrite && this.bad(offset, src.length), () => {
      this.writes++;
      this.inner.write(offset, src);
    });
  }
  flush(): void | Promise<void> {
    this.log.push('flush');
    return this.answer(this.failFlush, () => this.flushes++);
  }
  discard(offset: number, length: number): void | Promise<void> {
    this.log.push('discard');
    return this.answer(this.failWrite, () => this.inner.discard(offset, length));
  }
}

/**
 * Byte-array equality for large arrays (vitest's deep equality is slow on megabytes): returns a
 * description of the first difference, or 'equal'.
 */
export function diffBytes(got: Uint8Array, want: Uint8Array): string {
  if (got.length !== want.length) return `length ${got.length} != ${want.length}`;
  for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) return `byte ${i}: ${got[i]} != ${want[i]}`;
  return 'equal';
}

/**
 * A typed virtio-blk client on a driver queue (split or packed): each method builds the request
 * chain (header, data, status) the way Linux's virtio_blk does, submits it and waits for the
 * answer. `status` is undefined when the device gave the chain back with length 0.
 */
export class BlkClient {
  constructor(
    readonly q: DriverRing,
    /** Put every request in an indirect table. */
    readonly indirect = false,
  ) {}

  /** VIRTIO_BLK_T_IN: `len` bytes from `sector`. */
  read(sector: number | bigint, len: number): Promise<BlkResult> {
    return request(this.q, [header(T_IN, sector)], [len, 1], this.indirect);
  }
  /** VIRTIO_BLK_T_OUT. */
  write(sector: number | bigint, data: Uint8Array): Promise<BlkResult> {
    return request(this.q, [header(T_OUT, sector), data], [1], this.indirect);
  }
  /** VIRTIO_BLK_T_FLUSH. */
  flush(): Promise<BlkResult> {
    return request(this.q, [header(T_FLUSH)], [1], this.indirect);
  }
  /** VIRTIO_BLK_T_DISCARD of [sector, count] ranges. */
  discard(...ranges: Array<[sector: number | bigint, count: number]>): Promise<BlkResult> {
    return request(this.q, [header(T_DISCARD), segments(...ranges)], [1], this.indirect);
  }
  /** VIRTIO_BLK_T_WRITE_ZEROES of [sector, count, flags] ranges (flags 1 = may unmap). */
  writeZeroes(...ranges: Array<[sector: number | bigint, count: number, flags?: number]>): Promise<BlkResult> {
    return request(this.q, [header(T_WRITE_ZEROES), segments(...ranges)], [1], this.indirect);
  }
  /** VIRTIO_BLK_T_GET_ID: the serial, NULs stripped. */
  async getId(): Promise<string> {
    const r = await request(this.q, [header(T_GET_ID)], [20, 1], this.indirect);
    if (r.status !== S_OK) throw new Error(`GET_ID failed with status ${String(r.status)}`);
    let s = '';
    for (const b of r.data) if (b !== 0) s += String.fromCharCode(b);
    return s;
  }
}
