export * from './constants.js';
export { DescriptorChain, ChainReader, ChainWriter } from './chain.js';
export { SplitQueue } from './queue.js';
export { PackedQueue } from './packed.js';
export type { Virtqueue } from './virtqueue.js';
export { type DeviceContext, type DeviceSnapshot, DeviceStateMismatch, type InterruptLine, type VirtioDevice, QueueDevice, COMMON_FEATURES, PACKED_FEATURES } from './device.js';
export { MmioTransport, type MmioTransportOptions, type TransportSnapshot } from './mmio.js';
export { BOUNCE_LIMIT, BounceLimitError } from './bounce.js';
export { HostCallTransport, type HostCallTransportOptions, legacyVringLayout, type VringLayout, HOST_CALL_MAX_CONFIG } from './host-call.js';
