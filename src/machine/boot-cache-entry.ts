/**
 * A boot-cache entry (docs/boot-cache.md), the same in the CLI's cache folder and in the
 * browser's OPFS:
 *
 *   "STORVM-BOOTCACHE" (16 bytes) · u32 LE header length · header (JSON) · snapshot bytes
 *
 * The header repeats the key and says which blocks of each disk the guest had read by the
 * snapshot point, with a hash of their contents, and what the guest wrote on its console before
 * it. An entry that does not parse or was made for other inputs is a {@link BadEntry}: the caller
 * deletes it and boots cold.
 */
import { type BlockRuns, type ReadRecordingDisk, validRuns } from '../backends/block/read-record.js';
import { fromBase64, toBase64 } from '../backends/block/bytes.js';
import type { EarlyConsole } from './boot-handshake.js';
import { SNAPSHOT_VERSION } from './snapshot-format.js';

const MAGIC = new TextEncoder().encode('STORVM-BOOTCACHE');
/** Bytes before the JSON header: the magic and its length. */
export const ENTRY_PREFIX = MAGIC.length + 4;
/** Version of the entry layout and of the guest protocol it relies on (storvm.ctl=console). */
export const BOOT_CACHE_FORMAT = 2;

/** What the kernel sees of a device while it boots. */
export type KeyDevice =
  | { kind: 'blk'; size: number; readOnly: boolean; discard: boolean; writeZeroes: boolean; serial: string }
  | { kind: '9p'; tag: string; readOnly: boolean; mode: string };

/** Everything that could change what the kernel saw during boot, with the images as hashes. */
export interface KeyFacts {
  /** storvm's version. */
  storvm: string;
  /** A hash of the code that built the machine (the CLI's codeIdentity, the browser's worker script). */
  code: string;
  kernel: string;
  initrd: string;
  bootargs: string;
  memoryMiB: number;
  cpu: string;
  deterministic: boolean;
  devices: KeyDevice[];
}

/** The text the key is a hash of (each edge hashes it with its own SHA-256). */
export function keyFacts(k: KeyFacts): string {
  const { storvm, code, kernel, initrd, bootargs, memoryMiB, cpu, deterministic, devices } = k;
  return JSON.stringify({ format: BOOT_CACHE_FORMAT, snapshot: SNAPSHOT_VERSION, storvm, code, kernel, initrd, bootargs, memoryMiB, cpu, deterministic, devices });
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

export function encodeEntry(header: EntryHeader, snapshot: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(ENTRY_PREFIX + json.length + snapshot.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(MAGIC.length, json.length, true);
  out.set(json, ENTRY_PREFIX);
  out.set(snapshot, ENTRY_PREFIX + json.length);
  return out;
}

/**
 * The entry for a snapshot taken at the snapshot point, made alike by the CLI and the page; undefined
 * when the run can't give one (a disk was written before it or its boot reads were not hashed, or
 * the guest printed more than the console keeps).
 */
export function entryFor(o: { key: string; storvm: string; summary: string; recorders: ReadRecordingDisk[]; early: EarlyConsole; snapshot: Uint8Array }): Uint8Array | undefined {
  if (o.recorders.some((r) => r.wrote || r.bootHash === undefined) || o.early.overflowed) return undefined;
  const header: EntryHeader = {
    format: BOOT_CACHE_FORMAT,
    key: o.key,
    storvm: o.storvm,
    created: new Date().toISOString(),
    summary: o.summary,
    disks: o.recorders.map((r) => ({ runs: r.recordedRuns(), hash: r.bootHash! })),
    console: toBase64(o.early.bytes()),
  };
  return encodeEntry(header, o.snapshot);
}

/** The JSON header of an entry after its magic, and where the snapshot starts (BadEntry when it does not parse). */
export function entryHeader(bytes: Uint8Array): { header: Partial<EntryHeader>; at: number } {
  if (bytes.length < ENTRY_PREFIX || MAGIC.some((b, i) => bytes[i] !== b)) throw new BadEntry('not a boot-cache entry');
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(MAGIC.length, true);
  if (ENTRY_PREFIX + len > bytes.length) throw new BadEntry('truncated');
  let h: unknown;
  try {
    h = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(ENTRY_PREFIX, ENTRY_PREFIX + len)));
  } catch {
    throw new BadEntry('header is not JSON');
  }
  if (typeof h !== 'object' || h === null) throw new BadEntry('header is not an object');
  return { header: h as Partial<EntryHeader>, at: ENTRY_PREFIX + len };
}

/**
 * Splits an entry and checks its header against `key`, storvm `version` and the disks given now;
 * the snapshot's own checks come at restore.
 */
export function decodeEntry(bytes: Uint8Array, key: string, diskSizes: number[], version: string): { header: EntryHeader; snapshot: Uint8Array; console: Uint8Array } {
  const { header, at } = entryHeader(bytes);
  if (header.format !== BOOT_CACHE_FORMAT) throw new BadEntry(`format ${String(header.format)}`);
  if (header.key !== key) throw new BadEntry('made for other inputs');
  if (header.storvm !== version) throw new BadEntry(`made by storvm ${String(header.storvm)}`);
  const consoleBytes = typeof header.console === 'string' ? fromBase64(header.console) : undefined;
  if (consoleBytes === undefined) throw new BadEntry('console is not base64');
  if (!Array.isArray(header.disks) || header.disks.length !== diskSizes.length) throw new BadEntry('wrong number of disks');
  header.disks.forEach((d, i) => {
    if (typeof d !== 'object' || d === null || typeof d.hash !== 'string' || !validRuns(d.runs, diskSizes[i]!)) throw new BadEntry(`disk ${i}: bad block list`);
  });
  return { header: header as EntryHeader, snapshot: bytes.subarray(at), console: consoleBytes };
}
