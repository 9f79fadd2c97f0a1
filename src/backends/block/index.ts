/** Block backends (environment-free): the interface, errors, and the in-memory, overlay, qcow2 and gzip disks. */
export {
  type BlockBackend,
  BlockError,
  BlockIoError,
  BlockRangeError,
  ImageFormatError,
  ReadOnlyError,
  UnsupportedFeatureError,
} from './backend.js';
export { type GzipLoadOptions, type GzipProgress, loadGzipImage } from './gzip.js';
export { MEMORY_DISK_CHUNK, MemoryDisk, type MemoryDiskOptions } from './memory-disk.js';
export { OverlayDisk, type OverlayDiskOptions } from './overlay-disk.js';
export { type Qcow2ClusterKind, Qcow2Disk, type Qcow2OpenOptions } from './qcow2.js';
export { PersistentOverlayDisk, ReadOnlyView, type PersistentOverlayFiles, type PersistentOverlayOptions, type SyncFile } from './persistent-overlay.js';
export { DiskHasher, diskIdentity, hashDisk } from './identity.js';
export { qcow2Image, type Qcow2WriteOptions } from './qcow2-writer.js';
