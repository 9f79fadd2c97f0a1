/** Byte helpers shared by the block layer and the snapshot format. */

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE 802.3, as zlib and PNG), continuing from `crc` (0 to start). */
export function crc32(b: Uint8Array, crc = 0): number {
  let t = crcTable;
  if (t === undefined) {
    t = crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      t[n] = c >>> 0;
    }
  }
  let c = ~crc;
  for (let i = 0; i < b.length; i++) c = t[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Whether the first `len` bytes of `b` are all zero (word-wise when aligned). */
export function isZero(b: Uint8Array, len = b.length): boolean {
  if (b.byteOffset % 4 === 0 && len % 4 === 0) {
    const w = new Uint32Array(b.buffer, b.byteOffset, len / 4);
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < len; i++) if (b[i] !== 0) return false;
  return true;
}
