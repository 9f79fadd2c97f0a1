/**
 * The boot cache: a snapshot of the default boot taken the moment the guest's init starts, kept in
 * a per-user cache folder and restored by later runs with the same kernel, initramfs, memory, CPU
 * engine, device layout and storvm code (docs/boot-cache.md).
 *
 * An entry is one file, `boot/KEY.snap`, in the format of src/machine/boot-cache-entry.ts (shared
 * with the browser's OPFS cache). Files are written to a temporary name and renamed, so a reader
 * sees a whole entry or none; two runs building the same entry both rename a complete file over
 * it. An entry that does not parse, has another key or storvm version, or fails the restore's own
 * checks is deleted and the run boots cold (and writes it again).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, stat, unlink, utimes } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeEntry as decodeEntryFor, ENTRY_PREFIX, type EntryHeader, entryHeader, keyFacts, type KeyFacts } from '../machine/boot-cache-entry.js';
import { storvmVersion } from './version.js';
import { writeWhole } from './write-whole.js';

export { BadEntry, BOOT_CACHE_FORMAT, encodeEntry, type EntryHeader, type KeyDevice } from '../machine/boot-cache-entry.js';

/** Default bound on the folder's size; `STORVM_CACHE_MAX_MB` changes it. */
export const DEFAULT_MAX_BYTES = 512 * 1024 * 1024;

/**
 * The per-user cache folder: `$STORVM_CACHE_DIR` when set; else `$XDG_CACHE_HOME/storvm` (when
 * absolute, as the XDG spec asks) or `~/.cache/storvm` on Linux and the BSDs, `~/Library/Caches/storvm`
 * on macOS, `%LOCALAPPDATA%\storvm\Cache` on Windows.
 */
export function cacheDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, home = homedir()): string {
  if (env.STORVM_CACHE_DIR) return env.STORVM_CACHE_DIR;
  if (platform === 'darwin') return join(home, 'Library', 'Caches', 'storvm');
  if (platform === 'win32') return join(env.LOCALAPPDATA ?? join(home, 'AppData', 'Local'), 'storvm', 'Cache');
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg !== undefined && isAbsolute(xdg) ? xdg : join(home, '.cache'), 'storvm');
}

export function bootDir(dir = cacheDir()): string {
  return join(dir, 'boot');
}

/** The bound on the cache's size in bytes. */
export function maxBytes(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.STORVM_CACHE_MAX_MB;
  if (v === undefined || v === '') return DEFAULT_MAX_BYTES;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.floor(n * 1024 * 1024) : DEFAULT_MAX_BYTES;
}

export interface KeyInputs extends Omit<KeyFacts, 'storvm' | 'kernel' | 'initrd'> {
  kernel: Uint8Array;
  initrd: Uint8Array;
}

/** The cache key: SHA-256 over everything that could change what the kernel saw during boot. */
export function cacheKey(k: KeyInputs): string {
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const facts = keyFacts({ ...k, storvm: storvmVersion(), kernel: sha(k.kernel), initrd: sha(k.initrd) });
  return createHash('sha256').update(facts).digest('hex').slice(0, 40);
}

/** The code folder this module runs from: dist/ when built, src/ in a source checkout. */
const CODE_DIR = new URL('../', import.meta.url);
/** Folders of it that play no part in a CLI boot. */
const NOT_MACHINE = new Set(['browser', 'testing', 'lab']);

let codeHash: string | undefined;

/**
 * A hash of storvm's own code as it runs: every .js/.ts file under the code folder (dist/ or
 * src/, without browser/, testing/ and the storage labs), names and contents. So an entry made
 * by other code, a development build without a version bump included, is never used. About a
 * megabyte in 150 files, read synchronously (a few milliseconds; promise reads cost more here).
 */
export function codeIdentity(dir: URL = CODE_DIR): string {
  if (dir === CODE_DIR && codeHash !== undefined) return codeHash;
  const root = fileURLToPath(dir);
  const files: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      if (e.isDirectory()) {
        if (!NOT_MACHINE.has(e.name)) walk(join(rel, e.name));
      } else if (/\.(js|ts)$/.test(e.name) && !e.name.endsWith('.d.ts')) {
        files.push(join(rel, e.name));
      }
    }
  };
  walk('');
  files.sort();
  const h = createHash('sha256');
  for (const f of files) {
    const bytes = readFileSync(join(root, f));
    h.update(`${f}\0${bytes.length}\0`).update(bytes);
  }
  const id = h.digest('hex');
  if (dir === CODE_DIR) codeHash = id;
  return id;
}

export function entryPath(key: string, dir = bootDir()): string {
  return join(dir, `${key}.snap`);
}

/** Splits an entry and checks its header against `key` and this storvm's version (see boot-cache-entry.ts). */
export function decodeEntry(bytes: Uint8Array, key: string, diskSizes: number[]): { header: EntryHeader; snapshot: Uint8Array; console: Uint8Array } {
  return decodeEntryFor(bytes, key, diskSizes, storvmVersion());
}

/**
 * Reads an entry, or undefined when there is none. Synchronously: a few MB from the page cache
 * take a millisecond, and each step of a promise read waits for the thread pool, which a loaded
 * machine makes slow.
 */
export async function readEntry(path: string): Promise<Uint8Array | undefined> {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Marks an entry used now (the LRU order is the files' modification times). */
export async function touchEntry(path: string): Promise<void> {
  const now = new Date();
  await utimes(path, now, now).catch(() => {});
}

export async function removeEntry(path: string): Promise<void> {
  await unlink(path).catch(() => {});
}

/**
 * Writes an entry whole (temporary file in the same folder, then rename), then drops least
 * recently used entries until the folder fits its bound.
 */
export async function writeEntry(path: string, bytes: Uint8Array, dir = bootDir(), bound = maxBytes()): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeWhole(path, bytes);
  await prune(dir, bound, path);
}

export interface EntryStat {
  file: string;
  key: string;
  bytes: number;
  used: Date;
}

/** The entries in the folder, most recently used first. */
export async function listEntries(dir = bootDir()): Promise<EntryStat[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: EntryStat[] = [];
  for (const n of names) {
    if (!n.endsWith('.snap')) continue;
    const file = join(dir, n);
    const st = await stat(file).catch(() => undefined);
    if (st?.isFile()) out.push({ file, key: n.slice(0, -5), bytes: st.size, used: st.mtime });
  }
  return out.sort((a, b) => b.used.getTime() - a.used.getTime());
}

/** Deletes least recently used entries until the rest fit in `bound` bytes (`keep` stays). */
export async function prune(dir: string, bound: number, keep?: string): Promise<string[]> {
  const entries = await listEntries(dir);
  let total = entries.reduce((s, e) => s + e.bytes, 0);
  const removed: string[] = [];
  for (const e of [...entries].reverse()) {
    if (total <= bound) break;
    if (e.file === keep) continue;
    await removeEntry(e.file);
    removed.push(e.file);
    total -= e.bytes;
  }
  return removed;
}

/** The summary line of an entry, for `storvm cache info` (undefined when its header does not parse). */
export async function entrySummary(file: string): Promise<string | undefined> {
  try {
    // The header is small and comes first: read it, not the snapshot after it.
    const f = await open(file, 'r');
    let head: Uint8Array;
    try {
      const top = new Uint8Array(ENTRY_PREFIX);
      await f.read(top, 0, top.length, 0);
      const len = new DataView(top.buffer).getUint32(ENTRY_PREFIX - 4, true);
      head = new Uint8Array(top.length + Math.min(len, 1 << 24));
      await f.read(head, 0, head.length, 0);
    } finally {
      await f.close();
    }
    const { header: h } = entryHeader(head);
    return typeof h.summary === 'string' ? `${h.summary}, storvm ${String(h.storvm)}` : undefined;
  } catch {
    return undefined;
  }
}

/** Removes every entry and leftover temporary file; returns how many files and bytes went. */
export async function clearCache(dir = bootDir()): Promise<{ files: number; bytes: number }> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return { files: 0, bytes: 0 };
  }
  let files = 0, bytes = 0;
  for (const n of names) {
    if (!n.endsWith('.snap') && !n.startsWith('.tmp-')) continue;
    const file = join(dir, n);
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) continue;
    await removeEntry(file);
    files++;
    bytes += st.size;
  }
  return { files, bytes };
}
