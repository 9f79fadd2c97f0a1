/**
 * Architectural state of one hart and everything around the instruction loop: memory access with
 * a software TLB, the decoded-code cache, trap entry and return, and interrupt delivery.
 * The loop itself is in hart.ts (class Hart extends HartState).
 *
 * Registers are int32 halves: x[i] = xh[i] * 2^32 + (xl[i] >>> 0). Slot 32 is a write-only
 * scratch used as the destination "x0" (see decode.ts).
 */
import type { Bus, Ram } from './bus.js';
import { EMPTY_BUS } from './bus.js';
import { ACC_R, ACC_W, ACC_X, ACCESS_FAULT, translate } from './mmu.js';

/** Thrown (and caught by the loop) to abandon the current instruction; details are in the hart. */
export const TRAP = { trap: true } as const;

// mstatus bits (priv spec 3.1.6)
export const MS_SIE = 1 << 1, MS_MIE = 1 << 3, MS_SPIE = 1 << 5, MS_MPIE = 1 << 7, MS_SPP = 1 << 8;
export const MS_MPP = 3 << 11, MS_FS = 3 << 13, MS_MPRV = 1 << 17, MS_SUM = 1 << 18, MS_MXR = 1 << 19;
export const MS_TVM = 1 << 20, MS_TW = 1 << 21, MS_TSR = 1 << 22;

// Interrupt bits in mip/mie (3.1.9)
export const IRQ_SSI = 1, IRQ_MSI = 3, IRQ_STI = 5, IRQ_MTI = 7, IRQ_SEI = 9, IRQ_MEI = 11;
/** Priority order for simultaneous interrupts (3.1.9): MEI, MSI, MTI, SEI, SSI, STI. */
const IRQ_ORDER = [IRQ_MEI, IRQ_MSI, IRQ_MTI, IRQ_SEI, IRQ_SSI, IRQ_STI];

// 64-bit CSRs kept as (lo, hi) pairs in `c64`
export const C_MTVEC = 0, C_STVEC = 2, C_MEPC = 4, C_SEPC = 6, C_MTVAL = 8, C_STVAL = 10;
export const C_MSCRATCH = 12, C_SSCRATCH = 14, C_MCAUSE = 16, C_SCAUSE = 18, C_MENVCFG = 20, C_SENVCFG = 22;
export const C_SATP = 24, C_PMPADDR = 26; // 16 pmpaddr pairs follow

const TLB_SIZE = 256;
/**
 * 0: no translation (M-mode or satp Bare), 1: S-mode data with mstatus.SUM clear (and S-mode
 * fetches), 2: U-mode, 3: S-mode data with SUM set. SUM picks a set instead of emptying the
 * TLB: Linux sets and clears it around every copy to or from user memory (71 k times in a
 * 32 MiB 9p read), and each flush made the next accesses walk the page table again.
 */
export const TLB_SETS = 4;
const TLB_BYTES = TLB_SIZE * TLB_SETS * 4;

/**
 * Byte layout of the state area a translator shares with the hart (HartOptions.state): the
 * integer registers as i64 (x_i at ST_X64 + 8i), which translated code works on while it runs,
 * then where translated code leaves its exit pc, then the registers as int32 halves (the
 * interpreter's), then the software TLB. Translated code addresses the area from a local that
 * holds its offset, so the registers and the exit record come first: their offsets fit in one or
 * two LEB128 bytes of every load and store (a cold boot's 63 page translations took 1.75 MB of
 * wasm with constant addresses and the registers last, 1.42 MB so).
 * The dispatcher copies the halves in when JavaScript calls it and back when it returns.
 */
export const ST_X64 = 0, ST_EXIT = 256, ST_XL = ST_EXIT + 64, ST_XH = ST_XL + 256, ST_TAGR = ST_XH + 256;
export const ST_PAR = ST_TAGR + TLB_BYTES, ST_TAGW = ST_PAR + TLB_BYTES, ST_PAW = ST_TAGW + TLB_BYTES;
export const ST_TAGX = ST_PAW + TLB_BYTES, ST_PAX = ST_TAGX + TLB_BYTES;
export const STATE_BYTES = ST_PAX + TLB_BYTES;

export interface HartOptions {
  ram: Ram;
  /**
   * Where the registers and TLB live: STATE_BYTES at `offset` of `buffer` (default: a buffer of
   * their own). The block translator puts them beside RAM in its WebAssembly.Memory.
   */
  state?: { buffer: ArrayBuffer; offset: number };
  bus?: Bus;
  hartId?: number;
  /** mtime, as the machine's timer sees it (read by the `time` CSR). Defaults to the instruction count. */
  time?: () => number;
}

/** A hart's architectural state as plain data (see HartState.saveState). */
export interface HartSnapshot {
  xl: number[]; xh: number[]; f: number[];
  pcLo: number; pcHi: number; priv: number;
  mstatus: number; medeleg: number; mideleg: number; mie: number; mipSw: number; mipExt: number;
  c64: number[]; mcounteren: number; scounteren: number; mcountinhibit: number;
  pmpcfg: number[]; satpMode: number; satpPpn: number; fflags: number; frm: number;
  instret: number; cycleOffset: number; resValid: boolean; resLo: number; resHi: number;
  waiting: boolean;
}

export class HartState {
  readonly xl: Int32Array;
  readonly xh: Int32Array;
  /** f registers: 64 bits each; fi views the same bytes as (lo, hi) int32 pairs (little-endian host). */
  readonly f64 = new Float64Array(32);
  readonly fi = new Int32Array(this.f64.buffer);
  pcLo = 0;
  pcHi = 0;
  /** 0 = U, 1 = S, 3 = M */
  priv = 3;

  readonly ram: Uint8Array;
  readonly ramBase: number;
  readonly ramSize: number;
  readonly dv: DataView;
  bus: Bus;
  readonly busOut = new Int32Array(2);
  readonly hartId: number;
  time: () => number;

  /** Decoded-instruction cache, one Int32Array(4096) per 4 KiB RAM page (2 words per parcel). */
  readonly decoded: (Int32Array | undefined)[];
  /** 1 for RAM pages that have decoded instructions, so a store to them drops the decoded copy. */
  readonly codeMark: Uint8Array;
  /**
   * The pages marked since the last FENCE.I, each once (`codeListed`), so FENCE.I visits those
   * rather than every page of RAM: the Linux boot runs a few thousand FENCE.I over 64 Ki pages.
   */
  private codeMarked: number[] = [];
  /** 1 for the pages in codeMarked. */
  private readonly codeListed: Uint8Array;
  /**
   * FENCE.I drops every decoded page. That keeps code written by devices (DMA into RAM, which
   * the hart does not see) correct without any hook; stores by the hart itself invalidate exactly.
   */
  fenceIFlushesAll = true;

  // Software TLB: tags are vpn+1 (0 = empty), values RAM offsets of the 4 KiB page.
  readonly tagR: Int32Array;
  readonly tagW: Int32Array;
  readonly tagX: Int32Array;
  readonly paR: Int32Array;
  readonly paW: Int32Array;
  readonly paX: Int32Array;
  /** Exit record of translated code: pc (lo, hi) and the exit reason. */
  readonly exitArea: Int32Array;
  /** Base index of the TLB set for data accesses (effective privilege, MPRV applied) and fetches. */
  dSet = 0;
  iSet = 0;

  // CSR state
  mstatus = 0; // low 32 bits; the high half (UXL, SXL = 2, SD) is computed on read
  medeleg = 0;
  mideleg = 0;
  mie = 0;
  /** software-writable pending bits (SSIP, STIP, SEIP) */
  mipSw = 0;
  /** pending bits driven by the machine (MSIP, MTIP, MEIP, SEIP, ...) via setInterruptLine */
  mipExt = 0;
  readonly c64 = new Int32Array(64);
  mcounteren = 0;
  scounteren = 0;
  mcountinhibit = 0;
  readonly pmpcfg = new Int32Array(4);
  satpMode = 0;
  /**
   * satp's PPN (up to 44 bits, so not always an int32). It starts as a non-integer and is set
   * to 0 in the constructor: V8 then keeps the field as a double from the first hart on, and a
   * guest's first satp write doesn't change every hart's hidden class (which threw away the
   * optimised interpreter loop and the TLB functions early in every boot: bench/README.md).
   */
  satpPpn = 0.5;
  fflags = 0;
  frm = 0;
  /** retired instructions; `cycle` is instret + cycleOffset */
  instret = 0;
  cycleOffset = 0;
  /** set by a CSR write to minstret so the loop re-bases its count */
  instretWritten = false;
  /** LR/SC reservation */
  resValid = false;
  resLo = 0;
  resHi = 0;
  /** set by WFI until an interrupt is pending */
  waiting = false;
  /**
   * Called for ECALL from S-mode that would trap to M-mode (not delegated). Return true when it
   * was handled (the instruction then completes; a TypeScript SBI lives here). Default: none, so
   * the spec's trap to M-mode is taken.
   */
  onEcallFromS: ((hart: HartState) => boolean) | undefined = undefined;

  // trap in flight
  tCause = 0;
  tvalLo = 0;
  tvalHi = 0;
  /** tval should be the bits of the instruction at pc (illegal instruction) */
  tvalInsn = false;
  /** second result word of helpers that return 64-bit values */
  th = 0;
  /**
   * Set when a load or store reached the bus: a device may have raised an interrupt line, so the
   * loop goes back to its interrupt check after that instruction instead of running on.
   */
  busTouched = false;

  /** Called when a RAM page's code is dropped (a store into it, FENCE.I, DMA): the translator listens. */
  onCodeDropped: ((page: number) => void) | undefined = undefined;
  /** Called by FENCE.I after the decoded pages are dropped (the translator re-checks its pages). */
  onFenceI: (() => void) | undefined = undefined;

  constructor(opts: HartOptions) {
    const st = opts.state ?? { buffer: new ArrayBuffer(STATE_BYTES), offset: 0 };
    if (st.offset % 8 !== 0 || st.offset + STATE_BYTES > st.buffer.byteLength) throw new RangeError('hart state area out of range');
    this.satpPpn = 0;
    const v = (at: number, n: number) => new Int32Array(st.buffer, st.offset + at, n);
    this.xl = v(ST_XL, 33); this.xh = v(ST_XH, 33);
    const t = TLB_SIZE * TLB_SETS;
    this.tagR = v(ST_TAGR, t); this.paR = v(ST_PAR, t); this.tagW = v(ST_TAGW, t);
    this.paW = v(ST_PAW, t); this.tagX = v(ST_TAGX, t); this.paX = v(ST_PAX, t);
    this.exitArea = v(ST_EXIT, 16);
    this.xl.fill(0); this.xh.fill(0); this.tagR.fill(0); this.tagW.fill(0); this.tagX.fill(0);
    this.ram = opts.ram.bytes;
    this.ramBase = opts.ram.base;
    this.ramSize = opts.ram.bytes.byteLength;
    if (this.ramSize % 4096 !== 0) throw new RangeError('RAM size must be a multiple of 4096');
    this.dv = new DataView(this.ram.buffer, this.ram.byteOffset, this.ramSize);
    this.codeMark = new Uint8Array(this.ramSize / 4096);
    this.codeListed = new Uint8Array(this.ramSize / 4096);
    // Allocated in full: a sparse array indexed by page number would be a dictionary in V8.
    this.decoded = new Array<Int32Array | undefined>(this.ramSize / 4096).fill(undefined);
    this.bus = opts.bus ?? EMPTY_BUS;
    this.hartId = opts.hartId ?? 0;
    this.time = opts.time ?? (() => this.instret);
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error('little-endian host required');
  }

  /**
   * The architectural state, as plain data for a snapshot: registers, pc, privilege, CSRs, FP
   * state, the LR/SC reservation, instret and WFI. Caches (TLB, decoded pages, translations) are
   * not state: they are rebuilt from RAM after {@link loadState}.
   */
  saveState(): HartSnapshot {
    return {
      xl: Array.from(this.xl.subarray(0, 32)), xh: Array.from(this.xh.subarray(0, 32)), f: Array.from(this.fi),
      pcLo: this.pcLo, pcHi: this.pcHi, priv: this.priv,
      mstatus: this.mstatus, medeleg: this.medeleg, mideleg: this.mideleg, mie: this.mie, mipSw: this.mipSw, mipExt: this.mipExt,
      c64: Array.from(this.c64), mcounteren: this.mcounteren, scounteren: this.scounteren, mcountinhibit: this.mcountinhibit,
      pmpcfg: Array.from(this.pmpcfg), satpMode: this.satpMode, satpPpn: this.satpPpn, fflags: this.fflags, frm: this.frm,
      instret: this.instret, cycleOffset: this.cycleOffset, resValid: this.resValid, resLo: this.resLo, resHi: this.resHi,
      waiting: this.waiting,
    };
  }

  /** Puts back what {@link saveState} gave; the TLB is emptied and the decoded-code cache dropped. */
  loadState(s: HartSnapshot): void {
    this.xl.set(s.xl, 0); this.xh.set(s.xh, 0); this.xl[32] = 0; this.xh[32] = 0; this.fi.set(s.f);
    this.pcLo = s.pcLo | 0; this.pcHi = s.pcHi | 0; this.priv = s.priv;
    this.mstatus = s.mstatus | 0; this.medeleg = s.medeleg | 0; this.mideleg = s.mideleg | 0; this.mie = s.mie | 0;
    this.mipSw = s.mipSw | 0; this.mipExt = s.mipExt | 0;
    this.c64.set(s.c64); this.mcounteren = s.mcounteren | 0; this.scounteren = s.scounteren | 0; this.mcountinhibit = s.mcountinhibit | 0;
    this.pmpcfg.set(s.pmpcfg); this.satpMode = s.satpMode; this.satpPpn = s.satpPpn; this.fflags = s.fflags; this.frm = s.frm;
    this.instret = s.instret; this.cycleOffset = s.cycleOffset; this.instretWritten = false;
    this.resValid = s.resValid; this.resLo = s.resLo | 0; this.resHi = s.resHi | 0; this.waiting = s.waiting;
    this.tagR.fill(0); this.tagW.fill(0); this.tagX.fill(0);
    for (let p = 0; p < this.codeMark.length; p++) if (this.codeMark[p] !== 0) this.onCodeDropped?.(p);
    this.codeMark.fill(0); this.decoded.fill(undefined); this.codeMarked = []; this.codeListed.fill(0);
    this.updateModes();
  }

  /** Sets the pc (64-bit value as lo/hi halves or a Number below 2^53). */
  setPc(lo: number, hi?: number): void {
    if (hi === undefined) { this.pcHi = Math.floor(lo / 4294967296) | 0; this.pcLo = lo | 0; }
    else { this.pcLo = lo | 0; this.pcHi = hi | 0; }
  }

  /** Drives an interrupt-pending bit from the machine (e.g. IRQ_MTI from the CLINT, IRQ_SEI from the PLIC). */
  setInterruptLine(bit: number, level: boolean): void {
    if (level) this.mipExt |= 1 << bit; else this.mipExt &= ~(1 << bit);
  }

  get mip(): number { return this.mipSw | this.mipExt; }

  /** Abandons the current instruction with exception `cause` (caught by the loop). */
  raise(cause: number, tvalLo: number, tvalHi: number): never {
    this.tCause = cause; this.tvalLo = tvalLo; this.tvalHi = tvalHi; this.tvalInsn = false;
    throw TRAP;
  }

  /** Illegal-instruction exception; tval becomes the instruction's bits (3.1.16). */
  raiseIllegal(): never {
    this.tCause = 2; this.tvalInsn = true;
    throw TRAP;
  }

  // ---------------------------------------------------------------- modes and TLB

  /** Recomputes the TLB sets after a change of privilege, mstatus.MPRV/MPP/SUM or satp. */
  updateModes(): void {
    const p = this.priv;
    const dp = p === 3 && (this.mstatus & MS_MPRV) !== 0 ? (this.mstatus >>> 11) & 3 : p;
    this.iSet = p === 3 || this.satpMode === 0 ? 0 : p === 1 ? TLB_SIZE : 2 * TLB_SIZE;
    this.dSet = dp === 3 || this.satpMode === 0 ? 0 : dp === 1 ? ((this.mstatus & MS_SUM) !== 0 ? 3 * TLB_SIZE : TLB_SIZE) : 2 * TLB_SIZE;
  }

  /** Empties the translated TLB sets (SFENCE.VMA, satp writes, MXR changes). */
  flushTlb(): void {
    const from = TLB_SIZE, to = TLB_SIZE * TLB_SETS;
    this.tagR.fill(0, from, to); this.tagW.fill(0, from, to); this.tagX.fill(0, from, to);
  }

  /** Data-access effective privilege (3.1.6.3 "MPRV"). */
  dataPriv(): number {
    return this.priv === 3 && (this.mstatus & MS_MPRV) !== 0 ? (this.mstatus >>> 11) & 3 : this.priv;
  }

  // ---------------------------------------------------------------- data access

  /** RAM offset for a load of `size` bytes at (lo, hi) if the TLB has it, else -1. */
  rOff(lo: number, hi: number, size: number): number {
    const vpn = ((hi & 0x7f) << 20) | (lo >>> 12);
    const i = this.dSet | (vpn & 255);
    return this.tagR[i] === vpn + 1 && ((hi << 25) >> 25) === hi && (lo & 0xfff) <= 4096 - size
      ? this.paR[i]! + (lo & 0xfff) : -1;
  }

  /** RAM offset for a store, as rOff. */
  wOff(lo: number, hi: number, size: number): number {
    const vpn = ((hi & 0x7f) << 20) | (lo >>> 12);
    const i = this.dSet | (vpn & 255);
    return this.tagW[i] === vpn + 1 && ((hi << 25) >> 25) === hi && (lo & 0xfff) <= 4096 - size
      ? this.paW[i]! + (lo & 0xfff) : -1;
  }

  /** Translates a data access and fills the TLB; returns the physical address. */
  private dataPa(lo: number, hi: number, acc: number): number {
    const pa = translate(this, lo, hi, acc, this.dataPriv());
    const ro = pa - this.ramBase;
    if (ro >= 0 && ro < this.ramSize) {
      const vpn = ((hi & 0x7f) << 20) | (lo >>> 12);
      const i = this.dSet | (vpn & 255);
      const page = ro - (ro & 0xfff);
      if (acc === ACC_R) { this.tagR[i] = vpn + 1; this.paR[i] = page; }
      // Pages holding decoded code stay out of the store TLB so every store to them invalidates.
      else if (this.codeMark[page >>> 12] === 0) { this.tagW[i] = vpn + 1; this.paW[i] = page; }
    }
    return pa;
  }

  /**
   * For translated code whose load or store missed the TLB: translates (lo, hi) and fills the
   * TLB as a slow-path access would, without taking a fault or touching a device. Returns 1 when
   * the access now hits the TLB, else 0 (a fault, MMIO, a code page for a store, a page-crossing
   * access: the interpreter then performs it).
   */
  tlbFill(lo: number, hi: number, acc: number, size: number): number {
    if ((lo & 0xfff) > 4096 - size) return 0;
    try {
      this.dataPa(lo, hi, acc);
    } catch (e) {
      if (e !== TRAP) throw e;
      return 0;
    }
    return (acc === ACC_R ? this.rOff(lo, hi, size) : this.wOff(lo, hi, size)) >= 0 ? 1 : 0;
  }

  /** Adds a small signed offset to (lo, hi); result lo returned, hi in this.th. */
  private addr(lo: number, hi: number, k: number): number {
    const r = (lo + k) | 0;
    this.th = (r >>> 0) < (lo >>> 0) ? (hi + 1) | 0 : hi;
    return r;
  }

  /**
   * Load of 1, 2, 4 or 8 bytes that missed the TLB: returns the low word (zero-extended for
   * sizes 1 and 2), the high word of an 8-byte load in this.th. Misaligned accesses work,
   * including across pages (3.6.3.2 permits it; faults report the address of the failing byte).
   */
  loadSlow(lo: number, hi: number, size: number): number {
    if ((lo & 0xfff) > 4096 - size) {
      let vl = 0, vh = 0;
      for (let k = size - 1; k >= 0; k--) {
        const bl = this.addr(lo, hi, k);
        const b = this.loadSlow(bl, this.th, 1);
        if (k >= 4) vh |= b << ((k - 4) * 8); else vl |= b << (k * 8);
      }
      this.th = vh;
      return vl;
    }
    const pa = this.dataPa(lo, hi, ACC_R);
    const ro = pa - this.ramBase;
    if (ro >= 0 && ro + size <= this.ramSize) {
      const dv = this.dv;
      this.th = 0;
      if (size === 1) return dv.getUint8(ro);
      if (size === 2) return dv.getUint16(ro, true);
      if (size === 4) return dv.getInt32(ro, true);
      this.th = dv.getInt32(ro + 4, true);
      return dv.getInt32(ro, true);
    }
    const out = this.busOut;
    out[0] = 0; out[1] = 0;
    this.busTouched = true;
    if (!this.bus.read(pa, size, out)) this.raise(ACCESS_FAULT[ACC_R], lo, hi);
    this.th = size === 8 ? out[1]! : 0;
    const v = out[0]!;
    return size === 1 ? v & 0xff : size === 2 ? v & 0xffff : v;
  }

  /** Store that missed the TLB (see loadSlow). A store to a code page drops its decoded copy. */
  storeSlow(lo: number, hi: number, size: number, vl: number, vh: number): void {
    if ((lo & 0xfff) > 4096 - size) {
      // Translate both pages first so a fault leaves memory untouched.
      const l2 = this.addr(lo, hi, size - 1);
      translate(this, l2, this.th, ACC_W, this.dataPriv());
      translate(this, lo, hi, ACC_W, this.dataPriv());
      for (let k = 0; k < size; k++) {
        const bl = this.addr(lo, hi, k);
        const b = k >= 4 ? vh >>> ((k - 4) * 8) : vl >>> (k * 8);
        this.storeSlow(bl, this.th, 1, b & 0xff, 0);
      }
      return;
    }
    const pa = this.dataPa(lo, hi, ACC_W);
    const ro = pa - this.ramBase;
    if (ro >= 0 && ro + size <= this.ramSize) {
      this.noteStore(ro);
      const dv = this.dv;
      if (size === 1) dv.setUint8(ro, vl & 0xff);
      else if (size === 2) dv.setUint16(ro, vl & 0xffff, true);
      else if (size === 4) dv.setInt32(ro, vl, true);
      else { dv.setInt32(ro, vl, true); dv.setInt32(ro + 4, vh, true); }
      return;
    }
    this.busTouched = true;
    if (!this.bus.write(pa, size, vl, vh)) this.raise(ACCESS_FAULT[ACC_W], lo, hi);
  }

  /**
   * RAM offset of an aligned AMO/LR/SC operand (A extension, 8.4: misaligned AMOs raise
   * address-misaligned; AMOs outside RAM raise an access fault since no device supports them).
   */
  amoOff(lo: number, hi: number, size: number, acc: number): number {
    if ((lo & (size - 1)) !== 0) this.raise(acc === ACC_R ? 4 : 6, lo, hi);
    const o = acc === ACC_R ? this.rOff(lo, hi, size) : this.wOff(lo, hi, size);
    if (o >= 0) return o;
    const pa = this.dataPa(lo, hi, acc);
    const ro = pa - this.ramBase;
    if (ro < 0 || ro + size > this.ramSize) this.raise(ACCESS_FAULT[acc]!, lo, hi);
    if (acc === ACC_W) this.noteStore(ro);
    return ro;
  }

  // ---------------------------------------------------------------- code cache

  /** Called for every store into RAM outside the store TLB: drops decoded code of that page. */
  noteStore(ro: number): void {
    const p = ro >>> 12;
    if (this.codeMark[p] !== 0) {
      this.codeMark[p] = 0;
      this.decoded[p]?.fill(0);
      this.onCodeDropped?.(p);
    }
  }

  /** Tells the hart that RAM [pa, pa+len) was written behind its back (device DMA). */
  invalidateCode(pa: number, len: number): void {
    const from = Math.max(0, pa - this.ramBase), to = Math.min(this.ramSize, pa - this.ramBase + len);
    for (let o = from - (from & 0xfff); o < to; o += 4096) this.noteStore(o);
  }

  /**
   * FENCE.I (Zifencei): forget all decoded code. Translated code is not dropped but put on
   * probation (onFenceI): the translator compares each page with its copy before it runs it again.
   */
  fenceI(): void {
    if (!this.fenceIFlushesAll) return;
    const dropped = this.onCodeDropped;
    this.onCodeDropped = undefined;
    try {
      const pages = this.codeMarked;
      this.codeMarked = [];
      for (const p of pages) { this.codeListed[p] = 0; this.noteStore(p * 4096); }
    } finally {
      this.onCodeDropped = dropped;
    }
    this.onFenceI?.();
  }

  /** Marks a RAM page as holding decoded code; removes store-TLB entries that point at it. */
  markCode(page: number): void {
    if (this.codeListed[page] === 0) { this.codeListed[page] = 1; this.codeMarked.push(page); }
    this.codeMark[page] = 1;
    const po = page * 4096, tags = this.tagW, pas = this.paW;
    for (let i = 0; i < tags.length; i++) if (tags[i] !== 0 && pas[i] === po) tags[i] = 0;
  }

  /** The decoded page for RAM page `page`, created empty on first use. */
  codePage(page: number): Int32Array {
    let d = this.decoded[page];
    if (d === undefined) { d = new Int32Array(4096); this.decoded[page] = d; }
    return d;
  }

  /** RAM offset of the page holding pc (lo, hi) for instruction fetch; fills the fetch TLB. */
  fetchPage(lo: number, hi: number): number {
    const vpn = ((hi & 0x7f) << 20) | (lo >>> 12);
    const i = this.iSet | (vpn & 255);
    if (this.tagX[i] === vpn + 1 && ((hi << 25) >> 25) === hi) return this.paX[i]!;
    const pa = translate(this, lo, hi, ACC_X, this.priv);
    const ro = pa - this.ramBase;
    // Execution is supported from RAM only: elsewhere it is an instruction access fault.
    if (ro < 0 || ro >= this.ramSize) this.raise(ACCESS_FAULT[ACC_X], lo, hi);
    const page = ro - (ro & 0xfff);
    this.tagX[i] = vpn + 1; this.paX[i] = page;
    return page;
  }

  /** The 16 bits at virtual address (lo, hi) for instruction fetch. */
  fetch16(lo: number, hi: number): number {
    return this.dv.getUint16(this.fetchPage(lo, hi) + (lo & 0xfff), true);
  }

  /** The instruction bits at pc (for tval of an illegal instruction). */
  insnBitsAtPc(): number {
    try {
      const h0 = this.fetch16(this.pcLo, this.pcHi);
      if ((h0 & 3) !== 3) return h0;
      const l2 = this.addr(this.pcLo, this.pcHi, 2);
      return (h0 | (this.fetch16(l2, this.th) << 16)) >>> 0;
    } catch (e) {
      if (e !== TRAP) throw e;
      return 0;
    }
  }

  // ---------------------------------------------------------------- traps

  /**
   * Enters the trap handler for `cause` (3.1.7-3.1.8, 4.1.1): delegated to S-mode when the trap
   * happens in S or U mode and the medeleg/mideleg bit is set, else taken in M-mode.
   */
  trapEnter(cause: number, isInterrupt: boolean, tvalLo: number, tvalHi: number): void {
    const deleg = this.priv <= 1 && (((isInterrupt ? this.mideleg : this.medeleg) >>> cause) & 1) !== 0;
    const c = this.c64;
    let ms = this.mstatus;
    let tv: number;
    if (deleg) {
      c[C_SEPC] = this.pcLo; c[C_SEPC + 1] = this.pcHi;
      c[C_SCAUSE] = cause; c[C_SCAUSE + 1] = isInterrupt ? 0x80000000 | 0 : 0;
      c[C_STVAL] = tvalLo; c[C_STVAL + 1] = tvalHi;
      ms = (ms & ~(MS_SPIE | MS_SIE | MS_SPP)) | ((ms & MS_SIE) << 4) | (this.priv << 8);
      this.priv = 1;
      tv = C_STVEC;
    } else {
      c[C_MEPC] = this.pcLo; c[C_MEPC + 1] = this.pcHi;
      c[C_MCAUSE] = cause; c[C_MCAUSE + 1] = isInterrupt ? 0x80000000 | 0 : 0;
      c[C_MTVAL] = tvalLo; c[C_MTVAL + 1] = tvalHi;
      ms = (ms & ~(MS_MPIE | MS_MIE | MS_MPP)) | ((ms & MS_MIE) << 4) | (this.priv << 11);
      this.priv = 3;
      tv = C_MTVEC;
    }
    this.mstatus = ms;
    const base = c[tv]! & ~3;
    // Vectored mode (mode 1): interrupts go to BASE + 4*cause (3.1.7).
    this.pcLo = (c[tv]! & 1) !== 0 && isInterrupt ? (base + 4 * cause) | 0 : base;
    this.pcHi = c[tv + 1]!;
    this.updateModes();
  }

  /** Takes the exception recorded by raise()/raiseIllegal(); pc must be the faulting instruction. */
  takeTrap(): void {
    if (this.tvalInsn) { this.tvalLo = this.insnBitsAtPc() | 0; this.tvalHi = 0; }
    this.trapEnter(this.tCause, false, this.tvalLo, this.tvalHi);
  }

  /**
   * Takes the highest-priority pending and enabled interrupt, if any (3.1.9): M-level ones when
   * running below M or with mstatus.MIE; delegated ones when below S or in S with mstatus.SIE.
   */
  checkInterrupts(): boolean {
    const pending = (this.mipSw | this.mipExt) & this.mie;
    if (pending === 0) return false;
    const m = pending & ~this.mideleg;
    let chosen = 0;
    if (m !== 0 && (this.priv < 3 || (this.mstatus & MS_MIE) !== 0)) chosen = m;
    else {
      const s = pending & this.mideleg;
      if (s !== 0 && (this.priv === 0 || (this.priv === 1 && (this.mstatus & MS_SIE) !== 0))) chosen = s;
    }
    if (chosen === 0) return false;
    for (const bit of IRQ_ORDER) {
      if ((chosen >>> bit) & 1) {
        this.waiting = false;
        this.trapEnter(bit, true, 0, 0);
        return true;
      }
    }
    return false;
  }

  /** MRET (3.3.2). */
  mret(): void {
    const ms = this.mstatus;
    const mpp = (ms >>> 11) & 3;
    let n = (ms & ~(MS_MIE | MS_MPP)) | ((ms & MS_MPIE) >>> 4) | MS_MPIE;
    if (mpp !== 3) n &= ~MS_MPRV;
    this.mstatus = n;
    this.priv = mpp;
    this.pcLo = this.c64[C_MEPC]! & ~1; this.pcHi = this.c64[C_MEPC + 1]!;
    this.updateModes();
  }

  /** SRET (3.3.2); the caller checks privilege and TSR. */
  sret(): void {
    const ms = this.mstatus;
    const spp = (ms >>> 8) & 1;
    this.mstatus = ((ms & ~(MS_SIE | MS_SPP)) | ((ms & MS_SPIE) >>> 4) | MS_SPIE) & ~MS_MPRV;
    this.priv = spp;
    this.pcLo = this.c64[C_SEPC]! & ~1; this.pcHi = this.c64[C_SEPC + 1]!;
    this.updateModes();
  }
}

export { ACC_R, ACC_W, ACC_X };
