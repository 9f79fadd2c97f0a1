/**
 * The instructions translated code runs through the `ex` import (Jit.exec: CSR, AMO, F/D) where
 * they meet a device or the instruction count: each test runs one program on both engines (the
 * translator with hotThreshold 1, so everything is translated at once) in the same slices and
 * compares the whole hart state after every slice.
 */
import { describe, expect, it } from 'vitest';
import { Hart, type CpuEngine } from '../../src/riscv/hart.js';
import { createWasmRam } from '../../src/riscv/jit.js';
import { C_MTVEC, MS_FS } from '../../src/riscv/state.js';
import type { Bus } from '../../src/riscv/bus.js';
import { ADDI, B, CSRRS, CSRRW, ECALL, I, J, MRET, put, R, S } from './support/rvasm.js';
import { hartState } from './support/state.js';

const BASE = 0x8000_0000;
const HANDLER = 0x2000;
/**
 * The test device: +0 read: mtime (from the instruction count, as a deterministic machine's
 * CLINT); +8 write: raises MTIP; +12 write: clears it; +16 write: adds the time to `stamp`.
 */
const DEV = 0x1000_0000;
/** Deterministic time: a function of instret, as Machine.mtime in deterministic mode. */
const timeOf = (h: Hart) => h.instret * 3 + 7;

interface Log { reads: number; writes: number; other: number; stamp: number }

function makeHart(engine: CpuEngine): { hart: Hart; bytes: Uint8Array; log: Log } {
  const ram = engine === 'wasm' ? createWasmRam(BASE, 1 << 20) : { base: BASE, bytes: new Uint8Array(1 << 20) };
  const log: Log = { reads: 0, writes: 0, other: 0, stamp: 0 };
  let hart: Hart | undefined;
  const bus: Bus = {
    read(pa, size, out) {
      if (pa !== DEV) { log.other++; return false; }
      log.reads++;
      const t = timeOf(hart!);
      out[0] = t | 0; out[1] = size === 8 ? Math.floor(t / 2 ** 32) : 0;
      return true;
    },
    write(pa) {
      if (pa === DEV + 8) { log.writes++; hart!.setInterruptLine(7, true); return true; }
      if (pa === DEV + 12) { hart!.setInterruptLine(7, false); return true; }
      if (pa === DEV + 16) { log.stamp += timeOf(hart!); return true; } // the time a write is seen at
      log.other++;
      return false;
    },
  };
  hart = new Hart({ ram, engine, hotThreshold: 1, batch: 1, bus, time: () => timeOf(hart!) });
  // exceptions: skip the instruction; interrupts: clear the device's line, x7 += 1, x9 = mepc
  put(ram.bytes, HANDLER, [CSRRS(31, 0x342, 0), B(20, 0, 31, 4), CSRRS(31, 0x341, 0), ADDI(31, 31, 4), CSRRW(0, 0x341, 31), MRET,
    S(12, 0, 20, 2), CSRRS(9, 0x341, 0), ADDI(7, 7, 1), MRET]);
  hart.c64[C_MTVEC] = (BASE + HANDLER) | 0;
  hart.xl[20] = DEV;
  hart.mstatus |= MS_FS;
  return { hart, bytes: ram.bytes, log };
}

/** Runs `prog` at BASE on both engines in slices of 1..13 instructions; the state must agree after every one. */
function both(prog: number[], setup: (h: Hart) => void, slices = 400) {
  const runs = (['interp', 'wasm'] as const).map((engine) => {
    const m = makeHart(engine);
    put(m.bytes, 0, prog);
    setup(m.hart);
    m.hart.setPc(BASE);
    return m;
  });
  const [a, b] = runs as [ReturnType<typeof makeHart>, ReturnType<typeof makeHart>];
  for (let i = 0; i < slices; i++) {
    const k = 1 + ((i * 7) % 13);
    expect(b.hart.run(k), `slice ${i}`).toBe(a.hart.run(k));
    const sa = hartState(a.hart), sb = hartState(b.hart);
    if (JSON.stringify(sa) !== JSON.stringify(sb)) expect({ i, ...sb }).toEqual({ i, ...sa });
    expect(b.log, `device, slice ${i}`).toEqual(a.log);
  }
  expect(b.hart.jit!.stats.retired).toBeGreaterThan(b.hart.instret / 4); // most of it ran translated
  return { a, b };
}

const AMO = (f5: number, rd: number, rs1: number, rs2: number) => R(f5 << 2, rs2, rs1, 2, rd, 0x2f); // .W

describe('translated AMO and F/D accesses to a device', () => {
  it('an AMO to a device faults on both engines and the device sees nothing; an FSW sees one write and its interrupt is taken right after it', () => {
    const prog = [
      ADDI(1, 1, 1),
      AMO(0x00, 2, 20, 3), // amoadd.w x2, x3, (x20): no device takes AMOs -> store/AMO access fault
      ADDI(1, 1, 1),
      AMO(0x01, 4, 20, 3), // amoswap.w x4, x3, (x20)
      ADDI(1, 1, 1),
      S(8, 1, 20, 2, 0x27), // fsw f1, 8(x20): the device raises MTIP, taken before the next instruction
      ADDI(5, 5, 1), // 0x18
      I(0, 20, 2, 2, 0x07), // flw f2, 0(x20): one read
      ADDI(6, 6, 1),
      J(-36, 0),
    ];
    const { a, b } = both(prog, (h) => { h.mie = 1 << 7; h.mstatus |= 1 << 3; });
    // the device: one write per FSW, one read per FLW, nothing else (the AMOs never reached it)
    expect(a.log.other).toBe(0);
    expect(a.log.writes).toBeGreaterThan(50);
    const loops = a.hart.xl[6]!;
    expect(a.log.reads - loops).toBeGreaterThanOrEqual(0);
    expect(a.log.reads - loops).toBeLessThanOrEqual(1);
    expect(a.log.writes - a.log.reads).toBeGreaterThanOrEqual(0);
    expect(a.log.writes - a.log.reads).toBeLessThanOrEqual(1);
    expect(a.hart.xl[7]).toBe(a.log.writes); // one interrupt per write ...
    expect(a.hart.xl[9]).toBe((BASE + 0x18) | 0); // ... taken right after the FSW
    expect(b.log).toEqual(a.log);
  });
});

describe('counter CSRs read inside translated code', () => {
  it('cycle, instret and time agree on both engines, also after a CSR exec runs itself, after an MMIO load of mtime, a device store and an SBI call', () => {
    const prog = [
      ADDI(1, 1, 1),
      CSRRS(10, 0xc00, 0), // rdcycle
      ADDI(1, 1, 1),
      CSRRS(11, 0xc02, 0), // rdinstret
      CSRRS(12, 0xc01, 0), // rdtime
      CSRRS(13, 0x140, 0), // csrr sscratch: translated code runs it through `ex`
      CSRRW(0, 0x140, 1), // csrw sscratch
      I(0, 20, 2, 14, 0x03), // lw x14, 0(x20): mtime from the device
      CSRRS(15, 0xc01, 0), // rdtime right after it
      CSRRS(16, 0xc02, 0), // rdinstret
      R(0, 14, 17, 0, 17, 0x33), // add x17, x17, x14
      R(0, 12, 18, 0, 18, 0x33), // add x18, x18, x12
      CSRRS(13, 0x100, 0), // csrr sstatus
      S(16, 1, 20, 2), // sw x1, 16(x20): the device notes the time
      ADDI(1, 1, 1),
      CSRRS(21, 0xc02, 0), // rdinstret
      ECALL, // the SBI (onEcallFromS) reads the time
      J(-68, 0),
    ];
    const { a } = both(prog, (h) => {
      h.priv = 1; h.mcounteren = 7; h.updateModes();
      // x19: the time the SBI sees; x22: the instructions retired before the ECALL, as the SBI sees them, minus rdinstret's
      h.onEcallFromS = (hh) => { hh.xl[19] = timeOf(hh as Hart); hh.xl[22] = hh.instret - hh.xl[21]!; return true; };
    });
    expect(a.log.reads).toBeGreaterThan(100);
    expect(a.log.stamp).toBeGreaterThan(0);
    expect(a.hart.xl[19]).not.toBe(0);
    expect(a.hart.xl[22]).toBe(1); // the SBI sees the exact count
    expect(a.hart.c64[16 + 1]).toBe(0); // no trap was taken (mcause still 0)
    expect(a.hart.c64[16]).toBe(0);
    // the values count: instret at the rdinstret is the instructions before it
    expect(a.hart.xl[11]! - a.hart.xl[10]!).toBe(2);
  });
});
