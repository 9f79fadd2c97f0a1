/**
 * storvm in the browser: `startVm` runs the machine in a dedicated Worker and gives the page a
 * handle for the console, the shares and the disks. The pieces the worker uses (the browser
 * MachineHost, BlobDisk, the image loaders) are exported for embedders that build their own.
 * The messages between page and worker are all in protocol.ts.
 */
export { startVm, mountPoint, type StartVmOptions, type Vm, type VmDisk, type VmDiskOptions, type VmExit, type VmShare, type VmShareOptions, type ShareFiles } from './vm.js';
export { ImageError, ShareError, VmError, type ImageErrorCode, type BrowserVmError } from './errors.js';
export { browserHost, messageChannelYield } from './host.js';
export { BlobDisk } from './blob-disk.js';
export { loadDisk, loadKernel, loadInitrd, type LoadedDisk } from './images.js';
export type { ImageSource, ProgressInfo, ShareEntry, PageMessage, WorkerMessage } from './protocol.js';
export { clearBootCache } from './boot-cache.js';
export { openOpfsDisk, deleteOpfsDisk, listOpfsDisks, type OpfsDiskOptions, type OpenedOpfsDisk } from './opfs.js';
export { DirectoryHandleFs, type DirectoryHandleFsOptions } from './dir-fs.js';
export { forgetFolder, indexedDbHandles, recallFolder, regainFolder, rememberFolder, type FolderRecall, type HandleStore } from './folder-memory.js';
export { runStorageLab, formatTable, formatComparison, parseBenchReport, BenchReportError, toJson, toCsv, type StorageLabOptions, type BenchReport, type Cell, type LabSide } from './lab.js';
