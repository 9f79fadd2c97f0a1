/** The one base64 (src/backends/block/bytes.ts) the metadata records, the lab and the page's kernel command line use. */
import { describe, expect, it } from 'vitest';
import { fromBase64, toBase64 } from '../../src/backends/block/bytes.js';

describe('toBase64 / fromBase64', () => {
  it("agree with Node's Buffer for every length and byte, and for a string's UTF-8", () => {
    for (let n = 0; n < 70; n++) {
      const b = Uint8Array.from({ length: n }, (_, i) => (i * 97 + n * 31) & 255);
      const s = toBase64(b);
      expect(s).toBe(Buffer.from(b).toString('base64'));
      expect(fromBase64(s)).toEqual(b);
    }
    expect(toBase64('/bin/sh /mnt/lab/run.sh; echo ü')).toBe(Buffer.from('/bin/sh /mnt/lab/run.sh; echo ü').toString('base64'));
  });

  it('refuses what is not padded base64', () => {
    for (const bad of ['abc', 'ab=c', 'a*cd', '====x']) expect(fromBase64(bad), bad).toBeUndefined();
  });
});
