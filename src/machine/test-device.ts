/**
 * The SiFive test / finisher device (`sifive,test0`, at 0x100000 on QEMU's virt board): the guest
 * writes 0x5555 to power off with success, 0x3333 | (code << 16) to power off with exit code
 * `code`, 0x7777 to reset. Linux's syscon-poweroff driver writes 0x5555.
 */
import type { MmioDevice } from './bus.js';

export const FINISHER_SIZE = 0x1000;

export type FinisherEvent = { kind: 'poweroff'; code: number } | { kind: 'reset' };

export class Finisher implements MmioDevice {
  constructor(private readonly onEvent: (e: FinisherEvent) => void) {}

  read(): number {
    return 0;
  }

  write(offset: number, size: number, value: number): void {
    if (offset !== 0 || size !== 4) return;
    const kind = value & 0xffff;
    if (kind === 0x5555) this.onEvent({ kind: 'poweroff', code: 0 });
    else if (kind === 0x3333) this.onEvent({ kind: 'poweroff', code: value >>> 16 || 1 });
    else if (kind === 0x7777) this.onEvent({ kind: 'reset' });
  }
}
