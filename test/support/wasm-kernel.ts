/**
 * The kernel side of tombl/linux's virtio,wasm binding, for tests and benchmarks: a small
 * WebAssembly module that calls the `virtio` imports from wasm code, a device-tree reader, and a
 * driver that probes and sets up rings as arch/wasm/drivers/virtio_wasm.c does, with its rings and
 * buffers in the kernel's WebAssembly.Memory.
 *
 * The module is assembled here byte by byte (no compiler involved). It imports `env.memory` and
 * the seven `virtio` functions with the kernel's signatures (i32 ids, sizes and addresses, an i64
 * for the features) and exports one thunk per import that forwards its arguments, plus
 * `publish(avail, size, head)`, which puts a head in the available ring and moves avail.idx with
 * wasm stores, as the kernel's virtqueue_add does.
 */
import { buildFdt } from '../../src/machine/fdt.js';
import { VirtioWasmHost, type VirtioWasmImports } from '../../src/machine/virtio-wasm.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { WasmMemoryRam } from '../../src/memory/wasm-memory-ram.js';
import type { VirtioDevice } from '../../src/virtio/device.js';
import { DriverQueue, GuestAllocator, type QueueHost } from '../../src/testing/index.js';
import { RecordingMemory } from '../../src/testing/index.js';

// ---- a tiny wasm assembler --------------------------------------------------------------------

const I32 = 0x7f;
const I64 = 0x7e;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (s: string): number[] => vec([...new TextEncoder().encode(s)].map((b) => [b]));
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

/** The virtio imports in the kernel's order, with their parameter types. */
const IMPORTS: Array<[keyof VirtioWasmImports, number[]]> = [
  ['set_features', [I32, I64]],
  ['setup', [I32, I32, I32, I32]],
  ['reset', [I32]],
  ['enable_vring', [I32, I32, I32, I32, I32]],
  ['disable_vring', [I32, I32]],
  ['notify', [I32, I32]],
  ['config_written', [I32]],
];

/** The module's bytes; `shared` must match the memory it will be given. */
export function kernelModuleBytes(shared: boolean): Uint8Array<ArrayBuffer> {
  const types = [...IMPORTS.map(([, params]) => params), [I32, I32, I32]]; // the last: publish
  const typeSec = vec(types.map((p) => [0x60, ...vec(p.map((t) => [t])), 0]));
  const memLimits = shared ? [0x03, ...uleb(0), ...uleb(65536)] : [0x00, ...uleb(0)];
  const importSec = vec([
    [...name('env'), ...name('memory'), 0x02, ...memLimits],
    ...IMPORTS.map(([n], i) => [...name('virtio'), ...name(n), 0x00, ...uleb(i)]),
  ]);
  const funcSec = vec(types.map((_, i) => uleb(i)));
  const exportSec = vec([
    ...IMPORTS.map(([n], i) => [...name(n), 0x00, ...uleb(IMPORTS.length + i)]),
    [...name('publish'), 0x00, ...uleb(2 * IMPORTS.length)],
  ]);
  const body = (code: number[]): number[] => {
    const b = [0, ...code, 0x0b]; // no locals, code, end
    return [...uleb(b.length), ...b];
  };
  const get = (i: number) => [0x20, ...uleb(i)];
  const thunks = IMPORTS.map(([, params], f) => body([...params.flatMap((_, i) => get(i)), 0x10, ...uleb(f)]));
  // publish(avail, size, head): idx = avail->idx; avail->ring[idx & (size-1)] = head; avail->idx = idx + 1
  const load16 = [0x2f, 1, 0]; // i32.load16_u align=2 offset=0
  const store16 = [0x3b, 1, 0]; // i32.store16
  const publish = body([
    // address of the ring slot: avail + 4 + 2 * (idx & (size - 1))
    ...get(0), ...get(0), 0x41, 2, 0x6a, ...load16, // idx (i32.const 2, i32.add)
    ...get(1), 0x41, 1, 0x6b, 0x71, // & (size - 1)
    0x41, 1, 0x74, 0x6a, // << 1, + avail
    0x41, 4, 0x6a, // + 4
    ...get(2), ...store16,
    // avail->idx = idx + 1
    ...get(0), 0x41, 2, 0x6a,
    ...get(0), 0x41, 2, 0x6a, ...load16, 0x41, 1, 0x6a,
    ...store16,
  ]);
  const codeSec = vec([...thunks, publish].map((b) => b));
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, typeSec),
    ...section(2, importSec),
    ...section(3, funcSec),
    ...section(7, exportSec),
    ...section(10, codeSec),
  ]);
}

/** The module's exports: the kernel's calls, made from wasm. */
export interface KernelModule extends VirtioWasmImports {
  publish(avail: number, size: number, head: number): void;
}

/** Instantiates the module over `memory` with `virtio` as its imports. */
export function instantiateKernel(memory: WebAssembly.Memory, virtio: VirtioWasmImports): KernelModule {
  const shared = typeof SharedArrayBuffer === 'function' && memory.buffer instanceof SharedArrayBuffer;
  const module = new WebAssembly.Module(kernelModuleBytes(shared));
  const imports = { env: { memory }, virtio: { ...virtio } } as unknown as WebAssembly.Imports;
  return new WebAssembly.Instance(module, imports).exports as unknown as KernelModule;
}

// ---- a device-tree reader ---------------------------------------------------------------------

export interface DtNode {
  name: string;
  props: Map<string, Uint8Array>;
  children: DtNode[];
}

/** Parses a DTB (Devicetree Specification v0.4, 5.4) into nodes with raw property bytes. */
export function readDtb(dtb: Uint8Array): DtNode {
  const dv = new DataView(dtb.buffer, dtb.byteOffset, dtb.byteLength);
  if (dv.getUint32(0) !== 0xd00dfeed) throw new Error('not a DTB');
  const offStruct = dv.getUint32(8);
  const offStrings = dv.getUint32(12);
  const cstr = (at: number): [string, number] => {
    let end = at;
    while (dtb[end] !== 0) end++;
    return [new TextDecoder().decode(dtb.subarray(at, end)), end + 1];
  };
  let at = offStruct;
  const stack: DtNode[] = [];
  let root: DtNode | undefined;
  for (;;) {
    const token = dv.getUint32(at);
    at += 4;
    if (token === 1) {
      const [n, next] = cstr(at);
      at = (next + 3) & ~3;
      const node: DtNode = { name: n, props: new Map(), children: [] };
      if (stack.length > 0) stack[stack.length - 1]!.children.push(node);
      else root = node;
      stack.push(node);
    } else if (token === 3) {
      const len = dv.getUint32(at);
      const [key] = cstr(offStrings + dv.getUint32(at + 4));
      stack[stack.length - 1]!.props.set(key, dtb.slice(at + 8, at + 8 + len));
      at = (at + 8 + len + 3) & ~3;
    } else if (token === 2) {
      stack.pop();
    } else if (token === 9) {
      if (root === undefined) throw new Error('empty DTB');
      return root;
    } else if (token !== 4) {
      throw new Error(`bad DTB token ${token}`);
    }
  }
}

const u32 = (b: Uint8Array | undefined): number => {
  if (b?.length !== 4) throw new Error('not a u32 property');
  return new DataView(b.buffer, b.byteOffset).getUint32(0);
};
const u64 = (b: Uint8Array | undefined): bigint => {
  if (b?.length !== 8) throw new Error('not a u64 property');
  return new DataView(b.buffer, b.byteOffset).getBigUint64(0);
};

// ---- the driver -------------------------------------------------------------------------------

/** PAGE_SIZE of the wasm architecture: the alignment vring_create_virtqueue is given. */
export const KERNEL_PAGE_SIZE = 0x1_0000;
/** The driver's config buffer: kzalloc(0x100). */
export const KERNEL_CONFIG_BYTES = 0x100;
/** Ring size the driver asks for (vw_setup_vq: num = 256). */
export const KERNEL_RING_SIZE = 256;

/** vring_size(): the bytes of a contiguous split ring, as include/uapi/linux/virtio_ring.h computes them. */
export function vringSize(num: number, align: number): number {
  return ((16 * num + 2 * (3 + num) + align - 1) & ~(align - 1)) + 2 * 3 + 8 * num;
}

/** wasm_alloc_irq(): interrupt numbers handed out in order, shared by every driver of a kernel. */
export class IrqAllocator {
  private next = 1;
  alloc(): number {
    return this.next++;
  }
}

/** A ring whose `publish` runs in the wasm module (its stores land in the kernel's memory). */
class KernelQueue extends DriverQueue {
  constructor(
    driver: KernelDriver,
    index: number,
    size: number,
    desc: number,
    readonly module: KernelModule,
  ) {
    // vring_init(): the descriptor table, the available ring, the used ring at the next page.
    const avail = desc + 16 * size;
    const used = (avail + 2 * (2 + size) + 2 + KERNEL_PAGE_SIZE - 1) & ~(KERNEL_PAGE_SIZE - 1);
    super(driver, index, size, { desc, avail, used });
  }
  override publish(head: number): void {
    this.module.publish(this.avail, this.size, head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
  }
}

export interface KernelDriverOptions {
  /** The kernel's allocator over its memory, shared by its drivers. */
  allocator: GuestAllocator;
  irqs: IrqAllocator;
  /** Resolves once the host has no request of this device in flight. */
  idle(): Promise<void>;
}

/**
 * One virtio,wasm device as the kernel's driver handles it: probe from its device-tree node,
 * reset, feature negotiation, rings laid out by vring_create_virtqueue, kicks, config through the
 * shared buffer, interrupts counted per number.
 */
export class KernelDriver implements QueueHost {
  readonly allocator: GuestAllocator;
  readonly queues: KernelQueue[] = [];
  readonly hostId: number;
  readonly deviceId: number;
  /** The features the device tree offers. */
  readonly offered: bigint;
  readonly configIrq: number;
  readonly configAddr: number;
  /** The features the driver last set. */
  features = 0n;
  /** Interrupts delivered to this driver: irq number -> count. */
  readonly interrupts = new Map<number, number>();

  constructor(
    readonly module: KernelModule,
    readonly mem: GuestMemory,
    node: DtNode,
    readonly opts: KernelDriverOptions,
  ) {
    // virtio_wasm_probe()
    if (new TextDecoder().decode(node.props.get('compatible')) !== 'virtio,wasm\0') throw new Error('not a virtio,wasm node');
    this.deviceId = u32(node.props.get('virtio-device-id'));
    this.hostId = u32(node.props.get('host-id'));
    this.offered = u64(node.props.get('features'));
    const config = node.props.get('config');
    if (config === undefined || config.length > KERNEL_CONFIG_BYTES) throw new Error('bad config property');
    this.allocator = opts.allocator;
    this.configIrq = opts.irqs.alloc();
    this.configAddr = this.allocator.alloc(KERNEL_CONFIG_BYTES, 16);
    mem.fill(this.configAddr, KERNEL_CONFIG_BYTES, 0);
    mem.write(this.configAddr, config);
    module.setup(this.hostId, this.configIrq, this.configAddr, KERNEL_CONFIG_BYTES);
  }

  /** The embedder routes an interrupt here. */
  interrupt(irq: number): void {
    this.interrupts.set(irq, (this.interrupts.get(irq) ?? 0) + 1);
    for (const [index, ringIrq] of this.irqOf) if (ringIrq === irq) this.onRing?.(index);
  }
  /** vring_interrupt(): called with the ring index when a ring's interrupt arrives, if set. */
  onRing: ((index: number) => void) | undefined;
  interruptsOf(irq: number): number {
    return this.interrupts.get(irq) ?? 0;
  }

  notify(index: number): void {
    this.module.notify(this.hostId, index);
  }
  idle(): Promise<void> {
    return this.opts.idle();
  }

  /** vw_reset() */
  reset(): void {
    this.queues.length = 0;
    this.module.reset(this.hostId);
  }

  /** vw_finalize_features(): the device's features the driver wants, as one i64. */
  negotiate(wanted?: bigint): void {
    this.features = this.offered & (wanted ?? this.offered);
    this.module.set_features(this.hostId, BigInt.asIntN(64, this.features));
  }

  /** vw_setup_vq(): a zeroed, page-aligned contiguous ring, then enable_vring with its own irq. */
  setupQueue(index: number, size = KERNEL_RING_SIZE): KernelQueue {
    const at = this.allocator.alloc(vringSize(size, KERNEL_PAGE_SIZE), KERNEL_PAGE_SIZE);
    this.mem.fill(at, vringSize(size, KERNEL_PAGE_SIZE), 0);
    const q = new KernelQueue(this, index, size, at, this.module);
    this.enableRaw(index, size, at);
    this.queues[index] = q;
    return q;
  }

  /** enable_vring with whatever the caller says (for hostile tests); returns the irq given. */
  enableRaw(index: number, size: number, desc: number): number {
    const irq = this.opts.irqs.alloc();
    this.irqOf.set(index, irq);
    this.module.enable_vring(this.hostId, index, size, desc | 0, irq);
    return irq;
  }
  /** Ring index -> its interrupt number. */
  readonly irqOf = new Map<number, number>();

  /** vw_del_vqs() for one ring. */
  disableQueue(index: number): void {
    this.module.disable_vring(this.hostId, index);
  }

  /** register_virtio_device() then the driver's probe: reset, features, rings. */
  init(opts: { features?: bigint; queues?: number; queueSize?: number } = {}): this {
    this.reset();
    this.negotiate(opts.features);
    for (let i = 0; i < (opts.queues ?? 1); i++) this.setupQueue(i, opts.queueSize);
    return this;
  }

  /** vw_get(): config bytes from the shared buffer, little-endian. */
  config(offset: number, size: 1 | 2 | 4 | 8): bigint {
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.mem.readU8(this.configAddr + offset + i));
    return v;
  }

  /** vw_set(): write config bytes, then tell the host. */
  writeConfig(offset: number, bytes: number[]): void {
    this.mem.write(this.configAddr + offset, new Uint8Array(bytes));
    this.module.config_written(this.hostId);
  }
}

// ---- a whole kernel ----------------------------------------------------------------------------

export interface KernelOptions {
  /** 64 KiB pages of kernel memory; default 256 (16 MiB). */
  pages?: number;
  /** A shared memory (as an SMP kernel's); default false. */
  shared?: boolean;
  /** Let the host see the memory through a RecordingMemory (`kernel.trace`). */
  trace?: boolean;
  /** Called instead of routing interrupts to the drivers (to test an embedder that throws). */
  raiseIrq?(irq: number): void;
  /** The host's bounce limit per device (VirtioWasmHostOptions.bounceLimit). */
  bounceLimit?: number;
}

/** The embedder and the kernel of one test: memory, host, module, one driver per device. */
export class Kernel {
  readonly memory: WebAssembly.Memory;
  /** The kernel's own view of its memory (the drivers'). */
  readonly mem: GuestMemory;
  /** What the host sees, when `trace` was asked for. */
  readonly trace: RecordingMemory | undefined;
  readonly host: VirtioWasmHost;
  readonly module: KernelModule;
  readonly drivers: KernelDriver[];
  readonly dtb: Uint8Array;
  readonly allocator: GuestAllocator;
  /** Every interrupt the host raised, in order. */
  readonly raised: number[] = [];
  /** Every refused call: [host id, call, reason]. */
  readonly refused: Array<[number, string, string]> = [];
  readonly deviceErrors: unknown[] = [];
  readonly needsReset: Array<[number, string]> = [];

  constructor(devices: readonly VirtioDevice[], opts: KernelOptions = {}) {
    const pages = opts.pages ?? 256;
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: 2 * pages, shared: opts.shared ?? false });
    this.mem = new WasmMemoryRam(this.memory);
    this.trace = opts.trace ? new RecordingMemory(this.mem) : undefined;
    this.host = new VirtioWasmHost({
      memory: this.trace ?? this.memory,
      devices,
      raiseIrq: (irq) => {
        if (opts.raiseIrq) return opts.raiseIrq(irq);
        this.raised.push(irq);
        for (const d of this.drivers ?? []) if (d.configIrq === irq || [...d.irqOf.values()].includes(irq)) d.interrupt(irq);
      },
      onRefused: (dev, call, reason) => this.refused.push([dev, call, reason]),
      onDeviceError: (e) => this.deviceErrors.push(e),
      onNeedsReset: (dev, reason) => this.needsReset.push([dev, reason]),
      bounceLimit: opts.bounceLimit,
    });
    this.dtb = buildFdt({
      name: '',
      props: { '#address-cells': 1, '#size-cells': 1 },
      children: [{ name: 'memory', props: { device_type: 'memory', reg: [0, pages * KERNEL_PAGE_SIZE] } }, ...this.host.deviceTreeNodes()],
    });
    this.module = instantiateKernel(this.memory, this.host.imports);
    this.allocator = new GuestAllocator(this.mem, KERNEL_PAGE_SIZE);
    const irqs = new IrqAllocator();
    const nodes = readDtb(this.dtb).children.filter((n) => n.props.has('host-id'));
    this.drivers = [];
    for (const node of nodes) {
      const id = u32(node.props.get('host-id'));
      this.drivers.push(
        new KernelDriver(this.module, this.mem, node, {
          allocator: this.allocator,
          irqs,
          idle: () => this.host.transports[id]!.idle(),
        }),
      );
    }
  }
}
