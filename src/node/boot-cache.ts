/**
 * The boot cache: a snapshot of the default boot taken the moment the guest's init starts, kept in
 * a per-user cache folder and restored by later runs with the same kernel, initramfs, memory, CPU
 * engine and device layout (docs/boot-cache.md).
 *
 * An entry is one file, `boot/KEY.snap`:
 *
 *   "STORVM-BOOTCACHE" (16 bytes) · u32 LE header length · header (JSON) · snapshot bytes
 *
 * The header repeats the key and says which blocks of each disk the guest had read by the
 * snapshot point, with a hash of their contents, and what the guest wrote on its console before
 * it. Files are written to a temporary name and renamed, so a reader sees a whole entry or none;
 * two runs building the same entry both rename a complete file over it. An entry that does not
 * parse, has another key or storvm version, or fails the restore's own checks is deleted and the
 * run boots cold (and writes it again).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { type BlockRuns, validRuns } from '../backends/block/read-record.js';
import { SNAPSHOT_VERSION } from '../machine/snapshot-format.js';
import { storvmVersion } from './version.js';

const MAGIC = new TextEncoder().encode('STORVM-BOOTCACHE');
/** Version of the entry layout and of the guest protocol it relies on (storvm.ctl=console). */
export const BOOT_CACHE_FORMAT = 1;
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

/** What the kernel sees of a device while it boots. */
export type KeyDevice =
  | { kind: 'blk'; size: number; readOnly: boolean; discard: boolean; writeZeroes: boolean; serial: string }
  | { kind: '9p'; tag: string; readOnly: boolean; mode: string };

export interface KeyInputs {
  kernel: Uint8Array;
  initrd: Uint8Array;
  bootargs: string;
  memoryMiB: number;
  cpu: string;
  deterministic: boolean;
  devices: KeyDevice[];
}

/** The cache key: SHA-256 over everything that could change what the kernel saw during boot. */
export function cacheKey(k: KeyInputs): string {
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const facts = {
    format: BOOT_CACHE_FORMAT,
    snapshot: SNAPSHOT_VERSION,
    storvm: storvmVersion(),
    kernel: sha(k.kernel),
    initrd: sha(k.initrd),
    bootargs: k.bootargs,
    memoryMiB: k.memoryMiB,
    cpu: k.cpu,
    deterministic: k.deterministic,
    devices: k.devices,
  };
  return createHash('sha256').update(JSON.stringify(facts)).digest('hex').slice(0, 40);
}

export interface EntryHeader {
  format: number;
  key: string;
  storvm: string;
  created: string;
  /** One line for `storvm cache info`. */
  summary: string;
  /** Per virtio-blk device in slot order: the blocks read before the snapshot point and their hash. */
  disks: Array<{ runs: BlockRuns; hash: string }>;
  /** What the guest wrote to its console before the snapshot point (base64), replayed on restore. */
  console: string;
}

/** Thrown for an entry that must not be used; the caller deletes it and boots cold. */
export class BadEntry extends Error {
  override name = 'BadEntry';
}

export function entryPath(key: string, dir = bootDir()): string {
  return join(dir, `${key}.snap`);
}

export function encodeEntry(header: EntryHeader, snapshot: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(MAGIC.length + 4 + json.length + snapshot.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(MAGIC.length, json.length, true);
  out.set(json, MAGIC.length + 4);
  out.set(snapshot, MAGIC.length + 4 + json.length);
  return out;
}

/** Splits an entry and checks its header against `key`; the snapshot's own checks come at restore. */
export function decodeEntry(bytes: Uint8Array, key: string, diskSizes: number[]): { header: EntryHeader; snapshot: Uint8Array } {
  const at = MAGIC.length + 4;
  if (bytes.length < at || MAGIC.some((b, i) => bytes[i] !== b)) throw new BadEntry('not a boot-cache entry');
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(MAGIC.length, true);
  if (at + len > bytes.length) throw new BadEntry('truncated');
  let h: unknown;
  try {
    h = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(at, at + len)));
  } catch {
    throw new BadEntry('header is not JSON');
  }
  const header = h as EntryHeader;
  if (typeof h !== 'object' || h === null) throw new BadEntry('header is not an object');
  if (header.format !== BOOT_CACHE_FORMAT) throw new BadEntry(`format ${String(header.format)}`);
  if (header.key !== key) throw new BadEntry('made for other inputs');
  if (header.storvm !== storvmVersion()) throw new BadEntry(`made by storvm ${String(header.storvm)}`);
  if (typeof header.console !== 'string') throw new BadEntry('console is not a string');
  if (!Array.isArray(header.disks) || header.disks.length !== diskSizes.length) throw new BadEntry('wrong number of disks');
  header.disks.forEach((d, i) => {
    if (typeof d !== 'object' || d === null || typeof d.hash !== 'string' || !validRuns(d.runs, diskSizes[i]!)) throw new BadEntry(`disk ${i}: bad block list`);
  });
  return { header, snapshot: bytes.subarray(at + len) };
}

/** Reads an entry, or undefined when there is none. */
export async function readEntry(path: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(path);
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
  const tmp = join(dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
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

/** Reads just the header of an entry, for `storvm cache info` (undefined when it does not parse). */
export async function entrySummary(file: string): Promise<string | undefined> {
  try {
    const bytes = await readFile(file);
    const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(MAGIC.length, true);
    const h = JSON.parse(bytes.subarray(MAGIC.length + 4, MAGIC.length + 4 + len).toString()) as EntryHeader;
    return typeof h.summary === 'string' ? `${h.summary}, storvm ${h.storvm}` : undefined;
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

/** The escape sequence init prints when it waits for the console line (an OSC, ignored by terminals). */
export const READY_MARKER = new TextEncoder().encode('\x1b]5379;storvm-ready\x07');

/**
 * Watches console output for {@link READY_MARKER}: bytes pass through to `out` (the marker
 * itself taken out), `onMarker` runs once when it is seen; afterwards everything passes untouched.
 */
export class MarkerFilter {
  private held = 0;
  private seen = false;

  constructor(
    private readonly out: (bytes: Uint8Array) => void,
    private readonly onMarker: () => void,
  ) {}

  get found(): boolean {
    return this.seen;
  }

  push(bytes: Uint8Array): void {
    if (this.seen) return this.out(bytes);
    const pass: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (this.seen) {
        pass.push(b);
        continue;
      }
      if (b === READY_MARKER[this.held]) {
        this.held++;
        if (this.held === READY_MARKER.length) {
          this.held = 0;
          if (pass.length > 0) this.out(Uint8Array.from(pass.splice(0)));
          this.seen = true;
          this.onMarker();
        }
        continue;
      }
      // Not the marker after all: give back what was held (the marker's first byte occurs only
      // once in it, so the byte that broke the match may start a new one).
      for (let j = 0; j < this.held; j++) pass.push(READY_MARKER[j]!);
      this.held = 0;
      if (b === READY_MARKER[0]) this.held = 1;
      else pass.push(b);
    }
    if (pass.length > 0) this.out(Uint8Array.from(pass));
  }
}

/**
 * What the guest printed before the snapshot point, kept for the entry up to `max` bytes; past
 * that nothing more is kept (the host never holds more than `max`) and no entry is made.
 */
export class EarlyConsole {
  private chunks: Uint8Array[] = [];
  private total = 0;

  constructor(private readonly max: number) {}

  get overflowed(): boolean {
    return this.total > this.max;
  }

  push(b: Uint8Array): void {
    this.total += b.length;
    if (this.overflowed) this.chunks = [];
    else this.chunks.push(b.slice());
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.overflowed ? 0 : this.total);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}
