/**
 * The little of WebAssembly the block translator needs: a byte emitter for one function body
 * (WebAssembly core spec 1.0, 5.4 "Instructions", LEB128 immediates per 5.2.2), a module wrapper
 * that imports one memory and exports the function, and access to the `WebAssembly` global
 * without DOM or Node type libraries (the core is environment-free: the global exists in Node,
 * browsers and workers alike).
 */

/** The parts of the WebAssembly JS API used here. */
export interface WasmApi {
  Memory: new (d: { initial: number; maximum?: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Table: new (d: { element: 'anyfunc'; initial: number }) => WasmTable;
}
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
export interface WasmTable {
  readonly length: number;
  grow(n: number): number;
  set(i: number, f: unknown): void;
}

/** The WebAssembly global, or undefined where the host has none (then only the interpreter runs). */
export const wasmApi: WasmApi | undefined = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

// Opcodes (spec 5.4), named as in the text format.
export const W = {
  block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d, brTable: 0x0e,
  return: 0x0f, call: 0x10, drop: 0x1a, select: 0x1b,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Load: 0x28, i64Load: 0x29, i64Load8S: 0x30, i64Load8U: 0x31, i64Load16S: 0x32, i64Load16U: 0x33,
  i64Load32S: 0x34, i64Load32U: 0x35, i32Store: 0x36, i64Store: 0x37, i64Store8: 0x3c, i64Store16: 0x3d,
  i64Store32: 0x3e,
  i32Const: 0x41, i64Const: 0x42,
  i32Eqz: 0x45, i32Eq: 0x46, i32Ne: 0x47, i32LtU: 0x49, i32GtU: 0x4b, i32LeU: 0x4d, i32GeU: 0x4f,
  i64Eqz: 0x50, i64Eq: 0x51, i64Ne: 0x52, i64LtS: 0x53, i64LtU: 0x54, i64GeS: 0x59, i64GeU: 0x5a,
  i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32DivS: 0x6d, i32DivU: 0x6e, i32RemS: 0x6f, i32RemU: 0x70,
  i32And: 0x71, i32Or: 0x72, i32Xor: 0x73, i32Shl: 0x74, i32ShrS: 0x75, i32ShrU: 0x76,
  i64Add: 0x7c, i64Sub: 0x7d, i64Mul: 0x7e, i64DivS: 0x7f, i64DivU: 0x80, i64RemS: 0x81, i64RemU: 0x82,
  i64And: 0x83, i64Or: 0x84, i64Xor: 0x85, i64Shl: 0x86, i64ShrS: 0x87, i64ShrU: 0x88,
  i32WrapI64: 0xa7, i64ExtendI32S: 0xac, i64ExtendI32U: 0xad,
} as const;

export const T_I32 = 0x7f, T_I64 = 0x7e, T_VOID = 0x40;

/** A growable byte buffer with LEB128 writers. */
export class Bytes {
  buf = new Uint8Array(1024);
  len = 0;

  /** Makes room for `n` more bytes (the buffer at least doubles). */
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  byte(b: number): void {
    if (this.len === this.buf.length) this.room(1);
    this.buf[this.len++] = b;
  }
  bytes(b: ArrayLike<number>): void {
    this.room(b.length);
    this.buf.set(b, this.len); // one copy: a page module's bodies are about 28 KB each
    this.len += b.length;
  }
  u32(v: number): void {
    v >>>= 0;
    do {
      let b = v & 0x7f;
      v >>>= 7;
      if (v !== 0) b |= 0x80;
      this.byte(b);
    } while (v !== 0);
  }
  s32(v: number): void {
    v |= 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) { this.byte(b); return; }
      this.byte(b | 0x80);
    }
  }
  /** Signed LEB128 of a 64-bit value given as (lo, hi) int32 halves. */
  s64(lo: number, hi: number): void {
    if ((lo >> 31) === hi) { this.s32(lo); return; } // fits in 32 bits: same encoding
    let v = (BigInt(hi | 0) << 32n) | BigInt(lo >>> 0);
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) { this.byte(b); return; }
      this.byte(b | 0x80);
    }
  }
  /** Signed LEB128 of a bigint in the int64 range. */
  sbig(v: bigint): void {
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) { this.byte(b); return; }
      this.byte(b | 0x80);
    }
  }
  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

/**
 * Wraps function bodies into a module: each of type (i32, i32, i32) -> i32, memory imported as
 * "m"."mem", function 0 imported as "m"."fill" (i32 x4 -> i32), function 1 as "m"."ex"
 * (i32 x2 -> i32), body i is function i + 2 and exported as "f<i>". A body is without its size prefix: local declarations, then code, `end`.
 */
export function moduleBytes(bodies: Uint8Array[]): Uint8Array {
  const m = new Bytes();
  m.bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const section = (id: number, content: Uint8Array) => {
    m.byte(id);
    m.u32(content.length);
    m.bytes(content);
  };
  const vec = (fill: (b: Bytes) => void) => { const b = new Bytes(); fill(b); return b.view(); };
  section(1, Uint8Array.from([3, 0x60, 3, T_I32, T_I32, T_I32, 1, T_I32, 0x60, 4, T_I32, T_I32, T_I32, T_I32, 1, T_I32,
    0x60, 2, T_I32, T_I32, 1, T_I32]));
  // import "m" "mem" memory, limits min 0 (no max: the memory object decides); "m" "fill" func
  // type 1; "m" "ex" func type 2
  section(2, Uint8Array.from([3, 1, 0x6d, 3, 0x6d, 0x65, 0x6d, 0x02, 0x00, 0x00, 1, 0x6d, 4, 0x66, 0x69, 0x6c, 0x6c, 0x00, 1,
    1, 0x6d, 2, 0x65, 0x78, 0x00, 2]));
  section(3, vec((b) => { b.u32(bodies.length); for (let i = 0; i < bodies.length; i++) b.byte(0); }));
  section(7, vec((b) => {
    b.u32(bodies.length);
    bodies.forEach((_, i) => {
      const name = `f${i}`;
      b.u32(name.length);
      for (let k = 0; k < name.length; k++) b.byte(name.charCodeAt(k));
      b.byte(0x00); // func
      b.u32(i + 2);
    });
  }));
  section(10, vec((b) => { b.u32(bodies.length); for (const body of bodies) { b.u32(body.length); b.bytes(body); } }));
  return m.view().slice();
}

/** Where the dispatcher finds the exit record, the fetch TLB and the chain cache in memory. */
export interface DispatchLayout {
  /** exit record: pc (lo, hi), reason (0: go on at pc) */
  exit: number;
  tagX: number;
  paX: number;
  /** chain cache: CHAIN_ENTRIES entries of CHAIN_WORDS words (see chainPut) */
  chain: number;
  /** x1..x31 as int32 halves (the hart's xl and xh) and as i64 (what page functions use) */
  xl: number;
  xh: number;
  x64: number;
}

// The chain cache, written by JavaScript (Jit) and read by the dispatcher below: this is the one
// definition of its entries and of the pc hash; chainPut is the JavaScript side, and
// dispatcherBytes emits the same steps from the same constants.
/** Entries (a power of two), words per entry, bytes in all. */
export const CHAIN_ENTRIES = 4096, CHAIN_WORDS = 4, CHAIN_BYTES = CHAIN_ENTRIES * CHAIN_WORDS * 4;
/** Word offsets in an entry: the pc (lo, hi), the RAM page offset it runs from, the packed target (0: none). */
export const CH_PC_LO = 0, CH_PC_HI = 1, CH_PAGE = 2, CH_TARGET = 3;
/** The hash of a pc: ((lo >>> A) ^ (lo >>> B)) & (CHAIN_ENTRIES - 1). */
const CHAIN_HASH_A = 1, CHAIN_HASH_B = 13;
/** The packed target is slot << CHAIN_BLOCK_BITS | block, plus 1; a page function has at most 2^CHAIN_BLOCK_BITS blocks. */
export const CHAIN_BLOCK_BITS = 10, CHAIN_MAX_BLOCKS = 1 << CHAIN_BLOCK_BITS;

/** The first word of the chain cache entry for a pc whose low word is `lo`. */
export function chainWord(lo: number): number {
  return (((lo >>> CHAIN_HASH_A) ^ (lo >>> CHAIN_HASH_B)) & (CHAIN_ENTRIES - 1)) * CHAIN_WORDS;
}

/** Puts an entry into the chain cache `c`: translated code that leaves for pc (lo, hi) goes on in `block` of `slot`. */
export function chainPut(c: Int32Array, lo: number, hi: number, pageOffset: number, slot: number, block: number): void {
  const e = chainWord(lo);
  c[e + CH_PC_LO] = lo; c[e + CH_PC_HI] = hi; c[e + CH_PAGE] = pageOffset;
  c[e + CH_TARGET] = ((slot << CHAIN_BLOCK_BITS) | block) + 1;
}

/**
 * The dispatcher module: `call(slot, dSet, budget, block, iSet)` runs the page function in
 * `slot` from `block` through the imported table "m"."t", and as long as it leaves with reason
 * 0 (go on at pc) and budget left, looks the new pc up in the chain cache and runs that code
 * too, without coming back to JavaScript. A cache entry counts only while the fetch TLB still
 * maps its pc to the RAM page it was made for (the same check as HartState.fetchPage). Returns
 * the instructions retired; the exit record holds where it stopped. JavaScript calls one
 * exported function for every entry (one call site, one JS-to-wasm wrapper). It copies x1..x31
 * from the hart's int32 halves into the i64 registers page functions work on when it is called,
 * and back when it returns: once per call from JavaScript, not once per page function.
 */
/**
 * Int32 index in the exit record (after pc lo, pc hi, reason) of the data TLB set a page function
 * ended with: a CSR inside it may have moved it (mstatus.SUM), and the next chained one starts with it.
 */
export const EXIT_DSET = 3;

export function dispatcherBytes(at: DispatchLayout): Uint8Array {
  const m = new Bytes();
  m.bytes([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const section = (id: number, content: number[] | Uint8Array) => { m.byte(id); m.u32(content.length); m.bytes(content); };
  section(1, [2, 0x60, 3, T_I32, T_I32, T_I32, 1, T_I32, 0x60, 5, T_I32, T_I32, T_I32, T_I32, T_I32, 1, T_I32]);
  // import "m" "t" table funcref min 0; "m" "mem" memory min 0
  section(2, [2, 1, 0x6d, 1, 0x74, 0x01, 0x70, 0x00, 0x00, 1, 0x6d, 3, 0x6d, 0x65, 0x6d, 0x02, 0x00, 0x00]);
  section(3, [1, 1]);
  section(7, [1, 4, 0x63, 0x61, 0x6c, 0x6c, 0x00, 0]); // export "call"
  // params 0 slot, 1 dSet, 2 budget, 3 block, 4 iSet; i32 locals 5 n, 6 lo, 7 hi, 8 entry, 9 vpn, 10 tlb index, 11 packed
  const b = new Bytes();
  b.u32(1); b.u32(7); b.byte(T_I32);
  const get = (l: number) => { b.byte(W.localGet); b.u32(l); };
  const set = (l: number) => { b.byte(W.localSet); b.u32(l); };
  const c = (v: number) => { b.byte(W.i32Const); b.s32(v); };
  const load = (offset: number) => { b.byte(W.i32Load); b.u32(2); b.u32(offset); };
  const store = (offset: number) => { b.byte(W.i32Store); b.u32(2); b.u32(offset); };
  /** Copies x1..x31 between the hart's halves and the i64 registers page functions use. */
  const copyRegs = (toI64: boolean) => {
    for (let x = 1; x < 32; x++) {
      for (const [half, w] of [[at.xl, 0], [at.xh, 4]] as const) {
        const from = toI64 ? half + 4 * x : at.x64 + 8 * x + w, to = toI64 ? at.x64 + 8 * x + w : half + 4 * x;
        c(0); c(0); load(from); store(to);
      }
    }
  };
  const leaveIf = () => { b.byte(W.if); b.byte(T_VOID); b.byte(W.br); b.u32(2); b.byte(W.end); }; // to $out
  copyRegs(true);
  b.byte(W.block); b.byte(T_VOID); // $out
  b.byte(W.loop); b.byte(T_VOID);
  get(1); get(2); get(5); b.byte(W.i32Sub); get(3); get(0);
  b.byte(0x11); b.u32(0); b.u32(0); // call_indirect type 0 table 0
  get(5); b.byte(W.i32Add); set(5);
  c(0); load(at.exit + 4 * EXIT_DSET); set(1); // the data TLB set it ended with
  c(0); load(at.exit + 8); leaveIf(); // to the interpreter
  get(5); get(2); b.byte(W.i32GeU); leaveIf(); // budget spent
  c(0); load(at.exit); set(6);
  c(0); load(at.exit + 4); set(7);
  // entry = chainWord(lo) * 4 (bytes)
  get(6); c(CHAIN_HASH_A); b.byte(W.i32ShrU); get(6); c(CHAIN_HASH_B); b.byte(W.i32ShrU); b.byte(W.i32Xor);
  c(CHAIN_ENTRIES - 1); b.byte(W.i32And); c(CHAIN_WORDS * 4); b.byte(W.i32Mul); set(8);
  get(8); load(at.chain + 4 * CH_PC_LO); get(6); b.byte(W.i32Ne); leaveIf();
  get(8); load(at.chain + 4 * CH_PC_HI); get(7); b.byte(W.i32Ne); leaveIf();
  get(7); c(0x7f); b.byte(W.i32And); c(20); b.byte(W.i32Shl); get(6); c(12); b.byte(W.i32ShrU); b.byte(W.i32Or); set(9);
  get(4); get(9); c(255); b.byte(W.i32And); b.byte(W.i32Or); c(2); b.byte(W.i32Shl); set(10);
  get(10); load(at.tagX); get(9); c(1); b.byte(W.i32Add); b.byte(W.i32Ne); leaveIf();
  get(10); load(at.paX); get(8); load(at.chain + 4 * CH_PAGE); b.byte(W.i32Ne); leaveIf();
  get(8); load(at.chain + 4 * CH_TARGET); c(1); b.byte(W.i32Sub); set(11);
  get(11); c(CHAIN_BLOCK_BITS); b.byte(W.i32ShrU); set(0);
  get(11); c(CHAIN_MAX_BLOCKS - 1); b.byte(W.i32And); set(3);
  b.byte(W.br); b.u32(0);
  b.byte(W.end); // loop
  b.byte(W.end); // $out
  copyRegs(false);
  get(5);
  b.byte(W.end);
  const body = b.view();
  const code = new Bytes();
  code.u32(1); code.u32(body.length); code.bytes(body);
  section(10, code.view());
  return m.view().slice();
}
