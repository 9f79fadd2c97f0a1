/**
 * A picked folder remembered across reloads. `showDirectoryPicker()` handles can be kept in
 * IndexedDB (they are structured-clonable; a path can't be), but the permission to use one is the
 * browser's to give again: after a reload a handle may still be granted, may need the visitor to
 * say yes again (which needs a user gesture: a click), may be refused, or may name a folder that
 * is no longer there. `recallFolder` tells which without prompting; `regainFolder`, called from a
 * click, asks. Directory handles of the Origin Private File System are kept the same way, and are
 * always granted.
 */

/** What the remembered folder is now. */
export type FolderRecall =
  | { state: 'none' }
  /** Usable now. */
  | { state: 'ready'; handle: FileSystemDirectoryHandle }
  /** The browser must ask the visitor again: call regainFolder from a click. */
  | { state: 'ask'; handle: FileSystemDirectoryHandle; message: string }
  /** The visitor or the browser refused access. */
  | { state: 'denied'; handle: FileSystemDirectoryHandle; message: string }
  /** The folder was removed or moved, or the stored handle is unreadable. */
  | { state: 'gone'; name: string; message: string };

/** Where handles are kept (IndexedDB in a page; anything in tests). */
export interface HandleStore {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): Promise<void>;
  delete(key: string): Promise<void>;
}

type Mode = 'read' | 'readwrite';
/** The permission part of the File System Access API (chromium has it; lib.dom does not type it). */
interface PermissionHandle {
  queryPermission?(d: { mode: Mode }): Promise<PermissionState>;
  requestPermission?(d: { mode: Mode }): Promise<PermissionState>;
}

const KEY = 'folder';

/** Handles in IndexedDB: database `storvm`, object store `handles`. */
export function indexedDbHandles(dbName = 'storvm', storeName = 'handles'): HandleStore {
  let db: Promise<IDBDatabase> | undefined;
  const open = () =>
    (db ??= new Promise<IDBDatabase>((resolve, reject) => {
      const r = indexedDB.open(dbName, 1);
      r.onupgradeneeded = () => r.result.createObjectStore(storeName);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error ?? new Error(`IndexedDB ${dbName} could not be opened`));
    }));
  const run = async <T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> => {
    const d = await open();
    return new Promise<T>((resolve, reject) => {
      const t = d.transaction(storeName, mode);
      const r = fn(t.objectStore(storeName));
      t.oncomplete = () => resolve(r.result);
      t.onerror = t.onabort = () => reject(t.error ?? r.error ?? new Error('IndexedDB transaction failed'));
    });
  };
  return {
    get: (key) => run('readonly', (s) => s.get(key)),
    put: async (key, value) => void (await run('readwrite', (s) => s.put(value, key))),
    delete: async (key) => void (await run('readwrite', (s) => s.delete(key))),
  };
}

/** Remembers `handle` as the shared folder. */
export async function rememberFolder(handle: FileSystemDirectoryHandle, store: HandleStore = indexedDbHandles()): Promise<void> {
  await store.put(KEY, handle);
}

export async function forgetFolder(store: HandleStore = indexedDbHandles()): Promise<void> {
  await store.delete(KEY);
}

/** Whether the folder is still there: reading its first entry throws NotFoundError when it is not. */
async function present(h: FileSystemDirectoryHandle): Promise<string | undefined> {
  try {
    for await (const _ of (h as unknown as { keys(): AsyncIterable<string> }).keys()) break;
    return undefined;
  } catch (e) {
    const name = (e as { name?: string }).name;
    if (name === 'NotFoundError') return `the folder ${h.name} is no longer there (removed or moved); pick it again`;
    if (name === 'NotAllowedError' || name === 'SecurityError') return undefined; // a permission matter, not gone
    return `the folder ${h.name} can't be read: ${(e as Error).message}`;
  }
}

function isHandle(v: unknown): v is FileSystemDirectoryHandle {
  return typeof v === 'object' && v !== null && (v as FileSystemHandle).kind === 'directory' && typeof (v as FileSystemDirectoryHandle).getDirectoryHandle === 'function';
}

async function judge(h: FileSystemDirectoryHandle, p: PermissionState): Promise<FolderRecall> {
  if (p === 'denied') return { state: 'denied', handle: h, message: `the browser refused access to the folder ${h.name}; share it again to pick it` };
  if (p === 'prompt') return { state: 'ask', handle: h, message: `the folder ${h.name} was shared before: allow access again to use it` };
  const gone = await present(h);
  return gone !== undefined ? { state: 'gone', name: h.name, message: gone } : { state: 'ready', handle: h };
}

/** What became of the remembered folder, without prompting the visitor. */
export async function recallFolder(store: HandleStore = indexedDbHandles(), mode: Mode = 'readwrite'): Promise<FolderRecall> {
  let v: unknown;
  try {
    v = await store.get(KEY);
  } catch (e) {
    return { state: 'gone', name: '', message: `the shared folder could not be recalled: ${(e as Error).message}` };
  }
  if (v === undefined) return { state: 'none' };
  if (!isHandle(v)) return { state: 'gone', name: '', message: 'the remembered folder is not a folder handle' };
  const q = (v as unknown as PermissionHandle).queryPermission;
  let p: PermissionState = 'granted';
  if (typeof q === 'function') {
    try {
      p = await q.call(v, { mode });
    } catch {
      p = 'prompt';
    }
  }
  return judge(v, p);
}

/** From a click: asks the browser (and so the visitor) for the folder again. */
export async function regainFolder(handle: FileSystemDirectoryHandle, mode: Mode = 'readwrite'): Promise<FolderRecall> {
  const r = (handle as unknown as PermissionHandle).requestPermission;
  let p: PermissionState = 'granted';
  if (typeof r === 'function') {
    try {
      p = await r.call(handle, { mode });
    } catch (e) {
      return { state: 'denied', handle, message: `the folder ${handle.name}: ${(e as Error).message}` };
    }
  }
  return judge(handle, p);
}
