/**
 * Opens a share that lasts: a DirectoryHandleFs over `storvm-shares/<name>` in the Origin Private
 * File System, or over a folder the visitor picked. One writer per share, as for disks: the
 * worker holds a Web Lock named after the share while it runs; a second tab that finds it taken
 * serves the share read-only and says why.
 */
import { type DirHandleLike, DirectoryHandleFs } from './dir-fs.js';
import { ShareError } from './errors.js';
import { opfsNamedDir, takeWebLock } from './opfs.js';

export interface OpenedDirShare {
  fs: DirectoryHandleFs;
  /** Why the share is not what was asked. */
  note?: string;
  close(): void;
}

/** The OPFS folder of a kept share. */
export function opfsShareDir(name: string): Promise<FileSystemDirectoryHandle> {
  return opfsNamedDir('storvm-shares', name, 'share', (m) => new ShareError(m, name));
}

/**
 * Opens a kept share by OPFS name or over a picked folder. A folder given as `directory` is
 * served with writable streams, as a picked folder must be (sync access handles are OPFS-only);
 * a read-only share reads through getFile(), which works beside another tab's handles.
 */
export async function openDirShare(src: { persist?: string; directory?: FileSystemDirectoryHandle }, readOnly: boolean): Promise<OpenedDirShare> {
  const label = src.persist ?? src.directory?.name ?? 'folder';
  const dir = src.directory ?? (await opfsShareDir(src.persist!));
  const release = src.persist !== undefined ? await takeWebLock(`storvm-share:${src.persist}`) : () => {};
  const estimate = navigator.storage?.estimate ? () => navigator.storage.estimate() : undefined;
  const ro = readOnly || release === undefined;
  try {
    const fs = await DirectoryHandleFs.open(dir as unknown as DirHandleLike, { readOnly: ro, ...(ro || src.directory !== undefined ? { syncHandles: false } : {}), ...(estimate && src.persist !== undefined ? { estimate } : {}) });
    return { fs, ...(release === undefined ? { note: 'read-only: another tab is writing this share' } : {}), close: () => release?.() };
  } catch (e) {
    release?.();
    throw new ShareError(`share ${label}: ${e instanceof Error ? e.message : String(e)}`, label);
  }
}
