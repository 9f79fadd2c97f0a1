/**
 * The virtio-9p device (VIRTIO 1.2, 5.13 is silent on it; the layout is QEMU's and Linux's
 * net/9p/trans_virtio.c): device ID 9, feature VIRTIO_9P_MOUNT_TAG (bit 0), config space = u16 tag
 * length + tag bytes, one request queue. Each chain carries one T-message in its readable part and
 * gets one R-message in its writable part, which may span many descriptors (at msize 512000 Linux
 * sends ~125 page-sized segments, so the queue is large and offers indirect descriptors).
 */
import type { FsBackend } from '../../backends/fs/backend.js';
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { DescriptorChain } from '../../virtio/chain.js';
import { bit, DEVICE_ID_9P } from '../../virtio/constants.js';
import { COMMON_FEATURES, type DeviceSnapshot, DeviceStateMismatch, PACKED_FEATURES, QueueDevice, readConfigBytes } from '../../virtio/device.js';
import { loadSession, saveSession } from './snapshot.js';
import { GuardedOutput } from './io.js';
import { P9Server, type P9ServerOptions } from './server.js';

/** VIRTIO_9P_MOUNT_TAG: the config space holds the mount tag. */
export const F_9P_MOUNT_TAG = 0;
/** Request queue size offered. */
export const P9_QUEUE_SIZE = 1024;
/** Longest mount tag storvm accepts (the config field is a u16 length; Linux copies any length). */
export const MAX_TAG_BYTES = 255;

export interface Virtio9pOptions extends P9ServerOptions {
  /** The mount tag the guest names in `mount -t 9p <tag>`; default "storvm". */
  tag?: string;
  /** QueueNumMax of the request queue (a power of two, at least 128); default 1024. */
  queueSize?: number;
  /** Offer packed virtqueues (VIRTIO_F_RING_PACKED); default true. Linux uses them when offered. */
  packed?: boolean;
}

export class Virtio9p extends QueueDevice {
  readonly deviceId = DEVICE_ID_9P;
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly server: P9Server;
  readonly tag: string;
  private readonly config: Uint8Array;

  constructor(
    readonly fs: FsBackend,
    opts: Virtio9pOptions = {},
  ) {
    super();
    this.tag = opts.tag ?? 'storvm';
    const tagBytes = new TextEncoder().encode(this.tag);
    if (tagBytes.length === 0 || tagBytes.length > MAX_TAG_BYTES) {
      throw new RangeError(`Virtio9p: the mount tag must be 1..${MAX_TAG_BYTES} bytes, got ${tagBytes.length}`);
    }
    const qs = opts.queueSize ?? P9_QUEUE_SIZE;
    if (!Number.isInteger(qs) || qs < 128 || qs > 32768 || (qs & (qs - 1)) !== 0) {
      throw new RangeError(`Virtio9p: queueSize must be a power of two in 128..32768, got ${qs}`);
    }
    this.queueMaxSizes = [qs];
    this.features = COMMON_FEATURES | bit(F_9P_MOUNT_TAG) | ((opts.packed ?? true) ? PACKED_FEATURES : 0n);
    this.config = new Uint8Array(2 + tagBytes.length);
    this.config[0] = tagBytes.length & 0xff;
    this.config[1] = tagBytes.length >>> 8;
    this.config.set(tagBytes, 2);
    this.server = new P9Server(fs, opts);
  }

  readConfig(offset: number, size: number): number {
    return readConfigBytes(this.config, offset, size);
  }

  /**
   * Whether a snapshot carries the files of an in-memory share (its backend's `saveContents`).
   * Off while the browser's boot cache saves, before the guest has mounted anything, and while
   * it restores: a run restored from the cache brings the share's files of its own, and a
   * snapshot that carries some is refused then.
   */
  snapshotContents = true;

  /** Snapshot state: the tag, and the 9P session (fids by path, open flags, locks). */
  saveState(): DeviceSnapshot {
    const contents = this.snapshotContents ? this.fs.saveContents?.() : undefined;
    return { state: { tag: this.tag, contents: contents !== undefined, session: saveSession(this.server.session, this.fs) }, blobs: contents ? [contents] : [] };
  }

  async loadState(snap: DeviceSnapshot): Promise<void> {
    const s = snap.state as { tag?: unknown; session?: unknown } | null;
    if (typeof s !== 'object' || s === null) throw new Error('virtio-9p: malformed state');
    if (s.tag !== this.tag) throw new DeviceStateMismatch(`share tag '${String(s.tag)}' in the snapshot, '${this.tag}' given`);
    if ((s as { contents?: unknown }).contents === true) {
      if (!this.snapshotContents) throw new DeviceStateMismatch(`the snapshot carries the files of share '${this.tag}', which brings its own`);
      // The share's files live in the snapshot (an in-memory share): they go into the backend given.
      const blob = snap.blobs?.[0];
      if (blob === undefined) throw new Error('virtio-9p: the share contents are missing');
      if (this.fs.loadContents === undefined) throw new DeviceStateMismatch(`the snapshot carries share '${this.tag}' whole (it was in memory); give an in-memory share`);
      this.fs.loadContents(blob);
    }
    await loadSession(this.server.session, this.fs, s.session, this.server.maxMsize);
  }

  protected override onReset(): void {
    // A new driver session starts from scratch: the old one's fids and locks are gone.
    this.server.reset();
  }

  protected handle(queue: number, chain: DescriptorChain, mem: GuestMemory): number | Promise<number> {
    return this.server.handle(chain.reader(mem), new GuardedOutput(chain.writer(mem), this.liveness(queue, chain)));
  }
}
