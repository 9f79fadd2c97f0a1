/**
 * The storvm machine: one RV64GC hart, RAM, CLINT, PLIC, a 16550 UART, the test finisher, up to
 * eight virtio-mmio slots and an SBI in TypeScript. It boots a Linux Image in S-mode with
 * a0 = hart id and a1 = the device tree, and runs the hart in slices, yielding to the host event
 * loop between them so asynchronous backends complete and interrupts arrive.
 */
import { FlatRam } from '../memory/flat-ram.js';
import { CPU_ENGINES, type CpuEngine, DEFAULT_CPU } from '../riscv/engine.js';
import { Hart } from '../riscv/hart.js';
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
import { Plic, PLIC_SIZE, PLIC_STATE_SIZES, type PlicSnapshot } from './plic.js';
import { Sbi } from './sbi.js';
import { Finisher, FINISHER_SIZE } from './test-device.js';
import { Uart16550, UART_SIZE, type UartSnapshot } from './uart.js';
import { decodeRam, type DeflateCodec, encodeRam, ramImageStats } from './ram-image.js';
import { jsonSection, parseJsonSection, readSnapshot, SNAPSHOT_VERSION, SnapshotError, StateReader, writeSnapshot } from './snapshot-format.js';
import type { HartSnapshot } from '../riscv/state.js';
import type { TransportSnapshot } from '../virtio/mmio.js';
import { DeviceStateMismatch } from '../virtio/device.js';
import { deviceName } from '../virtio/constants.js';

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
   * How guest code runs: 'interp' is the interpreter alone; 'wasm' (DEFAULT_CPU) translates hot
   * code to WebAssembly, with the interpreter behind it. Both retire the same instructions in
   * the same order, so deterministic runs are identical either way. In Node, run the translator
   * with V8's `--liftoff-only` (storvm's CLI sets it: src/node/v8-tuning.ts); TurboFan tiering
   * of the page functions costs more CPU than the boot itself.
   */
  cpu?: CpuEngine;
}

export { DEFAULT_CPU };

export interface RunResult {
  exitCode: number;
  reason: 'poweroff' | 'reset' | 'stopped';
  instructions: number;
}

const RESTORING = Symbol('restoring');

/** What Machine.restore needs besides the snapshot: the same kind of devices, and the host. */
export interface RestoreOptions {
  /** The devices, in the slots and of the kinds they were saved with, over the same disks and shares. */
  devices?: VirtioDevice[];
  host: MachineHost;
  onConsole?(bytes: Uint8Array): void;
  sliceInstructions?: number;
  /** The CPU engine to resume with (default: the one saved with; either gives the same results). */
  cpu?: CpuEngine;
  /** Guest time follows instructions (default: as saved). */
  deterministic?: boolean;
  /** A faster raw-DEFLATE implementation than fflate's, e.g. Node's zlib (same format). */
  codec?: DeflateCodec;
}

export interface SaveOptions {
  /**
   * Extra facts for `storvm snapshot info` and the embedder (kept in the META section, not used by
   * restore); a function is called when the snapshot is taken, at the slice boundary.
   */
  meta?: Record<string, unknown> | (() => Record<string, unknown>);
  /** Deflate level of the RAM pages, 1 (fast, default) to 9 (small). */
  level?: 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;
  /** A faster raw-DEFLATE implementation than fflate's, e.g. Node's zlib (same format). */
  codec?: DeflateCodec;
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
  private startMs: number;
  private running = false;
  /** save() calls waiting for the next slice boundary. */
  private readonly pauseRequests: Array<() => Promise<void>> = [];
  /** Deterministic mode: ticks added when WFI skips ahead to the next deadline. */
  private skippedTicks = 0;
  /** SBI supervisor timer deadline, in mtime ticks. */
  private stimecmp = Number.MAX_SAFE_INTEGER;
  private result: RunResult | undefined;
  private wake: (() => void) | undefined;
  private consoleBuf: number[] = [];
  private readonly onConsole: (bytes: Uint8Array) => void;

  constructor(opts: MachineOptions);
  /** @internal Machine.restore builds the machine without loading a kernel. */
  constructor(opts: MachineOptions, restoring: typeof RESTORING);
  constructor(opts: MachineOptions, restoring?: typeof RESTORING) {
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
    if (!CPU_ENGINES.includes(cpu)) throw new RangeError(`cpu must be ${CPU_ENGINES.map((e) => `'${e}'`).join(' or ')}, got '${String(cpu)}'`);
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

    if (restoring) {
      this.dtb = new Uint8Array(0);
      return;
    }
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

  /**
   * Ends `run()` at the next slice boundary as if the guest had powered off with `exitCode`: for a
   * host that hears the guest's status another way (the boot cache's console marker,
   * src/machine/boot-handshake.ts).
   */
  powerOff(exitCode: number): void {
    this.finish('poweroff', exitCode);
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

  /**
   * Saves the whole machine as snapshot bytes (docs/snapshots.md): at the next slice boundary when
   * it is running (the guest is paused meanwhile and goes on afterwards), at once when it is not.
   * Requests in flight are finished first, so the snapshot holds none.
   */
  save(opts: SaveOptions = {}): Promise<Uint8Array> {
    if (!this.running) return this.capture(opts);
    return new Promise((resolve, reject) => this.pauseRequests.push(() => this.capture(opts).then(resolve, reject)));
  }

  /** Finishes every request in flight, including completions held for deterministic delivery. */
  private async drain(): Promise<void> {
    for (let round = 0; ; round++) {
      await Promise.all(this.transports.map((t) => t.idle()));
      for (const t of this.transports) t.device.flushCompletions?.();
      if (this.transports.every((t) => (t.device.pending ?? 0) === 0)) return;
      if (round > 1000) throw new SnapshotError('state', 'devices did not settle: requests keep arriving while the guest is paused');
    }
  }

  private async capture(opts: SaveOptions): Promise<Uint8Array> {
    await this.drain();
    this.flushConsole();
    const extra = typeof opts.meta === 'function' ? opts.meta() : opts.meta;
    const devices = await Promise.all(
      this.transports.map(async (t, slot) => {
        try {
          return (await t.device.saveState?.()) ?? { state: null };
        } catch (e) {
          throw new SnapshotError('state', `virtio slot ${slot} (${deviceName(t.device.deviceId)}): ${(e as Error).message}`);
        }
      }),
    );
    const blobs: Uint8Array[] = [];
    const deviceStates = devices.map((d) => {
      const first = blobs.length;
      for (const b of d.blobs ?? []) blobs.push(b);
      return { state: d.state, blobs: [first, blobs.length - first] };
    });
    const mtime = this.mtime();
    const state = {
      machine: {
        memoryMiB: this.ram.size >>> 20,
        cpu: this.cpu,
        deterministic: this.deterministic,
        mtime,
        skippedTicks: this.skippedTicks,
        stimecmp: this.stimecmp,
      },
      hart: this.hart.saveState(),
      clint: this.clint.saveState(),
      plic: this.plic.saveState(),
      uart: this.uart.saveState(),
      transports: this.transports.map((t) => t.saveState()),
      devices: deviceStates,
    };
    const ram = await encodeRam(this.ram.bytes, opts.level ?? 1, opts.codec);
    const meta = {
      ...extra,
      format: SNAPSHOT_VERSION,
      created: new Date().toISOString(),
      memoryMiB: this.ram.size >>> 20,
      cpu: this.cpu,
      deterministic: this.deterministic,
      instret: this.hart.instret,
      guestSeconds: mtime / TIMEBASE_HZ,
      devices: this.transports.map((t, slot) => ({ slot, deviceId: t.device.deviceId, status: t.deviceStatus })),
      ramPages: ramImageStats(ram),
    };
    return writeSnapshot([
      jsonSection('META', meta),
      jsonSection('STAT', state),
      { tag: 'RAM ', data: ram },
      ...blobs.map((data) => ({ tag: 'BLOB', data })),
    ]);
  }

  /**
   * A machine that goes on from a snapshot made by {@link save}. The devices must be of the kinds
   * and in the slots they were saved in, over the same disks (checked by size and content hash)
   * and shares. Anything wrong is a SnapshotError before the machine exists: there is never a
   * half-restored machine.
   */
  static async restore(bytes: Uint8Array, opts: RestoreOptions): Promise<Machine> {
    const sections = readSnapshot(bytes);
    const one = (tag: string) => {
      const s = sections.filter((x) => x.tag === tag);
      if (s.length !== 1) throw new SnapshotError('corrupt', `snapshot has ${s.length} '${tag}' sections, expected 1`);
      return s[0]!;
    };
    const st = StateReader.of(parseJsonSection(one('STAT')), 'state');
    const ram = one('RAM ').data;
    const blobs = sections.filter((x) => x.tag === 'BLOB').map((x) => x.data);
    const ms = st.obj('machine');
    const memoryMiB = ms.int('memoryMiB', 16, 2048);
    const savedCpu = ms.str('cpu');
    if (savedCpu !== 'interp' && savedCpu !== 'wasm') throw new SnapshotError('state', `snapshot: unknown cpu '${savedCpu}'`);
    const devices = opts.devices ?? [];
    const ts = st.list('transports');
    const ds = st.list('devices');
    if (ts.length !== devices.length || ds.length !== devices.length) {
      throw new SnapshotError('mismatch', `the snapshot has ${ts.length} virtio devices, ${devices.length} given`);
    }
    ts.forEach((t, slot) => {
      const id = t.int('deviceId', 0, 0xffff);
      if (id !== devices[slot]!.deviceId) {
        throw new SnapshotError('mismatch', `virtio slot ${slot}: the snapshot has a ${deviceName(id)} device there, a ${deviceName(devices[slot]!.deviceId)} was given`);
      }
    });
    const deterministic = opts.deterministic ?? ms.bool('deterministic');
    const mOpts: MachineOptions = { memoryMiB, kernel: new Uint8Array(0), devices, deterministic, host: opts.host, cpu: opts.cpu ?? savedCpu };
    if (opts.onConsole) mOpts.onConsole = opts.onConsole;
    if (opts.sliceInstructions !== undefined) mOpts.sliceInstructions = opts.sliceInstructions;
    const m = new Machine(mOpts, RESTORING);
    await decodeRam(ram, m.ram.bytes, { zeroed: true, ...(opts.codec ? { codec: opts.codec } : {}) });
    try {
      m.uart.loadState(uartState(st.obj('uart')));
      const cl = st.obj('clint');
      m.clint.loadState({ msip: cl.int('msip', 0, 1), mtimecmp: nonNegative(cl, 'mtimecmp') });
      for (const [slot, t] of m.transports.entries()) {
        try {
          t.loadState(transportState(ts[slot]!));
        } catch (e) {
          throw new SnapshotError('state', `snapshot: virtio slot ${slot}: ${(e as Error).message}`);
        }
        const d = ds[slot]!;
        const range = d.ints('blobs', 2, 0, blobs.length);
        const first = range[0]!, count = range[1]!;
        if (first + count > blobs.length) throw new SnapshotError('corrupt', `snapshot: virtio slot ${slot} names blobs that are not there`);
        const snap = { state: d.raw('state'), blobs: blobs.slice(first, first + count) };
        const load = t.device.loadState;
        if (load === undefined) continue;
        try {
          await load.call(t.device, snap);
        } catch (e) {
          if (e instanceof DeviceStateMismatch) throw new SnapshotError('mismatch', `virtio slot ${slot} (${deviceName(t.device.deviceId)}): ${e.message}`);
          if (e instanceof SnapshotError) throw e;
          throw new SnapshotError('state', `snapshot: virtio slot ${slot} (${deviceName(t.device.deviceId)}): ${(e as Error).message}`);
        }
      }
      m.plic.loadState(plicState(st.obj('plic')));
      m.hart.loadState(hartState(st.obj('hart')));
    } catch (e) {
      if (e instanceof SnapshotError) throw e;
      throw new SnapshotError('state', `snapshot: ${(e as Error).message}`);
    }
    // Guest time goes on from where it was: re-based on instructions or on the host clock.
    const mtime = ms.int('mtime', 0);
    m.stimecmp = nonNegative(ms, 'stimecmp'); // may be 2^64-1 (timer off), beyond 2^53: not an exact integer
    if (m.deterministic) m.skippedTicks = mtime - Math.floor((m.hart.instret * TIMEBASE_HZ) / DETERMINISTIC_IPS);
    else m.startMs = m.host.now() - (mtime * 1000) / TIMEBASE_HZ;
    return m;
  }

  /** Runs until the guest powers off or resets, or `stop()` is called. */
  async run(): Promise<RunResult> {
    this.running = true;
    try {
      return await this.loop();
    } finally {
      this.running = false;
      for (const p of this.pauseRequests.splice(0)) await p();
    }
  }

  private async loop(): Promise<RunResult> {
    while (this.result === undefined) {
      if (this.pauseRequests.length > 0) for (const p of this.pauseRequests.splice(0)) await p();
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
      if (deadline > now && deadline < Number.MAX_SAFE_INTEGER && !this.anyLinePending()) this.skippedTicks += deadline - now;
      return;
    }
    const ms = deadline >= Number.MAX_SAFE_INTEGER ? 50 : Math.min(50, Math.max(0, ((deadline - this.mtime()) * 1000) / TIMEBASE_HZ));
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


function uartState(r: StateReader): UartSnapshot {
  return {
    ier: r.int('ier', 0, 255), lcr: r.int('lcr', 0, 255), mcr: r.int('mcr', 0, 255), scr: r.int('scr', 0, 255),
    fcr: r.int('fcr', 0, 255), dll: r.int('dll', 0, 255), dlm: r.int('dlm', 0, 255), thriPending: r.bool('thriPending'),
    rx: r.ints('rx', undefined, 0, 255),
  };
}

function plicState(r: StateReader): PlicSnapshot {
  const { sources: s, contexts: c } = PLIC_STATE_SIZES;
  return {
    priority: r.ints('priority', s, 0, 7), level: r.ints('level', s, 0, 1), pending: r.ints('pending', s, 0, 1),
    claimed: r.ints('claimed', s, 0, 1), enable: r.ints('enable', c), threshold: r.ints('threshold', c, 0, 7),
  };
}

const I32: [number, number] = [-(2 ** 31), 2 ** 31 - 1];

function hartState(r: StateReader): HartSnapshot {
  const i32 = (k: string) => r.int(k, ...I32);
  const priv = r.int('priv', 0, 3);
  if (priv === 2) throw new SnapshotError('state', 'snapshot: hart privilege 2 does not exist');
  return {
    xl: r.ints('xl', 32, ...I32), xh: r.ints('xh', 32, ...I32), f: r.ints('f', 64, ...I32),
    pcLo: i32('pcLo'), pcHi: i32('pcHi'), priv,
    mstatus: i32('mstatus'), medeleg: i32('medeleg'), mideleg: i32('mideleg'), mie: i32('mie'), mipSw: i32('mipSw'), mipExt: i32('mipExt'),
    c64: r.ints('c64', 64, ...I32), mcounteren: i32('mcounteren'), scounteren: i32('scounteren'), mcountinhibit: i32('mcountinhibit'),
    pmpcfg: r.ints('pmpcfg', 4, ...I32), satpMode: r.int('satpMode', 0, 15), satpPpn: r.int('satpPpn', 0),
    fflags: r.int('fflags', 0, 31), frm: r.int('frm', 0, 7), instret: r.int('instret', 0), cycleOffset: r.int('cycleOffset'),
    resValid: r.bool('resValid'), resLo: i32('resLo'), resHi: i32('resHi'), waiting: r.bool('waiting'),
  };
}

function transportState(r: StateReader): TransportSnapshot {
  const u32 = (k: string) => r.int(k, 0, 2 ** 32 - 1);
  const addr = (q: StateReader, k: string) => q.int(k, 0, Number.MAX_SAFE_INTEGER);
  return {
    deviceId: u32('deviceId'), status: r.int('status', 0, 255), deviceFeaturesSel: u32('deviceFeaturesSel'), driverFeaturesSel: u32('driverFeaturesSel'),
    driverFeatures: /^[0-9a-f]{1,16}$/.test(r.str('driverFeatures')) ? r.str('driverFeatures') : badState('driverFeatures'),
    queueSel: u32('queueSel'), interruptStatus: r.int('interruptStatus', 0, 3), configGeneration: u32('configGeneration'),
    needsResetReason: r.optStr('needsResetReason') ?? null, packed: r.bool('packed'),
    queues: r.list('queues').map((q) => ({
      size: q.int('size', 0, 32768), descAddr: addr(q, 'descAddr'), driverAddr: addr(q, 'driverAddr'), deviceAddr: addr(q, 'deviceAddr'),
      ready: q.bool('ready'), indirect: q.bool('indirect'), eventIdx: q.bool('eventIdx'), broken: q.optStr('broken') ?? null,
      ring: q.ints('ring', undefined, 0, 2 ** 32 - 1),
    })),
  };
}

function badState(what: string): never {
  throw new SnapshotError('state', `snapshot: ${what} is malformed`);
}

function nonNegative(r: StateReader, key: string): number {
  const v = r.num(key);
  if (v < 0) badState(key);
  return v;
}
