/**
 * The virtio-fs device (VIRTIO 1.2, 5.11): device ID 26, config space = tag[36] (UTF-8, NUL-padded)
 * + le32 num_request_queues, queue 0 the high-priority queue (FORGET, BATCH_FORGET) and queues
 * 1..N request queues. Each chain carries one FUSE request in its readable part (fuse_in_header
 * and arguments) and gets the reply in its writable part (fuse_out_header and arguments), the
 * layout Linux's fs/fuse/virtio_fs.c builds. No notification queue and no DAX window are offered.
 */
import type { FsBackend } from '../../backends/fs/backend.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { DescriptorChain } from '../../virtio/chain.js';
import { DEVICE_ID_FS } from '../../virtio/constants.js';
import { type DeviceSnapshot, DeviceStateMismatch, COMMON_FEATURES, QueueDevice, readConfigBytes } from '../../virtio/device.js';
import { loadFuseSession, saveFuseSession } from './snapshot.js';
import { GuardedOutput } from '../p9/io.js';
import { FuseServer, type FuseServerOptions } from './server.js';

/** Bytes of the tag field (VIRTIO 1.2, 5.11.4). */
export const FS_TAG_BYTES = 36;
/** Queue size offered for each queue. */
export const FS_QUEUE_SIZE = 1024;

export interface VirtioFsOptions extends FuseServerOptions {
  /** The tag the guest names in `mount -t virtiofs <tag> DIR`; 1..36 bytes, default "storvm". */
  tag?: string;
  /** Request queues (1..16); default 1. */
  requestQueues?: number;
  /** QueueNumMax of each queue (a power of two, 128..32768); default 1024. */
  queueSize?: number;
}

export class VirtioFs extends QueueDevice {
  readonly deviceId = DEVICE_ID_FS;
  readonly features = COMMON_FEATURES;
  readonly queueMaxSizes: readonly number[];
  readonly server: FuseServer;
  readonly tag: string;
  readonly requestQueues: number;
  private readonly config: Uint8Array;

  constructor(
    readonly fs: FsBackend,
    opts: VirtioFsOptions = {},
  ) {
    super();
    this.tag = opts.tag ?? 'storvm';
    const tagBytes = new TextEncoder().encode(this.tag);
    if (tagBytes.length === 0 || tagBytes.length > FS_TAG_BYTES || tagBytes.includes(0)) {
      throw new RangeError(`VirtioFs: the tag must be 1..${FS_TAG_BYTES} bytes without NUL, got ${tagBytes.length}`);
    }
    const nq = opts.requestQueues ?? 1;
    if (!Number.isInteger(nq) || nq < 1 || nq > 16) throw new RangeError(`VirtioFs: requestQueues must be 1..16, got ${nq}`);
    const qs = opts.queueSize ?? FS_QUEUE_SIZE;
    if (!Number.isInteger(qs) || qs < 128 || qs > 32768 || (qs & (qs - 1)) !== 0) {
      throw new RangeError(`VirtioFs: queueSize must be a power of two in 128..32768, got ${qs}`);
    }
    this.requestQueues = nq;
    this.queueMaxSizes = new Array<number>(1 + nq).fill(qs);
    this.config = new Uint8Array(FS_TAG_BYTES + 4);
    this.config.set(tagBytes, 0);
    new DataView(this.config.buffer).setUint32(FS_TAG_BYTES, nq, true);
    this.server = new FuseServer(fs, opts);
  }

  /**
   * Snapshot state: the tag, the FUSE session (node ids and handles by path, INIT, locks), and for
   * an in-memory share its files.
   */
  saveState(): DeviceSnapshot {
    const contents = this.fs.saveContents?.();
    return { state: { tag: this.tag, contents: contents !== undefined, session: saveFuseSession(this.server.session, this.fs) }, blobs: contents ? [contents] : [] };
  }

  async loadState(snap: DeviceSnapshot): Promise<void> {
    const s = snap.state as { tag?: unknown; contents?: unknown; session?: unknown } | null;
    if (typeof s !== 'object' || s === null) throw new Error('virtio-fs: malformed state');
    if (s.tag !== this.tag) throw new DeviceStateMismatch(`share tag '${String(s.tag)}' in the snapshot, '${this.tag}' given`);
    if (s.contents === true) {
      const blob = snap.blobs?.[0];
      if (blob === undefined) throw new Error('virtio-fs: the share contents are missing');
      if (this.fs.loadContents === undefined) throw new DeviceStateMismatch(`the snapshot carries share '${this.tag}' whole (it was in memory); give an in-memory share`);
      this.fs.loadContents(blob);
    }
    await loadFuseSession(this.server.session, this.fs, s.session);
  }

  readConfig(offset: number, size: number): number {
    return readConfigBytes(this.config, offset, size);
  }

  protected override onReset(): void {
    // A new driver session starts from scratch: node ids and handles of the old one are gone.
    this.server.reset();
  }

  /**
   * The hiprio queue carries only FORGETs, which nobody waits on: their completions share the
   * next interrupt instead of costing one each (on virtio-mmio one interrupt serves every queue).
   */
  protected override lazyNotify(queue: number): boolean {
    return queue === 0;
  }

  protected handle(queue: number, chain: DescriptorChain, mem: GuestMemory): number | Promise<number> {
    return this.server.handle(chain.reader(mem), new GuardedOutput(chain.writer(mem), this.liveness(queue, chain)));
  }
}
