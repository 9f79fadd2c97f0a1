/**
 * The physical address map outside RAM: MMIO devices at fixed windows, as on QEMU's `virt` board.
 * Implements the hart's `Bus`; 64-bit accesses reach a device as two 32-bit ones (low half first).
 */
import type { Bus } from '../riscv/bus.js';

/** A device on the bus: registers read and written at offsets inside its window. */
export interface MmioDevice {
  read(offset: number, size: number): number;
  write(offset: number, size: number, value: number): void;
}

interface Region {
  base: number;
  size: number;
  device: MmioDevice;
  name: string;
}

export class MmioBus implements Bus {
  private regions: Region[] = [];

  /** Maps `device` at [base, base + size); overlapping windows are a programming error. */
  map(base: number, size: number, device: MmioDevice, name = 'device'): void {
    for (const r of this.regions) {
      if (base < r.base + r.size && r.base < base + size) throw new RangeError(`${name} at 0x${base.toString(16)} overlaps ${r.name}`);
    }
    this.regions.push({ base, size, device, name });
  }

  private find(pa: number, size: number): Region | undefined {
    for (const r of this.regions) if (pa >= r.base && pa + size <= r.base + r.size) return r;
    return undefined;
  }

  read(pa: number, size: number, out: Int32Array): boolean {
    const r = this.find(pa, size);
    if (r === undefined) return false;
    const off = pa - r.base;
    if (size === 8) {
      out[0] = r.device.read(off, 4) | 0;
      out[1] = r.device.read(off + 4, 4) | 0;
    } else {
      out[0] = r.device.read(off, size) | 0;
      out[1] = 0;
    }
    return true;
  }

  write(pa: number, size: number, lo: number, hi: number): boolean {
    const r = this.find(pa, size);
    if (r === undefined) return false;
    const off = pa - r.base;
    if (size === 8) {
      r.device.write(off, 4, lo >>> 0);
      r.device.write(off + 4, 4, hi >>> 0);
    } else {
      const mask = size === 4 ? 0xffff_ffff : size === 2 ? 0xffff : 0xff;
      r.device.write(off, size, (lo & mask) >>> 0);
    }
    return true;
  }
}
