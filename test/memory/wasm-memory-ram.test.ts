import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { GuestMemoryError, WasmMemoryRam } from '../../src/memory/index.js';

const PAGE = 0x1_0000;

describe('WasmMemoryRam', () => {
  it('is the wasm memory itself: RAM at 0, little-endian, zero-copy views', () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const ram = new WasmMemoryRam(memory);
    expect(ram.base).toBe(0);
    expect(ram.size).toBe(PAGE);
    expect(ram.shared).toBe(false);
    ram.writeU32(8, 0x11223344);
    expect(new Uint8Array(memory.buffer)[8]).toBe(0x44);
    new DataView(memory.buffer).setUint16(100, 0xbeef, true);
    expect(ram.readU16(100)).toBe(0xbeef);
    ram.writeU64(16, -1n);
    expect(ram.readU64(16)).toBe(0xffff_ffff_ffff_ffffn);
    const v = ram.view(200, 4);
    v[2] = 9;
    expect(new Uint8Array(memory.buffer)[202]).toBe(9);
    ram.fill(300, 3, 7);
    const dst = new Uint8Array(3);
    ram.read(300, dst);
    expect([...dst]).toEqual([7, 7, 7]);
    ram.write(400, new Uint8Array([1, 2]));
    expect(ram.readU8(401)).toBe(2);
  });

  it('refuses every access that is not wholly inside the memory, the last byte included', () => {
    const ram = new WasmMemoryRam(new WebAssembly.Memory({ initial: 1 }));
    expect(ram.contains(PAGE - 8, 8)).toBe(true);
    expect(ram.contains(PAGE, 0)).toBe(true);
    expect(ram.contains(PAGE - 8, 9)).toBe(false);
    expect(ram.readU8(PAGE - 1)).toBe(0);
    for (const [addr, len] of [
      [PAGE - 3, 4],
      [-1, 1],
      [NaN, 1],
      [0.5, 1],
      [0, -1],
      [2 ** 64, 1],
      [2 ** 53, 1],
    ] as const) {
      expect(ram.contains(addr, len)).toBe(false);
      expect(() => ram.view(addr, len)).toThrow(GuestMemoryError);
    }
    expect(() => ram.readU32(PAGE - 3)).toThrow(GuestMemoryError);
    expect(() => ram.writeU64(PAGE - 4, 1n)).toThrow(GuestMemoryError);
    expect(() => ram.write(PAGE - 1, new Uint8Array(2))).toThrow(GuestMemoryError);
    expect(ram.readU32(PAGE - 8)).toBe(0); // nothing was written by the refused accesses
  });

  it('follows a non-shared memory that grows (its old buffer is detached)', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const ram = new WasmMemoryRam(memory);
    ram.writeU32(PAGE - 4, 0xcafe_f00d);
    expect(ram.contains(PAGE, 4)).toBe(false);
    const old = memory.buffer;
    memory.grow(2);
    expect(old.byteLength).toBe(0); // detached
    // Accesses below the old end must not use the detached buffer, above it must reach the new pages.
    expect(ram.readU32(PAGE - 4)).toBe(0xcafe_f00d);
    ram.writeU32(2 * PAGE + 12, 0x1234_5678);
    expect(new DataView(memory.buffer).getUint32(2 * PAGE + 12, true)).toBe(0x1234_5678);
    expect(ram.size).toBe(3 * PAGE);
    expect(ram.contains(3 * PAGE - 1, 1)).toBe(true);
    expect(() => ram.readU8(3 * PAGE)).toThrow(GuestMemoryError);
    // Each kind of access finds the new buffer on its own.
    memory.grow(1);
    expect(ram.readU64(PAGE - 4) & 0xffff_ffffn).toBe(0xcafe_f00dn);
    memory.grow(0); // a grow by 0 detaches too
    ram.writeU16(4 * PAGE - 2, 0xabcd);
    expect(new Uint8Array(memory.buffer)[4 * PAGE - 1]).toBe(0xab);
  });

  it('follows a shared memory that grows, and its views stay valid', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true });
    const ram = new WasmMemoryRam(memory);
    expect(ram.shared).toBe(true);
    const view = ram.view(64, 8);
    memory.grow(1);
    expect(ram.contains(PAGE + 100, 4)).toBe(true);
    ram.writeU32(PAGE + 100, 77);
    expect(new DataView(memory.buffer).getUint32(PAGE + 100, true)).toBe(77);
    view[0] = 5;
    expect(ram.readU8(64)).toBe(5);
    expect(ram.size).toBe(2 * PAGE);
  });

  it('changes its view generation when a grow detaches the buffer, and only then', () => {
    const plain = new WebAssembly.Memory({ initial: 1, maximum: 4 });
    const a = new WasmMemoryRam(plain);
    const g0 = a.viewGeneration();
    expect(a.viewGeneration()).toBe(g0);
    plain.grow(1);
    expect(a.viewGeneration()).toBe(g0 + 1);
    plain.grow(1);
    a.readU8(0); // any access notices the grow too
    expect(a.viewGeneration()).toBe(g0 + 2);
    const shared = new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true });
    const b = new WasmMemoryRam(shared);
    const h0 = b.viewGeneration();
    shared.grow(2);
    b.readU8(2 * PAGE);
    expect(b.viewGeneration()).toBe(h0);
  });

  it('sees a shared memory that another thread grew and wrote', async () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 8, shared: true });
    const ram = new WasmMemoryRam(memory);
    const worker = new Worker(
      `const { parentPort, workerData: memory } = require('node:worker_threads');
       memory.grow(2);
       new DataView(memory.buffer).setUint32(2 * 65536 + 8, 0xfeedbeef, true);
       parentPort.postMessage(memory.buffer.byteLength);`,
      { eval: true, workerData: memory },
    );
    const grownTo = await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
    await worker.terminate();
    expect(grownTo).toBe(3 * PAGE);
    expect(ram.readU32(2 * PAGE + 8)).toBe(0xfeedbeef);
    expect(ram.size).toBe(3 * PAGE);
  });

  it('refuses something that is not a memory', () => {
    expect(() => new WasmMemoryRam({} as never)).toThrow(TypeError);
    expect(() => new WasmMemoryRam({ buffer: new Uint8Array(4) } as never)).toThrow(TypeError);
  });
});
