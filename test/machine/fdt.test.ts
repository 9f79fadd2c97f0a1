import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildFdt, cells64, encodeValue, type FdtNode } from '../../src/machine/fdt.js';

const hasDtc = spawnSync('dtc', ['--version']).status === 0;
if (!hasDtc) console.warn('fdt: dtc not installed (Debian device-tree-compiler): the decompile test is skipped');

const tree: FdtNode = {
  name: '',
  props: { '#address-cells': 2, '#size-cells': 2, compatible: ['storvm,virt', 'riscv-virtio'], model: 'storvm' },
  children: [
    { name: 'chosen', props: { bootargs: 'console=ttyS0', 'linux,initrd-start': 0x8400_0000n } },
    { name: 'memory@80000000', props: { device_type: 'memory', reg: cells64(0x8000_0000, 128 << 20) } },
    { name: 'soc', props: { ranges: true }, children: [{ name: 'uart@10000000', props: { reg: cells64(0x1000_0000, 0x100), interrupts: 10 } }] },
  ],
};

describe('FDT writer', () => {
  it('writes a version 17 header with consistent offsets', () => {
    const dtb = buildFdt(tree);
    const dv = new DataView(dtb.buffer);
    expect(dv.getUint32(0)).toBe(0xd00dfeed);
    expect(dv.getUint32(4)).toBe(dtb.length);
    expect(dv.getUint32(20)).toBe(17);
    expect(dv.getUint32(8) % 4).toBe(0);
    expect(dv.getUint32(8) + dv.getUint32(36)).toBe(dv.getUint32(12)); // struct then strings
    expect(dv.getUint32(12) + dv.getUint32(32)).toBe(dtb.length);
  });

  it('encodes cells big-endian, string lists NUL-separated, u64 as two cells', () => {
    expect([...encodeValue(0x01020304)]).toEqual([1, 2, 3, 4]);
    expect([...encodeValue(['a', 'bc'])]).toEqual([97, 0, 98, 99, 0]);
    expect([...encodeValue(0x1_0000_0002n)]).toEqual([0, 0, 0, 1, 0, 0, 0, 2]);
    expect(encodeValue(true).length).toBe(0);
    expect(() => encodeValue(-1)).toThrow(RangeError);
    expect(() => encodeValue('a\0b')).toThrow(RangeError);
  });

  it.skipIf(!hasDtc)('decompiles with dtc to the same tree', () => {
    const dts = execFileSync('dtc', ['-I', 'dtb', '-O', 'dts', '-'], { input: buildFdt(tree), encoding: 'utf8' });
    expect(dts).toContain('compatible = "storvm,virt\\0riscv-virtio";');
    expect(dts).toContain('reg = <0x00 0x80000000 0x00 0x8000000>;');
    expect(dts).toContain('linux,initrd-start = <0x00 0x84000000>;');
    expect(dts).toMatch(/uart@10000000 \{[^}]*interrupts = <0x0a>;/);
    expect(dts).toContain('ranges;');
  });
});
