/**
 * The virtio-blk device (VIRTIO 1.2, 5.2, device ID 2): requests parsed by `request.ts` run here
 * on a {@link BlockBackend}. The backend may answer at once or with a Promise; the shared
 * QueueDevice loop lets asynchronous requests complete in any order.
 *
 * Guest mistakes become a status byte (IOERR / UNSUPP) or, for chains that are not requests at
 * all, a used length of 0; nothing the guest sends makes this code throw or allocate more than a
 * fixed amount of host memory.
 */
import { type BlockBackend, BlockError, isPromise } from '../../backends/block/backend.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { DescriptorChain } from '../../virtio/chain.js';
import { bit, DEVICE_ID_BLOCK } from '../../virtio/constants.js';
import { COMMON_FEATURES, type DeviceContext, type DeviceSnapshot, DeviceStateMismatch, PACKED_FEATURES, QueueDevice } from '../../virtio/device.js';
import { diskIdentity } from '../../backends/block/identity.js';
import {
  BLK_CFG,
  BLK_CFG_SIZE,
  BLK_F_BLK_SIZE,
  BLK_F_CONFIG_WCE,
  BLK_F_DISCARD,
  BLK_F_FLUSH,
  BLK_F_MQ,
  BLK_F_RO,
  BLK_F_SEG_MAX,
  BLK_F_SIZE_MAX,
  BLK_F_TOPOLOGY,
  BLK_F_WRITE_ZEROES,
  BLK_ID_BYTES,
  BLK_S_IOERR,
  BLK_S_OK,
  BLK_S_UNSUPP,
  BLK_T_DISCARD,
  BLK_T_FLUSH,
  BLK_T_GET_ID,
  BLK_T_IN,
  BLK_T_OUT,
  BLK_T_WRITE_ZEROES,
  BLK_WRITE_ZEROES_FLAG_UNMAP,
  DWZ_SEGMENT_SIZE,
  SECTOR_SIZE,
} from './constants.js';
import { type BlkRequest, type DwzSegment, parseRequest, readSegment } from './request.js';

export interface VirtioBlkOptions {
  /** Expose the disk read-only (VIRTIO_BLK_F_RO). Forced on when the backend is read-only. */
  readOnly?: boolean;
  /** The GET_ID answer: up to 20 ASCII characters, NUL-padded. Default "storvm". */
  serial?: string;
  /** Number of request queues (VIRTIO_BLK_F_MQ), 1 to 64; default 1. */
  numQueues?: number;
  /**
   * Called as each well-formed request starts, with its type (VIRTIO_BLK_T_*), first sector and
   * data bytes; the function it returns gets the status byte when the request completes. For
   * tracing tools; an untraced device pays one check per request.
   */
  trace?: BlkTraceHook;
  /** Offer packed virtqueues (VIRTIO_F_RING_PACKED); default true. Linux uses them when offered. */
  packed?: boolean;
}

/** See {@link VirtioBlkOptions.trace}. */
export type BlkTraceHook = (type: number, sector: number, bytes: number) => (status: number) => void;

/** Entries per request queue (QueueNumMax). */
export const BLK_QUEUE_SIZE = 256;
/** Largest single data buffer the device advertises (size_max); larger ones are served too. */
export const BLK_SIZE_MAX = 1 << 20;
/** Segments per DISCARD / WRITE_ZEROES request (max_discard_seg, max_write_zeroes_seg). */
export const BLK_MAX_DWZ_SEGMENTS = 16;
/** Sectors per DISCARD / WRITE_ZEROES segment (max_discard_sectors, max_write_zeroes_sectors): 2 GiB. */
export const BLK_MAX_DWZ_SECTORS = 0x40_0000;
/** Discard granularity in sectors (discard_sector_alignment): 4 KiB. */
export const BLK_DISCARD_ALIGNMENT = 8;

/** Zeros written when a backend has no writeZeroes of its own; never modified. */
const ZEROS = new Uint8Array(64 * 1024);

/** A virtio block device over a {@link BlockBackend}. */
export class VirtioBlk extends QueueDevice {
  readonly deviceId = DEVICE_ID_BLOCK;
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[];
  /** Capacity in 512-byte sectors. */
  readonly capacity: number;
  readonly readOnly: boolean;

  private readonly config = new Uint8Array(BLK_CFG_SIZE);
  private readonly id = new Uint8Array(BLK_ID_BYTES);
  private readonly scratch = new Uint8Array(16);
  private readonly seg: DwzSegment = { sector: 0, numSectors: 0, flags: 0 };
  /** Features the driver accepted at FEATURES_OK; 0 before that. */
  private negotiated = 0n;
  /** The low 32 bits of `negotiated`, where every block feature lives (no bigint on the hot path). */
  private negotiatedLo = 0;
  /** The writeback field as the driver left it (VIRTIO 1.2, 5.2.4): 1 write-back, 0 write-through. */
  private wce = 1;
  /** A flush failed: every later flush fails until reset (hostile-guest.md, 46). */
  private flushFailed = false;
  /** Bumped on reset, so late completions leave guest memory alone. */
  private generation = 0;
  private readonly trace: BlkTraceHook | undefined;

  constructor(
    readonly backend: BlockBackend,
    opts: VirtioBlkOptions = {},
  ) {
    super();
    const numQueues = opts.numQueues ?? 1;
    if (!Number.isInteger(numQueues) || numQueues < 1 || numQueues > 64) {
      throw new BlockError(`VirtioBlk numQueues must be an integer from 1 to 64, got ${numQueues}`);
    }
    this.trace = opts.trace;
    const serial = opts.serial ?? 'storvm';
    if (serial.length > BLK_ID_BYTES || !/^[\x20-\x7e]*$/.test(serial)) {
      throw new BlockError(`VirtioBlk serial must be at most ${BLK_ID_BYTES} printable ASCII characters: ${JSON.stringify(serial)}`);
    }
    for (let i = 0; i < serial.length; i++) this.id[i] = serial.charCodeAt(i);

    this.readOnly = (opts.readOnly ?? false) || backend.readOnly;
    this.capacity = Math.floor(backend.size / SECTOR_SIZE);
    this.queueMaxSizes = Array.from({ length: numQueues }, () => BLK_QUEUE_SIZE);

    let f =
      COMMON_FEATURES |
      bit(BLK_F_SIZE_MAX) |
      bit(BLK_F_SEG_MAX) |
      bit(BLK_F_BLK_SIZE) |
      bit(BLK_F_FLUSH) |
      bit(BLK_F_CONFIG_WCE) |
      bit(BLK_F_TOPOLOGY) |
      bit(BLK_F_MQ) |
      bit(BLK_F_WRITE_ZEROES);
    if (opts.packed ?? true) f |= PACKED_FEATURES;
    if (this.readOnly) f |= bit(BLK_F_RO);
    if (backend.discard !== undefined) f |= bit(BLK_F_DISCARD);
    this.features = f;

    const c = new DataView(this.config.buffer);
    c.setUint32(BLK_CFG.capacity, this.capacity % 2 ** 32, true);
    c.setUint32(BLK_CFG.capacity + 4, Math.floor(this.capacity / 2 ** 32), true);
    c.setUint32(BLK_CFG.sizeMax, BLK_SIZE_MAX, true);
    // Two descriptors of a request are header and status (Linux reserves them the same way).
    c.setUint32(BLK_CFG.segMax, BLK_QUEUE_SIZE - 2, true);
    c.setUint32(BLK_CFG.blkSize, SECTOR_SIZE, true);
    c.setUint8(BLK_CFG.physicalBlockExp, 3); // 4 KiB physical blocks
    c.setUint16(BLK_CFG.minIoSize, 1, true);
    c.setUint16(BLK_CFG.numQueues, numQueues, true);
    c.setUint32(BLK_CFG.maxDiscardSectors, BLK_MAX_DWZ_SECTORS, true);
    c.setUint32(BLK_CFG.maxDiscardSeg, BLK_MAX_DWZ_SEGMENTS, true);
    c.setUint32(BLK_CFG.discardSectorAlignment, BLK_DISCARD_ALIGNMENT, true);
    c.setUint32(BLK_CFG.maxWriteZeroesSectors, BLK_MAX_DWZ_SECTORS, true);
    c.setUint32(BLK_CFG.maxWriteZeroesSeg, BLK_MAX_DWZ_SEGMENTS, true);
    c.setUint8(BLK_CFG.writeZeroesMayUnmap, 1);
  }

  /**
   * Snapshot state: the writeback field and flush failure, and the disk by identity — its size
   * and content hash, or for a copy-on-write layer its base's hash and the layer's bytes.
   */
  async saveState(): Promise<DeviceSnapshot> {
    const layered = this.backend.snapshotLayer?.();
    const disk = layered?.base ?? this.backend;
    const hash = await diskIdentity(disk);
    return {
      state: { capacity: this.capacity, readOnly: this.readOnly, wce: this.wce, flushFailed: this.flushFailed, disk: { size: disk.size, hash, layer: layered !== undefined } },
      blobs: layered ? [layered.layer] : [],
    };
  }

  async loadState(snap: DeviceSnapshot): Promise<void> {
    const s = snap.state as { capacity?: unknown; readOnly?: unknown; wce?: unknown; flushFailed?: unknown; disk?: { size?: unknown; hash?: unknown; layer?: unknown } };
    if (typeof s !== 'object' || s === null || typeof s.disk !== 'object' || s.disk === null) throw new Error('virtio-blk: malformed state');
    if (s.capacity !== this.capacity) throw new DeviceStateMismatch(`disk of ${Number(s.capacity) * SECTOR_SIZE} bytes in the snapshot, ${this.capacity * SECTOR_SIZE} given`);
    if (s.readOnly !== this.readOnly) throw new DeviceStateMismatch(`disk was ${s.readOnly ? 'read-only' : 'writable'} in the snapshot, ${this.readOnly ? 'read-only' : 'writable'} now`);
    const layered = this.backend.snapshotLayer?.();
    if (s.disk.layer === true && layered === undefined) throw new DeviceStateMismatch('the snapshot carries copy-on-write changes for this disk, but the disk given is written in place');
    if (s.disk.layer !== true && layered !== undefined) throw new DeviceStateMismatch('the disk was written in place when saved, but is a copy-on-write layer now');
    const disk = layered?.base ?? this.backend;
    if (s.disk.size !== disk.size) throw new DeviceStateMismatch(`disk image of ${String(s.disk.size)} bytes in the snapshot, ${disk.size} given`);
    const hash = await diskIdentity(disk);
    if (s.disk.hash !== hash) throw new DeviceStateMismatch('the disk image differs from the one the snapshot was taken with (content hash)');
    if (layered !== undefined) {
      const blob = snap.blobs?.[0];
      if (blob === undefined) throw new Error('virtio-blk: the copy-on-write layer is missing');
      this.backend.restoreLayer!(blob);
    }
    if (s.wce === 0 || s.wce === 1) this.wce = s.wce;
    this.flushFailed = s.flushFailed === true;
  }

  /** Whether the device caches writes until FLUSH: only with FLUSH negotiated and writeback=1. */
  get writeback(): boolean {
    return this.has(BLK_F_FLUSH) && this.wce !== 0;
  }

  readConfig(offset: number, size: number): number {
    if (!Number.isInteger(offset) || offset < 0 || offset + size > BLK_CFG_SIZE) return 0;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const at = offset + i;
      v = v * 256 + (at === BLK_CFG.writeback ? this.writebackField() : this.config[at]!);
    }
    return v;
  }

  /** Only writeback is writable, and only with CONFIG_WCE negotiated (VIRTIO 1.2, 5.2.4 and 5.2.5). */
  override writeConfig(offset: number, size: number, value: number): void {
    if (offset !== BLK_CFG.writeback || size !== 1 || !this.has(BLK_F_CONFIG_WCE)) return;
    if (value === 0 || value === 1) this.wce = value;
  }

  acceptFeatures(features: bigint): boolean {
    this.setNegotiated(features);
    return true;
  }

  override activate(ctx: DeviceContext): void {
    this.setNegotiated(ctx.features);
    super.activate(ctx);
  }

  private setNegotiated(features: bigint): void {
    this.negotiated = features;
    this.negotiatedLo = Number(features & 0xffff_ffffn);
  }

  protected override onReset(): void {
    this.setNegotiated(0n);
    this.wce = 1;
    this.flushFailed = false;
    this.generation++;
  }

  /**
   * Before FEATURES_OK the field shows the default (write-back); without FLUSH negotiated the
   * device is write-through and says so, as Linux assumes (VIRTIO 1.2, 5.2.5; virtblk_get_cache_mode).
   */
  private writebackField(): number {
    if (this.negotiated === 0n) return this.wce;
    return this.writeback ? 1 : 0;
  }

  /** Whether block feature `feature` (a bit number below 32) was negotiated. */
  private has(feature: number): boolean {
    return ((this.negotiatedLo >>> feature) & 1) !== 0;
  }

  protected handle(queue: number, chain: DescriptorChain, mem: GuestMemory): number | Promise<number> {
    const req = parseRequest(chain, mem, this.scratch, BLK_MAX_DWZ_SEGMENTS);
    if (req === null) return 0;
    if (this.trace !== undefined) return this.traced(this.trace, req, mem, queue, chain);
    return this.run(req, mem, queue, chain);
  }

  /** {@link run} with the trace hook told of the start and the status. */
  private traced(trace: BlkTraceHook, req: BlkRequest, mem: GuestMemory, queue: number, chain: DescriptorChain): number | Promise<number> {
    let sector = req.sector;
    let bytes = req.dataLen;
    if (req.segments !== undefined && req.segments.length >= DWZ_SEGMENT_SIZE) {
      // DISCARD / WRITE_ZEROES: where the first segment starts, and the bytes of all of them.
      const seg: DwzSegment = { sector: 0, numSectors: 0, flags: 0 };
      bytes = 0;
      for (let i = 0; i < Math.floor(req.segments.length / DWZ_SEGMENT_SIZE); i++) {
        readSegment(req.segments, i, seg);
        if (i === 0) sector = seg.sector;
        bytes += seg.numSectors * SECTOR_SIZE;
      }
    }
    const end = trace(req.type, sector, bytes);
    const statusAddr = req.statusAddr;
    const r = this.run(req, mem, queue, chain);
    const report = (n: number): number => {
      end(n === 0 ? BLK_S_IOERR : mem.readU8(statusAddr));
      return n;
    };
    return typeof r === 'number' ? report(r) : r.then(report);
  }

  private run(req: BlkRequest, mem: GuestMemory, queue: number, chain: DescriptorChain): number | Promise<number> {
    let status: number | Promise<number>;
    try {
      status = this.execute(req);
    } catch {
      status = BLK_S_IOERR;
    }
    if (typeof status === 'number') return this.finish(req, status, mem);
    // Finished late: the status byte is written only while the request's ring still stands (not
    // after a device reset, nor after its queue alone was disabled on the host-call transport).
    const live = this.liveness(queue, chain);
    return status.then(
      (s) => (live() ? this.finish(req, s, mem) : 0),
      () => (live() ? this.finish(req, BLK_S_IOERR, mem) : 0),
    );
  }

  /** Writes what is left of the reply and the status byte; returns the used length. */
  private finish(req: BlkRequest, status: number, mem: GuestMemory): number {
    // Everything the used length covers gets written: data an IN failed to fill reads as zeros.
    if (status !== BLK_S_OK && req.type === BLK_T_IN) for (const v of req.data) v.fill(0);
    for (const v of req.padding) v.fill(0);
    mem.writeU8(req.statusAddr, status);
    return req.usedLen;
  }

  /** Runs one request; returns its status now or later. Backend throws become IOERR. */
  private execute(req: BlkRequest): number | Promise<number> {
    switch (req.type) {
      case BLK_T_IN:
        return this.readWrite(req, false);
      case BLK_T_OUT:
        if (this.readOnly) return BLK_S_IOERR;
        return this.readWrite(req, true);
      case BLK_T_FLUSH:
        if (!this.has(BLK_F_FLUSH)) return BLK_S_UNSUPP;
        return this.flush();
      case BLK_T_GET_ID:
        this.writeId(req);
        return BLK_S_OK;
      case BLK_T_DISCARD:
      case BLK_T_WRITE_ZEROES:
        return this.discardOrZero(req);
      default:
        return BLK_S_UNSUPP;
    }
  }

  /** True when `bytes` starting at `sector` lie inside the disk (ending exactly at its end is fine). */
  private inRange(sector: number, bytes: number): boolean {
    return sector >= 0 && sector * SECTOR_SIZE + bytes <= this.capacity * SECTOR_SIZE;
  }

  private readWrite(req: BlkRequest, write: boolean): number | Promise<number> {
    if (req.dataLen % SECTOR_SIZE !== 0 || !this.inRange(req.sector, req.dataLen)) return BLK_S_IOERR;
    const backend = this.backend;
    let offset = req.sector * SECTOR_SIZE;
    let pending: Promise<void>[] | undefined;
    let failed = false;
    for (const v of req.data) {
      try {
        const r = write ? backend.write(offset, v) : backend.read(offset, v);
        if (isPromise(r)) (pending ??= []).push(r);
      } catch {
        failed = true;
        break;
      }
      offset += v.length;
    }
    if (pending === undefined) {
      if (failed) return BLK_S_IOERR;
      return write ? this.afterWrite() : BLK_S_OK;
    }
    // Wait for every piece, even after a failure, so no backend still writes into the buffers
    // once the guest has them back.
    const gen = this.generation;
    return settle(pending).then((ok) => {
      // After a reset the request is dropped: start no more backend work for it.
      if (failed || !ok || gen !== this.generation) return BLK_S_IOERR;
      return write ? this.afterWrite() : BLK_S_OK;
    });
  }

  /** In write-through mode a write completes only once it is durable (hostile-guest.md, 47). */
  private afterWrite(): number | Promise<number> {
    return this.writeback ? BLK_S_OK : this.flush();
  }

  /** FLUSH: OK only once the backend's flush succeeded; a failure sticks until reset. */
  private flush(): number | Promise<number> {
    if (this.flushFailed) return BLK_S_IOERR;
    const gen = this.generation;
    const fail = (): number => {
      if (gen === this.generation) this.flushFailed = true;
      return BLK_S_IOERR;
    };
    let r: void | Promise<void>;
    try {
      r = this.backend.flush();
    } catch {
      return fail();
    }
    if (!isPromise(r)) return BLK_S_OK;
    return r.then(() => (this.flushFailed && gen === this.generation ? BLK_S_IOERR : BLK_S_OK), fail);
  }

  private writeId(req: BlkRequest): void {
    let done = 0;
    for (const v of req.data) {
      const n = Math.max(0, Math.min(v.length, BLK_ID_BYTES - done));
      if (n > 0) v.set(this.id.subarray(done, done + n));
      v.fill(0, n);
      done += v.length;
    }
  }

  /** DISCARD and WRITE_ZEROES (VIRTIO 1.2, 5.2.6.2), with QEMU's choice of status for each fault. */
  private discardOrZero(req: BlkRequest): number | Promise<number> {
    const zeroes = req.type === BLK_T_WRITE_ZEROES;
    if (!this.has(zeroes ? BLK_F_WRITE_ZEROES : BLK_F_DISCARD)) return BLK_S_UNSUPP;
    if (this.readOnly) return BLK_S_IOERR;
    const segments = req.segments;
    if (segments === undefined) return BLK_S_UNSUPP; // more segments than advertised
    if (segments.length === 0 || segments.length % DWZ_SEGMENT_SIZE !== 0) return BLK_S_IOERR;
    const count = segments.length / DWZ_SEGMENT_SIZE;
    const seg = this.seg;
    for (let i = 0; i < count; i++) {
      readSegment(segments, i, seg);
      if ((seg.flags & ~BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0) return BLK_S_UNSUPP;
      if (!zeroes && seg.flags !== 0) return BLK_S_UNSUPP; // UNMAP is for WRITE_ZEROES only
      if (seg.numSectors > BLK_MAX_DWZ_SECTORS) return BLK_S_IOERR;
      if (!this.inRange(seg.sector, seg.numSectors * SECTOR_SIZE)) return BLK_S_IOERR;
    }
    return this.runSegments(segments, zeroes, 0);
  }

  /** Runs segments from `first` on, one after the other. */
  private runSegments(segments: Uint8Array, zeroes: boolean, first: number): number | Promise<number> {
    const count = segments.length / DWZ_SEGMENT_SIZE;
    const seg: DwzSegment = { sector: 0, numSectors: 0, flags: 0 };
    for (let i = first; i < count; i++) {
      readSegment(segments, i, seg);
      const offset = seg.sector * SECTOR_SIZE;
      const length = seg.numSectors * SECTOR_SIZE;
      let r: void | Promise<void>;
      if (!zeroes) r = this.backend.discard!(offset, length);
      else if (this.backend.writeZeroes !== undefined) {
        r = this.backend.writeZeroes(offset, length, (seg.flags & BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0);
      } else r = this.writeZeroBuffers(offset, offset + length);
      if (isPromise(r)) {
        const gen = this.generation;
        return r.then(
          () => (gen === this.generation ? this.runSegments(segments, zeroes, i + 1) : BLK_S_IOERR),
          () => BLK_S_IOERR,
        );
      }
    }
    return this.afterWrite();
  }

  /** Zeros [offset, end) through plain writes of a fixed zero buffer. */
  private writeZeroBuffers(offset: number, end: number): void | Promise<void> {
    while (offset < end) {
      const n = Math.min(ZEROS.length, end - offset);
      const r = this.backend.write(offset, ZEROS.subarray(0, n));
      offset += n;
      if (isPromise(r)) return r.then(() => this.writeZeroBuffers(offset, end));
    }
  }
}

/** Resolves to true when every promise fulfilled, false when any rejected; never rejects. */
function settle(pending: Promise<void>[]): Promise<boolean> {
  if (pending.length === 1) {
    return pending[0]!.then(
      () => true,
      () => false,
    );
  }
  return Promise.allSettled(pending).then((rs) => rs.every((r) => r.status === 'fulfilled'));
}
