/** The Node.js event loop as a MachineHost. */
import { performance } from 'node:perf_hooks';
import { deflateRaw, inflateRaw } from 'node:zlib';
import type { MachineHost } from '../machine/machine.js';
import type { DeflateCodec } from '../machine/ram-image.js';

export const nodeHost: MachineHost = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  yield: () => new Promise((resolve) => setImmediate(resolve)),
};

/**
 * Node's zlib as the snapshot codec: the same raw DEFLATE as fflate's, several times faster, and
 * asynchronous on libuv's thread pool, so the RAM groups of a snapshot (de)compress side by side.
 */
export const nodeCodec: DeflateCodec = {
  deflate: (data, level) =>
    new Promise((resolve, reject) => deflateRaw(data, { level }, (e, out) => (e ? reject(e) : resolve(new Uint8Array(out.buffer, out.byteOffset, out.length))))),
  inflate: (data, size) =>
    new Promise((resolve, reject) =>
      // One output chunk of the known size: no 16 KiB pieces gathered by a callback each and
      // copied together at the end (13 MB for the default guest's RAM).
      inflateRaw(data, { maxOutputLength: Math.max(size, 1), chunkSize: Math.max(size, 64) }, (e, out) => (e ? reject(e) : resolve(new Uint8Array(out.buffer, out.byteOffset, out.length)))),
    ),
};
