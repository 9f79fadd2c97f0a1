export { VirtioFs, type VirtioFsOptions, FS_TAG_BYTES, FS_QUEUE_SIZE } from './device.js';
export { FuseServer, type FuseServerOptions, type FuseCacheMode, type FuseInput, type FuseOutput, FUSE_XATTR_SIZE_MAX } from './server.js';
export * as fuse from './fuse.js';
