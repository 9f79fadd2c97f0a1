/**
 * The boot cache in the browser (docs/boot-cache.md): the same entries as the CLI's
 * (src/machine/boot-cache-entry.ts), kept in the Origin Private File System under
 * `storvm-boot-cache/KEY.snap`, so a page's second visit restores the booted guest instead of
 * booting it. Used by the machine's worker; `startVm({ bootCache: false })` turns it off and
 * {@link clearBootCache} empties it.
 *
 * An entry is written through `createWritable()`, which the browser swaps in whole when it is
 * closed, so a reader (another tab) sees the old file or the new one. The folder is bounded:
 * after a write the oldest entries (by when they were written) go until the rest fit.
 */
import { BadEntry, decodeEntry, type EntryHeader, keyFacts, type KeyFacts } from '../machine/boot-cache-entry.js';

/** The OPFS folder of the entries. */
export const BOOT_CACHE_DIR = 'storvm-boot-cache';
/** Default bound on the folder's size. */
export const BROWSER_CACHE_MAX_BYTES = 256 * 1024 * 1024;
/**
 * The version the browser's entries carry. The code itself is in the key (a hash of the
 * worker's script), so this only has to tell the browser's entries apart.
 */
export const BROWSER_VERSION = 'browser';

async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * A hash of the code running in this worker: its script as the server gives it. A production
 * build bundles the whole machine into that script (and names it by its content), so a new
 * build misses; from a dev server only the worker module itself is seen.
 */
export async function workerCodeIdentity(url: string): Promise<string> {
  try {
    const r = await fetch(url, { cache: 'force-cache' });
    if (!r.ok) return `unfetched:${url}`;
    return await sha256Hex(new Uint8Array(await r.arrayBuffer()));
  } catch {
    return `unfetched:${url}`;
  }
}

/** The key: SHA-256 over the facts, the images as their SHA-256. */
export async function browserCacheKey(k: Omit<KeyFacts, 'kernel' | 'initrd' | 'storvm'> & { kernel: Uint8Array; initrd: Uint8Array }): Promise<string> {
  const facts = keyFacts({ ...k, storvm: BROWSER_VERSION, kernel: await sha256Hex(k.kernel), initrd: await sha256Hex(k.initrd) });
  return (await sha256Hex(facts)).slice(0, 40);
}

async function folder(create: boolean): Promise<FileSystemDirectoryHandle | undefined> {
  try {
    return await (await navigator.storage.getDirectory()).getDirectoryHandle(BOOT_CACHE_DIR, { create });
  } catch {
    return undefined;
  }
}

/** The entry for `key`, checked (undefined when there is none; a bad one is removed). */
export async function readBrowserEntry(key: string, diskSizes: number[]): Promise<{ header: EntryHeader; snapshot: Uint8Array; console: Uint8Array } | undefined> {
  const dir = await folder(false);
  if (dir === undefined) return undefined;
  let bytes: Uint8Array;
  try {
    const file = await (await dir.getFileHandle(`${key}.snap`)).getFile();
    bytes = new Uint8Array(await file.arrayBuffer());
  } catch {
    return undefined;
  }
  try {
    return decodeEntry(bytes, key, diskSizes, BROWSER_VERSION);
  } catch (e) {
    if (e instanceof BadEntry) await removeBrowserEntry(key);
    return undefined;
  }
}

export async function removeBrowserEntry(key: string): Promise<void> {
  const dir = await folder(false);
  await dir?.removeEntry(`${key}.snap`).catch(() => {});
}

/** Writes an entry whole, then drops the oldest ones beyond `bound` bytes (never the one written). */
export async function writeBrowserEntry(key: string, bytes: Uint8Array, bound = BROWSER_CACHE_MAX_BYTES): Promise<void> {
  const dir = await folder(true);
  if (dir === undefined) return;
  const name = `${key}.snap`;
  const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
  try {
    await w.write(bytes as Uint8Array<ArrayBuffer>);
    await w.close();
  } catch (e) {
    await w.abort().catch(() => {});
    throw e;
  }
  const entries: Array<{ name: string; size: number; at: number }> = [];
  for await (const [n, h] of (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
    if (h.kind !== 'file' || !n.endsWith('.snap')) continue;
    const f = await (h as FileSystemFileHandle).getFile().catch(() => undefined);
    if (f) entries.push({ name: n, size: f.size, at: f.lastModified });
  }
  let total = entries.reduce((s, e) => s + e.size, 0);
  for (const e of entries.sort((a, b) => a.at - b.at)) {
    if (total <= bound) break;
    if (e.name === name) continue;
    await dir.removeEntry(e.name).catch(() => {});
    total -= e.size;
  }
}

/** Removes every boot-cache entry of this origin; resolves to how many there were. */
export async function clearBootCache(): Promise<number> {
  const dir = await folder(false);
  if (dir === undefined) return 0;
  let n = 0;
  const names: string[] = [];
  // Only entries: another tab's write in flight (chromium's .crswap) is left to finish.
  for await (const [name] of (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) if (name.endsWith('.snap')) names.push(name);
  for (const name of names) {
    await dir.removeEntry(name).catch(() => {});
    n++;
  }
  return n;
}
