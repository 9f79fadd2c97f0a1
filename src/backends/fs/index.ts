export * from './backend.js';
export * from './errno.js';
export { MemFs, MemNode, MemFile, type MemFsOptions, type MemFsTree, SymlinkSpec, FileSpec, loadMemFs } from './mem-fs.js';
export { saveMemFs, MemFsImageError } from './mem-fs-image.js';
export {
  type HostFacts,
  type MetaFiles,
  type MetaRecord,
  type SetTime,
  MetaStore,
  mappedStat,
  newRecord,
  recordFromHost,
  recordSetXattr,
  encodeRecord,
  decodeRecord,
} from './mapped-meta.js';
