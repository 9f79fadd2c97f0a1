/**
 * "A" extension (unprivileged spec ch. 8): LR/SC with a reservation, and the AMOs.
 * One hart, so every AMO is trivially atomic; aq/rl need no action. Operands must be naturally
 * aligned (8.4: misaligned LR raises load-address-misaligned, SC/AMO store/AMO-address-misaligned).
 */
import { lt64, ltu64 } from './alu.js';
import { ACC_R, ACC_W, type HartState } from './state.js';

/** LR.W / LR.D: load and register a reservation on the (RAM) address. */
export function loadReserved(h: HartState, rd: number, rs1: number, size: number): void {
  const o = h.amoOff(h.xl[rs1]!, h.xh[rs1]!, size, ACC_R);
  const dv = h.dv;
  const lo = dv.getInt32(o, true);
  h.xl[rd] = lo;
  h.xh[rd] = size === 8 ? dv.getInt32(o + 4, true) : lo >> 31;
  h.resValid = true;
  h.resLo = o | 0; // an int32 like every other state field (o may be computed as a double)
}

/** SC.W / SC.D: store if the reservation holds; rd = 0 on success, 1 on failure. Always clears it. */
export function storeConditional(h: HartState, rd: number, rs1: number, rs2: number, size: number): void {
  const o = h.amoOff(h.xl[rs1]!, h.xh[rs1]!, size, ACC_W);
  const ok = h.resValid && h.resLo === (o | 0);
  h.resValid = false;
  if (ok) {
    h.dv.setInt32(o, h.xl[rs2]!, true);
    if (size === 8) h.dv.setInt32(o + 4, h.xh[rs2]!, true);
  }
  h.xl[rd] = ok ? 0 : 1;
  h.xh[rd] = 0;
}

/** AMO<op>.W / .D with funct5 `f5`: rd = old value, memory = op(old, rs2). */
export function amo(h: HartState, rd: number, rs1: number, rs2: number, f5: number, size: number): void {
  const o = h.amoOff(h.xl[rs1]!, h.xh[rs1]!, size, ACC_W);
  const dv = h.dv;
  const al = dv.getInt32(o, true);
  const ah = size === 8 ? dv.getInt32(o + 4, true) : al >> 31;
  let bl = h.xl[rs2]!, bh = h.xh[rs2]!;
  if (size === 4) bh = bl >> 31;
  let rl: number, rh: number;
  switch (f5) {
    case 0x01: rl = bl; rh = bh; break; // AMOSWAP
    case 0x00: { // AMOADD
      rl = (al + bl) | 0;
      rh = (ah + bh + ((rl >>> 0) < (al >>> 0) ? 1 : 0)) | 0;
      break;
    }
    case 0x04: rl = al ^ bl; rh = ah ^ bh; break; // AMOXOR
    case 0x0c: rl = al & bl; rh = ah & bh; break; // AMOAND
    case 0x08: rl = al | bl; rh = ah | bh; break; // AMOOR
    case 0x10: [rl, rh] = lt64(al, ah, bl, bh) ? [al, ah] : [bl, bh]; break; // AMOMIN
    case 0x14: [rl, rh] = lt64(al, ah, bl, bh) ? [bl, bh] : [al, ah]; break; // AMOMAX
    case 0x18: // AMOMINU (W: compare the 32-bit values unsigned)
      if (size === 4) { rl = (al >>> 0) < (bl >>> 0) ? al : bl; rh = 0; }
      else [rl, rh] = ltu64(al, ah, bl, bh) ? [al, ah] : [bl, bh];
      break;
    default: // 0x1c AMOMAXU
      if (size === 4) { rl = (al >>> 0) < (bl >>> 0) ? bl : al; rh = 0; }
      else [rl, rh] = ltu64(al, ah, bl, bh) ? [bl, bh] : [al, ah];
      break;
  }
  dv.setInt32(o, rl, true);
  if (size === 8) dv.setInt32(o + 4, rh, true);
  h.xl[rd] = al;
  h.xh[rd] = ah;
}
