/**
 * The storvm machine: one RV64GC hart, RAM, CLINT, PLIC, a 16550 UART, the test finisher, up to
 * eight virtio-mmio slots and an SBI in TypeScript. It boots a Linux Image in S-mode with
 * a0 = hart id and a1 = the device tree, and runs the hart in slices, yielding to the host event
 * loop between them so asynchronous backends complete and interrupts arrive.
 */
import { FlatRam } from '../memory/flat-ram.js';
import { Hart, type CpuEngine } from '../riscv/hart.js';
import { createWasmRam } from '../riscv/jit.js';
import { IRQ_MEI, IRQ_MSI, IRQ_MTI, IRQ_SEI, IRQ_SSI, IRQ_STI } from '../riscv/state.js';
import type { VirtioDevice } from '../virtio/device.js';
import { MmioTransport } from '../virtio/mmio.js';
import {
  boardDtb,
  CLINT_BASE,
  FINISHER_BASE,
  PLIC_BASE,
  RAM_BASE,
  TIMEBASE_HZ,
  UART_BASE,
  UART_IRQ,
  VIRTIO_BASE,
  VIRTIO_SLOTS,
  VIRTIO_STRIDE,
  virtioIrq,
} from './board.js';
import { MmioBus } from './bus.js';
import { Clint, CLINT_SIZE } from './clint.js';
import { BootImageError, parseImageHeader, planBoot } from './loader.js';
import { Plic, PLIC_SIZE } from './plic.js';
import { Sbi } from './sbi.js';
import { Finisher, FINISHER_SIZE } from './test-device.js';
import { Uart16550, UART_SIZE } from './uart.js';

/** What the machine needs from its environment (Node, a browser worker, a test). */
export interface MachineHost {
  /** Monotonic milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Lets the host event loop run (I/O completions, input) and comes back soon. */
  yield(): Promise<void>;
}

export interface MachineOptions {
  /** RAM in MiB (default 128). */
  memoryMiB?: number;
  /** The kernel `Image`, uncompressed. */
  kernel: Uint8Array;
  initrd?: Uint8Array;
  bootargs?: string;
  /** Virtio devices, in slot order (at most 8). */
  devices?: VirtioDevice[];
  /** Time follows retired instructions, so a run replays exactly (default: real time). */
  deterministic?: boolean;
  /** Bytes the guest writes to its console. */
  onConsole?(bytes: Uint8Array): void;
  host: MachineHost;
  /** Instructions per slice between host yields (default 200,000). */
  sliceInstructions?: number;
  /**
   * How guest code runs: 'interp' (default) is the interpreter alone; 'wasm' translates hot code
   * to WebAssembly, with the interpreter behind it. Both retire the same instructions in the
   * same order, so deterministic runs are identical either way.
   */
  cpu?: CpuEngine;
}

/**
 * The default CPU engine, chosen by measurement (bench/README.md, 2026-12-01): the translator
 * runs compute loops 4-6x faster, but the boot and kernel-heavy work (dd, fork+exec) 15-40%
 * slower, and those are most of what this machine runs.
 */
export const DEFAULT_CPU: CpuEngine = 'interp';

export interface RunResult {
  exitCode: number;
  reason: 'poweroff' | 'reset' | 'stopped';
  instructions: number;
}

/** Deterministic mode counts this many instructions per second of guest time. */
const DETERMINISTIC_IPS = 50_000_000;

export class Machine {
  readonly ram: FlatRam;
  readonly hart: Hart;
  readonly bus = new MmioBus();
  readonly plic: Plic;
  readonly clint: Clint;
  readonly uart: Uart16550;
  readonly sbi: Sbi;
  readonly transports: MmioTransport[] = [];
  readonly dtb: Uint8Array;
  /** The CPU engine in use. */
  readonly cpu: CpuEngine;

  private readonly host: MachineHost;
  private readonly deterministic: boolean;
  private readonly slice: number;
  private readonly startMs: number;
  /** Deterministic mode: ticks added when WFI skips ahead to the next deadline. */
  private skippedTicks = 0;
  /** SBI supervisor timer deadline, in mtime ticks. */
  private stimecmp = Number.MAX_SAFE_INTEGER;
  private result: RunResult | undefined;
  private wake: (() => void) | undefined;
  private consoleBuf: number[] = [];
  private readonly onConsole: (bytes: Uint8Array) => void;

  constructor(opts: MachineOptions) {
    const memoryMiB = opts.memoryMiB ?? 128;
    if (!Number.isInteger(memoryMiB) || memoryMiB < 16 || memoryMiB > 2048) {
      throw new RangeError(`memory must be 16..2048 MiB, got ${memoryMiB}`);
    }
    const devices = opts.devices ?? [];
    if (devices.length > VIRTIO_SLOTS) throw new RangeError(`at most ${VIRTIO_SLOTS} virtio devices, got ${devices.length}`);
    this.host = opts.host;
    this.deterministic = opts.deterministic ?? false;
    this.slice = opts.sliceInstructions ?? 200_000;
    this.onConsole = opts.onConsole ?? (() => {});
    this.startMs = this.host.now();

    const cpu = opts.cpu ?? DEFAULT_CPU;
    if (cpu !== 'wasm' && cpu !== 'interp') throw new RangeError(`cpu must be 'interp' or 'wasm', got '${String(cpu)}'`);
    this.cpu = cpu;
    if (cpu === 'wasm') {
      const wasmRam = createWasmRam(RAM_BASE, memoryMiB << 20);
      this.ram = new FlatRam(RAM_BASE, memoryMiB << 20, wasmRam.memory.buffer);
      this.hart = new Hart({ ram: wasmRam, bus: this.bus, time: () => this.mtime(), engine: 'wasm' });
    } else {
      this.ram = new FlatRam(RAM_BASE, memoryMiB << 20);
      this.hart = new Hart({ ram: this.ram, bus: this.bus, time: () => this.mtime() });
    }
    this.plic = new Plic((ctx, level) => {
      this.hart.setInterruptLine(ctx === 0 ? IRQ_MEI : IRQ_SEI, level);
      if (level) this.wake?.();
    });
    this.clint = new Clint(() => this.mtime(), {
      software: (l) => this.hart.setInterruptLine(IRQ_MSI, l),
      timer: (l) => this.hart.setInterruptLine(IRQ_MTI, l),
    });
    this.uart = new Uart16550((b) => this.consoleBuf.push(b), (l) => this.plic.setLevel(UART_IRQ, l));
    this.sbi = new Sbi({
      setTimer: (t) => {
        this.stimecmp = t;
        this.updateTimer();
      },
      sendIpi: () => this.hart.setInterruptLine(IRQ_SSI, true),
      putchar: (b) => this.consoleBuf.push(b),
      getchar: () => -1,
      systemReset: (kind, code) => this.finish(kind === 'shutdown' ? 'poweroff' : 'reset', code),
      readPhys: (addr, len) => (this.ram.contains(addr, len) ? this.ram.view(addr, len).slice() : undefined),
    });
    this.hart.onEcallFromS = (h) => this.sbi.handle(h);

    this.bus.map(FINISHER_BASE, FINISHER_SIZE, new Finisher((e) => this.finish(e.kind, e.kind === 'poweroff' ? e.code : 0)), 'finisher');
    this.bus.map(CLINT_BASE, CLINT_SIZE, this.clint, 'clint');
    this.bus.map(PLIC_BASE, PLIC_SIZE, this.plic, 'plic');
    this.bus.map(UART_BASE, UART_SIZE, this.uart, 'uart');
    // Devices write RAM behind the hart's back. The decoded-code cache stays right the way the
    // ISA says it must: the guest runs FENCE.I before executing what a device wrote, and the
    // hart's FENCE.I drops every decoded page (fenceIFlushesAll).
    devices.forEach((dev, slot) => {
      if (this.deterministic) dev.setDeterministic?.(true);
      const irq = virtioIrq(slot);
      const t = new MmioTransport(dev, this.ram, { set: (l) => this.plic.setLevel(irq, l) });
      this.transports.push(t);
      this.bus.map(VIRTIO_BASE + slot * VIRTIO_STRIDE, VIRTIO_STRIDE, t, `virtio${slot}`);
    });

    // Lay out kernel, initramfs and device tree; the DTB size depends only on what it names.
    const header = parseImageHeader(opts.kernel);
    const initrd = opts.initrd ?? new Uint8Array(0);
    const bootargs = opts.bootargs ?? 'console=ttyS0';
    const slots = devices.map((_, i) => i);
    const probe = boardDtb({ memorySize: this.ram.size, bootargs, initrd: initrd.length ? { start: 0, end: 0 } : undefined, virtioSlots: slots });
    const layout = planBoot(RAM_BASE, this.ram.size, header, initrd.length, probe.length);
    this.dtb = boardDtb({ memorySize: this.ram.size, bootargs, initrd: layout.initrd, virtioSlots: slots });
    if (this.dtb.length !== probe.length) throw new BootImageError('device tree size changed during layout');
    this.ram.write(layout.kernel, opts.kernel);
    if (layout.initrd) this.ram.write(layout.initrd.start, initrd);
    this.ram.write(layout.dtb, this.dtb);

    // SBI boot protocol: S-mode, a0 = hart id, a1 = device tree, satp = 0, interrupts off.
    this.hart.xl[10] = 0;
    this.hart.xl[11] = layout.dtb | 0;
    this.hart.xh[11] = Math.floor(layout.dtb / 2 ** 32);
    this.hart.setPc(layout.kernel);
    // What firmware would leave behind: no M-mode software runs here, so every exception but
    // ECALL from S (the SBI) and every supervisor interrupt goes straight to the kernel.
    this.hart.medeleg = 0xb1ff; // causes 0-8, 12, 13, 15
    this.hart.mideleg = (1 << IRQ_SSI) | (1 << IRQ_STI) | (1 << IRQ_SEI);
    this.hart.mcounteren = 7; // cycle, time, instret readable from S-mode
    this.hart.scounteren = 7; // …and from U-mode, as OpenSBI leaves it: the vDSO reads `time`
    this.hart.priv = 1;
    this.hart.updateModes();
  }

  /** mtime in timebase ticks. */
  mtime(): number {
    if (this.deterministic) return Math.floor((this.hart.instret * TIMEBASE_HZ) / DETERMINISTIC_IPS) + this.skippedTicks;
    return Math.floor(((this.host.now() - this.startMs) * TIMEBASE_HZ) / 1000);
  }

  private updateTimer(): void {
    this.hart.setInterruptLine(IRQ_STI, this.mtime() >= this.stimecmp);
    this.clint.update();
  }

  /** Bytes typed at the console. */
  input(bytes: Uint8Array): void {
    this.uart.receive(bytes);
    this.wake?.();
  }

  /** Ends `run()` at the next slice boundary. */
  stop(): void {
    this.finish('stopped', 0);
  }

  private finish(reason: RunResult['reason'], exitCode: number): void {
    this.result ??= { reason, exitCode, instructions: 0 };
    this.wake?.();
  }

  private flushConsole(): void {
    if (this.consoleBuf.length === 0) return;
    const bytes = Uint8Array.from(this.consoleBuf);
    this.consoleBuf = [];
    this.onConsole(bytes);
  }

  /** Runs until the guest powers off or resets, or `stop()` is called. */
  async run(): Promise<RunResult> {
    while (this.result === undefined) {
      this.updateTimer();
      this.hart.run(this.slice);
      this.flushConsole();
      if (this.result !== undefined) break;
      if (this.deterministic) await this.settleDevices();
      if (this.hart.waiting) await this.idle();
      else await this.host.yield();
    }
    await Promise.all(this.transports.map((t) => t.idle()));
    this.flushConsole();
    return { ...this.result, instructions: this.hart.instret };
  }

  /**
   * Deterministic mode: every request the guest started finishes before it runs on, and
   * completions reach the rings in submission order, so they land at the same instruction count
   * in every run whatever the host's I/O timing.
   */
  private async settleDevices(): Promise<void> {
    await Promise.all(this.transports.map((t) => t.idle()));
    for (const t of this.transports) t.device.flushCompletions?.();
  }

  /** WFI with nothing pending: sleep until the next timer deadline or an interrupt. */
  private async idle(): Promise<void> {
    const deadline = Math.min(this.stimecmp, this.clint.mtimecmp);
    if (this.deterministic) {
      // Devices are settled already (see settleDevices): guest time jumps to the deadline.
      await this.host.yield();
      const now = this.mtime();
      if (deadline > now && deadline !== Number.MAX_SAFE_INTEGER && !this.anyLinePending()) this.skippedTicks += deadline - now;
      return;
    }
    const ms = deadline === Number.MAX_SAFE_INTEGER ? 50 : Math.min(50, Math.max(0, ((deadline - this.mtime()) * 1000) / TIMEBASE_HZ));
    await new Promise<void>((resolve) => {
      const handle = this.host.setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        this.wake = undefined;
        this.host.clearTimeout(handle);
        resolve();
      };
    });
  }

  private anyLinePending(): boolean {
    return (this.hart.mip & this.hart.mie) !== 0;
  }
}
