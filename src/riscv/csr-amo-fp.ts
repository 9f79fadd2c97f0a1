/**
 * The CSR, A and F/D instructions (ops 71..87), run with this one function by both engines: the
 * interpreter's loop (hart.ts) and the translator's `ex` import (Jit.exec), which calls it for
 * translated code, so the two cannot drift apart. What each engine does around it (bringing
 * instret up to date, leaving its loop after a CSR instruction or a device access, answering a
 * trap) stays with the engine. Exceptions are thrown as TRAP, as everywhere below the loop.
 */
import { amo, loadReserved, storeConditional } from './amo.js';
import { csrAccess } from './csr.js';
import { execFp, fpLoad, fpStore } from './fpu.js';
import type { HartState } from './state.js';

/**
 * Runs op 71..87 with the decoded fields (rd 32: x0, no write). For OP-FP (87) `imm` holds the
 * raw instruction, for CSR instructions the CSR number, for AMOs funct5.
 */
export function execCsrAmoFp(h: HartState, op: number, rd: number, rs1: number, rs2: number, imm: number): void {
  switch (op) {
    case 71: case 72: case 73: case 74: case 75: case 76: { // CSRRW CSRRS CSRRC CSRRWI CSRRSI CSRRCI
      const isImm = op >= 74, kind = isImm ? op - 73 : op - 70;
      const v = csrAccess(h, imm, kind, isImm ? rs1 : h.xl[rs1]!, isImm ? 0 : h.xh[rs1]!,
        kind !== 1 || rd !== 32, kind === 1 || rs1 !== 0);
      h.xl[rd] = v; h.xh[rd] = h.th;
      return;
    }
    case 77: // LR_W
      loadReserved(h, rd, rs1, 4); return;
    case 80: // LR_D
      loadReserved(h, rd, rs1, 8); return;
    case 78: // SC_W
      storeConditional(h, rd, rs1, rs2, 4); return;
    case 81: // SC_D
      storeConditional(h, rd, rs1, rs2, 8); return;
    case 79: // AMO_W
      amo(h, rd, rs1, rs2, imm, 4); return;
    case 82: // AMO_D
      amo(h, rd, rs1, rs2, imm, 8); return;
    case 83: // FLW
      fpLoad(h, rd, rs1, imm, 4); return;
    case 85: // FLD
      fpLoad(h, rd, rs1, imm, 8); return;
    case 84: // FSW
      fpStore(h, rs1, rs2, imm, 4); return;
    case 86: // FSD
      fpStore(h, rs1, rs2, imm, 8); return;
    case 87: // FP
      execFp(h, imm); return;
    default: throw new RangeError(`op ${op} is not a CSR, A or F/D instruction`);
  }
}
