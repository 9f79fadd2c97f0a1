/** The virtio-blk device (VIRTIO 1.2, 5.2). */
export * from './constants.js';
export {
  BLK_DISCARD_ALIGNMENT,
  BLK_MAX_DWZ_SECTORS,
  BLK_MAX_DWZ_SEGMENTS,
  BLK_QUEUE_SIZE,
  BLK_SIZE_MAX,
  VirtioBlk,
  type VirtioBlkOptions,
} from './device.js';
export { type BlkRequest, parseRequest } from './request.js';
