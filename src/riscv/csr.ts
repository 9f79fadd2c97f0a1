/**
 * Control and status registers (Zicsr, unprivileged ch. 9; privileged spec 1.12 ch. 2-4).
 *
 * `csrAccess` performs one CSRRW/CSRRS/CSRRC(I): privilege and read-only checks (2.1: bits 9:8
 * give the lowest privilege, bits 11:10 = 3 mean read-only), the read, and the write with each
 * register's WARL masks and side effects. Unknown or inaccessible CSRs raise illegal instruction.
 */
import type { HartState } from './state.js';
import {
  C_MCAUSE, C_MENVCFG, C_MEPC, C_MSCRATCH, C_MTVAL, C_MTVEC, C_PMPADDR, C_SATP, C_SCAUSE, C_SENVCFG,
  C_SEPC, C_SSCRATCH, C_STVAL, C_STVEC, MS_FS, MS_MPP, MS_MPRV, MS_MXR, MS_SUM, MS_TVM,
} from './state.js';

export const CSR_RW = 1, CSR_RS = 2, CSR_RC = 3;

/** misa: MXL=2 (64-bit); extensions A C D F I M S U (3.1.1). Read-only. */
const MISA_LO = (1 << 0) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 8) | (1 << 12) | (1 << 18) | (1 << 20);
const MISA_HI = 0x80000000 | 0;

const MSTATUS_W = 0x7e79aa; // SIE MIE SPIE MPIE SPP MPP FS MPRV SUM MXR TVM TW TSR
const SSTATUS_MASK = 0x000de122; // SIE SPIE SPP FS SUM MXR (+ VS/XS/UBE which read as zero)
const MIE_W = 0xaaa;
const MIDELEG_W = 0x222;
const MEDELEG_W = 0xb3ff; // every synchronous cause except ECALL from M (11) and reserved ones
const SIP_W = 0x002; // SSIP
const MIP_W = 0x222; // SSIP STIP SEIP

function counterAllowed(h: HartState, bit: number): boolean {
  if (h.priv === 3) return true;
  if (((h.mcounteren >>> bit) & 1) === 0) return false;
  return h.priv === 1 || ((h.scounteren >>> bit) & 1) !== 0;
}

function setPair(h: HartState, idx: number, lo: number, hi: number): void {
  h.c64[idx] = lo; h.c64[idx + 1] = hi;
}

/** Reads CSR `csr`: low word returned, high word in h.th. Raises illegal if it does not exist. */
function read(h: HartState, csr: number): number {
  const c = h.c64;
  h.th = 0;
  switch (csr) {
    case 0x001: return h.fflags;
    case 0x002: return h.frm;
    case 0x003: return (h.frm << 5) | h.fflags;
    case 0x100: { // sstatus
      const v = h.mstatus & SSTATUS_MASK;
      h.th = 2 | ((h.mstatus & MS_FS) === MS_FS ? 0x80000000 | 0 : 0);
      return v;
    }
    case 0x104: return h.mie & h.mideleg;
    case 0x105: h.th = c[C_STVEC + 1]!; return c[C_STVEC]!;
    case 0x106: return h.scounteren;
    case 0x10a: h.th = c[C_SENVCFG + 1]!; return c[C_SENVCFG]!;
    case 0x140: h.th = c[C_SSCRATCH + 1]!; return c[C_SSCRATCH]!;
    case 0x141: h.th = c[C_SEPC + 1]!; return c[C_SEPC]!;
    case 0x142: h.th = c[C_SCAUSE + 1]!; return c[C_SCAUSE]!;
    case 0x143: h.th = c[C_STVAL + 1]!; return c[C_STVAL]!;
    case 0x144: return h.mip & h.mideleg;
    case 0x180: h.th = c[C_SATP + 1]!; return c[C_SATP]!;
    case 0x300: {
      h.th = 0xa | ((h.mstatus & MS_FS) === MS_FS ? 0x80000000 | 0 : 0); // UXL = SXL = 2, SD
      return h.mstatus;
    }
    case 0x301: h.th = MISA_HI; return MISA_LO;
    case 0x302: return h.medeleg;
    case 0x303: return h.mideleg;
    case 0x304: return h.mie;
    case 0x305: h.th = c[C_MTVEC + 1]!; return c[C_MTVEC]!;
    case 0x306: return h.mcounteren;
    case 0x30a: h.th = c[C_MENVCFG + 1]!; return c[C_MENVCFG]!;
    case 0x320: return 0; // mcountinhibit: hardwired to zero (counters always run)
    case 0x340: h.th = c[C_MSCRATCH + 1]!; return c[C_MSCRATCH]!;
    case 0x341: h.th = c[C_MEPC + 1]!; return c[C_MEPC]!;
    case 0x342: h.th = c[C_MCAUSE + 1]!; return c[C_MCAUSE]!;
    case 0x343: h.th = c[C_MTVAL + 1]!; return c[C_MTVAL]!;
    case 0x344: return h.mip;
    case 0x3a0: h.th = h.pmpcfg[1]!; return h.pmpcfg[0]!;
    case 0x3a2: h.th = h.pmpcfg[3]!; return h.pmpcfg[2]!;
    case 0xf11: case 0xf12: case 0xf13: case 0xf15: return 0;
    case 0xf14: return h.hartId;
    case 0xb00: case 0xc00: return splitNumber(h, h.instret + h.cycleOffset);
    case 0xb02: case 0xc02: return splitNumber(h, h.instret);
    case 0xc01: return splitNumber(h, h.time());
    default:
      if (csr >= 0x3b0 && csr <= 0x3ef) { // pmpaddr0..63: 16 implemented, the rest hardwired zero
        const i = csr - 0x3b0;
        if (i >= 16) return 0;
        h.th = c[C_PMPADDR + 2 * i + 1]!; return c[C_PMPADDR + 2 * i]!;
      }
      if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0xc03 && csr <= 0xc1f) || (csr >= 0x323 && csr <= 0x33f)) return 0;
      return h.raiseIllegal();
  }
}

function splitNumber(h: HartState, v: number): number {
  h.th = Math.floor(v / 4294967296) | 0;
  return v | 0;
}

const pairNumber = (lo: number, hi: number) => hi * 4294967296 + (lo >>> 0);

/** Writes CSR `csr` with value (lo, hi), applying WARL masks and side effects. */
function write(h: HartState, csr: number, lo: number, hi: number): void {
  switch (csr) {
    case 0x001: h.fflags = lo & 0x1f; h.mstatus |= MS_FS; return;
    case 0x002: h.frm = lo & 7; h.mstatus |= MS_FS; return;
    case 0x003: h.fflags = lo & 0x1f; h.frm = (lo >>> 5) & 7; h.mstatus |= MS_FS; return;
    case 0x100: setMstatus(h, (h.mstatus & ~SSTATUS_MASK) | (lo & SSTATUS_MASK)); return;
    case 0x104: h.mie = (h.mie & ~h.mideleg) | (lo & h.mideleg); return;
    case 0x105: setPair(h, C_STVEC, lo & ~2, hi); return;
    case 0x106: h.scounteren = lo; return;
    case 0x10a: setPair(h, C_SENVCFG, lo & 1, 0); return; // FIOM only
    case 0x140: setPair(h, C_SSCRATCH, lo, hi); return;
    case 0x141: setPair(h, C_SEPC, lo & ~1, hi); return;
    case 0x142: setPair(h, C_SCAUSE, lo, hi); return;
    case 0x143: setPair(h, C_STVAL, lo, hi); return;
    case 0x144: { const m = SIP_W & h.mideleg; h.mipSw = (h.mipSw & ~m) | (lo & m); return; }
    case 0x180: writeSatp(h, lo, hi); return;
    case 0x300: setMstatus(h, lo); return;
    case 0x301: return; // misa is read-only here (a legal WARL choice, 3.1.1)
    case 0x302: h.medeleg = lo & MEDELEG_W; return;
    case 0x303: h.mideleg = lo & MIDELEG_W; return;
    case 0x304: h.mie = lo & MIE_W; return;
    case 0x305: setPair(h, C_MTVEC, lo & ~2, hi); return;
    case 0x306: h.mcounteren = lo; return;
    case 0x30a: setPair(h, C_MENVCFG, lo & 1, 0); return;
    case 0x320: return;
    case 0x340: setPair(h, C_MSCRATCH, lo, hi); return;
    case 0x341: setPair(h, C_MEPC, lo & ~1, hi); return;
    case 0x342: setPair(h, C_MCAUSE, lo, hi); return;
    case 0x343: setPair(h, C_MTVAL, lo, hi); return;
    case 0x344: h.mipSw = (h.mipSw & ~MIP_W) | (lo & MIP_W); return;
    case 0x3a0: h.pmpcfg[0] = lo; h.pmpcfg[1] = hi; return;
    case 0x3a2: h.pmpcfg[2] = lo; h.pmpcfg[3] = hi; return;
    case 0xb00: h.cycleOffset = pairNumber(lo, hi) - h.instret; return;
    case 0xb02: h.instret = pairNumber(lo, hi); h.instretWritten = true; return;
    default:
      if (csr >= 0x3b0 && csr <= 0x3ef) {
        const i = csr - 0x3b0;
        if (i < 16) setPair(h, C_PMPADDR + 2 * i, lo, hi & 0x3fffff); // 54 bits
        return;
      }
      return; // hardwired-zero counters and events ignore writes
  }
}

function setMstatus(h: HartState, v: number): void {
  const old = h.mstatus;
  let n = (old & ~MSTATUS_W) | (v & MSTATUS_W);
  if (((n & MS_MPP) >>> 11) === 2) n = (n & ~MS_MPP) | (old & MS_MPP); // MPP is WARL: 2 is reserved
  h.mstatus = n;
  if (((old ^ n) & MS_MXR) !== 0) h.flushTlb();
  if (((old ^ n) & (MS_MPRV | MS_MPP | MS_SUM)) !== 0) h.updateModes(); // SUM picks a TLB set
}

/** satp (4.1.11): Bare (0) or Sv39 (8); a write with another MODE has no effect. */
function writeSatp(h: HartState, lo: number, hi: number): void {
  const mode = hi >>> 28;
  if (mode !== 0 && mode !== 8) return;
  setPair(h, C_SATP, lo, hi & 0xf000ffff); // ASID reads back as zero: ASIDLEN = 0
  h.satpMode = mode;
  h.satpPpn = (lo >>> 0) + (hi & 0xfff) * 4294967296;
  h.flushTlb();
  h.updateModes();
}

/**
 * One CSR instruction. `op` is CSR_RW/RS/RC; (srcLo, srcHi) the rs1 value or zero-extended uimm;
 * `doRead` false for CSRRW with rd = x0, `doWrite` false for CSRRS/C with rs1 = x0 / uimm = 0
 * (those forms have no read resp. write side effects, Zicsr 9.1). Returns the old value (hi in h.th).
 */
export function csrAccess(h: HartState, csr: number, op: number, srcLo: number, srcHi: number,
  doRead: boolean, doWrite: boolean): number {
  const minPriv = (csr >>> 8) & 3;
  if (h.priv < minPriv) h.raiseIllegal();
  if (doWrite && (csr >>> 10) === 3) h.raiseIllegal();
  // Floating-point CSRs need mstatus.FS != Off (3.1.6.6).
  if (csr <= 3 && (csr === 0 || (h.mstatus & MS_FS) === 0)) h.raiseIllegal();
  if (csr === 0x180 && h.priv === 1 && (h.mstatus & MS_TVM) !== 0) h.raiseIllegal();
  if ((csr >= 0xc00 && csr <= 0xc1f) && !counterAllowed(h, csr - 0xc00)) h.raiseIllegal();
  let oldLo = 0, oldHi = 0;
  if (doRead || op !== CSR_RW) { oldLo = read(h, csr); oldHi = h.th; }
  else read(h, csr); // existence check only
  if (doWrite) {
    let nl = srcLo, nh = srcHi;
    if (op === CSR_RS) { nl = oldLo | srcLo; nh = oldHi | srcHi; }
    else if (op === CSR_RC) { nl = oldLo & ~srcLo; nh = oldHi & ~srcHi; }
    write(h, csr, nl, nh);
  }
  h.th = oldHi;
  return oldLo;
}

export { MS_SUM, MS_MXR };
