/**
 * Disks that last, in the Origin Private File System: a {@link PersistentOverlayDisk} whose three
 * files live in `storvm-disks/<name>/` and are reached through FileSystemSyncAccessHandles, which
 * exist only in dedicated workers (this runs in the machine's worker). Over a base image it keeps
 * the guest's changes across reloads; without one it is a blank disk of a given size. FLUSH is
 * `flush()` on the handles, a real durability point.
 *
 * One writer per disk: the worker holds a Web Lock named after the disk for as long as it runs.
 * A second tab that finds the lock taken opens the disk read-only, from a snapshot of the files as
 * they were last flushed, and says so; it never writes beside the first.
 */
import type { BlockBackend } from '../backends/block/backend.js';
import { BlockIoError, ImageFormatError } from '../backends/block/backend.js';
import { PersistentOverlayDisk, ReadOnlyView, type SyncFile } from '../backends/block/persistent-overlay.js';
import { ImageError } from './errors.js';

/** FileSystemSyncAccessHandle, as far as it is used here (lib.dom types it only for workers). */
interface SyncAccessHandle {
  read(buffer: Uint8Array, opts: { at: number }): number;
  write(buffer: Uint8Array, opts: { at: number }): number;
  truncate(size: number): void;
  getSize(): number;
  flush(): void;
  close(): void;
}

type FileHandleWithSync = FileSystemFileHandle & { createSyncAccessHandle(): Promise<SyncAccessHandle> };

/** Adapts a sync access handle to the store's SyncFile. */
class HandleFile implements SyncFile {
  constructor(readonly handle: SyncAccessHandle) {}
  read(dst: Uint8Array, at: number): number {
    return this.handle.read(dst, { at });
  }
  write(src: Uint8Array, at: number): number {
    return this.handle.write(src, { at });
  }
  truncate(size: number): void {
    this.handle.truncate(size);
  }
  getSize(): number {
    return this.handle.getSize();
  }
  flush(): void {
    this.handle.flush();
  }
}

/** A read-only SyncFile over a File snapshot (FileReaderSync, workers only). */
class SnapshotFile implements SyncFile {
  constructor(private readonly file: File) {}
  read(dst: Uint8Array, at: number): number {
    const end = Math.min(this.file.size, at + dst.length);
    if (end <= at) return 0;
    const buf = new FileReaderSync().readAsArrayBuffer(this.file.slice(at, end));
    dst.set(new Uint8Array(buf));
    return buf.byteLength;
  }
  write(): number {
    throw new BlockIoError('read-only snapshot');
  }
  truncate(): void {
    throw new BlockIoError('read-only snapshot');
  }
  getSize(): number {
    return this.file.size;
  }
  flush(): void {}
}

declare const FileReaderSync: { new (): { readAsArrayBuffer(b: Blob): ArrayBuffer } };

export interface OpfsDiskOptions {
  /** The base image; without one a blank disk of `size` bytes. */
  base?: BlockBackend;
  size?: number;
  /** Identifies the base, so an overlay is never laid over another image. */
  baseId?: string;
  blockSize?: number;
  /** Forget what was stored and start from the base (or zeros). */
  reset?: boolean;
}

export interface OpenedOpfsDisk {
  disk: BlockBackend;
  /** False when another tab holds the disk: this one is a read-only snapshot. */
  writable: boolean;
  /** The PersistentOverlayDisk, when writable. */
  store: PersistentOverlayDisk | undefined;
  close(): void;
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * The OPFS folder `top/name` of something kept by name (a disk, a share), made if missing. A bad
 * name or a browser without OPFS is `refuse(message, why)`'s error.
 */
export async function opfsNamedDir(top: string, name: string, what: string, refuse: (message: string, why: 'name' | 'no-opfs') => Error): Promise<FileSystemDirectoryHandle> {
  if (!NAME.test(name) || name === '.' || name === '..') throw refuse(`${what} name "${name}" must be 1..64 letters, digits, '.', '_' or '-'`, 'name');
  if (typeof navigator === 'undefined' || navigator.storage?.getDirectory === undefined) throw refuse(`${what} ${name}: this browser has no Origin Private File System`, 'no-opfs');
  const root = await navigator.storage.getDirectory();
  return (await root.getDirectoryHandle(top, { create: true })).getDirectoryHandle(name, { create: true });
}

const diskDir = (name: string) => opfsNamedDir('storvm-disks', name, 'persistent disk', (m, why) => new ImageError(m, why === 'name' ? 'format' : 'read', name));

/** How long to wait for a lock: a worker that was just stopped takes a moment to let go. */
const LOCK_WAIT_MS = 3000;

/**
 * Takes the Web Lock `lockName` (one writer per disk or share); resolves to a release function,
 * or undefined when another tab holds it. Without Web Locks there is nothing to take.
 */
export async function takeWebLock(lockName: string): Promise<(() => void) | undefined> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  if (locks === undefined) return () => {};
  return new Promise((resolve) => {
    locks
      .request(lockName, { signal: AbortSignal.timeout(LOCK_WAIT_MS) }, () => new Promise<void>((release) => resolve(() => release())))
      .catch(() => resolve(undefined));
  });
}

/**
 * Opens a sync access handle. Right after the disk's lock changed hands (a tab closed, a worker
 * was terminated) the old handle may not be released yet; try again for a second.
 */
async function syncHandle(fh: FileHandleWithSync): Promise<SyncAccessHandle> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fh.createSyncAccessHandle();
    } catch (e) {
      if (attempt >= 20 || !(e instanceof DOMException) || e.name !== 'NoModificationAllowedError') throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Opens (or creates) the persistent disk `name`. */
export async function openOpfsDisk(name: string, opts: OpfsDiskOptions): Promise<OpenedOpfsDisk> {
  const dir = await diskDir(name);
  const release = await takeWebLock(`storvm-disk:${name}`);
  const storeOpts = {
    ...(opts.base ? { base: opts.base } : { size: opts.size ?? 0 }),
    ...(opts.baseId !== undefined ? { baseId: opts.baseId } : {}),
    ...(opts.blockSize !== undefined ? { blockSize: opts.blockSize } : {}),
  };
  const fail = (e: unknown): never => {
    if (e instanceof ImageFormatError) throw new ImageError(`persistent disk ${name}: ${e.message}`, 'format', name);
    throw new ImageError(`persistent disk ${name}: ${e instanceof Error ? e.message : String(e)}`, 'read', name);
  };
  if (release === undefined) {
    // Another tab writes this disk: a read-only snapshot of what it last flushed.
    try {
      const files = await Promise.all(['data', 'map-a', 'map-b'].map(async (f) => new SnapshotFile(await (await dir.getFileHandle(f, { create: true })).getFile())));
      const store = PersistentOverlayDisk.open({ data: files[0]!, mapA: files[1]!, mapB: files[2]! }, storeOpts);
      return { disk: new ReadOnlyView(store), writable: false, store: undefined, close: () => {} };
    } catch (e) {
      if (e instanceof ImageFormatError) return fail(e);
      throw new ImageError(`persistent disk ${name} is open for writing in another tab, and its files can't be read beside it (${e instanceof Error ? e.message : String(e)})`, 'read', name);
    }
  }
  const handles: SyncAccessHandle[] = [];
  const closeAll = (): void => {
    for (const h of handles) {
      try {
        h.close();
      } catch {
        // already closed
      }
    }
    release();
  };
  try {
    for (const f of ['data', 'map-a', 'map-b']) {
      const fh = (await dir.getFileHandle(f, { create: true })) as FileHandleWithSync;
      if (typeof fh.createSyncAccessHandle !== 'function') throw new Error('FileSystemSyncAccessHandle is only available in a dedicated worker');
      handles.push(await syncHandle(fh));
    }
    if (opts.reset) for (const h of handles) h.truncate(0), h.flush();
    const [data, mapA, mapB] = handles.map((h) => new HandleFile(h));
    const store = PersistentOverlayDisk.open({ data: data!, mapA: mapA!, mapB: mapB! }, storeOpts);
    return { disk: store, writable: true, store, close: closeAll };
  } catch (e) {
    closeAll();
    return fail(e);
  }
}

/** Deletes the persistent disk `name` (it must not be open). */
export async function deleteOpfsDisk(name: string): Promise<void> {
  if (!NAME.test(name)) return;
  const root = await navigator.storage.getDirectory();
  const all = await root.getDirectoryHandle('storvm-disks', { create: true });
  await all.removeEntry(name, { recursive: true });
}

/** Names and sizes (data file bytes) of the persistent disks stored by this origin. */
export async function listOpfsDisks(): Promise<Array<{ name: string; bytes: number }>> {
  const root = await navigator.storage.getDirectory();
  const all = await root.getDirectoryHandle('storvm-disks', { create: true });
  const out: Array<{ name: string; bytes: number }> = [];
  for await (const [name, h] of (all as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
    if (h.kind !== 'directory') continue;
    let bytes = 0;
    for (const f of ['data', 'map-a', 'map-b']) {
      try {
        bytes += (await (await (h as FileSystemDirectoryHandle).getFileHandle(f)).getFile()).size;
      } catch {
        // missing file: nothing stored
      }
    }
    out.push({ name, bytes });
  }
  return out;
}
