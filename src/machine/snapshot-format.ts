/**
 * The byte format of a storvm snapshot (docs/snapshots.md): a header, then tagged sections, each
 * with its own length and CRC-32. Reading checks everything before a caller sees a byte of it, so
 * a truncated, corrupt or foreign file is refused with a SnapshotError, never half-read.
 *
 *   header  "STORVMSN" (8) · u32 version · u32 section count · u32 CRC-32 of the 16 bytes before
 *   section tag (4 ASCII bytes) · u32 payload length · u32 CRC-32 of tag, length and payload · payload
 *
 * All integers are little-endian. Tags name what a payload holds: "META" and "STAT" are UTF-8
 * JSON, "RAM " is guest RAM (see ram-image.ts), "BLOB" an opaque device blob (index order).
 */

import { crc32 } from '../backends/block/bytes.js';

export const SNAPSHOT_MAGIC = 'STORVMSN';
export const SNAPSHOT_VERSION = 1;
const HEADER = 20;
const SECTION_HEADER = 12;

export type SnapshotErrorCode = 'truncated' | 'corrupt' | 'foreign' | 'version' | 'mismatch' | 'state';

/** A snapshot that can't be read, or can't be restored onto the machine and disks given. */
export class SnapshotError extends Error {
  override name = 'SnapshotError';
  constructor(
    readonly code: SnapshotErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface Section {
  tag: string;
  data: Uint8Array;
}

/** Joins sections into one snapshot file. */
export function writeSnapshot(sections: readonly Section[]): Uint8Array {
  let total = HEADER;
  for (const s of sections) {
    if (!/^[\x20-\x7e]{4}$/.test(s.tag)) throw new RangeError(`section tag '${s.tag}' must be 4 ASCII characters`);
    total += SECTION_HEADER + s.data.length;
  }
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) out[i] = SNAPSHOT_MAGIC.charCodeAt(i);
  dv.setUint32(8, SNAPSHOT_VERSION, true);
  dv.setUint32(12, sections.length, true);
  dv.setUint32(16, crc32(out.subarray(0, 16)), true);
  let at = HEADER;
  for (const s of sections) {
    for (let i = 0; i < 4; i++) out[at + i] = s.tag.charCodeAt(i);
    dv.setUint32(at + 4, s.data.length, true);
    dv.setUint32(at + 8, crc32(s.data, crc32(out.subarray(at, at + 8))), true);
    out.set(s.data, at + SECTION_HEADER);
    at += SECTION_HEADER + s.data.length;
  }
  return out;
}

/** Splits a snapshot into its sections, checking magic, version, lengths and every CRC. */
export function readSnapshot(bytes: Uint8Array): Section[] {
  if (bytes.length < 8 || !isSnapshot(bytes)) {
    if (bytes.length < 8 && SNAPSHOT_MAGIC.startsWith(String.fromCharCode(...bytes))) throw new SnapshotError('truncated', `snapshot truncated: ${bytes.length} bytes`);
    throw new SnapshotError('foreign', 'not a storvm snapshot (bad magic)');
  }
  if (bytes.length < HEADER) throw new SnapshotError('truncated', `snapshot truncated: ${bytes.length} bytes, the header alone is ${HEADER}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(16, true) !== crc32(bytes.subarray(0, 16))) throw new SnapshotError('corrupt', 'snapshot header is corrupt (CRC mismatch)');
  const version = dv.getUint32(8, true);
  if (version !== SNAPSHOT_VERSION) {
    throw new SnapshotError('version', `snapshot format version ${version}; this storvm reads version ${SNAPSHOT_VERSION}`);
  }
  const count = dv.getUint32(12, true);
  const sections: Section[] = [];
  let at = HEADER;
  for (let i = 0; i < count; i++) {
    if (at + SECTION_HEADER > bytes.length) throw new SnapshotError('truncated', `snapshot truncated in section ${i + 1} of ${count}`);
    const tag = String.fromCharCode(...bytes.subarray(at, at + 4));
    const len = dv.getUint32(at + 4, true);
    const crc = dv.getUint32(at + 8, true);
    const start = at + SECTION_HEADER;
    if (start + len > bytes.length) throw new SnapshotError('truncated', `snapshot truncated in section '${tag}' (${len} bytes, ${bytes.length - start} present)`);
    const data = bytes.subarray(start, start + len);
    if (crc32(data, crc32(bytes.subarray(at, at + 8))) !== crc) throw new SnapshotError('corrupt', `snapshot section '${tag}' is corrupt (CRC mismatch)`);
    sections.push({ tag, data });
    at = start + len;
  }
  if (at !== bytes.length) throw new SnapshotError('corrupt', `snapshot has ${bytes.length - at} bytes after its last section`);
  return sections;
}

/** Whether `bytes` starts with the snapshot magic. */
export function isSnapshot(bytes: Uint8Array): boolean {
  if (bytes.length < 8) return false;
  for (let i = 0; i < 8; i++) if (bytes[i] !== SNAPSHOT_MAGIC.charCodeAt(i)) return false;
  return true;
}

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function jsonSection(tag: string, value: unknown): Section {
  return { tag, data: enc.encode(JSON.stringify(value)) };
}

export function parseJsonSection(s: Section): unknown {
  try {
    return JSON.parse(dec.decode(s.data));
  } catch (e) {
    throw new SnapshotError('corrupt', `snapshot section '${s.tag}' is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Reading state back: each accessor checks the type of what it reads, so a snapshot that passed
 * the CRCs but holds the wrong shape (another build's, or crafted) fails with a SnapshotError.
 */
export class StateReader {
  constructor(
    private readonly o: Record<string, unknown>,
    private readonly where: string,
  ) {}

  static of(v: unknown, where: string): StateReader {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SnapshotError('state', `snapshot: ${where} is not an object`);
    return new StateReader(v as Record<string, unknown>, where);
  }

  private bad(key: string, what: string): never {
    throw new SnapshotError('state', `snapshot: ${this.where}.${key} is not ${what}`);
  }

  num(key: string): number {
    const v = this.o[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) this.bad(key, 'a number');
    return v;
  }

  int(key: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.num(key);
    if (!Number.isInteger(v) || v < min || v > max) this.bad(key, `an integer in ${min}..${max}`);
    return v;
  }

  bool(key: string): boolean {
    const v = this.o[key];
    if (typeof v !== 'boolean') this.bad(key, 'a boolean');
    return v;
  }

  str(key: string): string {
    const v = this.o[key];
    if (typeof v !== 'string') this.bad(key, 'a string');
    return v;
  }

  optStr(key: string): string | undefined {
    return this.o[key] === undefined || this.o[key] === null ? undefined : this.str(key);
  }

  /** An array of integers of exactly `length` (when given) elements, each in [min, max]. */
  ints(key: string, length?: number, min = -(2 ** 31), max = 2 ** 32 - 1): number[] {
    const v = this.o[key];
    if (!Array.isArray(v) || (length !== undefined && v.length !== length)) this.bad(key, `an array of ${length ?? 'some'} integers`);
    for (const x of v) if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) this.bad(key, `an array of integers in ${min}..${max}`);
    return v as number[];
  }

  obj(key: string): StateReader {
    return StateReader.of(this.o[key], `${this.where}.${key}`);
  }

  list(key: string): StateReader[] {
    const v = this.o[key];
    if (!Array.isArray(v)) this.bad(key, 'an array');
    return v.map((x, i) => StateReader.of(x, `${this.where}.${key}[${i}]`));
  }

  raw(key: string): unknown {
    return this.o[key];
  }
}
