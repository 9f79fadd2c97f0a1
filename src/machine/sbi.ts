/**
 * The Supervisor Binary Interface (RISC-V SBI specification v2.0) in TypeScript, so the kernel
 * starts in S-mode with no firmware image. ECALL from S-mode lands here: a7 = extension ID,
 * a6 = function ID, a0..a5 = arguments; a0 = error, a1 = value on return.
 */
import type { HartState } from '../riscv/state.js';

export const SBI_SUCCESS = 0;
export const SBI_ERR_FAILED = -1;
export const SBI_ERR_NOT_SUPPORTED = -2;
export const SBI_ERR_INVALID_PARAM = -3;
export const SBI_ERR_ALREADY_AVAILABLE = -6;

export const EXT_BASE = 0x10;
export const EXT_TIME = 0x54494d45;
export const EXT_IPI = 0x735049;
export const EXT_RFENCE = 0x52464e43;
export const EXT_HSM = 0x48534d;
export const EXT_SRST = 0x53525354;
export const EXT_DBCN = 0x4442434e;
const LEGACY_SET_TIMER = 0;
const LEGACY_PUTCHAR = 1;
const LEGACY_GETCHAR = 2;
const LEGACY_SHUTDOWN = 8;

/** What the SBI needs from the machine. */
export interface SbiHost {
  /** Programs the supervisor timer: STIP rises once mtime >= `time` (and is cleared now). */
  setTimer(time: number): void;
  /** Raises the supervisor software interrupt on this hart. */
  sendIpi(): void;
  /** Writes one console byte. */
  putchar(byte: number): void;
  /** The next console input byte, or -1. */
  getchar(): number;
  /** System reset: shutdown (code = exit status) or reboot. */
  systemReset(kind: 'shutdown' | 'reboot', code: number): void;
  /** Reads guest-physical memory for the debug console; false when outside RAM. */
  readPhys(addr: number, len: number): Uint8Array | undefined;
}

const TWO_32 = 2 ** 32;
/** Our implementation ID (SBI v2.0, table 4: IDs 0-10 are taken; this one is unregistered). */
const IMPL_ID = 0x5354;

export class Sbi {
  private static readonly extensions = new Set([EXT_BASE, EXT_TIME, EXT_IPI, EXT_RFENCE, EXT_HSM, EXT_SRST, EXT_DBCN, LEGACY_SET_TIMER, LEGACY_PUTCHAR, LEGACY_GETCHAR, LEGACY_SHUTDOWN]);
  /** Calls seen, by extension ID, for tracing. */
  readonly calls = new Map<number, number>();

  constructor(private readonly host: SbiHost) {}

  /** Handles an ECALL from S-mode; always true (unknown calls answer NOT_SUPPORTED). */
  handle(h: HartState): boolean {
    const eid = h.xl[17]! >>> 0;
    const fid = h.xl[16]! >>> 0;
    this.calls.set(eid, (this.calls.get(eid) ?? 0) + 1);
    const a = (i: number) => (h.xl[10 + i]! >>> 0) + (h.xh[10 + i]! >>> 0) * TWO_32; // a0..a5 as unsigned numbers (2^64-1 is above 2^53: not exact, but ordered)
    const ret = (error: number, value = 0) => {
      h.xl[10] = error | 0;
      h.xh[10] = error < 0 ? -1 : 0;
      h.xl[11] = value | 0;
      h.xh[11] = Math.floor(value / TWO_32) | 0;
    };
    const legacy = (value: number) => {
      h.xl[10] = value | 0;
      h.xh[10] = value < 0 ? -1 : 0;
    };
    switch (eid) {
      case LEGACY_SET_TIMER:
        this.host.setTimer(a(0));
        legacy(0);
        return true;
      case LEGACY_PUTCHAR:
        this.host.putchar(a(0) & 0xff);
        legacy(0);
        return true;
      case LEGACY_GETCHAR:
        legacy(this.host.getchar());
        return true;
      case LEGACY_SHUTDOWN:
        this.host.systemReset('shutdown', 0);
        legacy(0);
        return true;
      case EXT_BASE:
        switch (fid) {
          case 0: return ret(SBI_SUCCESS, 0x0200_0000), true; // spec version 2.0
          case 1: return ret(SBI_SUCCESS, IMPL_ID), true;
          case 2: return ret(SBI_SUCCESS, 1), true;
          case 3: return ret(SBI_SUCCESS, Sbi.extensions.has(a(0)) ? 1 : 0), true;
          case 4: case 5: case 6: return ret(SBI_SUCCESS, 0), true; // mvendorid, marchid, mimpid
        }
        break;
      case EXT_TIME:
        if (fid === 0) {
          this.host.setTimer(a(0));
          return ret(SBI_SUCCESS), true;
        }
        break;
      case EXT_IPI:
        if (fid === 0) {
          if (this.targetsHart(h, a(0), a(1))) this.host.sendIpi();
          return ret(SBI_SUCCESS), true;
        }
        break;
      case EXT_RFENCE:
        if (fid <= 6) {
          // One hart: a remote fence is a local one.
          if (this.targetsHart(h, a(0), a(1))) {
            if (fid === 0) h.fenceI();
            else h.flushTlb();
          }
          return ret(fid <= 2 ? SBI_SUCCESS : SBI_ERR_NOT_SUPPORTED), true;
        }
        break;
      case EXT_HSM:
        if (fid === 0) return ret(a(0) === h.hartId ? SBI_ERR_ALREADY_AVAILABLE : SBI_ERR_INVALID_PARAM), true;
        if (fid === 1) return ret(SBI_ERR_FAILED), true; // the only hart can't stop
        if (fid === 2) return a(0) === h.hartId ? ret(SBI_SUCCESS, 0) : ret(SBI_ERR_INVALID_PARAM), true;
        if (fid === 3) return ret(SBI_ERR_NOT_SUPPORTED), true;
        break;
      case EXT_SRST:
        if (fid === 0) {
          const type = a(0);
          if (type > 2) return ret(SBI_ERR_INVALID_PARAM), true;
          // Reason 1 is "system failure": report it as a non-zero exit.
          this.host.systemReset(type === 0 ? 'shutdown' : 'reboot', a(1) === 1 ? 1 : 0);
          return ret(SBI_SUCCESS), true;
        }
        break;
      case EXT_DBCN:
        if (fid === 0 || fid === 1) {
          if (fid === 1) return ret(SBI_SUCCESS, 0), true; // no console input this way
          const len = Math.min(a(0), 4096);
          const bytes = this.host.readPhys(a(1) + a(2) * TWO_32, len);
          if (bytes === undefined) return ret(SBI_ERR_INVALID_PARAM), true;
          for (const b of bytes) this.host.putchar(b);
          return ret(SBI_SUCCESS, len), true;
        }
        if (fid === 2) {
          this.host.putchar(a(0) & 0xff);
          return ret(SBI_SUCCESS), true;
        }
        break;
    }
    ret(SBI_ERR_NOT_SUPPORTED);
    return true;
  }

  /** Whether (hart_mask, hart_mask_base) names this hart (SBI v2.0, 3.1: base -1 means all). */
  private targetsHart(h: HartState, mask: number, base: number): boolean {
    if (base === 2 ** 64 - 1 || base >= 2 ** 63) return true;
    const bit = h.hartId - base;
    return bit >= 0 && bit < 64 && Math.floor(mask / 2 ** bit) % 2 === 1;
  }
}
