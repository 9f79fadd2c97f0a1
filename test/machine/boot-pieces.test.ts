import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { FlatRam } from '../../src/memory/flat-ram.js';
import { boardDtb, RAM_BASE } from '../../src/machine/board.js';
import { BootImageError, parseImageHeader, planBoot } from '../../src/machine/loader.js';
import { EXT_BASE, EXT_HSM, EXT_SRST, EXT_TIME, Sbi, SBI_ERR_NOT_SUPPORTED, type SbiHost } from '../../src/machine/sbi.js';
import { Hart } from '../../src/riscv/hart.js';

const hasDtc = spawnSync('dtc', ['--version']).status === 0;

function fakeImage(textOffset: number, imageSize: number, fileSize = 4096): Uint8Array {
  const img = new Uint8Array(fileSize);
  const dv = new DataView(img.buffer);
  dv.setBigUint64(8, BigInt(textOffset), true);
  dv.setBigUint64(16, BigInt(imageSize), true);
  img.set(new TextEncoder().encode('RISCV\0\0\0'), 48);
  dv.setUint32(56, 0x05435352, true);
  return img;
}

describe('kernel Image loading', () => {
  it('places initramfs and device tree above the in-memory size, not the file size', () => {
    const h = parseImageHeader(fakeImage(0x200000, 12 << 20, 4096));
    expect(h).toEqual({ textOffset: 0x200000, imageSize: 12 << 20 });
    const l = planBoot(RAM_BASE, 64 << 20, h, 1000, 2000);
    expect(l.kernel).toBe(RAM_BASE + 0x200000);
    expect(l.initrd!.start).toBeGreaterThanOrEqual(l.kernel + (12 << 20));
    expect(l.initrd!.end).toBe(l.initrd!.start + 1000);
    expect(l.dtb).toBeGreaterThanOrEqual(l.initrd!.end);
    expect(l.dtb % 4096).toBe(0);
  });

  it('refuses a file that is not a RISC-V Image, and a machine too small for it', () => {
    expect(() => parseImageHeader(new Uint8Array(4096))).toThrow(BootImageError);
    expect(() => parseImageHeader(new Uint8Array(10))).toThrow(/too small/);
    const h = parseImageHeader(fakeImage(0x200000, 60 << 20));
    expect(() => planBoot(RAM_BASE, 32 << 20, h, 0, 100)).toThrow(/MiB/);
  });
});

describe('board device tree', () => {
  it.skipIf(!hasDtc)('decompiles with dtc and names every device Linux needs', () => {
    const dtb = boardDtb({ memorySize: 128 << 20, bootargs: 'console=ttyS0', initrd: { start: 0x8100_0000, end: 0x8120_0000 }, virtioSlots: [0, 1] });
    const dts = execFileSync('dtc', ['-I', 'dtb', '-O', 'dts', '-'], { input: dtb, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    for (const s of [
      'riscv,isa = "rv64imafdc_zicsr_zifencei_zicntr"',
      'riscv,isa-extensions = "i\\0m\\0a\\0f\\0d\\0c\\0zicsr\\0zifencei\\0zicntr"',
      'timebase-frequency = <0x989680>',
      'reg = <0x00 0x80000000 0x00 0x8000000>',
      'bootargs = "console=ttyS0"',
      'linux,initrd-start = <0x00 0x81000000>',
      'stdout-path = "/soc/serial@10000000"',
      'virtio_mmio@10001000',
      'virtio_mmio@10002000',
      'compatible = "ns16550a"',
      'compatible = "syscon-poweroff"',
    ]) {
      expect(dts).toContain(s);
    }
    expect(dts).not.toContain('virtio_mmio@10003000');
  });
});

describe('SBI', () => {
  function setup() {
    const hart = new Hart({ ram: new FlatRam(RAM_BASE, 1 << 16) });
    const events: string[] = [];
    const host: SbiHost = {
      setTimer: (t) => events.push(`timer ${t}`),
      sendIpi: () => events.push('ipi'),
      putchar: (b) => events.push(`put ${String.fromCharCode(b)}`),
      getchar: () => -1,
      systemReset: (k, c) => events.push(`${k} ${c}`),
      readPhys: () => undefined,
    };
    const call = (eid: number, fid: number, ...args: number[]) => {
      hart.xl[17] = eid | 0;
      hart.xh[17] = 0;
      hart.xl[16] = fid;
      args.forEach((a, i) => {
        hart.xl[10 + i] = a % 2 ** 32 | 0;
        hart.xh[10 + i] = Math.floor(a / 2 ** 32);
      });
      expect(new Sbi(host).handle(hart)).toBe(true);
      return { error: hart.xl[10]!, value: (hart.xl[11]! >>> 0) + hart.xh[11]! * 2 ** 32 };
    };
    return { call, events };
  }

  it('answers the base extension and probes', () => {
    const { call } = setup();
    expect(call(EXT_BASE, 0)).toEqual({ error: 0, value: 0x0200_0000 });
    expect(call(EXT_BASE, 3, EXT_TIME).value).toBe(1);
    expect(call(EXT_BASE, 3, 0x12345).value).toBe(0);
  });

  it('programs the timer with a 64-bit value, prints, resets', () => {
    const { call, events } = setup();
    expect(call(EXT_TIME, 0, 2 ** 40 + 5).error).toBe(0);
    call(1, 0, 0x41); // legacy console putchar
    call(EXT_SRST, 0, 0, 0);
    expect(events).toEqual([`timer ${2 ** 40 + 5}`, 'put A', 'shutdown 0']);
  });

  it('reads arguments as unsigned: set_timer(-1), Linux\'s "no next event", is the far future, not the past', () => {
    const { events } = setup();
    const hart = new Hart({ ram: new FlatRam(RAM_BASE, 1 << 16) });
    hart.xl[17] = EXT_TIME; hart.xh[17] = 0; hart.xl[16] = 0;
    hart.xl[10] = -1; hart.xh[10] = -1; // a0 = 0xffff_ffff_ffff_ffff
    const sbi = new Sbi({ setTimer: (t) => events.push(`timer ${t >= 2 ** 63 ? 'far' : t}`), sendIpi: () => {}, putchar: () => {}, getchar: () => -1, systemReset: () => {}, readPhys: () => undefined });
    expect(sbi.handle(hart)).toBe(true);
    expect(events).toEqual(['timer far']);
  });

  it('reports hart 0 started, and NOT_SUPPORTED for unknown calls', () => {
    const { call } = setup();
    expect(call(EXT_HSM, 2, 0)).toEqual({ error: 0, value: 0 });
    expect(call(0x0abcdef, 0).error).toBe(SBI_ERR_NOT_SUPPORTED);
  });
});
