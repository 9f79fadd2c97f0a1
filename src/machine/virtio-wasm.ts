/**
 * The `virtio,wasm` binding of tombl/linux, a Linux port whose kernel is itself WebAssembly: the
 * import names its driver calls and the device-tree properties it reads. Everything specific to
 * that port is in this file; the transport behind it is {@link HostCallTransport}.
 *
 * Followed: arch/wasm/drivers/virtio_wasm.c and arch/wasm/include/asm/wasm_imports.h in the
 * revision whose import module `virtio` has set_features, setup(id, config_irq, config,
 * config_len), reset, enable_vring(id, index, size, desc, irq), disable_vring, notify and
 * config_written (the driver with one interrupt per ring, find_vqs taking struct virtqueue_info).
 * The copy read had no commit id; the nearest one with an id, 37ba878d, has the same driver
 * without reset and config_written. Earlier revisions (one shared interrupt with is_config /
 * is_vring flags, or the ring addresses passed one by one) are not supported.
 * The driver:
 * - probes a node with compatible "virtio,wasm" and reads `virtio-device-id` (u32), `host-id`
 *   (u32, the `id` of every import), `features` (u64) and `config` (at most 0x100 bytes) into a
 *   zeroed 0x100-byte buffer, then calls setup with that buffer and a fresh config interrupt;
 * - reads config from that buffer (the host rewrites it in place) and after writing it calls
 *   config_written;
 * - on reset calls reset; at finalize_features calls set_features with what it kept;
 * - creates each ring with vring_create_virtqueue(index, 256, PAGE_SIZE, ...): a split ring laid
 *   out contiguously from its descriptor table, used ring aligned to PAGE_SIZE, which is 64 KiB
 *   on that architecture (arch/wasm/include/asm/page.h, PAGE_SHIFT 16); then enable_vring with
 *   the size, the table's address and the ring's own interrupt;
 * - calls notify to kick a ring and disable_vring when it deletes one.
 * All calls run on the kernel's main thread (wasm_kernel_run_on_main). Offering no RING_PACKED
 * keeps the driver on split rings.
 */
import type { GuestMemory } from '../memory/guest-memory.js';
import { WasmMemoryRam, type WasmMemoryLike } from '../memory/wasm-memory-ram.js';
import type { VirtioDevice } from '../virtio/device.js';
import { HostCallTransport } from '../virtio/host-call.js';
import type { FdtNode } from './fdt.js';

export const VIRTIO_WASM_COMPATIBLE = 'virtio,wasm';
/** The name of the import module the driver's calls come from. */
export const VIRTIO_WASM_IMPORT_MODULE = 'virtio';
/** PAGE_SIZE of tombl/linux's wasm architecture: the ring alignment its driver uses. */
export const VIRTIO_WASM_PAGE_SIZE = 0x1_0000;
/** The driver's config buffer and the most `config` bytes it reads from the device tree. */
export const VIRTIO_WASM_CONFIG_BYTES = 0x100;

/**
 * The `virtio` import module as the kernel calls it. Arguments arrive as wasm gives them: i32
 * values as signed numbers, the u64 features as a bigint; the adapter reads them as unsigned.
 */
export interface VirtioWasmImports {
  set_features(dev: number, features: bigint): void;
  setup(dev: number, configIrq: number, configAddr: number, configLen: number): void;
  reset(dev: number): void;
  enable_vring(dev: number, vq: number, size: number, descAddr: number, irq: number): void;
  disable_vring(dev: number, vq: number): void;
  notify(dev: number, vq: number): void;
  config_written(dev: number): void;
}

/** A device that can't be described to the driver (its config doesn't fit). */
export class VirtioWasmError extends Error {
  override readonly name = 'VirtioWasmError';
}

export interface VirtioWasmHostOptions {
  /** The kernel's memory: a WebAssembly.Memory (shared or not), or any GuestMemory. */
  memory: WasmMemoryLike | GuestMemory;
  /** The devices, in host-id order. */
  devices: readonly VirtioDevice[];
  /** Raises a kernel interrupt; see HostCallTransportOptions.raiseIrq. */
  raiseIrq(irq: number): void;
  onDeviceError?(error: unknown): void;
  /** A kernel call that was refused or ignored; `dev` is the host id it named. */
  onRefused?(dev: number, call: string, reason: string): void;
  onNeedsReset?(dev: number, reason: string): void;
  /** Bytes each device's bounce buffers may hold at once; see HostCallTransportOptions.bounceLimit. */
  bounceLimit?: number;
}

/** storvm's devices behind tombl/linux's virtio,wasm driver: its imports and device-tree nodes. */
export class VirtioWasmHost {
  readonly memory: GuestMemory;
  readonly transports: readonly HostCallTransport[];
  /** Pass as the `virtio` import module: `{ virtio: host.imports }`. */
  readonly imports: VirtioWasmImports;

  constructor(readonly options: VirtioWasmHostOptions) {
    const m = options.memory;
    this.memory = 'readU8' in m ? m : new WasmMemoryRam(m);
    this.transports = options.devices.map(
      (device, id) =>
        new HostCallTransport(device, this.memory, {
          raiseIrq: (irq) => options.raiseIrq(irq),
          ringAlign: VIRTIO_WASM_PAGE_SIZE,
          onDeviceError: options.onDeviceError,
          onRefused: (call, reason) => options.onRefused?.(id, call, reason),
          onNeedsReset: (reason) => options.onNeedsReset?.(id, reason),
          bounceLimit: options.bounceLimit,
        }),
    );
    const at = (call: string, dev: number): HostCallTransport | undefined => {
      const t = this.transports[dev >>> 0];
      if (t === undefined) options.onRefused?.(dev >>> 0, call, `no device with host-id ${dev >>> 0}`);
      return t;
    };
    this.imports = {
      set_features: (dev, features) => void at('set_features', dev)?.setFeatures(toU64(features)),
      setup: (dev, irq, addr, len) => void at('setup', dev)?.setup(irq >>> 0, addr >>> 0, len >>> 0),
      reset: (dev) => void at('reset', dev)?.reset(),
      enable_vring: (dev, vq, size, desc, irq) => void at('enable_vring', dev)?.enableVring(vq >>> 0, size >>> 0, desc >>> 0, irq >>> 0),
      disable_vring: (dev, vq) => void at('disable_vring', dev)?.disableVring(vq >>> 0),
      notify: (dev, vq) => void at('notify', dev)?.notify(vq >>> 0),
      config_written: (dev) => void at('config_written', dev)?.configWritten(),
    };
  }

  /**
   * One device-tree node per device, for the root of the kernel's tree: `virtio<i>` with
   * compatible, host-id, virtio-device-id, features (u64) and config (its bytes, trailing zeros
   * left out since the driver's buffer starts zeroed). Throws VirtioWasmError for a device whose
   * config is longer than the driver reads.
   */
  deviceTreeNodes(): FdtNode[] {
    return this.transports.map((t, id) => ({
      name: `virtio${id}`,
      props: {
        compatible: VIRTIO_WASM_COMPATIBLE,
        'host-id': id,
        'virtio-device-id': t.device.deviceId,
        features: t.offeredFeatures,
        config: configBytes(t.device, id),
      },
    }));
  }

  /** Resolves once no request of any device is in flight. */
  async idle(): Promise<void> {
    await Promise.all(this.transports.map((t) => t.idle()));
  }
}

/** The device's config space as the driver's `config` property, without trailing zeros. */
function configBytes(device: VirtioDevice, id: number): Uint8Array {
  const all = new Uint8Array(0xf00);
  let last = -1;
  for (let i = 0; i < all.length; i++) {
    all[i] = device.readConfig(i, 1) & 0xff;
    if (all[i] !== 0) last = i;
  }
  if (last >= VIRTIO_WASM_CONFIG_BYTES) {
    throw new VirtioWasmError(`device ${id}: config space of ${last + 1} bytes; virtio_wasm reads at most ${VIRTIO_WASM_CONFIG_BYTES}`);
  }
  // Never an empty property: one zero byte reads the same into the zeroed buffer.
  return all.slice(0, Math.max(1, last + 1));
}

/** An i64 argument as the u64 it stands for; a number from a JS caller is taken as is. */
function toU64(v: bigint | number): bigint {
  if (typeof v === 'bigint') return BigInt.asUintN(64, v);
  return Number.isSafeInteger(v) ? BigInt.asUintN(64, BigInt(v)) : 0n;
}
