/**
 * The core-local interruptor (SiFive CLINT layout, as QEMU's virt board has it): msip at 0x0,
 * mtimecmp at 0x4000, mtime at 0xbff8, for one hart. mtime comes from the machine's clock.
 */
import type { MmioDevice } from './bus.js';

export const CLINT_SIZE = 0x10000;

export interface TimerLines {
  /** Machine software interrupt (MSIP). */
  software(level: boolean): void;
  /** Machine timer interrupt (MTIP). */
  timer(level: boolean): void;
}

const TWO_32 = 2 ** 32;

export class Clint implements MmioDevice {
  private msip = 0;
  /** mtimecmp; starts at the maximum so no timer fires before software sets it. */
  mtimecmp = Number.MAX_SAFE_INTEGER;

  constructor(
    /** Current mtime in ticks of the timebase. */
    private readonly now: () => number,
    private readonly lines: TimerLines,
  ) {}

  /** Snapshot state (mtime is the machine's clock, saved with the machine). */
  saveState(): { msip: number; mtimecmp: number } {
    return { msip: this.msip, mtimecmp: this.mtimecmp };
  }

  loadState(s: { msip: number; mtimecmp: number }): void {
    this.msip = s.msip & 1;
    this.mtimecmp = s.mtimecmp;
    this.lines.software(this.msip === 1);
  }

  /** Re-evaluates MTIP against the current time; the machine calls it between slices. */
  update(): void {
    this.lines.timer(this.now() >= this.mtimecmp);
  }

  read(offset: number, size: number): number {
    if (size !== 4) return 0;
    switch (offset) {
      case 0x0:
        return this.msip;
      case 0x4000:
        return this.mtimecmp % TWO_32;
      case 0x4004:
        return Math.floor(this.mtimecmp / TWO_32);
      case 0xbff8:
        return this.now() % TWO_32;
      case 0xbffc:
        return Math.floor(this.now() / TWO_32);
      default:
        return 0;
    }
  }

  write(offset: number, size: number, value: number): void {
    if (size !== 4) return;
    switch (offset) {
      case 0x0:
        this.msip = value & 1;
        this.lines.software(this.msip === 1);
        return;
      case 0x4000:
        this.mtimecmp = Math.floor(this.mtimecmp / TWO_32) * TWO_32 + value;
        break;
      case 0x4004:
        this.mtimecmp = Math.min(value * TWO_32 + (this.mtimecmp % TWO_32), Number.MAX_SAFE_INTEGER);
        break;
      default:
        return; // mtime is read-only here: the machine's clock drives it
    }
    this.update();
  }
}
