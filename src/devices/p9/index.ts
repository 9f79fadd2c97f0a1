export { Virtio9p, type Virtio9pOptions, F_9P_MOUNT_TAG, P9_QUEUE_SIZE } from './device.js';
export {
  P9Server,
  type P9ServerOptions,
  type P9Input,
  type P9Output,
  BytesIn,
  BytesOut,
  MIN_MSIZE,
  DEFAULT_MAX_MSIZE,
  XATTR_SIZE_MAX,
} from './server.js';
export * as p9wire from './wire.js';
