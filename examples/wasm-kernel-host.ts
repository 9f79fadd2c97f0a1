/**
 * storvm's devices for a kernel that is itself WebAssembly: tombl/linux built for its wasm
 * architecture, whose virtio,wasm driver reaches devices through imported functions.
 *
 *   npx tsx examples/wasm-kernel-host.ts            # prints the device tree and the imports
 *
 * An embedder (tombl/linux's tools/wasm host, or your own) owns the kernel's other import
 * modules (`kernel`, `boot`, `user`) and its interrupt controller. storvm supplies the `virtio`
 * module, the device-tree nodes that describe its devices, and nothing else.
 */
import { buildFdt, MemFs, MemoryDisk, Virtio9p, VirtioBlk, VirtioWasmHost, VIRTIO_WASM_IMPORT_MODULE } from '../src/index.js';

// 1. The kernel's memory. Its physical addresses are offsets into it: rings and buffers live here.
//    An SMP kernel runs in several workers and needs a shared memory.
const memory = new WebAssembly.Memory({ initial: 512, maximum: 16384, shared: true });

// 2. storvm's devices, hardened against the guest, with any block or filesystem backend.
const disk = new VirtioBlk(new MemoryDisk(64 << 20), { serial: 'scratch' });
const share = new Virtio9p(new MemFs(), { tag: 'host' });

// 3. The host. raiseIrq is called when a ring has used buffers (its own irq number) or the config
//    changed (the config irq), sometimes from inside the kernel's own call: queue the number and
//    deliver it to the kernel's main thread the way your host raises interrupts.
const pendingIrqs: number[] = [];
const host = new VirtioWasmHost({
  memory,
  devices: [disk, share],
  raiseIrq: (irq) => pendingIrqs.push(irq),
  onRefused: (dev, call, reason) => console.warn(`virtio${dev}: ${call} refused: ${reason}`),
  onNeedsReset: (dev, reason) => console.warn(`virtio${dev} needs a reset: ${reason}`),
});

// 4. The device tree the kernel reads at boot: your own nodes, plus one per storvm device.
const dtb = buildFdt({
  name: '',
  props: { '#address-cells': 1, '#size-cells': 1 },
  children: [
    { name: 'chosen', props: { bootargs: 'console=hvc0 root=/dev/vda' } },
    { name: 'memory', props: { device_type: 'memory', reg: [0, memory.buffer.byteLength] } },
    ...host.deviceTreeNodes(),
  ],
});

// 5. The import object: storvm's `virtio` module beside your host's modules.
const imports = {
  [VIRTIO_WASM_IMPORT_MODULE]: host.imports,
  boot: {
    // size_t get_devicetree(char *buf, size_t size)
    get_devicetree: (buf: number, size: number) => {
      new Uint8Array(memory.buffer, buf >>> 0, Math.min(size >>> 0, dtb.length)).set(dtb.subarray(0, size >>> 0));
      return dtb.length;
    },
  },
  // kernel: { ... }, user: { ... }: from your kernel host.
};
// const { instance } = await WebAssembly.instantiate(vmlinuxWasm, { ...yourImports, ...imports });

for (const node of host.deviceTreeNodes()) {
  const p = node.props!;
  console.log(`${node.name}: compatible ${p.compatible}, host-id ${p['host-id']}, virtio-device-id ${p['virtio-device-id']}, features 0x${(p.features as bigint).toString(16)}, config ${(p.config as Uint8Array).length} bytes`);
}
console.log(`device tree: ${dtb.length} bytes; imports: ${Object.keys(imports.virtio).join(' ')}; interrupts pending: ${pendingIrqs.length}`);
