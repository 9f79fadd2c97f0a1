/**
 * storvm/testing: test your own virtio device the way storvm tests its own. A driver that probes
 * and sets up queues as Linux's virtio_mmio driver does, builds chains and collects used buffers;
 * typed clients for virtio-blk and 9P2000.L on top; a memory that records every access a device
 * made; and the hostile-guest suite as a function. Depends only on the package root.
 */
export * from './driver.js';
export * from './recording-memory.js';
export * from './blk.js';
export * from './p9.js';
export * from './hostile.js';
