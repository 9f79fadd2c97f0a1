/**
 * storvm: a pure-TypeScript virtual machine built around its storage.
 * The package root is environment-free; Node-only pieces live in `storvm/node`.
 */
export * from './memory/index.js';
export * from './virtio/index.js';

// virtio-blk and block backends
export * from './devices/blk/index.js';
export * from './backends/block/index.js';

// virtio-9p and filesystem backends
export * from './devices/p9/index.js';

// virtio-fs: a FUSE server over the same filesystem backends
export * from './devices/fs/index.js';
export {
  FsBackend,
  makeDev,
  type Async,
  type FsResult,
  type FsReply,
  type FsNode,
  type FsFile,
  type FsCreds,
  type FsTime,
  type FsStat,
  type FsSetAttr,
  type FsDirEntry,
  type FsStatFs,
} from './backends/fs/backend.js';
export { FsError, fsError, isFsError } from './backends/fs/errno.js';
export * as errno from './backends/fs/errno.js';
export { MemFs, MemNode, MemFile, type MemFsOptions, type MemFsTree, SymlinkSpec, FileSpec, loadMemFs } from './backends/fs/mem-fs.js';
export { saveMemFs, MemFsImageError } from './backends/fs/mem-fs-image.js';

// the RISC-V machine
export { Hart } from './riscv/hart.js';
export { Machine, type MachineHost, type MachineOptions, type RestoreOptions, type RunResult, type SaveOptions } from './machine/machine.js';
export { isSnapshot, readSnapshot, SnapshotError, type SnapshotErrorCode, SNAPSHOT_VERSION } from './machine/snapshot-format.js';
export { snapshotInfo, type SnapshotInfo } from './machine/snapshot-info.js';
export type { DeflateCodec } from './machine/ram-image.js';
export { BootImageError } from './machine/loader.js';
export { buildFdt, cells64, type FdtNode, type FdtValue } from './machine/fdt.js';
export {
  VirtioWasmHost,
  VirtioWasmError,
  type VirtioWasmHostOptions,
  type VirtioWasmImports,
  VIRTIO_WASM_COMPATIBLE,
  VIRTIO_WASM_IMPORT_MODULE,
  VIRTIO_WASM_PAGE_SIZE,
  VIRTIO_WASM_CONFIG_BYTES,
} from './machine/virtio-wasm.js';
