/**
 * What a snapshot knows a disk by: its size and a hash of its contents. A snapshot taken with
 * one disk must not be resumed on another (the guest's page cache and filesystem state would no
 * longer match the blocks under them), so restore compares the two.
 *
 * The hash is a 128-bit non-cryptographic one (four 32-bit lanes of multiply-rotate mixing, the
 * way xxHash and MurmurHash3 mix), fast in any JavaScript engine. It detects a different or
 * changed image; it is not meant to resist someone who builds a colliding one on purpose.
 */
import { type BlockBackend, isPromise } from './backend.js';

const PIECE = 1 << 20;
const P1 = 0x9e3779b1 | 0, P2 = 0x85ebca77 | 0, P3 = 0xc2b2ae3d | 0, P4 = 0x27d4eb2f | 0;

/** Streaming state of the disk hash. */
export class DiskHasher {
  private a = P1;
  private b = P2;
  private c = P3;
  private d = P4;
  private total = 0;
  private tail = new Uint8Array(16);
  private tailLen = 0;

  update(bytes: Uint8Array): void {
    let i = 0;
    this.total += bytes.length;
    if (this.tailLen > 0) {
      const take = Math.min(16 - this.tailLen, bytes.length);
      this.tail.set(bytes.subarray(0, take), this.tailLen);
      this.tailLen += take;
      i = take;
      if (this.tailLen < 16) return;
      this.block(new DataView(this.tail.buffer), 0);
      this.tailLen = 0;
    }
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const end = bytes.length - ((bytes.length - i) % 16);
    for (; i < end; i += 16) this.block(dv, i);
    this.tail.set(bytes.subarray(end), 0);
    this.tailLen = bytes.length - end;
  }

  private block(dv: DataView, at: number): void {
    this.a = round(this.a, dv.getInt32(at, true));
    this.b = round(this.b, dv.getInt32(at + 4, true));
    this.c = round(this.c, dv.getInt32(at + 8, true));
    this.d = round(this.d, dv.getInt32(at + 12, true));
  }

  /** The hash as 32 hex digits, with the length mixed in. */
  digest(): string {
    const t = this.tail.subarray(0, this.tailLen);
    let a = this.a, b = this.b, c = this.c, d = this.d;
    for (let i = 0; i < t.length; i++) a = round(a ^ (t[i]! << ((i & 3) * 8)), i + 1);
    const lo = this.total % 2 ** 32 | 0, hi = Math.floor(this.total / 2 ** 32) | 0;
    a = fmix(a ^ lo); b = fmix(b ^ hi); c = fmix(c ^ a); d = fmix(d ^ b);
    a = fmix(a + d); b = fmix(b + c); c = fmix(c ^ a); d = fmix(d ^ b);
    return [a, b, c, d].map((x) => (x >>> 0).toString(16).padStart(8, '0')).join('');
  }
}

function round(h: number, k: number): number {
  h = (h + Math.imul(k, P2)) | 0;
  h = (h << 13) | (h >>> 19);
  return Math.imul(h, P1);
}

function fmix(h: number): number {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Hashes a disk's whole contents, read through the backend in 1 MiB pieces. */
export async function hashDisk(disk: BlockBackend): Promise<string> {
  const h = new DiskHasher();
  const buf = new Uint8Array(Math.min(PIECE, Math.max(disk.size, 1)));
  for (let at = 0; at < disk.size; at += PIECE) {
    const piece = buf.subarray(0, Math.min(PIECE, disk.size - at));
    const r = disk.read(at, piece);
    if (isPromise(r)) await r;
    h.update(piece);
  }
  return h.digest();
}

/** A disk's content hash: the backend's own (`identity()`) when it has one, else hashDisk. */
export function diskIdentity(disk: BlockBackend): Promise<string> {
  return disk.identity?.() ?? hashDisk(disk);
}
