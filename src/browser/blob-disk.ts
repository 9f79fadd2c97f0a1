/**
 * A read-only BlockBackend over a Blob (a File the visitor picked or dropped). Nothing is read
 * until the guest asks: a 10 GiB file costs no memory, and each read slices the Blob and reads
 * just that range. Reads answer with a Promise; the device lets them finish in any order.
 * A file that became unreadable (deleted, moved) fails that read, which the guest sees as IOERR.
 */
import { type BlockBackend, BlockIoError, checkRange, ReadOnlyError } from '../backends/block/backend.js';

export class BlobDisk implements BlockBackend {
  readonly size: number;
  readonly readOnly = true;

  constructor(private readonly blob: Blob) {
    this.size = blob.size;
  }

  async read(offset: number, dst: Uint8Array): Promise<void> {
    checkRange(offset, dst.length, this.size);
    if (dst.length === 0) return;
    let buf: ArrayBuffer;
    try {
      buf = await this.blob.slice(offset, offset + dst.length).arrayBuffer();
    } catch (e) {
      throw new BlockIoError(`file read failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (buf.byteLength !== dst.length) throw new BlockIoError(`short file read: ${buf.byteLength} of ${dst.length} bytes`);
    dst.set(new Uint8Array(buf));
  }

  write(): void {
    throw new ReadOnlyError('a Blob disk');
  }

  flush(): void {}
}
