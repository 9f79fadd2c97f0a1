/** The whole architectural state of a hart, for comparing the two engines. */
import type { Hart } from '../../../src/riscv/hart.js';

export function hartState(h: Hart) {
  return {
    pc: [h.pcLo, h.pcHi], instret: h.instret, priv: h.priv, mstatus: h.mstatus, fflags: h.fflags,
    x: Array.from(h.xl.subarray(0, 32)).map((l, i) => [l, h.xh[i]]), f: Array.from(h.fi), csr: Array.from(h.c64),
  };
}
