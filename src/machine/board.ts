/**
 * The storvm board: QEMU `virt`'s address map, one hart, and its device tree.
 */
import { buildFdt, cells64, type FdtNode } from './fdt.js';

export const RAM_BASE = 0x8000_0000;
export const FINISHER_BASE = 0x10_0000;
export const CLINT_BASE = 0x200_0000;
export const PLIC_BASE = 0xc00_0000;
export const UART_BASE = 0x1000_0000;
export const UART_IRQ = 10;
export const VIRTIO_BASE = 0x1000_1000;
export const VIRTIO_STRIDE = 0x1000;
export const VIRTIO_SLOTS = 8;
/** virtio slot n raises PLIC source n + 1. */
export const virtioIrq = (slot: number): number => slot + 1;
/** mtime ticks per second (QEMU virt uses the same). */
export const TIMEBASE_HZ = 10_000_000;
export const ISA_EXTENSIONS = ['i', 'm', 'a', 'f', 'd', 'c', 'zicsr', 'zifencei', 'zicntr'];

export interface BoardTree {
  memorySize: number;
  bootargs: string;
  initrd?: { start: number; end: number };
  /** Slots that hold a virtio device. */
  virtioSlots: number[];
}

const PH_CPU_INTC = 1;
const PH_PLIC = 2;
const PH_FINISHER = 3;

/** The device tree Linux boots with (Devicetree Specification v0.4; Linux's riscv bindings). */
export function boardTree(b: BoardTree): FdtNode {
  const chosen: Record<string, string | bigint> = { bootargs: b.bootargs, 'stdout-path': `/soc/serial@${UART_BASE.toString(16)}` };
  if (b.initrd) {
    chosen['linux,initrd-start'] = BigInt(b.initrd.start);
    chosen['linux,initrd-end'] = BigInt(b.initrd.end);
  }
  const hex = (n: number) => n.toString(16);
  return {
    name: '',
    props: { '#address-cells': 2, '#size-cells': 2, compatible: 'riscv-virtio', model: 'storvm,virt' },
    children: [
      { name: 'chosen', props: chosen },
      { name: `memory@${hex(RAM_BASE)}`, props: { device_type: 'memory', reg: cells64(RAM_BASE, b.memorySize) } },
      {
        name: 'cpus',
        props: { '#address-cells': 1, '#size-cells': 0, 'timebase-frequency': TIMEBASE_HZ },
        children: [
          {
            name: 'cpu@0',
            props: {
              device_type: 'cpu',
              reg: 0,
              status: 'okay',
              compatible: 'riscv',
              'riscv,isa': 'rv64imafdc_zicsr_zifencei_zicntr',
              'riscv,isa-base': 'rv64i',
              'riscv,isa-extensions': ISA_EXTENSIONS,
              'mmu-type': 'riscv,sv39',
            },
            children: [
              {
                name: 'interrupt-controller',
                props: { '#interrupt-cells': 1, 'interrupt-controller': true, compatible: 'riscv,cpu-intc', phandle: PH_CPU_INTC },
              },
            ],
          },
        ],
      },
      {
        name: 'soc',
        props: { '#address-cells': 2, '#size-cells': 2, compatible: 'simple-bus', ranges: true },
        children: [
          {
            name: `test@${hex(FINISHER_BASE)}`,
            props: { compatible: ['sifive,test1', 'sifive,test0', 'syscon'], reg: cells64(FINISHER_BASE, 0x1000), phandle: PH_FINISHER },
          },
          { name: 'poweroff', props: { compatible: 'syscon-poweroff', regmap: PH_FINISHER, offset: 0, value: 0x5555 } },
          { name: 'reboot', props: { compatible: 'syscon-reboot', regmap: PH_FINISHER, offset: 0, value: 0x7777 } },
          {
            name: `clint@${hex(CLINT_BASE)}`,
            props: { compatible: ['sifive,clint0', 'riscv,clint0'], reg: cells64(CLINT_BASE, 0x10000), 'interrupts-extended': [PH_CPU_INTC, 3, PH_CPU_INTC, 7] },
          },
          {
            name: `plic@${hex(PLIC_BASE)}`,
            props: {
              compatible: ['sifive,plic-1.0.0', 'riscv,plic0'],
              reg: cells64(PLIC_BASE, 0x400_0000),
              '#interrupt-cells': 1,
              '#address-cells': 0,
              'interrupt-controller': true,
              'riscv,ndev': 31,
              'interrupts-extended': [PH_CPU_INTC, 11, PH_CPU_INTC, 9],
              phandle: PH_PLIC,
            },
          },
          {
            name: `serial@${hex(UART_BASE)}`,
            props: { compatible: 'ns16550a', reg: cells64(UART_BASE, 0x100), 'clock-frequency': 3_686_400, interrupts: UART_IRQ, 'interrupt-parent': PH_PLIC },
          },
          ...b.virtioSlots.map((slot) => {
            const base = VIRTIO_BASE + slot * VIRTIO_STRIDE;
            return {
              name: `virtio_mmio@${hex(base)}`,
              props: { compatible: 'virtio,mmio', reg: cells64(base, VIRTIO_STRIDE), interrupts: virtioIrq(slot), 'interrupt-parent': PH_PLIC, 'dma-coherent': true as const },
            };
          }),
        ],
      },
    ],
  };
}

export function boardDtb(b: BoardTree): Uint8Array {
  return buildFdt(boardTree(b));
}
