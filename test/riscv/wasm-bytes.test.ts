/** The wasm encoder's byte buffer: bytes() copies in one step, across growth, what byte() would write one at a time. */
import { describe, expect, it } from 'vitest';
import { Bytes } from '../../src/riscv/wasm.js';
import { mulberry32 } from '../support/prng.js';

describe('Bytes', () => {
  it('writes runs of bytes as byte() does, past every growth of its buffer', () => {
    const rnd = mulberry32(7);
    const a = new Bytes(), b = new Bytes();
    for (let i = 0; i < 300; i++) {
      const n = Math.floor(rnd() * (i % 50 === 0 ? 5000 : 40));
      const run = Array.from({ length: n }, () => Math.floor(rnd() * 256));
      const asArray = i % 2 === 0;
      a.bytes(asArray ? run : Uint8Array.from(run));
      for (const x of run) b.byte(x);
      if (i % 7 === 0) { a.u32(i * 977); b.u32(i * 977); }
    }
    expect(a.len).toBe(b.len);
    expect(Buffer.from(a.view()).equals(Buffer.from(b.view()))).toBe(true);
    expect(a.len).toBeGreaterThan(10_000); // many times the first buffer (1024)
  });
});
