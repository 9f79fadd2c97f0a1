/**
 * The instruction loop of one RV64GC hart.
 *
 * Structure (chosen for V8, see bench/cpu-regs.ts and ops.ts):
 * - The outer loop handles interrupts and finds the decoded page for pc (fetch TLB, then the
 *   per-RAM-page cache of decoded instructions, filled lazily one parcel at a time).
 * - The inner loop runs within that page, keeping pc as (pageLo + off, pch) in locals. Branches
 *   and jumps inside the page just move `off`; leaving the page, or any instruction that can
 *   change privilege, translation or interrupt enables, stores pc and goes back to the outer loop.
 * - Exceptions are thrown as TRAP from anywhere below; the catch stores pc = the faulting
 *   instruction and enters the trap handler (priv spec 3.1.15 for the epc/tval rules).
 * - `instret` lags behind inside `run` and is brought up to date (base + n - 1) before everything
 *   that may observe it: CSR instructions, slow-path loads and stores (a device may be reached;
 *   a deterministic machine's mtime follows instret), F/D loads and stores, ECALL (the SBI timer).
 *   Translated code does none of these itself (it leaves them to this loop, or runs non-counter
 *   CSRs, which read no count), so both engines show the same counts and times.
 * A later block translator can hang compiled functions off the same decoded pages.
 */
import { div32, div64, lt64, ltu64, mul64, mulh64, shift64 } from './alu.js';
import { execCsrAmoFp } from './csr-amo-fp.js';
import { decode16, decode32 } from './decode.js';
import { createWasmRam, EXIT_INTERPRET, Jit, JitUnavailableError } from './jit.js';
import { HartState, MS_TSR, MS_TVM, MS_TW, TRAP, type HartOptions } from './state.js';
import { loadWarmUp, WARMUP_BUS, WARMUP_RAM } from './warmup.js';
import type { WasmMemory } from './wasm.js';
import { CPU_ENGINES, type CpuEngine } from './engine.js';

/** Kept here for code that imported the engine names from hart.js before engine.ts existed. */
export { CPU_ENGINES, type CpuEngine };

const TWO32 = 4294967296;

export interface HartRunOptions extends HartOptions {
  /** RAM; for the 'wasm' engine it must come from createWasmRam (it carries its WebAssembly.Memory). */
  ram: HartOptions['ram'] & { memory?: WasmMemory };
  /** Default 'interp'. */
  engine?: CpuEngine;
  /** 'wasm': entries into a pc before its page is translated (default 4096; tests use 1 to translate everything). */
  hotThreshold?: number;
  /** 'wasm': translated pages kept before the translation cache is emptied (default 2048). */
  maxRegions?: number;
  /** 'wasm': hot pages compiled together in one module (default 4; 1 compiles each at once). */
  batch?: number;
  /** 'wasm': instructions interpreted in a page before it is translated anyway (default 262144). */
  hotWork?: number;
}

/**
 * Whether a taken jump or branch to page offset `t` stays in the interpreter's inner loop: the
 * target is in the page and, with the translator, has no translated code and has not just
 * become hot (the branch counts an entry into it in `heat`); otherwise the outer loop, where
 * translated code is entered, takes over.
 */
function staysIn(t: number, regions: unknown[] | undefined, heat: Uint16Array | undefined, hot: number): boolean {
  return t >= 0 && t < 4096 && (heat === undefined || (regions?.[t >>> 1] === undefined && ++heat[t >>> 1]! < hot));
}

/** Engines whose paths the warm-up program has run in this process. */
const warmed = new Set<CpuEngine>();
/**
 * Instructions a resumed hart (one whose first `run` starts with instret > 0: a restore) runs
 * before the warm-up: a boot-cache restore's whole run is fewer. A hart that starts at
 * instret 0 (a boot) warms up at its first `run`, before V8 first optimises the loop.
 */
const WARM_AFTER = 1_000_000;
/** The warm-up interpreter's SBI (see warmUp). */
const warmSbi = (h: HartState): boolean => h.xl[17] === 1;

export class Hart extends HartState {
  /** The block translator, when the engine is 'wasm'. */
  readonly jit: Jit | undefined;

  constructor(opts: HartRunOptions) {
    const engine = opts.engine ?? 'interp';
    if (!CPU_ENGINES.includes(engine)) throw new RangeError(`unknown CPU engine '${String(engine)}'`);
    let stateOffset = 0;
    if (engine === 'wasm') {
      const m = opts.ram.memory;
      if (m === undefined || m.buffer !== opts.ram.bytes.buffer || opts.ram.bytes.byteOffset !== 0) {
        throw new JitUnavailableError("the 'wasm' engine needs RAM made by createWasmRam");
      }
      stateOffset = opts.ram.bytes.byteLength;
      super({ ...opts, state: { buffer: m.buffer, offset: stateOffset } });
      this.jit = new Jit(this, m, stateOffset, opts.hotThreshold, opts.maxRegions, opts.batch, opts.hotWork);
    } else {
      super(opts);
      this.jit = undefined;
    }
    this.engine = engine;
    this.coldLeft = warmed.has(engine) ? -1 : WARM_AFTER;
  }

  private readonly engine: CpuEngine;

  /** Whether this process has run the warm-up program for `engine` yet. */
  static warmedUp(engine: CpuEngine): boolean {
    return warmed.has(engine);
  }
  /**
   * Instructions this hart still runs before the process's warm-up (-1: done or not needed).
   * For a resumed hart the warm-up waits for them so that a short run, such as a boot-cache
   * restore that has a few hundred thousand instructions left, doesn't pay for it; a long one
   * gets it well before V8 has settled on its optimised code. A boot doesn't wait: its first
   * TurboFan compile of the loop comes within its first slice, and one made before the warm-up
   * is thrown away again (cold `run -- true`, bench/README.md: 1.58-1.69 s eager against
   * 1.67-2.14 s deferred, 3 alternating rounds).
   */
  private coldLeft: number;

  /**
   * Runs the warm-up program (warmup.ts) once per process and engine, in a hart of its own, so
   * the interpreter's loop (and with 'wasm' the translator's paths) has type feedback for every
   * kind of instruction before V8 settles on its optimised code. It runs at the start of a
   * booting hart's first `run` call, or of a resumed hart's first `run` after WARM_AFTER
   * instructions. A host may run it earlier, while it waits for something else (src/node/launch.ts
   * does, while the kernel is inflated); it runs once per process and engine either way.
   */
  static warmUp(engine: CpuEngine): void {
    const base = 0x8000_0000;
    // With 'wasm', a second translator too, run only until its code has run: the loop's call
    // into translated code then has seen two translators' dispatchers, so V8 does not tie its
    // optimised loop to the first one and throw it away at the guest's first translated block.
    const runs: CpuEngine[] = engine === 'wasm' ? ['interp', 'wasm', 'wasm'] : ['interp'];
    const ranHere = new Set<CpuEngine>();
    for (const e of runs) {
      const again = ranHere.has(e);
      if (!again && warmed.has(e)) continue; // another hart of this process ran it already
      warmed.add(e);
      ranHere.add(e);
      const ram = e === 'wasm' ? createWasmRam(base, WARMUP_RAM) : { base, bytes: new Uint8Array(WARMUP_RAM) };
      const h = new Hart({ ram, bus: WARMUP_BUS, engine: e, hotThreshold: 2, batch: 1, hotWork: 64 });
      // As a machine's SBI: takes the ecalls with a7 = 1. Two functions, one per warm-up hart, so
      // the loop's call to it has seen more than one before the machine's own arrives.
      h.onEcallFromS = e === 'interp' ? warmSbi : (x) => x.xl[17] === 1;
      loadWarmUp(h, ram.bytes);
      for (let i = 0; i < 64 && !h.waiting && !(again && h.jit!.stats.retired > 0); i++) h.run(1 + i * 29);
    }
  }

  /** Sets pc to pageLo + t (t may leave the page) with the 64-bit carry into the high half. */
  private setPcRel(pageLo: number, pch: number, t: number): void {
    const r = (pageLo >>> 0) + t;
    this.pcLo = r | 0;
    this.pcHi = (pch + Math.floor(r / TWO32)) | 0;
  }

  /**
   * Decodes the parcel at `off` of a page and caches it. A 32-bit instruction whose second half
   * lies on the next page is decoded from both pages but not cached (its upper half may change
   * mapping independently).
   */
  private decodeSlot(page: Int32Array, ramPage: number, off: number, pageLo: number, pch: number): number {
    const ro = ramPage * 4096 + off;
    const h0 = this.dv.getUint16(ro, true);
    if ((h0 & 3) === 3 && off === 4094) {
      const r = (pageLo >>> 0) + 4096;
      const hi16 = this.fetch16(r | 0, (pch + Math.floor(r / TWO32)) | 0);
      const d = decode32((h0 | (hi16 << 16)) >>> 0);
      this.th = d.imm;
      return d.w;
    }
    const d = (h0 & 3) === 3 ? decode32(this.dv.getInt32(ro, true) >>> 0) : decode16(h0);
    if (this.codeMark[ramPage] === 0) this.markCode(ramPage);
    page[off] = d.w;
    page[off + 1] = d.imm;
    this.th = d.imm;
    return d.w;
  }

  /**
   * Runs until `limit` instructions have retired, or the hart waits in WFI with nothing pending.
   * Returns the number retired. Interrupt lines set between calls are seen at the next call.
   */
  run(limit: number): number {
    if (this.coldLeft === 0 || (this.coldLeft === WARM_AFTER && this.instret === 0)) {
      this.coldLeft = -1;
      Hart.warmUp(this.engine);
    }
    const xl = this.xl, xh = this.xh, dv = this.dv;
    let n = 0;
    let base = this.instret;
    const jit = this.jit;
    // With the translator, a taken branch inside the page goes back to the outer loop (where
    // regions are entered) when its target has a region or has just become hot; else it stays.
    let jRegions: unknown[] | undefined, jHeat: Uint16Array | undefined;
    const hot = jit === undefined ? 0 : jit.hotThreshold;
    let interpretNext = false;
    // Traps taken in this call: a trap vector whose first instruction traps again retires
    // nothing, so the call also ends after `limit` traps and the host gets control back.
    let traps = 0;
    // The interpreter's current trip through one page (charged to Jit.charge when it ends).
    let tripPage = -1, tripN = 0, tripLo = 0, tripHi = 0;
    outer: while (n < limit) {
      if (tripPage >= 0) { jit!.charge(tripPage, n - tripN, tripLo, tripHi); tripPage = -1; }
      const pending = (this.mipSw | this.mipExt) & this.mie;
      if (this.waiting) {
        if (pending === 0) break; // WFI: nothing locally enabled is pending (3.3.3)
        this.waiting = false;
      }
      if (pending !== 0) this.checkInterrupts();
      const pch = this.pcHi;
      const pcl = this.pcLo;
      let pageOff: number;
      try {
        pageOff = this.fetchPage(pcl, pch);
      } catch (e) {
        if (e !== TRAP) throw e;
        this.takeTrap();
        if (++traps >= limit) break;
        continue;
      }
      const ramPage = pageOff >>> 12;
      const pageLo = pcl & ~0xfff;
      let off = pcl & 0xfff;
      if (jit !== undefined) {
        if (interpretNext) interpretNext = false;
        else {
          const slot = jit.find(ramPage, off, pageLo, pch);
          if (slot >= 0) {
            const got = jit.call(slot, this.dSet, limit - n, jit.block, this.iSet);
            n += got;
            jit.stats.retired += got;
            jit.stats.entered++;
            const ex = this.exitArea;
            this.pcLo = ex[0]!; this.pcHi = ex[1]!;
            interpretNext = ex[2] === EXIT_INTERPRET;
            continue;
          }
        }
        jRegions = jit.regionsOf(ramPage);
        jHeat = jit.heatOf(ramPage);
        tripPage = ramPage; tripN = n; tripLo = pageLo; tripHi = pch;
      }
      // Decoded only once the interpreter runs here: pages that run only as wasm need none.
      const page = this.codePage(ramPage);
      try {
        for (;;) {
          if (n >= limit) { this.pcLo = pageLo | off; break outer; }
          let w = page[off]!, imm = page[off + 1]!;
          if (w === 0) { w = this.decodeSlot(page, ramPage, off, pageLo, pch); imm = this.th; }
          n++;
          const rd = (w >>> 8) & 63, rs1 = (w >>> 14) & 31, rs2 = (w >>> 19) & 31;
          switch (w & 0xff) {
            case 89: // MV
              xl[rd] = xl[rs1]!; xh[rd] = xh[rs1]!; break;
            case 22: { // ADDI
              const a = xl[rs1]!, r = (a + imm) | 0;
              xh[rd] = (xh[rs1]! + (imm >> 31) + ((r >>> 0) < (a >>> 0) ? 1 : 0)) | 0; xl[rd] = r; break;
            }
            case 31: { // ADD
              const a = xl[rs1]!, r = (a + xl[rs2]!) | 0;
              xh[rd] = (xh[rs1]! + xh[rs2]! + ((r >>> 0) < (a >>> 0) ? 1 : 0)) | 0; xl[rd] = r; break;
            }
            case 32: { // SUB
              const a = xl[rs1]!, b = xl[rs2]!;
              xh[rd] = (xh[rs1]! - xh[rs2]! - ((a >>> 0) < (b >>> 0) ? 1 : 0)) | 0; xl[rd] = (a - b) | 0; break;
            }
            case 1: // LUI
              xl[rd] = imm; xh[rd] = imm >> 31; break;
            case 2: { // AUIPC
              const r = (pageLo >>> 0) + off + imm;
              xl[rd] = r | 0; xh[rd] = (pch + Math.floor(r / TWO32)) | 0; break;
            }
            case 3: { // JAL
              const lr = (pageLo >>> 0) + off + 4 - ((w >>> 23) & 2);
              xl[rd] = lr | 0; xh[rd] = lr >= TWO32 ? (pch + 1) | 0 : pch;
              const t = off + imm;
              if (staysIn(t, jRegions, jHeat, hot)) { off = t; continue; }
              this.setPcRel(pageLo, pch, t); continue outer;
            }
            case 4: { // JALR
              const bl = xl[rs1]!, al = (bl + imm) | 0;
              const ah = (xh[rs1]! + (imm >> 31) + ((al >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
              const lr = (pageLo >>> 0) + off + 4 - ((w >>> 23) & 2);
              xl[rd] = lr | 0; xh[rd] = lr >= TWO32 ? (pch + 1) | 0 : pch;
              if (ah === pch && (al & ~0xfff) === pageLo && staysIn(al & 0xffe, jRegions, jHeat, hot)) { off = al & 0xffe; continue; }
              this.pcLo = al & ~1; this.pcHi = ah; continue outer;
            }
            case 5: // BEQ
              if (xl[rs1] === xl[rs2] && xh[rs1] === xh[rs2]) {
                const t = off + imm;
                if (staysIn(t, jRegions, jHeat, hot)) { off = t; continue; }
                this.setPcRel(pageLo, pch, t); continue outer;
              }
              break;
            case 6: // BNE
              if (xl[rs1] !== xl[rs2] || xh[rs1] !== xh[rs2]) {
                const t = off + imm;
                if (staysIn(t, jRegions, jHeat, hot)) { off = t; continue; }
                this.setPcRel(pageLo, pch, t); continue outer;
              }
              break;
            case 7: // BLT
              if (lt64(xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!)) {
                const t = off + imm;
                if (staysIn(t, jRegions, jHeat, hot)) { off = t; continue; }
                this.setPcRel(pageLo, pch, t); continue outer;
              }
              break;
            case 8: // BGE
              if (!lt64(xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!)) {
                const t = off + imm;
                if (staysIn(t, jRegions, jHeat, hot)) { off = t; continue; }
                this.setPcRel(pageLo, pch, t); continue outer;
              }
              break;
            case 9: // BLTU
              if (ltu64(xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!)) {
                const t = off + imm;
                if (staysIn(t, jRegions, jHeat, hot)) { off = t; continue; }
                this.setPcRel(pageLo, pch, t); continue outer;
              }
              break;
            case 10: // BGEU
              if (!ltu64(xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!)) {
                const t = off + imm;
                if (staysIn(t, jRegions, jHeat, hot)) { off = t; continue; }
                this.setPcRel(pageLo, pch, t); continue outer;
              }
              break;
            case 11: case 12: case 13: case 14: case 15: case 16: case 17: { // LB LH LW LD LBU LHU LWU
              const bl = xl[rs1]!, al = (bl + imm) | 0;
              const ah = (xh[rs1]! + (imm >> 31) + ((al >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
              const op = w & 0xff;
              const size = op === 14 ? 8 : op === 13 || op === 17 ? 4 : op === 12 || op === 16 ? 2 : 1;
              const o = this.rOff(al, ah, size);
              if (op === 14) {
                if (o >= 0) { xl[rd] = dv.getInt32(o, true); xh[rd] = dv.getInt32(o + 4, true); }
                else { this.instret = base + n - 1; const v = this.loadSlow(al, ah, 8); xl[rd] = v; xh[rd] = this.th; }
                if (this.busTouched) { this.busTouched = false; this.setPcRel(pageLo, pch, off + 4 - ((w >>> 23) & 2)); continue outer; }
                break;
              }
              let v: number;
              if (o >= 0) v = size === 4 ? dv.getInt32(o, true) : size === 2 ? dv.getUint16(o, true) : dv.getUint8(o);
              else { this.instret = base + n - 1; v = this.loadSlow(al, ah, size); }
              if (op === 11) v = (v << 24) >> 24;
              else if (op === 12) v = (v << 16) >> 16;
              xl[rd] = v; xh[rd] = op === 13 || op === 11 || op === 12 ? v >> 31 : 0;
              if (o < 0 && this.busTouched) { this.busTouched = false; this.setPcRel(pageLo, pch, off + 4 - ((w >>> 23) & 2)); continue outer; }
              break;
            }
            case 18: case 19: case 20: case 21: { // SB SH SW SD
              const bl = xl[rs1]!, al = (bl + imm) | 0;
              const ah = (xh[rs1]! + (imm >> 31) + ((al >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
              const op = w & 0xff;
              const size = op === 21 ? 8 : op === 20 ? 4 : op === 19 ? 2 : 1;
              const o = this.wOff(al, ah, size);
              if (o < 0) {
                this.instret = base + n - 1;
                this.storeSlow(al, ah, size, xl[rs2]!, xh[rs2]!);
                // A device write may have raised an interrupt: re-check before the next instruction.
                if (this.busTouched) { this.busTouched = false; this.setPcRel(pageLo, pch, off + 4 - ((w >>> 23) & 2)); continue outer; }
              } else if (size === 8) { dv.setInt32(o, xl[rs2]!, true); dv.setInt32(o + 4, xh[rs2]!, true); }
              else if (size === 4) dv.setInt32(o, xl[rs2]!, true);
              else if (size === 2) dv.setUint16(o, xl[rs2]! & 0xffff, true);
              else dv.setUint8(o, xl[rs2]! & 0xff);
              break;
            }
            case 23: // SLTI
              xl[rd] = lt64(xl[rs1]!, xh[rs1]!, imm, imm >> 31) ? 1 : 0; xh[rd] = 0; break;
            case 24: // SLTIU
              xl[rd] = ltu64(xl[rs1]!, xh[rs1]!, imm, imm >> 31) ? 1 : 0; xh[rd] = 0; break;
            case 25: // XORI
              xl[rd] = xl[rs1]! ^ imm; xh[rd] = xh[rs1]! ^ (imm >> 31); break;
            case 26: // ORI
              xl[rd] = xl[rs1]! | imm; xh[rd] = xh[rs1]! | (imm >> 31); break;
            case 27: // ANDI
              xl[rd] = xl[rs1]! & imm; xh[rd] = xh[rs1]! & (imm >> 31); break;
            case 28: // SLLI
              shift64(xl, xh, rd, xl[rs1]!, xh[rs1]!, imm, 0); break;
            case 29: // SRLI
              shift64(xl, xh, rd, xl[rs1]!, xh[rs1]!, imm, 1); break;
            case 30: // SRAI
              shift64(xl, xh, rd, xl[rs1]!, xh[rs1]!, imm, 2); break;
            case 33: // SLL
              shift64(xl, xh, rd, xl[rs1]!, xh[rs1]!, xl[rs2]!, 0); break;
            case 34: // SLT
              xl[rd] = lt64(xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!) ? 1 : 0; xh[rd] = 0; break;
            case 35: // SLTU
              xl[rd] = ltu64(xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!) ? 1 : 0; xh[rd] = 0; break;
            case 36: // XOR
              xl[rd] = xl[rs1]! ^ xl[rs2]!; xh[rd] = xh[rs1]! ^ xh[rs2]!; break;
            case 37: // SRL
              shift64(xl, xh, rd, xl[rs1]!, xh[rs1]!, xl[rs2]!, 1); break;
            case 38: // SRA
              shift64(xl, xh, rd, xl[rs1]!, xh[rs1]!, xl[rs2]!, 2); break;
            case 39: // OR
              xl[rd] = xl[rs1]! | xl[rs2]!; xh[rd] = xh[rs1]! | xh[rs2]!; break;
            case 40: // AND
              xl[rd] = xl[rs1]! & xl[rs2]!; xh[rd] = xh[rs1]! & xh[rs2]!; break;
            case 41: { // ADDIW
              const r = (xl[rs1]! + imm) | 0; xl[rd] = r; xh[rd] = r >> 31; break;
            }
            case 42: { // SLLIW
              const r = xl[rs1]! << imm; xl[rd] = r; xh[rd] = r >> 31; break;
            }
            case 43: { // SRLIW
              const r = (xl[rs1]! >>> imm) | 0; xl[rd] = r; xh[rd] = r >> 31; break;
            }
            case 44: { // SRAIW
              const r = xl[rs1]! >> imm; xl[rd] = r; xh[rd] = r >> 31; break;
            }
            case 45: { // ADDW
              const r = (xl[rs1]! + xl[rs2]!) | 0; xl[rd] = r; xh[rd] = r >> 31; break;
            }
            case 46: { // SUBW
              const r = (xl[rs1]! - xl[rs2]!) | 0; xl[rd] = r; xh[rd] = r >> 31; break;
            }
            case 47: { // SLLW
              const r = xl[rs1]! << (xl[rs2]! & 31); xl[rd] = r; xh[rd] = r >> 31; break;
            }
            case 48: { // SRLW
              const r = (xl[rs1]! >>> (xl[rs2]! & 31)) | 0; xl[rd] = r; xh[rd] = r >> 31; break;
            }
            case 49: { // SRAW
              const r = xl[rs1]! >> (xl[rs2]! & 31); xl[rd] = r; xh[rd] = r >> 31; break;
            }
            case 50: // MUL
              mul64(xl, xh, rd, xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!); break;
            case 51: // MULH
              mulh64(xl, xh, rd, xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!, true, true); break;
            case 52: // MULHSU
              mulh64(xl, xh, rd, xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!, true, false); break;
            case 53: // MULHU
              mulh64(xl, xh, rd, xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!, false, false); break;
            case 54: // DIV
              div64(xl, xh, rd, xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!, true, false); break;
            case 55: // DIVU
              div64(xl, xh, rd, xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!, false, false); break;
            case 56: // REM
              div64(xl, xh, rd, xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!, true, true); break;
            case 57: // REMU
              div64(xl, xh, rd, xl[rs1]!, xh[rs1]!, xl[rs2]!, xh[rs2]!, false, true); break;
            case 58: { // MULW
              const r = Math.imul(xl[rs1]!, xl[rs2]!); xl[rd] = r; xh[rd] = r >> 31; break;
            }
            case 59: // DIVW
              div32(xl, xh, rd, xl[rs1]!, xl[rs2]!, true, false); break;
            case 60: // DIVUW
              div32(xl, xh, rd, xl[rs1]!, xl[rs2]!, false, false); break;
            case 61: // REMW
              div32(xl, xh, rd, xl[rs1]!, xl[rs2]!, true, true); break;
            case 62: // REMUW
              div32(xl, xh, rd, xl[rs1]!, xl[rs2]!, false, true); break;
            case 63: // FENCE
              break; // one hart, memory accesses in program order: nothing to order
            case 64: // FENCE_I
              this.fenceI();
              this.setPcRel(pageLo, pch, off + 4); continue outer;
            case 65: { // ECALL
              this.pcLo = pageLo | off; this.pcHi = pch;
              this.instret = base + n - 1; // the SBI may read the time
              if (this.priv === 1 && ((this.medeleg >>> 9) & 1) === 0 && this.onEcallFromS !== undefined &&
                this.onEcallFromS(this)) {
                this.setPcRel(pageLo, pch, off + 4); continue outer;
              }
              this.raise(this.priv === 0 ? 8 : this.priv === 1 ? 9 : 11, 0, 0);
              break;
            }
            case 66: // EBREAK
              this.raise(3, pageLo | off, pch); break;
            case 67: // MRET
              if (this.priv !== 3) this.raiseIllegal();
              this.mret(); continue outer;
            case 68: // SRET
              if (this.priv === 0 || (this.priv === 1 && (this.mstatus & MS_TSR) !== 0)) this.raiseIllegal();
              this.sret(); continue outer;
            case 69: // WFI
              // U-mode WFI is illegal (S-mode exists); TW makes it illegal below M (3.1.6.5).
              if (this.priv === 0 || (this.priv === 1 && (this.mstatus & MS_TW) !== 0)) this.raiseIllegal();
              this.setPcRel(pageLo, pch, off + 4);
              if (((this.mipSw | this.mipExt) & this.mie) === 0) this.waiting = true;
              continue outer;
            case 70: // SFENCE_VMA
              if (this.priv === 0 || (this.priv === 1 && (this.mstatus & MS_TVM) !== 0)) this.raiseIllegal();
              this.flushTlb(); // all entries: simpler than per-address/ASID and always correct
              this.setPcRel(pageLo, pch, off + 4); continue outer;
            case 71: case 72: case 73: case 74: case 75: case 76: { // CSRRW CSRRS CSRRC CSRRWI CSRRSI CSRRCI
              this.instret = base + n - 1;
              execCsrAmoFp(this, w & 0xff, rd, rs1, rs2, imm);
              if (this.instretWritten) { base = this.instret - n; this.instretWritten = false; }
              // A CSR write may change modes, translation or enable an interrupt: back to the outer loop.
              this.setPcRel(pageLo, pch, off + 4); continue outer;
            }
            case 77: case 78: case 79: case 80: case 81: case 82: case 87: // LR_W SC_W AMO_W LR_D SC_D AMO_D FP
              execCsrAmoFp(this, w & 0xff, rd, rs1, rs2, imm); break;
            case 83: case 84: case 85: case 86: // FLW FSW FLD FSD
              this.instret = base + n - 1;
              execCsrAmoFp(this, w & 0xff, rd, rs1, rs2, imm);
              // A device access may have raised an interrupt (as for integer loads and stores).
              if (this.busTouched) { this.busTouched = false; this.setPcRel(pageLo, pch, off + 4 - ((w >>> 23) & 2)); continue outer; }
              break;
            default: // ILLEGAL
              this.raiseIllegal();
          }
          off += 4 - ((w >>> 23) & 2);
          if (off >= 4096) { this.setPcRel(pageLo, pch, off); continue outer; }
        }
      } catch (e) {
        if (e !== TRAP) throw e;
        n--; // the faulting instruction does not retire
        this.busTouched = false;
        this.pcLo = pageLo | off; this.pcHi = pch;
        this.takeTrap();
        if (++traps >= limit) break;
      }
    }
    if (tripPage >= 0) jit!.charge(tripPage, n - tripN, tripLo, tripHi); // the trip the call ended in
    this.instret = base + n;
    if (this.coldLeft > 0) this.coldLeft = Math.max(0, this.coldLeft - n);
    jit?.compilePending();
    return n;
  }
}
