/** A GuestMemory that records every access a device makes, for invariant checks in tests. */
import type { GuestMemory } from '../index.js';

export interface Access {
  kind: 'read' | 'write';
  addr: number;
  len: number;
}

/**
 * Wraps the memory a device is given and logs every access: reads, writes, fills, and views
 * (counted as writes of the whole range, since a device may write through them). Give it to the
 * transport (`new TestDriver(dev, ram, { deviceMem: new RecordingMemory(ram) })`) and check what
 * the device touched.
 */
export class RecordingMemory implements GuestMemory {
  readonly log: Access[] = [];
  /** When false, nothing is recorded (for long randomized runs that check as they go). */
  recording = true;

  constructor(readonly inner: GuestMemory) {}

  get base(): number {
    return this.inner.base;
  }
  get size(): number {
    return this.inner.size;
  }
  private note(kind: Access['kind'], addr: number, len: number): void {
    if (this.recording) this.log.push({ kind, addr, len });
  }
  writes(): Access[] {
    return this.log.filter((a) => a.kind === 'write');
  }
  clear(): void {
    this.log.length = 0;
  }

  contains(addr: number, len: number): boolean {
    return this.inner.contains(addr, len);
  }
  read(addr: number, dst: Uint8Array): void {
    this.inner.read(addr, dst);
    this.note('read', addr, dst.length);
  }
  write(addr: number, src: Uint8Array): void {
    this.inner.write(addr, src);
    this.note('write', addr, src.length);
  }
  view(addr: number, len: number): Uint8Array {
    const v = this.inner.view(addr, len);
    // A view may be written through: count it as a write of the whole range.
    this.note('write', addr, len);
    return v;
  }
  fill(addr: number, len: number, value: number): void {
    this.inner.fill(addr, len, value);
    this.note('write', addr, len);
  }
  readU8(addr: number): number {
    const v = this.inner.readU8(addr);
    this.note('read', addr, 1);
    return v;
  }
  readU16(addr: number): number {
    const v = this.inner.readU16(addr);
    this.note('read', addr, 2);
    return v;
  }
  readU32(addr: number): number {
    const v = this.inner.readU32(addr);
    this.note('read', addr, 4);
    return v;
  }
  readU64(addr: number): bigint {
    const v = this.inner.readU64(addr);
    this.note('read', addr, 8);
    return v;
  }
  writeU8(addr: number, value: number): void {
    this.inner.writeU8(addr, value);
    this.note('write', addr, 1);
  }
  writeU16(addr: number, value: number): void {
    this.inner.writeU16(addr, value);
    this.note('write', addr, 2);
  }
  writeU32(addr: number, value: number): void {
    this.inner.writeU32(addr, value);
    this.note('write', addr, 4);
  }
  writeU64(addr: number, value: bigint): void {
    this.inner.writeU64(addr, value);
    this.note('write', addr, 8);
  }
}
