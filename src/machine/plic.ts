/**
 * Platform-level interrupt controller (RISC-V PLIC specification 1.0.0), for one hart with two
 * contexts: 0 = M-mode, 1 = S-mode. Sources are level-triggered, as virtio-mmio and the UART are.
 */
import type { MmioDevice } from './bus.js';

export const PLIC_SIZE = 0x400_0000;
/** Sources 1..PLIC_SOURCES; source 0 does not exist. */
export const PLIC_SOURCES = 31;
const CONTEXTS = 2;

export interface PlicSnapshot {
  priority: number[];
  level: number[];
  pending: number[];
  claimed: number[];
  enable: number[];
  threshold: number[];
}

/** Sizes of the PLIC's state arrays, for checking a snapshot. */
export const PLIC_STATE_SIZES = { sources: PLIC_SOURCES + 1, contexts: CONTEXTS };

export class Plic implements MmioDevice {
  private readonly priority = new Uint32Array(PLIC_SOURCES + 1);
  private readonly level = new Uint8Array(PLIC_SOURCES + 1);
  private readonly pending = new Uint8Array(PLIC_SOURCES + 1);
  private readonly claimed = new Uint8Array(PLIC_SOURCES + 1);
  private readonly enable = new Uint32Array(CONTEXTS);
  private readonly threshold = new Uint32Array(CONTEXTS);

  /** `output(context, level)` drives MEIP (context 0) or SEIP (context 1). */
  constructor(private readonly output: (context: number, level: boolean) => void) {}

  /** Snapshot state: every register and each source's line, pending and claimed bits. */
  saveState(): PlicSnapshot {
    return {
      priority: Array.from(this.priority), level: Array.from(this.level), pending: Array.from(this.pending),
      claimed: Array.from(this.claimed), enable: Array.from(this.enable), threshold: Array.from(this.threshold),
    };
  }

  loadState(s: PlicSnapshot): void {
    this.priority.set(s.priority.map((v) => v & 7));
    this.level.set(s.level.map((v) => v & 1));
    this.pending.set(s.pending.map((v) => v & 1));
    this.claimed.set(s.claimed.map((v) => v & 1));
    this.enable.set(s.enable.map((v) => v & ~1));
    this.threshold.set(s.threshold.map((v) => v & 7));
    this.update();
  }

  /** An interrupt source's line changed. */
  setLevel(source: number, high: boolean): void {
    if (source < 1 || source > PLIC_SOURCES) return;
    this.level[source] = high ? 1 : 0;
    // Level-triggered gateway: a source already claimed stays out until completed.
    if (high && !this.claimed[source]) this.pending[source] = 1;
    if (!high) this.pending[source] = 0;
    this.update();
  }

  /** The highest-priority pending source enabled for `ctx` above its threshold, or 0. */
  private best(ctx: number): number {
    let best = 0;
    let bestPrio = this.threshold[ctx]!;
    for (let s = 1; s <= PLIC_SOURCES; s++) {
      if (this.pending[s] && (this.enable[ctx]! >>> s) & 1 && this.priority[s]! > bestPrio) {
        best = s;
        bestPrio = this.priority[s]!;
      }
    }
    return best;
  }

  private update(): void {
    for (let c = 0; c < CONTEXTS; c++) this.output(c, this.best(c) !== 0);
  }

  read(offset: number, size: number): number {
    if (size !== 4 || offset % 4 !== 0) return 0;
    if (offset < 0x1000) return this.priority[offset / 4] ?? 0;
    if (offset === 0x1000) {
      let bits = 0;
      for (let s = 1; s <= PLIC_SOURCES; s++) bits |= this.pending[s]! << s;
      return bits >>> 0;
    }
    if (offset >= 0x2000 && offset < 0x2000 + 0x80 * CONTEXTS) {
      const ctx = (offset - 0x2000) >> 7;
      return (offset - 0x2000) % 0x80 === 0 ? this.enable[ctx]! : 0;
    }
    if (offset >= 0x20_0000 && offset < 0x20_0000 + 0x1000 * CONTEXTS) {
      const ctx = (offset - 0x20_0000) >> 12;
      const reg = (offset - 0x20_0000) & 0xfff;
      if (reg === 0) return this.threshold[ctx]!;
      if (reg === 4) return this.claim(ctx);
    }
    return 0;
  }

  private claim(ctx: number): number {
    const s = this.best(ctx);
    if (s !== 0) {
      this.pending[s] = 0;
      this.claimed[s] = 1;
      this.update();
    }
    return s;
  }

  write(offset: number, size: number, value: number): void {
    if (size !== 4 || offset % 4 !== 0) return;
    if (offset < 0x1000) {
      const s = offset / 4;
      if (s >= 1 && s <= PLIC_SOURCES) this.priority[s] = value & 7;
    } else if (offset >= 0x2000 && offset < 0x2000 + 0x80 * CONTEXTS) {
      if ((offset - 0x2000) % 0x80 === 0) this.enable[(offset - 0x2000) >> 7] = value & ~1;
    } else if (offset >= 0x20_0000 && offset < 0x20_0000 + 0x1000 * CONTEXTS) {
      const ctx = (offset - 0x20_0000) >> 12;
      const reg = (offset - 0x20_0000) & 0xfff;
      if (reg === 0) this.threshold[ctx] = value & 7;
      else if (reg === 4 && value >= 1 && value <= PLIC_SOURCES && this.claimed[value]) {
        this.claimed[value] = 0; // completion; a line still high is pending again
        if (this.level[value]) this.pending[value] = 1;
      }
    } else {
      return;
    }
    this.update();
  }
}
