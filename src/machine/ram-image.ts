/**
 * Guest RAM in a snapshot: pages that hold only zeros are left out, the rest are deflated in
 * groups so no single buffer has to hold all of them twice.
 *
 *   u32 page size (4096) · u32 pages · bitmap (1 bit per page, set = stored, LSB first)
 *   · u32 groups · per group: u32 pages in it · u32 deflated length · deflated bytes
 *
 * Stored pages follow in ascending order, GROUP_PAGES of them per group (the last may be short).
 */
import { SnapshotError } from './snapshot-format.js';

const PAGE = 4096;
const GROUP_PAGES = 1024;

/**
 * fflate, loaded when a codec lacks a direction: every machine imports this module, and
 * evaluating fflate took 7.5 ms of each CLI start, whose host (Node's zlib) never uses it.
 */
let fflate: Promise<typeof import('fflate')> | undefined;
const loadFflate = (): Promise<typeof import('fflate')> => (fflate ??= import('fflate'));

/**
 * Raw DEFLATE (RFC 1951) both ways, for hosts with a faster one than fflate's: Node's zlib, a
 * browser's CompressionStream('deflate-raw'). The format is the same whichever is used.
 */
export interface DeflateCodec {
  deflate?(data: Uint8Array, level: number): Uint8Array | Promise<Uint8Array>;
  /** Inflates `data`, which must come to exactly `size` bytes (a different length is refused). */
  inflate?(data: Uint8Array, size: number): Uint8Array | Promise<Uint8Array>;
}

export interface RamImageStats {
  pages: number;
  stored: number;
}

/** Encodes `ram` (a multiple of 4096 bytes). */
export async function encodeRam(ram: Uint8Array, level: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 = 1, codec: DeflateCodec = {}): Promise<Uint8Array> {
  if (ram.length % PAGE !== 0) throw new RangeError('RAM size must be a multiple of 4096');
  const pages = ram.length / PAGE;
  const words = new Int32Array(ram.buffer, ram.byteOffset, ram.length >>> 2);
  const bitmap = new Uint8Array(Math.ceil(pages / 8));
  const stored: number[] = [];
  for (let p = 0; p < pages; p++) {
    const from = p * (PAGE >>> 2), to = from + (PAGE >>> 2);
    for (let i = from; i < to; i++) {
      if (words[i] !== 0) {
        bitmap[p >>> 3]! |= 1 << (p & 7);
        stored.push(p);
        break;
      }
    }
  }
  const ff = codec.deflate ? undefined : await loadFflate();
  const pending: Array<Uint8Array | Promise<Uint8Array>> = [];
  const counts: number[] = [];
  for (let g = 0; g < stored.length; g += GROUP_PAGES) {
    const n = Math.min(GROUP_PAGES, stored.length - g);
    const buf = new Uint8Array(n * PAGE);
    for (let i = 0; i < n; i++) {
      const p = stored[g + i]!;
      buf.set(ram.subarray(p * PAGE, (p + 1) * PAGE), i * PAGE);
    }
    pending.push(codec.deflate ? codec.deflate(buf, level) : ff!.deflateSync(buf, { level }));
    counts.push(n);
  }
  const groups = await Promise.all(pending);
  let total = 8 + bitmap.length + 4;
  for (const d of groups) total += 8 + d.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, PAGE, true);
  dv.setUint32(4, pages, true);
  out.set(bitmap, 8);
  let at = 8 + bitmap.length;
  dv.setUint32(at, groups.length, true);
  at += 4;
  groups.forEach((d, i) => {
    dv.setUint32(at, counts[i]!, true);
    dv.setUint32(at + 4, d.length, true);
    out.set(d, at + 8);
    at += 8 + d.length;
  });
  return out;
}

/** Pages of a RAM image, and how many are stored, without decoding it. */
export function ramImageStats(image: Uint8Array): RamImageStats {
  const { pages, bitmap } = header(image);
  let stored = 0;
  for (const b of bitmap) for (let x = b; x !== 0; x &= x - 1) stored++;
  return { pages, stored };
}

function header(image: Uint8Array): { pages: number; bitmap: Uint8Array; dv: DataView } {
  const bad = (why: string): never => {
    throw new SnapshotError('corrupt', `snapshot RAM image: ${why}`);
  };
  if (image.length < 8) bad('too short');
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (dv.getUint32(0, true) !== PAGE) bad(`page size ${dv.getUint32(0, true)}`);
  const pages = dv.getUint32(4, true);
  const bl = Math.ceil(pages / 8);
  if (8 + bl + 4 > image.length) bad('bitmap truncated');
  return { pages, bitmap: image.subarray(8, 8 + bl), dv };
}

/**
 * Decodes a RAM image into `ram`, which must be exactly the image's size. Every byte is written,
 * unless `zeroed` says `ram` holds only zeros already (fresh memory: filling it would only make
 * the host commit pages the guest never used).
 */
export async function decodeRam(image: Uint8Array, ram: Uint8Array, opts: { zeroed?: boolean; codec?: DeflateCodec } = {}): Promise<void> {
  const bad = (why: string): never => {
    throw new SnapshotError('corrupt', `snapshot RAM image: ${why}`);
  };
  const codec = opts.codec;
  const { pages, bitmap, dv } = header(image);
  const ff = codec?.inflate ? undefined : await loadFflate();
  if (pages * PAGE !== ram.length) {
    throw new SnapshotError('mismatch', `snapshot RAM is ${(pages * PAGE) / 2 ** 20} MiB, the machine has ${ram.length / 2 ** 20} MiB`);
  }
  const stored: number[] = [];
  for (let p = 0; p < pages; p++) if (bitmap[p >>> 3]! & (1 << (p & 7))) stored.push(p);
  let at = 8 + bitmap.length;
  const groups = dv.getUint32(at, true);
  at += 4;
  // Decode everything before touching RAM, so a bad group leaves the machine as it was. The
  // groups inflate side by side when the codec is asynchronous (Node's zlib uses its thread pool).
  const jobs: { first: number; n: number; g: number; data: Uint8Array | Promise<Uint8Array> }[] = [];
  let done = 0;
  for (let g = 0; g < groups; g++) {
    if (at + 8 > image.length) bad('group header truncated');
    const n = dv.getUint32(at, true);
    const len = dv.getUint32(at + 4, true);
    if (n === 0 || n > GROUP_PAGES || done + n > stored.length) bad(`group ${g} holds ${n} pages`);
    if (at + 8 + len > image.length) bad(`group ${g} truncated`);
    const raw = image.subarray(at + 8, at + 8 + len);
    let data: Uint8Array | Promise<Uint8Array>;
    try {
      data = codec?.inflate ? codec.inflate(raw, n * PAGE) : ff!.inflateSync(raw, { out: new Uint8Array(n * PAGE) });
    } catch (e) {
      bad(`group ${g}: ${(e as Error).message}`);
    }
    jobs.push({ first: done, n, g, data: data! });
    done += n;
    at += 8 + len;
  }
  if (done !== stored.length) bad(`${done} pages in groups, the bitmap names ${stored.length}`);
  if (at !== image.length) bad('bytes after the last group');
  const decoded: { first: number; data: Uint8Array }[] = [];
  for (const j of jobs) {
    let data: Uint8Array;
    try {
      data = await j.data;
    } catch (e) {
      bad(`group ${j.g}: ${(e as Error).message}`);
    }
    if (data!.length !== j.n * PAGE) bad(`group ${j.g} inflates to ${data!.length} bytes, not ${j.n * PAGE}`);
    decoded.push({ first: j.first, data: data! });
  }
  if (opts.zeroed !== true) ram.fill(0);
  for (const { first, data } of decoded) {
    const n = data.length / PAGE;
    for (let i = 0; i < n; i++) {
      const p = stored[first + i]!;
      ram.set(data.subarray(i * PAGE, (i + 1) * PAGE), p * PAGE);
    }
  }
}
