/** Node-only parts of storvm: the CLI, host-file block and filesystem backends, the Node host. */
export { main as cli, UsageError } from './cli.js';
export { FileDisk, type FileDiskOptions } from './file-disk.js';
export { ImageLock, ImageLockedError } from './image-lock.js';
export { detectImageFormat, openDiskImage, openGzipImage, openQcow2Image, type ImageFormat, type OpenImageOptions, type OpenedImage } from './image-disk.js';
export { HostFs, HostNode, HostFile, hostErrno, type HostFsOptions } from './host-fs.js';
export { fillMemFsFromFolder, memFsFromFolder } from './memfs-folder.js';
export { nodeCodec, nodeHost } from './host.js';
export { launch, type Launched } from './launch.js';
export { parseMachineArgs, type MachineArgs } from './options.js';
