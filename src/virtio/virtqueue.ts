import type { GuestMemory } from '../memory/guest-memory.js';
import type { DescriptorChain } from './chain.js';

/**
 * The device side of one virtqueue, split (VIRTIO 1.2, 2.7; {@link SplitQueue}) or packed (2.8;
 * {@link PackedQueue}). Devices see only this: pop a validated chain, give it back with the bytes
 * written, ask whether the driver wants an interrupt. Which format a queue uses is settled at
 * FEATURES_OK (VIRTIO_F_RING_PACKED); the transport swaps the queue objects then.
 */
export interface Virtqueue {
  /** True for a packed virtqueue. */
  readonly packed: boolean;
  /** Largest size the device accepts (QueueNumMax). */
  readonly maxSize: number;
  /** Queue size chosen by the driver (QueueNum). */
  size: number;
  /** Guest-physical addresses of the three areas: descriptors, driver area, device area. */
  descAddr: number;
  driverAddr: number;
  deviceAddr: number;
  /** True once the driver set QueueReady and the layout passed validation. */
  ready: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  indirect: boolean;
  /** VIRTIO_F_EVENT_IDX negotiated. */
  eventIdx: boolean;
  /** Set when the driver broke the ring protocol; the device must go to DEVICE_NEEDS_RESET. */
  broken: string | undefined;
  /** Bumped on every reset: chains popped under an older epoch are never completed. */
  epoch: number;
  /** Where the device looks for the next available buffer (split: a u16 index; packed: a ring slot). */
  readonly lastAvailIdx: number;
  /** Where the device puts the next used buffer (split: the u16 used.idx; packed: a ring slot). */
  readonly usedIdx: number;
  /** Snapshot: where the device is in the rings (the rest of the queue is the fields above). */
  saveRing(): number[];
  /** Puts back what saveRing gave; false (and no change) when the numbers can't be this queue's. */
  loadRing(ring: readonly number[]): boolean;
  /** Back to the state after device reset. */
  reset(): void;
  /** Whether `size` is acceptable for QueueNum. */
  validSize(size: number): boolean;
  /** Why the layout can't be used, or undefined when it can. */
  layoutError(mem: GuestMemory): string | undefined;
  /** The next available chain, validated, or null; a refused chain comes back with `error` set. */
  pop(mem: GuestMemory): DescriptorChain | null;
  /** Gives a chain back with `len` bytes written; false when it was dropped (older epoch). */
  addUsed(mem: GuestMemory, chain: DescriptorChain, len: number): boolean;
  /** Whether the driver wants an interrupt for what was added since the last true answer. */
  needsNotification(mem: GuestMemory): boolean;
}
