/**
 * Opens a share that lasts: a DirectoryHandleFs over `storvm-shares/<name>` in the Origin Private
 * File System, or over a folder the visitor picked. One writer per share, as for disks: the
 * worker holds a Web Lock named after the share while it runs; a second tab that finds it taken
 * serves the share read-only and says why.
 */
import { type DirHandleLike, DirectoryHandleFs } from './dir-fs.js';
import { ShareError } from './errors.js';

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** A worker that was just stopped takes a moment to let go of its lock. */
const LOCK_WAIT_MS = 3000;

export interface OpenedDirShare {
  fs: DirectoryHandleFs;
  /** Why the share is not what was asked. */
  note?: string;
  close(): void;
}

async function takeLock(name: string): Promise<(() => void) | undefined> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  if (locks === undefined) return () => {};
  return new Promise((resolve) => {
    locks
      .request(name, { signal: AbortSignal.timeout(LOCK_WAIT_MS) }, () => new Promise<void>((release) => resolve(() => release())))
      .catch(() => resolve(undefined));
  });
}

/** The OPFS folder of a kept share. */
export async function opfsShareDir(name: string): Promise<FileSystemDirectoryHandle> {
  if (!NAME.test(name) || name === '.' || name === '..') throw new ShareError(`share name "${name}" must be 1..64 letters, digits, '.', '_' or '-'`, name);
  if (typeof navigator === 'undefined' || navigator.storage?.getDirectory === undefined) throw new ShareError(`share ${name}: this browser has no Origin Private File System`, name);
  const root = await navigator.storage.getDirectory();
  return (await root.getDirectoryHandle('storvm-shares', { create: true })).getDirectoryHandle(name, { create: true });
}

/**
 * Opens a kept share by OPFS name or over a picked folder. A folder given as `directory` is
 * served with writable streams, as a picked folder must be (sync access handles are OPFS-only);
 * a read-only share reads through getFile(), which works beside another tab's handles.
 */
export async function openDirShare(src: { persist?: string; directory?: FileSystemDirectoryHandle }, readOnly: boolean): Promise<OpenedDirShare> {
  const label = src.persist ?? src.directory?.name ?? 'folder';
  const dir = src.directory ?? (await opfsShareDir(src.persist!));
  const release = src.persist !== undefined ? await takeLock(`storvm-share:${src.persist}`) : () => {};
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
