/**
 * The block backend interface: what the virtio-blk device runs requests on. A backend knows bytes
 * and offsets only, never the virtio wire format (see src/devices/blk for that).
 *
 * Every operation may finish synchronously (return nothing) or return a Promise; the device
 * handles both and lets asynchronous requests finish in any order. Offsets and lengths are byte
 * counts below 2^53. A backend reports a failed operation by throwing or rejecting; the device turns
 * that into an IOERR status for the guest.
 */
export interface BlockBackend {
  /** Size in bytes. The device exposes floor(size / 512) sectors. */
  readonly size: number;
  /** True when writes, discards and write-zeroes are refused. */
  readonly readOnly: boolean;
  /** Fills `dst` with the bytes at [offset, offset + dst.length). */
  read(offset: number, dst: Uint8Array): void | Promise<void>;
  /** Stores `src` at [offset, offset + src.length). */
  write(offset: number, src: Uint8Array): void | Promise<void>;
  /** Makes every completed write durable (fdatasync for a host file). */
  flush(): void | Promise<void>;
  /**
   * Tells the backend the range is no longer needed; reads of it afterwards may return anything
   * the backend chooses, but storvm's backends return zeros. Optional: without it the device does
   * not offer VIRTIO_BLK_F_DISCARD.
   */
  discard?(offset: number, length: number): void | Promise<void>;
  /**
   * Makes the range read as zeros; with `unmap` the backend may release the storage behind it.
   * Optional: without it the device writes zero buffers through `write`.
   */
  writeZeroes?(offset: number, length: number, unmap: boolean): void | Promise<void>;
  /**
   * Snapshots (optional): a copy-on-write layer gives its base and its own contents as bytes, so a
   * snapshot refers to the base by identity and carries only the layer.
   */
  snapshotLayer?(): { base: BlockBackend; layer: Uint8Array };
  /** Replaces the layer's contents with bytes from `snapshotLayer` (checked; unchanged on error). */
  restoreLayer?(layer: Uint8Array): void;
  /** Snapshots (optional): a hash of the whole contents, when the backend knows a faster way than reading them. */
  identity?(): Promise<string>;
}

/** Base class of every error storvm's block layer throws at API users. */
export class BlockError extends Error {
  override name = 'BlockError';
}

/** A write, discard or write-zeroes on a read-only backend. */
export class ReadOnlyError extends BlockError {
  override name = 'ReadOnlyError';
  constructor(what = 'backend') {
    super(`${what} is read-only`);
  }
}

/** An access outside [0, size) of a backend, or a negative/non-integer offset or length. */
export class BlockRangeError extends BlockError {
  override name = 'BlockRangeError';
  constructor(
    readonly offset: number,
    readonly length: number,
    readonly size: number,
  ) {
    super(`block access of ${length} bytes at ${offset} is outside a disk of ${size} bytes`);
  }
}

/** An image this code can't read: malformed, truncated, or using a feature it does not support. */
export class ImageFormatError extends BlockError {
  override name = 'ImageFormatError';
}

/** An image uses a feature storvm refuses on open; `feature` names it (e.g. "encryption"). */
export class UnsupportedFeatureError extends ImageFormatError {
  override name = 'UnsupportedFeatureError';
  constructor(
    readonly format: string,
    readonly feature: string,
  ) {
    super(`${format}: unsupported feature: ${feature}`);
  }
}

/** An I/O error from the host (or a simulated one in tests). */
export class BlockIoError extends BlockError {
  override name = 'BlockIoError';
}

/** Throws BlockRangeError unless [offset, offset + length) is a valid range of a disk of `size` bytes. */
export function checkRange(offset: number, length: number, size: number): void {
  if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= size)) {
    throw new BlockRangeError(offset, length, size);
  }
}

/** Awaits a value that may or may not be a Promise, without allocating one when it is not. */
export function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}
