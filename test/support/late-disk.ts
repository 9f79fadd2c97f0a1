import type { BlockBackend } from '../../src/backends/block/backend.js';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';

/**
 * A disk whose operations run only when the test says, touching the buffer it was given only
 * then: a read fills it when it finishes, a write reads it when it runs (as FileDisk's thread pool
 * does).
 */
export class LateDisk implements BlockBackend {
  readonly inner: MemoryDisk;
  readonly readOnly = false;
  private waiting: Array<() => void> = [];
  constructor(size = 1 << 20) {
    this.inner = new MemoryDisk(size);
  }
  get size(): number {
    return this.inner.size;
  }
  read(offset: number, dst: Uint8Array): Promise<void> {
    return new Promise((resolve) => this.waiting.push(() => (this.inner.read(offset, dst), resolve())));
  }
  write(offset: number, src: Uint8Array): Promise<void> {
    // No copy at submit time: the bytes are read from the buffer when the write runs.
    return new Promise((resolve) => this.waiting.push(() => (this.inner.write(offset, src), resolve())));
  }
  flush(): void {}
  get count(): number {
    return this.waiting.length;
  }
  release(): void {
    const w = this.waiting;
    this.waiting = [];
    for (const run of w) run();
  }
}
