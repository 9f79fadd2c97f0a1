/**
 * Block translator: compiles hot guest code to WebAssembly, one function per 4 KiB RAM page.
 *
 * The hart's outer loop counts entries into each pc (branch targets, trap vectors, the pc after
 * a system instruction; the interpreter also counts its taken in-page branches). When one entry
 * of a page reaches `hotThreshold`, the page is translated as a whole: every entry seen so far
 * is a basic-block leader, code is followed from each through straight-line code and the
 * fall-through of conditional branches, and a `br_table` loop dispatches between the blocks, so
 * code inside one page runs in wasm without coming back to JavaScript. Taken branches to
 * offsets never entered leave the function: cold paths are not compiled. An entry that gets hot
 * later compiles the page again with it. Registers used by the function live in wasm i64
 * locals (RV64 maps onto i64: no int32 halves) and are written back on exit.
 *
 * Chaining: a function that leaves for a pc that has translated code does not go back to
 * JavaScript; the dispatcher module (wasm.ts) looks the pc up in a chain cache in memory,
 * checks the fetch TLB still maps it to the same RAM page, and calls that function. Only exits
 * to the interpreter, a spent budget or a cache miss return to the hart's loop.
 *
 * Translated code never traps. Everything that could trap or needs the hart's JavaScript state
 * leaves the function *before* it executes, with the exact pc and the exact count of retired
 * instructions, and the hart's interpreter (the oracle) runs it:
 *   - loads and stores whose address is not in the Sv39 software TLB (the fast path is inline;
 *     the page walk, MMIO, faults, stores into pages that hold code all stay in the interpreter);
 *   - every instruction outside the translated subset (CSR, system, AMO, F/D, FENCE.I, ...);
 *   - a 32-bit instruction that straddles the page end.
 * So pc, tval and instret on a trap are the interpreter's, by construction.
 *
 * A function also leaves when its instruction budget is spent: each basic block checks, before
 * it runs, that it fits in what the caller has left, so `Hart.run(limit)` retires exactly as many
 * instructions as the interpreter would and interrupts are seen at the same points. (Translated
 * code changes nothing interrupts depend on, so chaining past the hart's interrupt check takes
 * none later than the interpreter would.)
 *
 * Invalidation: a translated page is marked as code (HartState.markCode), which keeps it out of
 * the store TLB; any store into it (from the hart, the page walker's A/D update, AMOs) goes
 * through HartState.noteStore, which drops the page's translation (onCodeDropped) and its chain
 * cache entries. After FENCE.I every translated page is compared with the copy taken when it
 * was translated before it runs again (device DMA into RAM is covered this way), and the chain
 * cache is emptied. The cache is bounded: past `maxRegions` pages everything is dropped and
 * translation starts again.
 */
import { execCsrAmoFp } from './csr-amo-fp.js';
import { decode16, decode32 } from './decode.js';
import { MS_MIE, MS_SIE, TRAP, type HartState } from './state.js';
import { ST_EXIT, ST_PAR, ST_PAW, ST_PAX, ST_TAGR, ST_TAGW, ST_TAGX, ST_X64, ST_XH, ST_XL, STATE_BYTES } from './state.js';
import { Bytes, EXIT_DSET, CH_PAGE, CH_PC_HI, CH_PC_LO, CH_TARGET, CHAIN_BYTES, CHAIN_ENTRIES, CHAIN_MAX_BLOCKS, CHAIN_WORDS, chainPut, dispatcherBytes, moduleBytes, T_I32, T_I64, T_VOID, W, wasmApi, type WasmMemory, type WasmTable } from './wasm.js';

/**
 * Exit reasons in the exit area (word 2): go on at pc (chaining may continue in wasm), the
 * interpreter runs the instruction at pc, back to the hart's loop (an instruction run through
 * the `ex` import changed what interrupts or translation depend on).
 */
const EXIT_CONTINUE = 0, EXIT_RETURN = 2;
export const EXIT_INTERPRET = 1;

/** What the `ex` import answers: done, done but leave to the hart's loop, not done (interpret it). */
const X_DONE = 0, X_LEAVE = 1, X_INTERP = 2;

/** The translation of one RAM page for one virtual page: one wasm function. */
interface PageCode {
  /** slot in the dispatch table, -1 once dropped */
  slot: number;
  /** virtual page the code was translated for (AUIPC and link values are baked in) */
  vLo: number;
  vHi: number;
}

/** An entry into a translated page: its code and the basic block the entry starts. */
interface Region {
  code: PageCode;
  block: number;
}

/** The translation a page's entries share. */
function pageCode(rs: Array<Region | undefined>): PageCode | undefined {
  return rs.find((r) => r !== undefined)?.code;
}

/** Raised for a translator the host cannot run (no WebAssembly, RAM not in its memory). */
export class JitUnavailableError extends Error {
  override name = 'JitUnavailableError';
}

/**
 * Guest RAM inside a WebAssembly.Memory, with the hart's state area and the translator's chain
 * cache after it: what a hart with the translator needs. `bytes` is RAM (index 0 is guest address `base`).
 */
export function createWasmRam(base: number, size: number): { base: number; bytes: Uint8Array; memory: WasmMemory } {
  if (wasmApi === undefined) throw new JitUnavailableError('this host has no WebAssembly');
  if (size % 4096 !== 0 || size <= 0) throw new RangeError('RAM size must be a positive multiple of 4096');
  const pages = Math.ceil((size + STATE_BYTES + CHAIN_BYTES) / 65536);
  if (pages > 65536) throw new RangeError('RAM too large for a WebAssembly memory');
  const memory = new wasmApi.Memory({ initial: pages, maximum: pages });
  return { base, bytes: new Uint8Array(memory.buffer, 0, size), memory };
}

/** Bytes a load (ops 11-17) or store (18-21) accesses. */
function accessSize(op: number): number {
  return op === 14 || op === 21 ? 8 : op === 13 || op === 17 || op === 20 ? 4 : op === 12 || op === 16 || op === 19 ? 2 : 1;
}
/** Most bytes one group of accesses spans. */
const GROUP_SPAN = 256;

/**
 * The loads (or the stores) from the same base register that follow the one at `k` of a block
 * with the base unchanged and nothing in between that leaves translated code or runs through
 * `ex` (K_CALL, K_STOP), spanning at most GROUP_SPAN bytes: a function's register saves and
 * restores, a copy loop's eight loads then eight stores. Translated code checks the TLB once
 * for the group's bytes (on one page, the whole span translated) and then accesses each member
 * at its offset from the first. The check comes before any member runs, as each member's own
 * check would: on a miss the interpreter runs from the first member on, and a store group's
 * page-table walk (which sets A and D) is made by the first store, as the interpreter's is. A
 * group of loads stops before a store and the other way round, so a walk never marks a page
 * dirty before the store that dirties it. Undefined when there is no second member.
 */
function accessGroup(blk: Insn[], k: number): { end: number; min: number; span: number } | undefined {
  const first = blk[k]!, base = (first.w >>> 14) & 31, store = (first.w & 0xff) >= 18;
  if (!store && ((first.w >>> 8) & 63) === base) return undefined; // the load overwrites its base
  let min = first.imm, max = first.imm + accessSize(first.w & 0xff), end = k;
  for (let j = k + 1; j < blk.length; j++) {
    const d = blk[j]!, op = d.w & 0xff;
    if (d.kind === K_CALL || d.kind === K_STOP) break;
    if (op >= 11 && op <= 21 && ((d.w >>> 14) & 31) === base) {
      if ((op >= 18) !== store) break;
      const lo = Math.min(min, d.imm), hi = Math.max(max, d.imm + accessSize(op));
      if (hi - lo > GROUP_SPAN) break;
      min = lo; max = hi; end = j;
      if (!store && ((d.w >>> 8) & 63) === base) break; // a load into the base ends the group
      continue;
    }
    if (((d.w >>> 8) & 63) === base) break; // the base changes (stores and branches write rd 32)
  }
  return end > k ? { end, min, span: max - min } : undefined;
}

// Decoded-op classes. K_CALL: CSR, LR/SC, the min/max AMOs and F/D instructions run in wasm by
// a call to the `ex` import, which executes them with the interpreter's own code (Jit.exec).
const K_PLAIN = 0, K_BRANCH = 1, K_JAL = 2, K_JALR = 3, K_STOP = 4, K_CALL = 5;
/**
 * AMO funct5 values translated inline (swap, add, xor, and, or): the kernel's atomic_add,
 * set_bit, clear_bit and xchg. A 32 MiB cache=loose 9p read ran 260 k of them through `ex`.
 */
const INLINE_AMO = new Set([0x01, 0x00, 0x04, 0x0c, 0x08]);
function kindOf(op: number, imm: number): number {
  if (op >= 5 && op <= 10) return K_BRANCH;
  if (op === 3) return K_JAL;
  if (op === 4) return K_JALR;
  if ((op >= 1 && op <= 2) || (op >= 11 && op <= 63) || op === 89) return K_PLAIN;
  if ((op === 79 || op === 82) && INLINE_AMO.has(imm)) return K_PLAIN;
  if (op >= 71 && op <= 87) return K_CALL;
  return K_STOP;
}
/** Straight-line: code goes on to the next instruction. */
const straight = (kind: number) => kind === K_PLAIN || kind === K_CALL;

/**
 * The integer registers a K_CALL instruction may read or write (x1..x31): they are stored to
 * the state area before the call, and the written one loaded back after it.
 */
function callRegs(w: number, imm: number): { reads: number[]; rd: number } {
  const op = w & 0xff;
  let rd = (w >>> 8) & 63, rs1 = (w >>> 14) & 31, rs2 = (w >>> 19) & 31;
  if (op === 87) { rd = (imm >>> 7) & 31; rs1 = (imm >>> 15) & 31; rs2 = 0; } // OP-FP: raw encoding
  else if (op >= 83) { rd = 0; rs2 = 0; } // FLW/FLD/FSW/FSD: only the address register is an x register
  else if (op <= 76) rs2 = 0;
  if (rd === 32) rd = 0;
  const reads = [...new Set([rs1, rs2, rd])].filter((x) => x !== 0);
  return { reads, rd };
}

// Locals: params 0 dSet, 1 budget, 2 block index (the entry's, then the dispatch variable);
// i32 3 n, 4 reason, 5 vpn, 6 tlb index (a byte offset in the state area); i64 7 npc, 8..11
// temps. The registers themselves are i64 words in the state area (ST_X64): a page function
// has no prologue or epilogue for them, so a chained call between pages costs only the call.
// (Measured: the boot's time inside wasm stayed within noise of registers in locals, and
// bench/cpu's MIPS did not drop: bench/README.md.)
const L_DSET = 0, L_BUDGET = 1, L_IDX = 2, L_N = 3, L_REASON = 4, L_VPN = 5, L_TI = 6;
const L_NPC = 7, L_T0 = 8, L_T1 = 9, L_T2 = 10, L_T3 = 11;
/** i32 12: the RAM offset a group of accesses (see `accessGroup`) is made from. */
const L_HB = 12;
/**
 * i32 13: the state area's offset in memory. Registers, the exit record and the TLB are
 * addressed from it, so each access carries a small offset (1-2 LEB128 bytes) where a constant
 * address would take five.
 */
const L_S = 13;
/** Longest basic block, and most blocks in one page's function. */
const MAX_INSNS = 200, MAX_BLOCKS = CHAIN_MAX_BLOCKS;

interface Insn { off: number; w: number; imm: number; len: number; kind: number }

export interface JitStats {
  /** pages translated now */
  regions: number;
  /** page translations compiled (a page is compiled again when new entries into it get hot) */
  compiled: number;
  /** modules they were compiled in */
  modules: number;
  /** page translations dropped because their code changed */
  dropped: number;
  flushes: number;
  wasmBytes: number;
  /** pages kept after a FENCE.I because their bytes were unchanged */
  rechecked: number;
  /** instructions retired in translated code */
  retired: number;
  /** calls from the hart's loop into translated code (each one came back to JavaScript before) */
  entered: number;
}

export class Jit {
  // Per RAM page, allocated in full up front: a sparse JS array indexed by page number falls
  // into dictionary mode in V8, and these are read on every entry into the outer loop.
  /** Per RAM page: the entries into its translation, by offset / 2. */
  private readonly pages: (Array<Region | undefined> | undefined)[];
  /** Per RAM page: entries seen by offset / 2 (outer-loop entries and taken in-page branches). */
  private readonly heat: (Uint16Array | undefined)[];
  /** Per RAM page: instructions the interpreter ran in it since it last became hot by work. */
  private readonly work: Int32Array;
  /** Per RAM page: the work that makes it hot next (see `charge`). */
  private readonly workLimit: Int32Array;
  /** Copy of each translated page's bytes, taken when it was translated. */
  private readonly snapshot: (Int32Array | undefined)[];
  /**
   * Per RAM page, 1 when its code may have changed since a FENCE.I: compared with the copy before
   * use. A flag per page, not a Set: pages a FENCE.I made suspect that never run again stay so,
   * and `find` looks on every trip of the interpreter (a Set lookup there was 17 ms of a cold boot).
   */
  private readonly suspect: Uint8Array;
  /** How many pages `suspect` flags. */
  private suspects = 0;
  /** The translated pages (their count is stats.regions). */
  private readonly live = new Set<number>();
  private readonly ram32: Int32Array;
  private dropEpoch = 0;
  /** Pages waiting to be compiled, with the virtual page to compile them for. */
  private pending = new Map<number, { vLo: number; vHi: number }>();
  readonly stats: JitStats = (() => {
    const live = this.live;
    return { get regions() { return live.size; }, compiled: 0, modules: 0, dropped: 0, flushes: 0, wasmBytes: 0, rechecked: 0, retired: 0, entered: 0 };
  })();
  private readonly imports: object;
  private readonly S: number;
  private readonly table: WasmTable;
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  /** The basic block of the entry `find` returned last (the third argument of `call`). */
  block = 0;
  /**
   * Runs the page function in `slot` from basic block `block`, and the code it chains to:
   * (slot, dSet, budget, block, iSet) -> instructions retired (wasm.ts, dispatcherBytes).
   */
  readonly call: (slot: number, dSet: number, budget: number, block: number, iSet: number) => number;
  /** The chain cache (wasm.ts: chainPut, dispatcherBytes). */
  private readonly chain: Int32Array;

  constructor(
    private readonly h: HartState,
    memory: WasmMemory,
    stateOffset: number,
    /**
     * Entries into a pc before its page is translated. A page is compiled as a whole, from every
     * entry into it seen so far; measured on the Linux boot (bench/README.md).
     */
    readonly hotThreshold = 4096,
    /** page translations kept before the cache is emptied */
    readonly maxRegions = 2048,
    /** pages compiled together into one module */
    readonly batch = 4,
    /**
     * Instructions the interpreter runs in a page before the page is translated (again) with
     * every entry seen into it, however few times each was entered: a long function called a
     * few thousand times is hot though no entry reaches `hotThreshold` soon (bench/README.md).
     */
    readonly hotWork = 262144,
  ) {
    if (wasmApi === undefined) throw new JitUnavailableError('this host has no WebAssembly');
    this.imports = {
      m: {
        mem: memory,
        // A fill that dropped translated code (A/D bits written into a code page) reports a
        // miss, so the region stops before running bytes that may have changed.
        fill: (lo: number, hi: number, acc: number, size: number) => {
          const epoch = this.dropEpoch;
          const r = h.tlbFill(lo, hi, acc, size);
          return this.dropEpoch === epoch ? r : 0;
        },
        ex: (w: number, imm: number) => this.exec(w, imm),
      },
    };
    this.table = new wasmApi.Table({ element: 'anyfunc', initial: 256 });
    const chainAt = stateOffset + STATE_BYTES;
    if (chainAt + CHAIN_BYTES > memory.buffer.byteLength) throw new JitUnavailableError('no room for the chain cache: RAM must come from createWasmRam');
    this.chain = new Int32Array(memory.buffer, chainAt, CHAIN_ENTRIES * CHAIN_WORDS);
    this.clearChain(-1);
    const layout = {
      exit: stateOffset + ST_EXIT, tagX: stateOffset + ST_TAGX, paX: stateOffset + ST_PAX, chain: chainAt,
      xl: stateOffset + ST_XL, xh: stateOffset + ST_XH, x64: stateOffset + ST_X64,
    };
    const d = new wasmApi.Instance(new wasmApi.Module(dispatcherBytes(layout)), { m: { t: this.table, mem: memory } });
    this.call = d.exports['call'] as (slot: number, dSet: number, budget: number, block: number, iSet: number) => number;
    this.S = stateOffset;
    h.onCodeDropped = (p) => this.drop(p);
    h.onFenceI = () => {
      for (const p of this.live) if (this.suspect[p] === 0) { this.suspect[p] = 1; this.suspects++; }
      this.clearChain(-1);
    };
    this.ram32 = new Int32Array(h.ram.buffer, h.ram.byteOffset, h.ramSize >>> 2);
    const n = h.ramSize >>> 12;
    this.pages = new Array<Array<Region | undefined> | undefined>(n).fill(undefined);
    this.heat = new Array<Uint16Array | undefined>(n).fill(undefined);
    this.snapshot = new Array<Int32Array | undefined>(n).fill(undefined);
    this.work = new Int32Array(n);
    this.suspect = new Uint8Array(n);
    this.workLimit = new Int32Array(n).fill(hotWork);
  }

  /**
   * The hart's loop ran `k` instructions in the interpreter in RAM page `page` (virtual page
   * (vLo, vHi)) since it last came round. When a page's count reaches its work limit, the page
   * waits to be compiled (again) from every entry seen into it, unless its translation already
   * has every entry seen: then the work is code the translator leaves to the interpreter
   * anyway, nothing is compiled and the limit doubles.
   */
  charge(page: number, k: number, vLo: number, vHi: number): void {
    const w = this.work[page]! + k;
    if (w < this.workLimit[page]!) { this.work[page] = w; return; }
    this.work[page] = 0;
    const heat = this.heat[page];
    if (heat === undefined) return;
    const rs = this.pages[page], code = rs === undefined ? undefined : pageCode(rs);
    if (rs !== undefined && code !== undefined && code.vLo === vLo && code.vHi === vHi) {
      // Translated for this virtual page already: compiling again helps only if an entry has
      // been seen that the translation lacks. Without one, the interpreted work is code the
      // translator leaves to the interpreter, and the limit doubles.
      let fresh = false;
      for (let i = 0; i < 2048 && !fresh; i++) if (heat[i] !== 0 && rs[i] === undefined) fresh = true;
      if (!fresh) { if (this.workLimit[page]! < 0x20000000) this.workLimit[page]! *= 2; return; }
    }
    if (!this.pending.has(page)) this.pending.set(page, { vLo, vHi });
    if (this.pending.size >= this.batch) this.compilePending();
  }

  /**
   * Runs one K_CALL instruction for translated code with the interpreter's own function
   * (execCsrAmoFp, csr-amo-fp.ts), the registers it uses already stored to the state area. A trap, or a counter CSR (whose value depends on
   * the instruction count, which only the interpreter's loop knows), answers X_INTERP: nothing
   * has changed that the interpreter would not change again, and it runs the instruction. An
   * instruction that changed what the hart's loop decides on answers X_LEAVE, so translated
   * code stops after it and the loop looks again: privilege, the TLB sets, satp, the interrupt
   * enables and pending bits when an interrupt is then pending and enabled in mie (the
   * interpreter goes back to its outer loop after every CSR instruction, which is where
   * interrupts are taken; with none pending it takes none there), a device access, or a store
   * that dropped translated code. (No instruction run here reaches a device today: F/D accesses
   * outside the TLB go to the interpreter before anything is touched, AMOs outside RAM fault,
   * CSR and OP-FP instructions touch no device; the busTouched check is a backstop.)
   */
  private exec(w: number, imm: number): number {
    const h = this.h;
    const op = w & 0xff;
    const rd = (w >>> 8) & 63, rs1 = (w >>> 14) & 31, rs2 = (w >>> 19) & 31;
    if (op <= 76 && ((imm & 0xf00) === 0xc00 || (imm & 0xf00) === 0xb00)) return X_INTERP; // counters
    const priv = h.priv, ms = h.mstatus, mie = h.mie, sw = h.mipSw, mid = h.mideleg;
    const iSet = h.iSet, satp = h.satpPpn, satpMode = h.satpMode, epoch = this.dropEpoch;
    try {
      if (op >= 83 && op <= 86) {
        // Only a plain RAM access runs here. One that crosses a page or reaches a device goes
        // to the interpreter before anything is touched: its slow path may fault after a device
        // saw part of it, and the interpreter would then do that part again.
        const bl = h.xl[rs1]!, al = (bl + imm) | 0;
        const ah = (h.xh[rs1]! + (imm >> 31) + ((al >>> 0) < (bl >>> 0) ? 1 : 0)) | 0;
        const size = op === 83 || op === 84 ? 4 : 8;
        if ((op === 83 || op === 85 ? h.rOff(al, ah, size) : h.wOff(al, ah, size)) < 0) return X_INTERP;
      }
      execCsrAmoFp(h, op, rd, rs1, rs2, imm);
    } catch (e) {
      if (e !== TRAP) throw e;
      h.busTouched = false;
      return X_INTERP;
    }
    // A new data TLB set alone (mstatus.SUM, which Linux flips around every user copy, or
    // MPRV/MPP) doesn't leave: the code reloads it from the exit record after a CSR call (the
    // only kind that can move it).
    if (op <= 76) h.exitArea[EXIT_DSET] = h.dSet;
    if (h.busTouched) { h.busTouched = false; return X_LEAVE; }
    if (this.dropEpoch !== epoch || h.priv !== priv || h.iSet !== iSet || h.satpPpn !== satp ||
      h.satpMode !== satpMode) return X_LEAVE;
    // The interrupt enables and pending bits matter only to the loop's interrupt check, which
    // does nothing while no interrupt is both pending and enabled in mie: Linux's
    // local_irq_restore (csrs sstatus, SIE) then goes on in wasm.
    if ((h.mie !== mie || h.mipSw !== sw || h.mideleg !== mid || (h.mstatus & ~ms & (MS_SIE | MS_MIE)) !== 0) &&
      ((h.mipSw | h.mipExt) & h.mie) !== 0) return X_LEAVE;
    return X_DONE;
  }

  private unsuspect(page: number): void {
    if (this.suspect[page] !== 0) { this.suspect[page] = 0; this.suspects--; }
  }

  /** After FENCE.I: keeps the page's translation if its bytes are unchanged, else drops it. */
  private recheck(page: number): void {
    this.unsuspect(page);
    const snap = this.snapshot[page];
    const ram = this.ram32, at = page * 1024;
    let same = snap !== undefined;
    for (let i = 0; same && i < 1024; i++) if (ram[at + i] !== snap![i]) same = false;
    if (same) { this.stats.rechecked++; this.h.markCode(page); } // stores into it are seen again
    else this.drop(page);
  }

  /**
   * The dispatch slot of the translated code entered at RAM page `page`, offset `off`, for
   * virtual page (vLo, vHi), with its basic block in `this.block`; -1 when there is none (yet):
   * the interpreter runs.
   */
  find(page: number, off: number, vLo: number, vHi: number): number {
    if (this.suspects !== 0 && this.suspect[page] !== 0) this.recheck(page);
    const slot = this.enter(page, off, vLo, vHi);
    if (slot !== -2) return slot;
    const heat = this.heatOf(page);
    if (++heat[off >>> 1]! < this.hotThreshold) return -1;
    heat[off >>> 1] = 1; // still marks the offset as an entry
    if (!this.pending.has(page)) this.pending.set(page, { vLo, vHi });
    if (this.pending.size < this.batch) return -1;
    this.compilePending();
    return Math.max(-1, this.enter(page, off, vLo, vHi));
  }

  /**
   * The dispatch slot of the translation of RAM page `page` entered at `off` for virtual page
   * (vLo, vHi), its basic block in `this.block` and the entry put in the chain cache; -1 when
   * the entry starts with an instruction only the interpreter runs, -2 when the page has no
   * translation with that entry.
   */
  private enter(page: number, off: number, vLo: number, vHi: number): number {
    const rs = this.pages[page];
    if (rs === undefined) return -2;
    const r = rs[off >>> 1];
    if (r === undefined || r.code.vLo !== vLo || r.code.vHi !== vHi || r.code.slot < 0) return -2;
    if (r.block < 0) return -1;
    this.block = r.block;
    chainPut(this.chain, vLo | off, vHi, page * 4096, r.code.slot, r.block);
    return r.code.slot;
  }

  /** Empties the chain cache entries into RAM page `page` (-1: all). */
  private clearChain(page: number): void {
    const c = this.chain, at = page * 4096;
    for (let e = 0; e < c.length; e += CHAIN_WORDS) {
      if (page < 0 || c[e + CH_PAGE] === at) { c[e + CH_PC_LO] = 0; c[e + CH_PC_HI] = 0x40000000; c[e + CH_PAGE] = -1; c[e + CH_TARGET] = 0; } // no pc is that
    }
  }

  /** The entries into a RAM page's translation by offset / 2 (for the interpreter's in-page branches). */
  regionsOf(page: number): unknown[] | undefined {
    return this.pages[page];
  }

  /** Entry counts of a RAM page by offset / 2 (the interpreter counts its in-page branches here). */
  heatOf(page: number): Uint16Array {
    let heat = this.heat[page];
    if (heat === undefined) { heat = new Uint16Array(2048); this.heat[page] = heat; }
    return heat;
  }

  /** Drops the translation of RAM page `page` (its code changed). */
  drop(page: number): void {
    const rs = this.pages[page];
    if (rs === undefined) return;
    this.dropEpoch++;
    this.release(rs, page);
    this.stats.dropped++;
    this.pages[page] = undefined;
    this.snapshot[page] = undefined;
    this.live.delete(page);
    this.unsuspect(page);
  }

  private release(rs: Array<Region | undefined>, page: number): void {
    const code = pageCode(rs);
    if (code === undefined || code.slot < 0) return;
    if (page >= 0) this.clearChain(page);
    this.table.set(code.slot, null);
    this.freeSlots.push(code.slot);
    code.slot = -1;
  }

  /** Drops every translation. */
  flush(): void {
    this.dropEpoch++;
    for (const rs of this.pages) if (rs !== undefined) this.release(rs, -1);
    this.clearChain(-1);
    this.pages.fill(undefined);
    this.heat.fill(undefined);
    this.snapshot.fill(undefined);
    this.pending.clear();
    this.live.clear();
    this.suspect.fill(0);
    this.suspects = 0;
    this.stats.flushes++;
  }

  private decodeAt(base: number, off: number): Insn {
    const dv = this.h.dv;
    const h0 = dv.getUint16(base + off, true);
    if ((h0 & 3) === 3) {
      if (off === 4094) return { off, w: 88, imm: 0, len: 4, kind: K_STOP }; // straddles the page
      const d = decode32(dv.getInt32(base + off, true) >>> 0);
      return { off, w: d.w, imm: d.imm, len: 4, kind: kindOf(d.w & 0xff, d.imm) };
    }
    const d = decode16(h0);
    return { off, w: d.w, imm: d.imm, len: 2, kind: kindOf(d.w & 0xff, d.imm) };
  }

  /**
   * Decodes RAM page `page` from every entry seen into it and emits its function body, with
   * the basic block of each entry; undefined when no entry starts with translatable code.
   */
  private plan(page: number, vLo: number, vHi: number): { body: Uint8Array; entries: Map<number, number> } | undefined {
    const base = page * 4096;
    const heat = this.heat[page];
    // 1. The basic-block leaders: the entries, and every branch target reachable from them
    // inside this page.
    const leaders = new Set<number>();
    const work: number[] = [];
    // At most MAX_BLOCKS (a chain-cache entry holds a block number below it): entries past
    // that get no region and stay with the interpreter (a page with more is pathological).
    if (heat !== undefined) for (let i = 0; i < 2048 && leaders.size < MAX_BLOCKS; i++) if (heat[i] !== 0) { leaders.add(2 * i); work.push(2 * i); }
    const entries = [...leaders];
    const add = (t: number) => {
      if (t >= 0 && t < 4096 && !leaders.has(t) && leaders.size < MAX_BLOCKS) { leaders.add(t); work.push(t); }
    };
    while (work.length > 0) {
      let o = work.pop()!;
      for (let k = 1; ; k++) {
        const d = this.decodeAt(base, o);
        if (straight(d.kind)) {
          o += d.len;
          if (o >= 4096 || leaders.has(o)) break;
          // A block longer than MAX_INSNS is cut (step 2); the code after the cut is a block too.
          if (k >= MAX_INSNS) { add(o); break; }
          continue;
        }
        // The fall-through of a conditional branch is translated with it; a taken target only
        // once it has been entered (it has heat): cold paths stay out of the compiled code.
        if (d.kind === K_BRANCH) add(o + d.len);
        break;
      }
    }
    // 2. Cut the blocks: from each leader to a terminator, the next leader or the page end.
    const starts = [...leaders].sort((a, b) => a - b);
    const index = new Map<number, number>();
    starts.forEach((s, i) => index.set(s, i));
    const blocks: Insn[][] = starts.map((s) => {
      const list: Insn[] = [];
      let o = s;
      for (;;) {
        const d = this.decodeAt(base, o);
        list.push(d);
        if (!straight(d.kind)) break;
        o += d.len;
        if (o >= 4096 || index.has(o) || list.length >= MAX_INSNS) break;
      }
      return list;
    });
    // Entries whose first instruction only the interpreter runs get block -1.
    const entryBlocks = new Map<number, number>();
    let any = false;
    for (const e of entries) {
      const b = index.get(e)!;
      const run = blocks[b]![0]!.kind !== K_STOP;
      entryBlocks.set(e, run ? b : -1);
      any ||= run;
    }
    if (!any) return undefined;
    this.h.markCode(page);
    this.snapshot[page] = this.ram32.slice(page * 1024, page * 1024 + 1024);
    return { body: this.emit(blocks, index, vLo, vHi), entries: entryBlocks };
  }

  /** Compiles the pages waiting into one module (one compile and instantiation for the lot). */
  compilePending(): void {
    if (this.pending.size === 0) return;
    const todo = [...this.pending];
    this.pending.clear();
    const bodies: Uint8Array[] = [], plans: Array<{ page: number; code: PageCode; entries: Map<number, number> }> = [];
    for (const [page, v] of todo) {
      const p = this.plan(page, v.vLo, v.vHi);
      if (p === undefined) continue;
      bodies.push(p.body);
      plans.push({ page, code: { slot: -1, vLo: v.vLo, vHi: v.vHi }, entries: p.entries });
    }
    if (bodies.length === 0) return;
    const bytes = moduleBytes(bodies);
    const inst = new wasmApi!.Instance(new wasmApi!.Module(bytes), this.imports);
    plans.forEach((p, i) => {
      const old = this.pages[p.page];
      if (old !== undefined) this.release(old, p.page);
      else {
        if (this.live.size >= this.maxRegions) this.flushKeeping(p.page);
        this.live.add(p.page);
      }
      let slot = this.freeSlots.pop();
      if (slot === undefined) {
        slot = this.nextSlot++;
        if (slot >= this.table.length) this.table.grow(this.table.length);
      }
      this.table.set(slot, inst.exports[`f${i}`]);
      p.code.slot = slot;
      const rs = new Array<Region | undefined>(2048);
      for (const [off, block] of p.entries) rs[off >>> 1] = { code: p.code, block };
      this.pages[p.page] = rs;
    });
    this.stats.compiled += bodies.length;
    this.stats.modules++;
    this.stats.wasmBytes += bytes.length;
  }

  /** The cache is full: drops every translation, but keeps the entries seen into `page`. */
  private flushKeeping(page: number): void {
    const heat = this.heat[page], snap = this.snapshot[page];
    this.flush();
    this.heat[page] = heat;
    this.snapshot[page] = snap;
  }

  // ------------------------------------------------------------------ code generation

  private emit(blocks: Insn[][], index: Map<number, number>, vLo: number, vHi: number): Uint8Array {
    const S = this.S;
    const e = new Bytes();
    const K = blocks.length;

    const op = (b: number) => e.byte(b);
    const lget = (l: number) => { op(W.localGet); e.u32(l); };
    const lset = (l: number) => { op(W.localSet); e.u32(l); };
    const i32c = (v: number) => { op(W.i32Const); e.s32(v); };
    const i64c = (v: number) => { op(W.i64Const); e.s32(v); }; // sign-extended 32-bit value
    const i64big = (v: bigint) => { op(W.i64Const); e.sbig(v); };
    /** i64.const of the virtual address at page offset `off` (which may leave the page). */
    const pcConst = (off: number) => {
      const r = (vLo >>> 0) + off;
      op(W.i64Const); e.s64(r | 0, (vHi + Math.floor(r / 4294967296)) | 0);
    };
    const mem = (code: number, align: number, offset: number) => { op(code); e.u32(align); e.u32(offset); };
    const get = (x: number) => { if (x === 0) i64c(0); else { lget(L_S); mem(W.i64Load, 3, ST_X64 + 8 * x); } };
    // A register write is `at()`, the value, `put(x)`: the store's address goes on the stack
    // before the value (nine bytes a write, where keeping the value in a local took thirteen).
    const at = () => lget(L_S);
    /** Stores the i64 on the stack to register x (1..31), the address under it pushed by `at()`. */
    const put = (x: number) => mem(W.i64Store, 3, ST_X64 + 8 * x);

    // locals: 4 x i32, then npc and 4 temps as i64, then the group base and the state offset
    e.u32(3);
    e.u32(4); e.byte(T_I32);
    e.u32(5); e.byte(T_I64);
    e.u32(2); e.byte(T_I32);
    i32c(S); lset(L_S);

    // block $exit { block $interp { loop { block b(K-1) ... block b0 { br_table } code 0 } ...
    // code K-1 } } (to the interpreter) } epilogue. Every block's code ends in a branch.
    op(W.block); e.byte(T_VOID); // $exit
    op(W.block); e.byte(T_VOID); // $interp
    op(W.loop); e.byte(T_VOID);
    for (let i = K - 1; i >= 0; i--) { op(W.block); e.byte(T_VOID); }
    lget(L_IDX);
    op(W.brTable); e.u32(K);
    for (let i = 0; i < K; i++) e.u32(i);
    e.u32(K - 1);
    op(W.end); // end of $b0: block 0's code follows

    // Emission state, shared by the helpers below (closures made once per function, not per
    // instruction: making them is a good part of the emitter's cost).
    let i = 0, depth = 0; // block index; extra nesting (if) inside the block's code
    let rd = 0, rs1 = 0, rs2 = 0, imm = 0, o = 0, k = 0;
    const brLoop = () => { op(W.br); e.u32(K - 1 - i + depth); };
    const brExit = () => { op(W.br); e.u32(K + 1 - i + depth); };
    const addN = (k: number) => { if (k !== 0) { lget(L_N); i32c(k); op(W.i32Add); lset(L_N); } };
    /** Leaves with pc = offset `off` of this page, after `k` more instructions retired. */
    const exitAt = (off: number, k: number, reason: number) => {
      pcConst(off); lset(L_NPC);
      if (reason !== 0) { i32c(reason); lset(L_REASON); }
      addN(k);
      brExit();
    };
    /** Continues at page offset t after k instructions (a block of this function, else exit). */
    const goTo = (t: number, k: number) => {
      const j = index.get(t);
      if (j === undefined || t < 0 || t >= 4096) { exitAt(t, k, 0); return; }
      addN(k);
      i32c(j); lset(L_IDX);
      brLoop();
    };
    const ifThen = (body: () => void) => {
      op(W.if); e.byte(T_VOID); depth++;
      body();
      depth--; op(W.end);
    };
    /**
     * Leaves to the interpreter at page offset `off` after `k` more instructions: the pair goes
     * in one local and the exit code after $interp makes pc and the count of it (a few bytes
     * per exit where a full exit takes twenty: every load and store has one).
     */
    const toInterp = (off: number, k: number) => {
      i32c(off | (k << 12)); lset(L_VPN);
      op(W.br); e.u32(K - i + depth);
    };
    const exitInterpret = () => toInterp(o, k);
    const bin = (wop: number) => { if (rd === 32) return; at(); get(rs1); get(rs2); op(wop); put(rd); };
    const binI = (wop: number) => { if (rd === 32) return; at(); get(rs1); i64c(imm); op(wop); put(rd); };
    const cmp = (wop: number, useImm: boolean) => {
      if (rd === 32) return;
      at(); get(rs1); if (useImm) i64c(imm); else get(rs2); op(wop); op(W.i64ExtendI32U); put(rd);
    };
    const w32 = (wop: number, useImm: boolean) => {
      if (rd === 32) return;
      at(); get(rs1); op(W.i32WrapI64);
      if (useImm) i32c(imm); else { get(rs2); op(W.i32WrapI64); }
      op(wop); op(W.i64ExtendI32S); put(rd);
    };
    /** Inline Sv39 TLB lookup of address local L_T0; leaves the RAM offset on the stack. */
    const tlb = (size: number, tag: number, pa: number) => {
      lget(L_T0); i64c(12); op(W.i64ShrU); op(W.i32WrapI64); i32c(0x7ffffff); op(W.i32And); lset(L_VPN);
      lget(L_DSET); lget(L_VPN); i32c(255); op(W.i32And); op(W.i32Or); i32c(2); op(W.i32Shl); lget(L_S); op(W.i32Add); lset(L_TI);
      lget(L_TI); mem(W.i32Load, 2, tag); lget(L_VPN); i32c(1); op(W.i32Add); op(W.i32Eq);
      lget(L_T0); op(W.i32WrapI64); i32c(0xfff); op(W.i32And); i32c(4096 - size); op(W.i32LeU); op(W.i32And);
      lget(L_T0); i64c(25); op(W.i64Shl); i64c(25); op(W.i64ShrS); lget(L_T0); op(W.i64Eq); op(W.i32And);
      op(W.i32Eqz);
      ifThen(() => {
        // Missed: the hart walks the page table and fills the TLB (RAM pages only, no
        // fault taken); if the entry still is not there, the interpreter does the access.
        lget(L_T0); op(W.i32WrapI64); lget(L_T0); i64c(32); op(W.i64ShrU); op(W.i32WrapI64);
        i32c(tag === ST_TAGR ? 0 : 1); i32c(size); op(W.call); e.u32(0);
        op(W.i32Eqz);
        ifThen(exitInterpret);
      });
      lget(L_TI); mem(W.i32Load, 2, pa);
      lget(L_T0); op(W.i32WrapI64); i32c(0xfff); op(W.i32And); op(W.i32Add);
    };
    /** The address rs1 + off into L_T0. */
    const addr = (off: number) => { get(rs1); i64c(off); op(W.i64Add); lset(L_T0); };
    // The group of accesses being emitted: members up to index gEnd of the block, from base
    // register gBase, each at L_HB + (imm - gMin).
    let gEnd = -1, gBase = 0, gMin = 0;
    /**
     * The RAM offset of this load or store (on the stack), through the TLB; the first of a group
     * checks the TLB once for the whole group's bytes and keeps the offset in L_HB.
     */
    const access = (blk: Insn[], size: number, store: boolean): number => {
      if (k <= gEnd && rs1 === gBase) { lget(L_HB); return imm - gMin; }
      const g = k > gEnd ? accessGroup(blk, k) : undefined;
      const tag = store ? ST_TAGW : ST_TAGR, pa = store ? ST_PAW : ST_PAR;
      if (g === undefined) { addr(imm); tlb(size, tag, pa); return 0; }
      gEnd = g.end; gBase = rs1; gMin = g.min;
      addr(g.min);
      tlb(g.span, tag, pa);
      lset(L_HB); lget(L_HB);
      return imm - gMin;
    };

    for (i = 0; i < K; i++) {
      const blk = blocks[i]!;
      depth = 0;
      gEnd = -1;
      const len = blk.length;
      // The whole block must fit in the budget, else the interpreter runs the rest of it.
      lget(L_N); i32c(len); op(W.i32Add); lget(L_BUDGET); op(W.i32GtU);
      ifThen(() => toInterp(blk[0]!.off, 0));

      let ended = false;
      for (k = 0; k < len; k++) {
        const d = blk[k]!;
        const w = d.w;
        imm = d.imm; o = d.off;
        rd = (w >>> 8) & 63; rs1 = (w >>> 14) & 31; rs2 = (w >>> 19) & 31;
        const code = w & 0xff;
        if (d.kind === K_STOP) { toInterp(o, k); ended = true; break; }
        if (d.kind === K_CALL) {
          // Registers to the state area, the call, the written register back (see Jit.exec).
          const r = callRegs(w, imm);
          for (const x of r.reads) {
            lget(L_S); get(x); mem(W.i64Store32, 2, ST_XL + 4 * x);
            lget(L_S); get(x); i64c(32); op(W.i64ShrU); mem(W.i64Store32, 2, ST_XH + 4 * x);
          }
          i32c(w); i32c(imm); op(W.call); e.u32(1); lset(L_TI);
          lget(L_TI); i32c(X_INTERP); op(W.i32Eq);
          ifThen(exitInterpret);
          // A CSR may have moved the data TLB set (Jit.exec wrote the new one).
          if ((w & 0xff) <= 76) { lget(L_S); mem(W.i32Load, 2, ST_EXIT + 4 * EXIT_DSET); lset(L_DSET); }
          if (r.rd !== 0) {
            at();
            lget(L_S); mem(W.i64Load32U, 2, ST_XL + 4 * r.rd);
            lget(L_S); mem(W.i64Load32U, 2, ST_XH + 4 * r.rd);
            i64c(32); op(W.i64Shl); op(W.i64Or); put(r.rd);
          }
          lget(L_TI);
          ifThen(() => exitAt(o + d.len, k + 1, EXIT_RETURN));
          continue;
        }
        switch (code) {
          case 89: if (rd !== 32) { at(); get(rs1); put(rd); } break; // MV
          case 1: if (rd !== 32) { at(); i64c(imm); put(rd); } break; // LUI
          case 2: if (rd !== 32) { at(); pcConst(o + imm); put(rd); } break; // AUIPC
          case 22: binI(W.i64Add); break; // ADDI
          case 23: cmp(W.i64LtS, true); break; // SLTI
          case 24: cmp(W.i64LtU, true); break; // SLTIU
          case 25: binI(W.i64Xor); break;
          case 26: binI(W.i64Or); break;
          case 27: binI(W.i64And); break;
          case 28: binI(W.i64Shl); break; // SLLI
          case 29: binI(W.i64ShrU); break; // SRLI
          case 30: binI(W.i64ShrS); break; // SRAI
          case 31: bin(W.i64Add); break;
          case 32: bin(W.i64Sub); break;
          case 33: bin(W.i64Shl); break; // SLL (wasm masks the count to 6 bits, as RV64 does)
          case 34: cmp(W.i64LtS, false); break; // SLT
          case 35: cmp(W.i64LtU, false); break; // SLTU
          case 36: bin(W.i64Xor); break;
          case 37: bin(W.i64ShrU); break; // SRL
          case 38: bin(W.i64ShrS); break; // SRA
          case 39: bin(W.i64Or); break;
          case 40: bin(W.i64And); break;
          case 41: w32(W.i32Add, true); break; // ADDIW
          case 42: w32(W.i32Shl, true); break; // SLLIW
          case 43: w32(W.i32ShrU, true); break; // SRLIW
          case 44: w32(W.i32ShrS, true); break; // SRAIW
          case 45: w32(W.i32Add, false); break; // ADDW
          case 46: w32(W.i32Sub, false); break; // SUBW
          case 47: w32(W.i32Shl, false); break; // SLLW
          case 48: w32(W.i32ShrU, false); break; // SRLW
          case 49: w32(W.i32ShrS, false); break; // SRAW
          case 50: bin(W.i64Mul); break; // MUL
          case 58: w32(W.i32Mul, false); break; // MULW
          case 51: case 52: case 53: { // MULH MULHSU MULHU
            if (rd === 32) break;
            get(rs1); lset(L_T0); get(rs2); lset(L_T1);
            at();
            // p0 = alo*blo, mid = (p0>>32) + (alo*bhi & M) + (ahi*blo & M), hi = ahi*bhi + (alo*bhi>>32) + (ahi*blo>>32) + (mid>>32)
            const hi = (l: number) => { lget(l); i64c(32); op(W.i64ShrU); };
            const lo32 = (l: number) => { lget(l); i64big(0xffffffffn); op(W.i64And); };
            lo32(L_T0); lo32(L_T1); op(W.i64Mul); i64c(32); op(W.i64ShrU); // p0 >> 32
            lo32(L_T0); hi(L_T1); op(W.i64Mul); lset(L_T2); // p1 = alo*bhi
            hi(L_T0); lo32(L_T1); op(W.i64Mul); lset(L_T3); // p2 = ahi*blo
            lget(L_T2); i64big(0xffffffffn); op(W.i64And); op(W.i64Add);
            lget(L_T3); i64big(0xffffffffn); op(W.i64And); op(W.i64Add); // mid
            i64c(32); op(W.i64ShrU);
            hi(L_T0); hi(L_T1); op(W.i64Mul); op(W.i64Add);
            lget(L_T2); i64c(32); op(W.i64ShrU); op(W.i64Add);
            lget(L_T3); i64c(32); op(W.i64ShrU); op(W.i64Add); // mulhu
            if (code !== 53) { // a signed: subtract b where a < 0
              lget(L_T1); lget(L_T0); i64c(63); op(W.i64ShrS); op(W.i64And); op(W.i64Sub);
            }
            if (code === 51) { // b signed: subtract a where b < 0
              lget(L_T0); lget(L_T1); i64c(63); op(W.i64ShrS); op(W.i64And); op(W.i64Sub);
            }
            put(rd);
            break;
          }
          case 54: case 55: case 56: case 57: { // DIV DIVU REM REMU (spec 13.2: no traps)
            if (rd === 32) break;
            get(rs1); lset(L_T0); get(rs2); lset(L_T1);
            at();
            const rem = code >= 56, signed = code === 54 || code === 56;
            lget(L_T1); op(W.i64Eqz);
            op(W.if); e.byte(T_I64);
            if (rem) lget(L_T0); else i64c(-1);
            op(W.else);
            if (signed) {
              lget(L_T0); i64big(-(1n << 63n)); op(W.i64Eq); lget(L_T1); i64c(-1); op(W.i64Eq); op(W.i32And);
              op(W.if); e.byte(T_I64);
              if (rem) i64c(0); else lget(L_T0);
              op(W.else);
              lget(L_T0); lget(L_T1); op(rem ? W.i64RemS : W.i64DivS);
              op(W.end);
            } else {
              lget(L_T0); lget(L_T1); op(rem ? W.i64RemU : W.i64DivU);
            }
            op(W.end);
            put(rd);
            break;
          }
          case 59: case 60: case 61: case 62: { // DIVW DIVUW REMW REMUW
            if (rd === 32) break;
            get(rs1); lset(L_T0); get(rs2); lset(L_T1);
            at();
            const rem = code >= 61, signed = code === 59 || code === 61;
            const a32 = () => { lget(L_T0); op(W.i32WrapI64); };
            const b32 = () => { lget(L_T1); op(W.i32WrapI64); };
            b32(); op(W.i32Eqz);
            op(W.if); e.byte(T_I32);
            if (rem) a32(); else i32c(-1);
            op(W.else);
            if (signed) {
              a32(); i32c(-0x80000000); op(W.i32Eq); b32(); i32c(-1); op(W.i32Eq); op(W.i32And);
              op(W.if); e.byte(T_I32);
              if (rem) i32c(0); else a32();
              op(W.else);
              a32(); b32(); op(rem ? W.i32RemS : W.i32DivS);
              op(W.end);
            } else {
              a32(); b32(); op(rem ? W.i32RemU : W.i32DivU);
            }
            op(W.end);
            op(W.i64ExtendI32S);
            put(rd);
            break;
          }
          case 63: break; // FENCE: one hart, program order
          case 11: case 12: case 13: case 14: case 15: case 16: case 17: { // loads
            const size = accessSize(code);
            const ld = [W.i64Load8S, W.i64Load16S, W.i64Load32S, W.i64Load, W.i64Load8U, W.i64Load16U, W.i64Load32U][code - 11]!;
            // (The register's address stays on the stack under the access's TLB check, whose
            // exits branch out past it.)
            if (rd !== 32) at();
            mem(ld, 0, access(blk, size, false));
            if (rd === 32) op(W.drop); else put(rd);
            break;
          }
          case 18: case 19: case 20: case 21: { // stores
            const at = access(blk, accessSize(code), true);
            get(rs2);
            mem([W.i64Store8, W.i64Store16, W.i64Store32, W.i64Store][code - 18]!, 0, at);
            break;
          }
          case 79: case 82: { // AMOSWAP/ADD/XOR/AND/OR .W/.D on RAM (INLINE_AMO)
            // Misaligned (a trap), or not in the store TLB (a device, a fault, a code page):
            // the interpreter runs it. A writable page is readable (Sv39 has no W without R).
            const size = code === 79 ? 4 : 8;
            get(rs1); lset(L_T0);
            lget(L_T0); op(W.i32WrapI64); i32c(size - 1); op(W.i32And);
            ifThen(exitInterpret);
            tlb(size, ST_TAGW, ST_PAW);
            lset(L_TI);
            lget(L_TI); mem(size === 4 ? W.i64Load32S : W.i64Load, 0, 0); lset(L_T1); // old value
            lget(L_TI);
            if (imm === 0x01) get(rs2);
            else {
              lget(L_T1); get(rs2);
              op(imm === 0x00 ? W.i64Add : imm === 0x04 ? W.i64Xor : imm === 0x0c ? W.i64And : W.i64Or);
            }
            mem(size === 4 ? W.i64Store32 : W.i64Store, 0, 0);
            if (rd !== 32) { at(); lget(L_T1); put(rd); }
            break;
          }
          case 3: { // JAL
            if (rd !== 32) { at(); pcConst(o + d.len); put(rd); }
            goTo(o + imm, k + 1);
            ended = true;
            break;
          }
          case 4: { // JALR: target computed before rd is written (rd may be rs1)
            get(rs1); i64c(imm); op(W.i64Add); i64c(-2); op(W.i64And); lset(L_NPC);
            if (rd !== 32) { at(); pcConst(o + d.len); put(rd); }
            addN(k + 1);
            brExit();
            ended = true;
            break;
          }
          case 5: case 6: case 7: case 8: case 9: case 10: { // branches
            get(rs1); get(rs2);
            op([W.i64Eq, W.i64Ne, W.i64LtS, W.i64GeS, W.i64LtU, W.i64GeU][code - 5]!);
            ifThen(() => goTo(o + imm, k + 1));
            const ft = o + d.len;
            if (ft >= 4096) exitAt(ft, k + 1, EXIT_CONTINUE);
            else if (index.get(ft) === i + 1) addN(k + 1); // falls into the next block
            else goTo(ft, k + 1);
            ended = true;
            break;
          }
          default:
            throw new Error(`jit: op ${code} has no translation`);
        }
        if (ended) break;
      }
      if (!ended) {
        // Ran into the next leader or the page end.
        const last = blk[len - 1]!;
        const next = last.off + last.len;
        if (next >= 4096) exitAt(next, len, EXIT_CONTINUE);
        else if (index.get(next) === i + 1) addN(len);
        else goTo(next, len);
      }
      op(W.end); // closes $b(i+1), or the loop after the last block
      if (i === K - 1) break;
    }
    op(W.end); // $interp: pc = this page + (L_VPN & 0xfff), n += L_VPN >>> 12
    pcConst(0); lget(L_VPN); i32c(0xfff); op(W.i32And); op(W.i64ExtendI32U); op(W.i64Add); lset(L_NPC);
    lget(L_N); lget(L_VPN); i32c(12); op(W.i32ShrU); op(W.i32Add); lset(L_N);
    i32c(EXIT_INTERPRET); lset(L_REASON);
    op(W.end); // $exit: epilogue
    lget(L_S); lget(L_NPC); mem(W.i64Store, 3, ST_EXIT);
    lget(L_S); lget(L_REASON); mem(W.i32Store, 2, ST_EXIT + 8);
    lget(L_S); lget(L_DSET); mem(W.i32Store, 2, ST_EXIT + 4 * EXIT_DSET); // the dispatcher goes on with it
    lget(L_N);
    op(W.end); // function
    return e.view().slice();
  }
}
