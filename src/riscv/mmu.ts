/**
 * Sv39 address translation (privileged spec 1.12, section 4.3 "Sv32", 4.4 "Sv39").
 *
 * `translate` is the slow path behind the hart's TLB: it walks the page table in RAM, checks
 * permissions for the effective privilege, updates the A and D bits in hardware (4.3.1 allows
 * either this or a page fault; Linux works with both), and returns the physical address.
 * Faults are raised through `h.raise`, with the cause that matches the access:
 * instruction/load/store page fault (12/13/15) for translation failures, access fault (1/5/7)
 * for a page-table entry outside RAM or a physical address nothing answers.
 */
import type { HartState } from './state.js';

export const ACC_R = 0, ACC_W = 1, ACC_X = 2;
export const PAGE_FAULT = [13, 15, 12] as const;
export const ACCESS_FAULT = [5, 7, 1] as const;

const PTE_V = 1, PTE_R = 2, PTE_W = 4, PTE_X = 8, PTE_U = 16, PTE_A = 64, PTE_D = 128;
const MSTATUS_SUM = 1 << 18, MSTATUS_MXR = 1 << 19;
const TWO32 = 4294967296;

/**
 * Translates virtual address (lo, hi) for access `acc` at privilege `priv` (already the effective
 * one: MPRV is applied by the caller). Returns the physical address as a Number.
 */
export function translate(h: HartState, lo: number, hi: number, acc: number, priv: number): number {
  if (priv === 3 || h.satpMode === 0) {
    // Bare: the physical address is the 64-bit value; ours are below 2^56 (4.1.11 "satp").
    if (hi < 0 || hi >= 0x1000000) h.raise(ACCESS_FAULT[acc]!, lo, hi);
    return hi * TWO32 + (lo >>> 0);
  }
  // Sv39: bits 63..39 must all equal bit 38, or the address is invalid (4.4.1) -> page fault.
  if (((hi << 25) >> 25) !== hi) h.raise(PAGE_FAULT[acc]!, lo, hi);
  const vpn = [(lo >>> 12) & 0x1ff, (lo >>> 21) & 0x1ff, ((hi & 0x7f) << 2) | (lo >>> 30)];
  let a = h.satpPpn * 4096;
  const dv = h.dv;
  for (let i = 2; i >= 0; i--) {
    const pteAddr = a + vpn[i]! * 8;
    const ro = pteAddr - h.ramBase;
    // A PTE outside RAM is an access fault of the original access type (4.3.2 step 2).
    if (ro < 0 || ro + 8 > h.ramSize) h.raise(ACCESS_FAULT[acc]!, lo, hi);
    let pteLo = dv.getInt32(ro, true);
    const pteHi = dv.getInt32(ro + 4, true);
    // Bits 63..54 are N, PBMT and reserved: without Svnapot/Svpbmt they must be zero (4.4.1).
    if ((pteLo & PTE_V) === 0 || ((pteLo & PTE_R) === 0 && (pteLo & PTE_W) !== 0) || (pteHi >>> 22) !== 0) {
      h.raise(PAGE_FAULT[acc]!, lo, hi);
    }
    const ppn = (pteLo >>> 10) + (pteHi & 0x3fffff) * 4194304;
    if ((pteLo & (PTE_R | PTE_X)) === 0) { // pointer to the next level
      if (i === 0) h.raise(PAGE_FAULT[acc]!, lo, hi);
      a = ppn * 4096;
      continue;
    }
    // Leaf: permission checks (4.3.2 step 5).
    const ms = h.mstatus;
    if (acc === ACC_X) {
      if ((pteLo & PTE_X) === 0) h.raise(PAGE_FAULT[acc]!, lo, hi);
      // S-mode never executes from U pages, whatever SUM says (4.3.1 "SUM").
      if (priv === 0 ? (pteLo & PTE_U) === 0 : (pteLo & PTE_U) !== 0) h.raise(PAGE_FAULT[acc]!, lo, hi);
    } else {
      if (priv === 0 && (pteLo & PTE_U) === 0) h.raise(PAGE_FAULT[acc]!, lo, hi);
      if (priv === 1 && (pteLo & PTE_U) !== 0 && (ms & MSTATUS_SUM) === 0) h.raise(PAGE_FAULT[acc]!, lo, hi);
      if (acc === ACC_R) {
        const readable = (pteLo & PTE_R) !== 0 || ((ms & MSTATUS_MXR) !== 0 && (pteLo & PTE_X) !== 0);
        if (!readable) h.raise(PAGE_FAULT[acc]!, lo, hi);
      } else if ((pteLo & PTE_W) === 0) h.raise(PAGE_FAULT[acc]!, lo, hi);
    }
    // A misaligned superpage is a page fault (4.3.2 step 6).
    const span = i === 0 ? 1 : i === 1 ? 512 : 262144;
    if (ppn % span !== 0) h.raise(PAGE_FAULT[acc]!, lo, hi);
    // Hardware A/D update (4.3.2 step 7): set A, and D on a store.
    const want = PTE_A | (acc === ACC_W ? PTE_D : 0);
    if ((pteLo & want) !== want) {
      pteLo |= want;
      dv.setInt32(ro, pteLo, true);
      h.noteStore(ro);
    }
    const inPage = i === 0 ? (lo & 0xfff) : i === 1 ? (lo & 0x1fffff) : (lo & 0x3fffffff);
    return ppn * 4096 + inPage;
  }
  return h.raise(PAGE_FAULT[acc]!, lo, hi);
}
