/**
 * A raw disk image in a host file, for Node: positional reads and writes through one
 * fs.promises FileHandle, so many requests may be in flight at once. flush() is fdatasync.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { type BlockBackend, BlockError, BlockIoError, checkRange, ReadOnlyError } from '../backends/block/backend.js';
import { ImageLock } from './image-lock.js';

export interface FileDiskOptions {
  /** Open the file read-only ('r'); writes, discards and write-zeroes are refused. */
  readOnly?: boolean;
}

/** Zeros for discard and write-zeroes; never modified. */
const ZEROS = new Uint8Array(1 << 20);

export class FileDisk implements BlockBackend {
  private closed = false;

  private constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    readonly size: number,
    readonly readOnly: boolean,
    private readonly lock: ImageLock | undefined,
  ) {}

  /** Opens an existing image; its size is the file's size. */
  static async open(path: string, opts: FileDiskOptions = {}): Promise<FileDisk> {
    const readOnly = opts.readOnly ?? false;
    const handle = await open(path, readOnly ? 'r' : 'r+');
    let lock: ImageLock | undefined;
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new BlockError(`${path}: not a regular file`);
      // One writer per image: a second read-write opener is refused (readers never lock).
      if (!readOnly) lock = await ImageLock.acquire(path);
      return new FileDisk(handle, path, st.size, readOnly, lock);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  /** Creates (or truncates) a sparse image of `size` bytes and opens it read-write. */
  static async create(path: string, size: number): Promise<FileDisk> {
    if (!Number.isSafeInteger(size) || size < 0) throw new BlockError(`invalid disk size ${size}`);
    const lock = await ImageLock.acquire(path);
    try {
      const handle = await open(path, 'w+');
      await handle.truncate(size);
      return new FileDisk(handle, path, size, false, lock);
    } catch (e) {
      await lock.release();
      throw e;
    }
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    checkRange(offset, dst.length, this.size);
    let done = 0;
    while (done < dst.length) {
      const { bytesRead } = await this.handle.read(dst, done, dst.length - done, offset + done);
      if (bytesRead === 0) {
        // The file shrank under us: what is not there reads as zeros.
        dst.fill(0, done);
        return;
      }
      done += bytesRead;
    }
  }

  async write(offset: number, src: Uint8Array): Promise<void> {
    if (this.readOnly) throw new ReadOnlyError(this.path);
    checkRange(offset, src.length, this.size);
    let done = 0;
    while (done < src.length) {
      const { bytesWritten } = await this.handle.write(src, done, src.length - done, offset + done);
      if (bytesWritten === 0) throw new BlockIoError(`${this.path}: write made no progress at ${offset + done}`);
      done += bytesWritten;
    }
  }

  /** fdatasync: every write that completed before is on stable storage when this resolves. */
  async flush(): Promise<void> {
    if (this.readOnly) return;
    await this.handle.datasync();
  }

  /** Zeroes the range (Node has no portable hole punching); reads of it return zeros afterwards. */
  discard(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  async writeZeroes(offset: number, length: number, _unmap = false): Promise<void> {
    if (this.readOnly) throw new ReadOnlyError(this.path);
    checkRange(offset, length, this.size);
    for (let done = 0; done < length; ) {
      const n = Math.min(ZEROS.length, length - done);
      await this.write(offset + done, ZEROS.subarray(0, n));
      done += n;
    }
  }

  /** Closes the file; the disk must not be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.handle.close();
    } finally {
      await this.lock?.release();
    }
  }
}
