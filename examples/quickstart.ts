import { COMMON_FEATURES, FlatRam, MMIO, MmioTransport, QueueDevice, type DescriptorChain, type GuestMemory } from '../src/index.js';

class Ping extends QueueDevice { // a device that answers each request with one status byte
  readonly deviceId = 0x3f; readonly features = COMMON_FEATURES; readonly queueMaxSizes = [16];
  readConfig(): number { return 0; }
  protected handle(_queue: number, chain: DescriptorChain, mem: GuestMemory): number {
    const w = chain.writer(mem); w.writeU8(0); return w.written; // the used length
  }
}
const ram = new FlatRam(0x8000_0000, 1 << 20);
const transport = new MmioTransport(new Ping(), ram, { set: (level) => console.log('irq', level) });
console.log(transport.read(MMIO.MagicValue, 4).toString(16), transport.read(MMIO.DeviceID, 4)); // 74726976 63
await transport.idle(); // the driver side: see storvm/testing
