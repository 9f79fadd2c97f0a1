/**
 * The chain cache is written by JavaScript (chainPut) and read by the dispatcher emitted as wasm
 * (dispatcherBytes): an entry the JavaScript side puts in must be the one the dispatcher finds,
 * for any pc, or chaining silently stops (or, worse, runs the wrong code).
 */
import { describe, expect, it } from 'vitest';
import { Bytes, CHAIN_BLOCK_BITS, CHAIN_BYTES, CHAIN_ENTRIES, CHAIN_WORDS, chainPut, chainWord, dispatcherBytes, moduleBytes, W, wasmApi } from '../../src/riscv/wasm.js';
import { mulberry32 } from '../support/prng.js';

const api = wasmApi!;
// Memory layout of the test: exit record, a marker the second function writes, the registers as
// int32 halves and as i64, the fetch TLB (tags, then RAM page offsets, 256 entries each: iSet 0),
// the chain cache.
const EXIT = 0, MARK = 16, XL = 0x800, XH = 0x900, X64 = 0xa00, TAG_X = 0x1000, PA_X = 0x1400, CHAIN = 0x2000;

/** Page function bodies (params dSet, budget, block; returns instructions retired). */
function body(code: (b: Bytes) => void): Uint8Array {
  const b = new Bytes();
  b.u32(0); // no locals
  code(b);
  b.byte(W.end);
  return b.view().slice();
}
const i32c = (b: Bytes, v: number) => { b.byte(W.i32Const); b.s32(v); };
const store32 = (b: Bytes, at: number) => { b.byte(W.i32Store); b.u32(2); b.u32(at); };

function setup() {
  const memory = new api.Memory({ initial: Math.ceil((CHAIN + CHAIN_BYTES) / 65536) });
  const table = new api.Table({ element: 'anyfunc', initial: 4 });
  const i32 = new Int32Array(memory.buffer);
  const chain = new Int32Array(memory.buffer, CHAIN, CHAIN_ENTRIES * CHAIN_WORDS);
  // f0: leaves for the pc in words 32, 33 (reason 0: go on there), 1 instruction retired.
  // f1: writes the block it was entered at into MARK, leaves to the interpreter (reason 1).
  const f0 = body((b) => {
    i32c(b, 0); i32c(b, 0); b.byte(W.i32Load); b.u32(2); b.u32(128); store32(b, EXIT);
    i32c(b, 0); i32c(b, 0); b.byte(W.i32Load); b.u32(2); b.u32(132); store32(b, EXIT + 4);
    i32c(b, 0); i32c(b, 0); store32(b, EXIT + 8);
    i32c(b, 1);
  });
  // f1 also adds 1 to x5 (i64) and copies x31 into x1, as a page function works on registers.
  const f1 = body((b) => {
    i32c(b, 0); i32c(b, 0); b.byte(W.i64Load); b.u32(3); b.u32(X64 + 40); b.byte(W.i64Const); b.s32(1); b.byte(W.i64Add);
    b.byte(W.i64Store); b.u32(3); b.u32(X64 + 40);
    i32c(b, 0); i32c(b, 0); b.byte(W.i64Load); b.u32(3); b.u32(X64 + 248); b.byte(W.i64Store); b.u32(3); b.u32(X64 + 8);
    i32c(b, 0); b.byte(W.localGet); b.u32(2); store32(b, MARK);
    i32c(b, 0); i32c(b, 1); store32(b, EXIT + 8);
    i32c(b, 1);
  });
  const pages = new api.Instance(new api.Module(moduleBytes([f0, f1])), { m: { mem: memory, fill: () => 0, ex: () => 0 } });
  table.set(0, pages.exports['f0']);
  table.set(1, pages.exports['f1']);
  const d = new api.Instance(new api.Module(dispatcherBytes({ exit: EXIT, tagX: TAG_X, paX: PA_X, chain: CHAIN, xl: XL, xh: XH, x64: X64 })), { m: { t: table, mem: memory } });
  const call = d.exports['call'] as (slot: number, dSet: number, budget: number, block: number, iSet: number) => number;
  /** Runs f0 leaving for (lo, hi), whose page the fetch TLB maps to RAM offset `pageOffset`; true when the dispatcher chained to f1. */
  const chainsTo = (lo: number, hi: number, pageOffset: number, block: number): boolean => {
    i32[32] = lo; i32[33] = hi; i32[MARK / 4] = -1;
    const vpn = ((hi & 0x7f) << 20) | (lo >>> 12);
    i32[TAG_X / 4 + (vpn & 255)] = vpn + 1;
    i32[PA_X / 4 + (vpn & 255)] = pageOffset;
    const n = call(0, 0, 1000, 0, 0);
    if (n === 2) expect(i32[MARK / 4]).toBe(block);
    return n === 2;
  };
  return { chain, chainsTo, i32 };
}

describe('the chain cache', () => {
  it('the dispatcher finds what chainPut put in, for any pc, slot and block', () => {
    const { chain, chainsTo } = setup();
    const rnd = mulberry32(11);
    for (let i = 0; i < 2000; i++) {
      const lo = (Math.floor(rnd() * 2 ** 32) & ~1) | 0, hi = i % 3 === 0 ? -1 : Math.floor(rnd() * 64);
      const page = Math.floor(rnd() * 1024) * 4096, block = Math.floor(rnd() * 1024);
      chain.fill(0);
      expect(chainsTo(lo, hi, page, block), `empty cache, pc ${hi}:${lo}`).toBe(false);
      chainPut(chain, lo, hi, page, 1, block);
      expect(chainsTo(lo, hi, page, block), `pc ${hi}:${lo} block ${block}`).toBe(true);
      // not for another pc in the same entry, nor once the TLB maps the page elsewhere
      expect(chainsTo(lo, (hi + 1) | 0, page, block)).toBe(false);
      expect(chainsTo(lo, hi, page + 4096, block)).toBe(false);
    }
  });

  it('the dispatcher looks only in the entry chainWord names (a hash of its own would find one elsewhere)', () => {
    const { chain, chainsTo } = setup();
    const rnd = mulberry32(12);
    for (let i = 0; i < 200; i++) {
      const lo = (Math.floor(rnd() * 2 ** 32) & ~1) | 0, block = i % 1024;
      // every entry holds this pc, except the one its hash names
      for (let w = 0; w < chain.length; w += CHAIN_WORDS) { chain[w] = lo; chain[w + 1] = 0; chain[w + 2] = 0x7000; chain[w + 3] = (1 << CHAIN_BLOCK_BITS) + block + 1; }
      chain.fill(0, chainWord(lo), chainWord(lo) + CHAIN_WORDS);
      expect(chainsTo(lo, 0, 0x7000, block), `pc ${lo}`).toBe(false);
      chainPut(chain, lo, 0, 0x7000, 1, block);
      expect(chainsTo(lo, 0, 0x7000, block)).toBe(true);
    }
  });

  it('page functions see the registers as i64, and the hart sees what they wrote as halves', () => {
    const { chain, chainsTo, i32 } = setup();
    const rnd = mulberry32(13);
    for (let i = 0; i < 50; i++) {
      const lo = Array.from({ length: 32 }, () => Math.floor(rnd() * 2 ** 32) | 0);
      const hi = Array.from({ length: 32 }, () => Math.floor(rnd() * 2 ** 32) | 0);
      if (i % 2 === 0) lo[5] = -1; // the add carries into the high half
      for (let x = 1; x < 32; x++) { i32[XL / 4 + x] = lo[x]!; i32[XH / 4 + x] = hi[x]!; }
      chainPut(chain, 0x1000, 0, 0x7000, 1, 3);
      expect(chainsTo(0x1000, 0, 0x7000, 3)).toBe(true);
      const sum = ((BigInt(hi[5]!) << 32n) + BigInt(lo[5]! >>> 0) + 1n) & 0xffffffffffffffffn;
      expect([i32[XL / 4 + 5], i32[XH / 4 + 5]]).toEqual([Number(BigInt.asIntN(32, sum)), Number(BigInt.asIntN(32, sum >> 32n))]);
      expect([i32[XL / 4 + 1], i32[XH / 4 + 1]]).toEqual([lo[31], hi[31]]);
      for (let x = 2; x < 32; x++) if (x !== 5) expect([i32[XL / 4 + x], i32[XH / 4 + x]], `x${x}`).toEqual([lo[x], hi[x]]);
    }
  });
});
