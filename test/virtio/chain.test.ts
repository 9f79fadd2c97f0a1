import { describe, expect, it } from 'vitest';
import { FlatRam } from '../../src/memory/flat-ram.js';
import { DescriptorChain } from '../../src/virtio/chain.js';

const BASE = 0x8000_0000;

/** A chain over hand-placed buffers: readable [addr, len] pairs, then writable ones. */
function chain(readable: Array<[number, number]>, writable: Array<[number, number]>): DescriptorChain {
  const c = new DescriptorChain(0, 0);
  for (const [a, l] of readable) {
    c.addrs.push(BASE + a);
    c.lens.push(l);
    c.readableCount++;
    c.readableBytes += l;
  }
  for (const [a, l] of writable) {
    c.addrs.push(BASE + a);
    c.lens.push(l);
    c.writableBytes += l;
  }
  return c;
}

describe('chain cursors', () => {
  const ram = new FlatRam(BASE, 4096);
  ram.bytes.forEach((_, i) => (ram.bytes[i] = i & 0xff));

  it('reads the readable part as one stream across buffers, skipping empty ones', () => {
    const c = chain([[10, 3], [100, 0], [200, 4]], [[1000, 8]]);
    const r = c.reader(ram);
    const dst = new Uint8Array(5);
    expect(r.read(dst)).toBe(5);
    expect([...dst]).toEqual([10, 11, 12, 200, 201]);
    expect(r.remaining).toBe(2);
    expect(r.read(dst)).toBe(2);
    expect([...dst.subarray(0, 2)]).toEqual([202, 203]);
    expect(r.read(dst)).toBe(0);
  });

  it('readExact fails without a partial read when too few bytes remain', () => {
    const r = chain([[0, 10]], []).reader(ram);
    expect(r.readExact(new Uint8Array(16))).toBe(false);
    expect(r.remaining).toBe(0);
  });

  it('never reads from writable buffers and never writes into readable ones', () => {
    const c = chain([[0, 4]], [[2000, 2], [3000, 3]]);
    const w = c.writer(ram);
    expect(w.write(new Uint8Array([1, 2, 3, 4, 5, 6]))).toBe(5);
    expect(w.written).toBe(5);
    expect(w.writeU8(9)).toBe(false);
    expect([...ram.view(BASE + 2000, 2), ...ram.view(BASE + 3000, 3)]).toEqual([1, 2, 3, 4, 5]);
    expect([...ram.view(BASE, 4)]).toEqual([0, 1, 2, 3]);
  });

  it('gives zero-copy views that span buffers, and zero-fills', () => {
    const c = chain([], [[100, 4], [300, 4]]);
    const w = c.writer(ram);
    w.skip(2);
    const views = w.views(4);
    expect(views.map((v) => v.length)).toEqual([2, 2]);
    views[0]![0] = 0xaa;
    expect(ram.readU8(BASE + 102)).toBe(0xaa);
    expect(w.zero(10)).toBe(2);
    expect([...ram.view(BASE + 302, 2)]).toEqual([0, 0]);
    expect(w.written).toBe(8);
  });

  it('writeU8 steps over empty writable buffers', () => {
    const c = chain([], [[500, 0], [600, 1]]);
    const w = c.writer(ram);
    expect(w.writeU8(0x77)).toBe(true);
    expect(ram.readU8(BASE + 600)).toBe(0x77);
  });
});
