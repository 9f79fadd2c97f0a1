/**
 * Block translator: compiles hot guest code to WebAssembly, one module per entry point.
 *
 * A translation unit ("region") starts at a guest pc that the hart's outer loop reached often
 * enough (a branch target, a trap vector, the pc after a system instruction). From there it
 * follows straight-line code and direct branches *within the same 4 KiB page*; every branch
 * target found becomes a basic block, and a `br_table` loop dispatches between them, so a loop
 * inside one page runs in wasm without coming back to JavaScript. Registers used by the region
 * live in wasm i64 locals (RV64 maps onto i64: no int32 halves) and are written back on exit.
 *
 * Translated code never traps. Everything that could trap or needs the hart's JavaScript state
 * leaves the region *before* it executes, with the exact pc and the exact count of retired
 * instructions, and the hart's interpreter (the oracle) runs it:
 *   - loads and stores whose address is not in the Sv39 software TLB (the fast path is inline;
 *     the page walk, MMIO, faults, stores into pages that hold code all stay in the interpreter);
 *   - every instruction outside the translated subset (CSR, system, AMO, F/D, FENCE.I, ...);
 *   - a 32-bit instruction that straddles the page end.
 * So pc, tval and instret on a trap are the interpreter's, by construction.
 *
 * A region also leaves when its instruction budget is spent: each basic block checks, before it
 * runs, that it fits in what the caller has left, so `Hart.run(limit)` retires exactly as many
 * instructions as the interpreter would and interrupts are seen at the same points.
 *
 * Invalidation: a translated page is marked as code (HartState.markCode), which keeps it out of
 * the store TLB; any store into it (from the hart, the page walker's A/D update, AMOs) goes
 * through HartState.noteStore, which drops the page's regions (onCodeDropped). FENCE.I drops
 * every code page (device DMA into RAM is covered this way, as for the decoded cache). The cache
 * is bounded: past `maxRegions` everything is dropped and translation starts again.
 */
import { decode16, decode32 } from './decode.js';
import type { HartState } from './state.js';
import { ST_EXIT, ST_PAR, ST_PAW, ST_TAGR, ST_TAGW, ST_XH, ST_XL, STATE_BYTES } from './state.js';
import { Bytes, dispatcherBytes, moduleBytes, T_I32, T_I64, T_VOID, W, wasmApi, type WasmMemory, type WasmTable } from './wasm.js';

/** Exit reasons in the exit area (word 2). */
export const EXIT_CONTINUE = 0, EXIT_INTERPRET = 1;

interface Region {
  /** slot in the dispatch table, -1 when the entry cannot be translated (interpreter only) */
  slot: number;
  /** virtual page the region was translated for (AUIPC and link values are baked in) */
  vLo: number;
  vHi: number;
}

/** Raised for a translator the host cannot run (no WebAssembly, RAM not in its memory). */
export class JitUnavailableError extends Error {
  override name = 'JitUnavailableError';
}

/**
 * Guest RAM inside a WebAssembly.Memory, with the hart's state area after it: what a hart with
 * the translator needs. `bytes` is RAM (index 0 is guest address `base`).
 */
export function createWasmRam(base: number, size: number): { base: number; bytes: Uint8Array; memory: WasmMemory } {
  if (wasmApi === undefined) throw new JitUnavailableError('this host has no WebAssembly');
  if (size % 4096 !== 0 || size <= 0) throw new RangeError('RAM size must be a positive multiple of 4096');
  const pages = Math.ceil((size + STATE_BYTES) / 65536);
  if (pages > 65536) throw new RangeError('RAM too large for a WebAssembly memory');
  const memory = new wasmApi.Memory({ initial: pages, maximum: pages });
  return { base, bytes: new Uint8Array(memory.buffer, 0, size), memory };
}

// Decoded-op classes
const K_PLAIN = 0, K_BRANCH = 1, K_JAL = 2, K_JALR = 3, K_STOP = 4;
function kindOf(op: number): number {
  if (op >= 5 && op <= 10) return K_BRANCH;
  if (op === 3) return K_JAL;
  if (op === 4) return K_JALR;
  if ((op >= 1 && op <= 2) || (op >= 11 && op <= 63) || op === 89) return K_PLAIN;
  return K_STOP;
}

// Locals: params 0 dSet, 1 budget; i32 2 n, 3 idx, 4 reason, 5 vpn, 6 tlb index;
// i64 7 npc, 8..11 temps, 12.. x1..x31.
const L_DSET = 0, L_BUDGET = 1, L_N = 2, L_IDX = 3, L_REASON = 4, L_VPN = 5, L_TI = 6;
const L_NPC = 7, L_T0 = 8, L_T1 = 9, L_T2 = 10, L_T3 = 11, L_X = 11; // x_i is local L_X + i
const MAX_INSNS = 200, MAX_BLOCKS = 24;

interface Insn { off: number; w: number; imm: number; len: number; kind: number }

export interface JitStats {
  regions: number;
  /** regions compiled, and the modules they were compiled in */
  compiled: number;
  modules: number;
  dropped: number;
  flushes: number;
  wasmBytes: number;
  /** pages kept after a FENCE.I because their bytes were unchanged */
  rechecked: number;
  /** instructions retired in translated code */
  retired: number;
}

export class Jit {
  /** Per RAM page: regions by entry offset / 2. */
  // Per RAM page, allocated in full up front: a sparse JS array indexed by page number falls
  // into dictionary mode in V8, and these are read on every entry into the outer loop.
  private readonly pages: (Array<Region | undefined> | undefined)[];
  private readonly heat: (Uint16Array | undefined)[];
  /** Copy of each translated page's bytes, taken when its first region was translated. */
  private readonly snapshot: (Int32Array | undefined)[];
  /** Pages whose code may have changed since a FENCE.I: compared with the copy before use. */
  private readonly suspect = new Set<number>();
  private readonly live = new Set<number>();
  private readonly ram32: Int32Array;
  private regions = 0;
  private dropEpoch = 0;
  private pending: { page: number; entry: number; region: Region }[] = [];
  readonly stats: JitStats = { regions: 0, compiled: 0, modules: 0, dropped: 0, flushes: 0, wasmBytes: 0, rechecked: 0, retired: 0 };
  private readonly imports: object;
  private readonly S: number;
  private readonly table: WasmTable;
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  /** Runs the region in `slot`: (slot, dSet, budget) -> instructions retired. */
  readonly call: (slot: number, dSet: number, budget: number) => number;

  constructor(
    private readonly h: HartState,
    memory: WasmMemory,
    stateOffset: number,
    /**
     * Entries into a pc before it is translated. Compiling a region costs about as much CPU as
     * interpreting some 20,000 instructions (Liftoff, then TurboFan on V8), so only code entered
     * this often pays back; measured on the Linux boot (bench/README.md).
     */
    readonly hotThreshold = 8192,
    /** regions kept before the cache is emptied */
    readonly maxRegions = 8192,
    /** entries compiled together into one module */
    readonly batch = 8,
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
      },
    };
    this.table = new wasmApi.Table({ element: 'anyfunc', initial: 256 });
    const d = new wasmApi.Instance(new wasmApi.Module(dispatcherBytes()), { m: { t: this.table } });
    this.call = d.exports['call'] as (slot: number, dSet: number, budget: number) => number;
    this.S = stateOffset;
    h.onCodeDropped = (p) => this.drop(p);
    h.onFenceI = () => { for (const p of this.live) this.suspect.add(p); };
    this.ram32 = new Int32Array(h.ram.buffer, h.ram.byteOffset, h.ramSize >>> 2);
    const n = h.ramSize >>> 12;
    this.pages = new Array<Array<Region | undefined> | undefined>(n).fill(undefined);
    this.heat = new Array<Uint16Array | undefined>(n).fill(undefined);
    this.snapshot = new Array<Int32Array | undefined>(n).fill(undefined);
  }

  /** After FENCE.I: keeps the page's regions if its bytes are unchanged, else drops them. */
  private recheck(page: number): void {
    this.suspect.delete(page);
    const snap = this.snapshot[page];
    const ram = this.ram32, at = page * 1024;
    let same = snap !== undefined;
    for (let i = 0; same && i < 1024; i++) if (ram[at + i] !== snap![i]) same = false;
    if (same) { this.stats.rechecked++; this.h.markCode(page); } // stores into it are seen again
    else this.drop(page);
  }

  /**
   * The dispatch slot of the compiled region entered at RAM page `page`, offset `off`, for
   * virtual page (vLo, vHi); -1 when there is none (yet): the interpreter runs.
   */
  find(page: number, off: number, vLo: number, vHi: number): number {
    let rs = this.pages[page];
    if (rs !== undefined && this.suspect.size !== 0 && this.suspect.has(page)) { this.recheck(page); rs = this.pages[page]; }
    if (rs !== undefined) {
      const r = rs[off >>> 1];
      if (r !== undefined && r.vLo === vLo && r.vHi === vHi) return r.slot;
    }
    let heat = this.heat[page];
    if (heat === undefined) { heat = new Uint16Array(2048); this.heat[page] = heat; }
    const t = ++heat[off >>> 1]!;
    if (t < this.hotThreshold) return -1;
    heat[off >>> 1] = 0;
    return this.translate(page, off, vLo, vHi);
  }

  /** The regions of a RAM page by entry offset / 2 (for the interpreter's in-page branches). */
  regionsOf(page: number): unknown[] | undefined {
    return this.pages[page];
  }

  /** Entry counts of a RAM page by offset / 2 (the interpreter counts its in-page branches here). */
  heatOf(page: number): Uint16Array {
    let heat = this.heat[page];
    if (heat === undefined) { heat = new Uint16Array(2048); this.heat[page] = heat; }
    return heat;
  }

  /** Drops the regions of RAM page `page` (its code changed). */
  drop(page: number): void {
    const rs = this.pages[page];
    if (rs === undefined) return;
    this.dropEpoch++;
    let k = 0;
    for (const r of rs) if (r !== undefined) { k++; this.release(r); }
    this.regions -= k;
    this.stats.dropped += k;
    this.stats.regions = this.regions;
    this.pages[page] = undefined;
    this.snapshot[page] = undefined;
    this.live.delete(page);
    this.suspect.delete(page);
  }

  private release(r: Region): void {
    if (r.slot < 0) return;
    this.table.set(r.slot, null);
    this.freeSlots.push(r.slot);
    r.slot = -1;
  }

  /** Drops every region. */
  flush(): void {
    this.dropEpoch++;
    for (const rs of this.pages) if (rs !== undefined) for (const r of rs) if (r !== undefined) this.release(r);
    this.pages.fill(undefined);
    this.heat.fill(undefined);
    this.snapshot.fill(undefined);
    this.pending = [];
    this.live.clear();
    this.suspect.clear();
    this.regions = 0;
    this.stats.regions = 0;
    this.stats.flushes++;
  }

  private decodeAt(base: number, off: number): Insn {
    const dv = this.h.dv;
    const h0 = dv.getUint16(base + off, true);
    if ((h0 & 3) === 3) {
      if (off === 4094) return { off, w: 88, imm: 0, len: 4, kind: K_STOP }; // straddles the page
      const d = decode32(dv.getInt32(base + off, true) >>> 0);
      return { off, w: d.w, imm: d.imm, len: 4, kind: kindOf(d.w & 0xff) };
    }
    const d = decode16(h0);
    return { off, w: d.w, imm: d.imm, len: 2, kind: kindOf(d.w & 0xff) };
  }

  /** Queues the entry for translation; compiles the queue once it holds `batch` entries. */
  private translate(page: number, entry: number, vLo: number, vHi: number): number {
    if (this.regions >= this.maxRegions) this.flush();
    const region: Region = { slot: -1, vLo, vHi };
    let rs = this.pages[page];
    if (rs === undefined) { rs = new Array<Region | undefined>(2048); this.pages[page] = rs; this.live.add(page); }
    const old = rs[entry >>> 1];
    if (old === undefined) { this.regions++; this.stats.regions = this.regions; }
    else this.release(old);
    rs[entry >>> 1] = region;
    this.pending.push({ page, entry, region });
    if (this.pending.length >= this.batch) this.compilePending();
    return region.slot;
  }

  /** Decodes the region entered at `entry` and emits its function body (undefined: nothing to translate). */
  private plan(page: number, entry: number, vLo: number, vHi: number): Uint8Array | undefined {
    const base = page * 4096;
    // 1. Find the basic-block leaders reachable from the entry inside this page.
    const leaders = new Set<number>([entry]);
    const work = [entry];
    let scanned = 0;
    while (work.length > 0) {
      let o = work.pop()!;
      for (;;) {
        const d = this.decodeAt(base, o);
        scanned++;
        if (d.kind === K_PLAIN) {
          o += d.len;
          if (o >= 4096 || leaders.has(o)) break;
          continue;
        }
        if ((d.kind === K_BRANCH || d.kind === K_JAL) && scanned < MAX_INSNS) {
          const add = (t: number) => {
            if (t >= 0 && t < 4096 && !leaders.has(t) && leaders.size < MAX_BLOCKS) { leaders.add(t); work.push(t); }
          };
          add(o + d.imm);
          if (d.kind === K_BRANCH) add(o + d.len);
        }
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
        if (d.kind !== K_PLAIN) break;
        o += d.len;
        if (o >= 4096 || index.has(o) || list.length >= MAX_INSNS) break;
      }
      return list;
    });
    if (blocks[index.get(entry)!]![0]!.kind === K_STOP) return undefined;
    this.h.markCode(page);
    if (this.snapshot[page] === undefined) this.snapshot[page] = this.ram32.slice(page * 1024, page * 1024 + 1024);
    return this.emit(starts, blocks, index, entry, vLo, vHi);
  }

  /** Compiles the queued entries into one module (one compile and instantiation for the lot). */
  compilePending(): void {
    const todo = this.pending;
    if (todo.length === 0) return;
    this.pending = [];
    const bodies: Uint8Array[] = [], regions: Region[] = [];
    for (const p of todo) {
      if (this.pages[p.page]?.[p.entry >>> 1] !== p.region) continue; // dropped meanwhile
      const body = this.plan(p.page, p.entry, p.region.vLo, p.region.vHi);
      if (body === undefined) continue; // starts with an instruction only the interpreter runs
      bodies.push(body);
      regions.push(p.region);
    }
    if (bodies.length === 0) return;
    const bytes = moduleBytes(bodies);
    const inst = new wasmApi!.Instance(new wasmApi!.Module(bytes), this.imports);
    regions.forEach((r, i) => {
      let slot = this.freeSlots.pop();
      if (slot === undefined) {
        slot = this.nextSlot++;
        if (slot >= this.table.length) this.table.grow(this.table.length);
      }
      this.table.set(slot, inst.exports[`f${i}`]);
      r.slot = slot;
    });
    this.stats.compiled += bodies.length;
    this.stats.modules++;
    this.stats.wasmBytes += bytes.length;
  }

  // ------------------------------------------------------------------ code generation

  private emit(starts: number[], blocks: Insn[][], index: Map<number, number>, entry: number, vLo: number, vHi: number): Uint8Array {
    const S = this.S;
    const e = new Bytes();
    const vbase = (BigInt(vHi) << 32n) | BigInt(vLo >>> 0);
    const pcAt = (off: number) => BigInt.asIntN(64, vbase + BigInt(off));
    const K = blocks.length;
    const used = new Uint8Array(33), written = new Uint8Array(33);
    for (const b of blocks) {
      for (const d of b) {
        if (d.kind === K_STOP) continue;
        const rd = (d.w >>> 8) & 63, rs1 = (d.w >>> 14) & 31, rs2 = (d.w >>> 19) & 31;
        used[rs1] = 1; used[rs2] = 1; used[rd] = 1; written[rd] = 1;
      }
    }
    used[0] = 0; used[32] = 0; written[0] = 0; written[32] = 0;

    const op = (b: number) => e.byte(b);
    const lget = (l: number) => { op(W.localGet); e.u32(l); };
    const lset = (l: number) => { op(W.localSet); e.u32(l); };
    const i32c = (v: number) => { op(W.i32Const); e.s32(v); };
    const i64c = (v: number) => { op(W.i64Const); e.s32(v); }; // sign-extended 32-bit value
    const i64big = (v: bigint) => { op(W.i64Const); e.sbig(v); };
    const mem = (code: number, align: number, offset: number) => { op(code); e.u32(align); e.u32(offset); };
    const get = (x: number) => { if (x === 0) i64c(0); else lget(L_X + x); };
    const set = (x: number) => lset(L_X + x);

    // locals: 5 x i32, then 4 temps + npc + 31 registers as i64
    e.u32(2);
    e.u32(5); e.byte(T_I32);
    e.u32(5 + 31); e.byte(T_I64);
    // prologue: registers in
    for (let x = 1; x < 32; x++) {
      if (!used[x]) continue;
      i32c(0); mem(W.i64Load32U, 2, S + ST_XL + 4 * x);
      i32c(0); mem(W.i64Load32U, 2, S + ST_XH + 4 * x);
      i64c(32); op(W.i64Shl); op(W.i64Or); set(x);
    }
    i32c(index.get(entry)!); lset(L_IDX);

    op(W.loop); e.byte(T_VOID);
    op(W.block); e.byte(T_VOID); // $exit
    for (let i = K - 1; i >= 0; i--) { op(W.block); e.byte(T_VOID); }
    lget(L_IDX);
    op(W.brTable); e.u32(K);
    for (let i = 0; i < K; i++) e.u32(i);
    e.u32(K);
    op(W.end); // end of $b0: block 0's code follows

    for (let i = 0; i < K; i++) {
      const blk = blocks[i]!;
      let depth = 0; // extra nesting (if) inside the block's code
      const brExit = () => { op(W.br); e.u32(K - 1 - i + depth); };
      const brLoop = () => { op(W.br); e.u32(K - i + depth); };
      const addN = (k: number) => { if (k !== 0) { lget(L_N); i32c(k); op(W.i32Add); lset(L_N); } };
      /** Leaves with pc = offset `off` of this page, after `k` more instructions retired. */
      const exitAt = (off: number, k: number, reason: number) => {
        i64big(pcAt(off)); lset(L_NPC);
        if (reason !== 0) { i32c(reason); lset(L_REASON); }
        addN(k);
        brExit();
      };
      /** Continues at page offset t after k instructions (a block of this region, else exit). */
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
      const len = blk.length;
      // The whole block must fit in the budget, else the interpreter runs the rest of it.
      lget(L_N); i32c(len); op(W.i32Add); lget(L_BUDGET); op(W.i32GtU);
      ifThen(() => exitAt(blk[0]!.off, 0, EXIT_INTERPRET));

      let ended = false;
      for (let k = 0; k < len; k++) {
        const d = blk[k]!;
        const w = d.w, imm = d.imm, o = d.off;
        const rd = (w >>> 8) & 63, rs1 = (w >>> 14) & 31, rs2 = (w >>> 19) & 31;
        const code = w & 0xff;
        if (d.kind === K_STOP) { exitAt(o, k, EXIT_INTERPRET); ended = true; break; }
        const bin = (wop: number) => { if (rd === 32) return; get(rs1); get(rs2); op(wop); set(rd); };
        const binI = (wop: number) => { if (rd === 32) return; get(rs1); i64c(imm); op(wop); set(rd); };
        const cmp = (wop: number, useImm: boolean) => {
          if (rd === 32) return;
          get(rs1); if (useImm) i64c(imm); else get(rs2); op(wop); op(W.i64ExtendI32U); set(rd);
        };
        const w32 = (wop: number, useImm: boolean) => {
          if (rd === 32) return;
          get(rs1); op(W.i32WrapI64);
          if (useImm) i32c(imm); else { get(rs2); op(W.i32WrapI64); }
          op(wop); op(W.i64ExtendI32S); set(rd);
        };
        /** Inline Sv39 TLB lookup of address local L_T0; leaves the RAM offset on the stack. */
        const tlb = (size: number, tag: number, pa: number) => {
          lget(L_T0); i64c(12); op(W.i64ShrU); op(W.i32WrapI64); i32c(0x7ffffff); op(W.i32And); lset(L_VPN);
          lget(L_DSET); lget(L_VPN); i32c(255); op(W.i32And); op(W.i32Or); i32c(2); op(W.i32Shl); lset(L_TI);
          lget(L_TI); mem(W.i32Load, 2, S + tag); lget(L_VPN); i32c(1); op(W.i32Add); op(W.i32Eq);
          lget(L_T0); op(W.i32WrapI64); i32c(0xfff); op(W.i32And); i32c(4096 - size); op(W.i32LeU); op(W.i32And);
          lget(L_T0); i64c(25); op(W.i64Shl); i64c(25); op(W.i64ShrS); lget(L_T0); op(W.i64Eq); op(W.i32And);
          op(W.i32Eqz);
          ifThen(() => {
            // Missed: the hart walks the page table and fills the TLB (RAM pages only, no
            // fault taken); if the entry still is not there, the interpreter does the access.
            lget(L_T0); op(W.i32WrapI64); lget(L_T0); i64c(32); op(W.i64ShrU); op(W.i32WrapI64);
            i32c(tag === ST_TAGR ? 0 : 1); i32c(size); op(W.call); e.u32(0);
            op(W.i32Eqz);
            ifThen(() => exitAt(o, k, EXIT_INTERPRET));
          });
          lget(L_TI); mem(W.i32Load, 2, S + pa);
          lget(L_T0); op(W.i32WrapI64); i32c(0xfff); op(W.i32And); op(W.i32Add);
        };
        const addr = () => { get(rs1); i64c(imm); op(W.i64Add); lset(L_T0); };
        switch (code) {
          case 89: if (rd !== 32) { get(rs1); set(rd); } break; // MV
          case 1: if (rd !== 32) { i64c(imm); set(rd); } break; // LUI
          case 2: if (rd !== 32) { i64big(pcAt(o + imm)); set(rd); } break; // AUIPC
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
            set(rd);
            break;
          }
          case 54: case 55: case 56: case 57: { // DIV DIVU REM REMU (spec 13.2: no traps)
            if (rd === 32) break;
            get(rs1); lset(L_T0); get(rs2); lset(L_T1);
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
            set(rd);
            break;
          }
          case 59: case 60: case 61: case 62: { // DIVW DIVUW REMW REMUW
            if (rd === 32) break;
            get(rs1); lset(L_T0); get(rs2); lset(L_T1);
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
            set(rd);
            break;
          }
          case 63: break; // FENCE: one hart, program order
          case 11: case 12: case 13: case 14: case 15: case 16: case 17: { // loads
            const size = code === 14 ? 8 : code === 13 || code === 17 ? 4 : code === 12 || code === 16 ? 2 : 1;
            const ld = [W.i64Load8S, W.i64Load16S, W.i64Load32S, W.i64Load, W.i64Load8U, W.i64Load16U, W.i64Load32U][code - 11]!;
            addr();
            tlb(size, ST_TAGR, ST_PAR);
            mem(ld, 0, 0);
            if (rd === 32) op(W.drop); else set(rd);
            break;
          }
          case 18: case 19: case 20: case 21: { // stores
            const size = 1 << (code - 18);
            addr();
            tlb(size, ST_TAGW, ST_PAW);
            get(rs2);
            mem([W.i64Store8, W.i64Store16, W.i64Store32, W.i64Store][code - 18]!, 0, 0);
            break;
          }
          case 3: { // JAL
            if (rd !== 32) { i64big(pcAt(o + d.len)); set(rd); }
            goTo(o + imm, k + 1);
            ended = true;
            break;
          }
          case 4: { // JALR: target computed before rd is written (rd may be rs1)
            get(rs1); i64c(imm); op(W.i64Add); i64c(-2); op(W.i64And); lset(L_NPC);
            if (rd !== 32) { i64big(pcAt(o + d.len)); set(rd); }
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
      op(W.end); // closes $b(i+1), or $exit after the last block
      if (i === K - 1) break;
    }
    // after $exit: epilogue, still inside the loop (which then falls out)
    i32c(0); lget(L_NPC); mem(W.i64Store, 3, S + ST_EXIT);
    i32c(0); lget(L_REASON); mem(W.i32Store, 2, S + ST_EXIT + 8);
    for (let x = 1; x < 32; x++) {
      if (!written[x]) continue;
      i32c(0); get(x); mem(W.i64Store32, 2, S + ST_XL + 4 * x);
      i32c(0); get(x); i64c(32); op(W.i64ShrU); mem(W.i64Store32, 2, S + ST_XH + 4 * x);
    }
    op(W.end); // loop
    lget(L_N);
    op(W.end); // function
    return e.view().slice();
  }
}
