import { describe, expect, it } from 'vitest';
import { FlatRam, GuestMemoryError } from '../../src/memory/index.js';

const BASE = 0x8000_0000;

describe('FlatRam', () => {
  it('reads and writes little-endian integers at guest-physical addresses', () => {
    const ram = new FlatRam(BASE, 4096);
    ram.writeU32(BASE + 8, 0x11223344);
    expect(ram.readU8(BASE + 8)).toBe(0x44);
    expect(ram.readU16(BASE + 10)).toBe(0x1122);
    ram.writeU64(BASE + 16, 0x0102030405060708n);
    expect(ram.readU32(BASE + 16)).toBe(0x05060708);
    expect(ram.readU64(BASE + 16)).toBe(0x0102030405060708n);
    ram.writeU64(BASE + 24, -1n); // wrapped to u64
    expect(ram.readU64(BASE + 24)).toBe(0xffff_ffff_ffff_ffffn);
    ram.writeU16(BASE + 1, 0xbeef); // unaligned is fine for devices
    expect(ram.readU16(BASE + 1)).toBe(0xbeef);
  });

  it('copies byte ranges and gives zero-copy views', () => {
    const ram = new FlatRam(BASE, 4096);
    ram.write(BASE + 100, new Uint8Array([1, 2, 3]));
    const dst = new Uint8Array(3);
    ram.read(BASE + 100, dst);
    expect([...dst]).toEqual([1, 2, 3]);
    const v = ram.view(BASE + 100, 3);
    v[1] = 9;
    expect(ram.readU8(BASE + 101)).toBe(9);
    expect(v.buffer).toBe(ram.bytes.buffer);
    ram.fill(BASE + 100, 3, 7);
    expect([...dst.map((_, i) => ram.readU8(BASE + 100 + i))]).toEqual([7, 7, 7]);
  });

  it('accepts an access ending exactly at the last byte and refuses one byte more', () => {
    const ram = new FlatRam(BASE, 4096);
    const end = BASE + 4096;
    expect(ram.contains(end - 8, 8)).toBe(true);
    expect(ram.contains(end, 0)).toBe(true);
    expect(ram.contains(end - 8, 9)).toBe(false);
    ram.writeU64(end - 8, 5n);
    expect(() => ram.readU64(end - 7)).toThrow(GuestMemoryError);
    expect(() => ram.writeU8(end, 1)).toThrow(GuestMemoryError);
    expect(() => ram.view(end - 1, 2)).toThrow(GuestMemoryError);
    expect(() => ram.write(end - 1, new Uint8Array(2))).toThrow(GuestMemoryError);
  });

  it('refuses addresses below RAM, negative, fractional, NaN and beyond 2^53', () => {
    const ram = new FlatRam(BASE, 4096);
    for (const addr of [BASE - 1, -1, 0, BASE + 0.5, NaN, Infinity, 2 ** 64, 2 ** 53 + BASE]) {
      expect(ram.contains(addr, 1)).toBe(false);
      expect(() => ram.readU8(addr)).toThrow(GuestMemoryError);
    }
    expect(ram.contains(BASE, -1)).toBe(false);
    expect(() => ram.view(BASE, -1)).toThrow(GuestMemoryError);
  });

  it('a failed access changes nothing', () => {
    const ram = new FlatRam(BASE, 64);
    expect(() => ram.write(BASE + 60, new Uint8Array(8).fill(1))).toThrow(GuestMemoryError);
    expect(ram.bytes.every((b) => b === 0)).toBe(true);
  });

  it('can live in a given buffer, shared with another user', () => {
    const shared = new SharedArrayBuffer(8192);
    const ram = new FlatRam(BASE, 4096, shared);
    ram.writeU8(BASE + 5, 42);
    expect(new Uint8Array(shared)[5]).toBe(42);
    expect(() => new FlatRam(BASE, 8192 + 1, shared)).toThrow(RangeError);
  });

  it('rejects bad construction parameters with a RangeError', () => {
    expect(() => new FlatRam(BASE, 0)).toThrow(RangeError);
    expect(() => new FlatRam(-1, 4096)).toThrow(RangeError);
    expect(() => new FlatRam(BASE, 2 ** 33)).toThrow(RangeError);
  });
});
