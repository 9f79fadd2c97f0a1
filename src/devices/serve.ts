/**
 * What the 9P and FUSE servers share above the FsBackend: a reply's type, the loop that moves
 * READ and WRITE data between guest buffers and the backend, and the extended-attribute limits.
 */
import type { Async, FsResult } from '../backends/fs/backend.js';
import { FsError } from '../backends/fs/errno.js';

export { andThen } from '../backends/fs/backend.js';

/** A reply's length, now or once the backend answers; 0 when nothing was written. */
export type Reply = number | Promise<number>;

/** Largest extended attribute value (Linux XATTR_SIZE_MAX). */
export const XATTR_SIZE_MAX = 65536;
/** Largest list of extended attribute names (Linux XATTR_LIST_MAX). */
export const XATTR_LIST_MAX = 65536;

const enc8 = new TextEncoder();

/** listxattr(2)'s format, which 9P's Txattrwalk and FUSE's LISTXATTR both send: each name and a NUL. */
export function joinNames(names: string[]): Uint8Array {
  return enc8.encode(names.map((n) => n + '\0').join(''));
}

/**
 * Moves data through `views` one after another with `op` (a backend read or write at byte `at`
 * of the transfer), synchronously while the backend answers synchronously. Stops at the first
 * short transfer or error; `finish(errno, done)` then builds the reply.
 *
 * `views` may be guest memory. A backend that calls itself synchronous may still answer one
 * call later; when it does, `live` (the request's session still stands) is asked before any
 * further view is touched or the reply built: once the device was reset, those buffers may no
 * longer be the device's to touch (docs/hostile-guest.md line 49; over MMIO the reset's drain
 * keeps them until the request ends, so there the check is defence in depth). The transfer ends
 * there and answers 0, no reply; `dead(done)` is then told how many bytes did move (the last
 * call included), for work that belongs to the transfer and not to the reply (FUSE WRITE's
 * set-user-ID clear: the data was written).
 */
export function transferViews(
  views: Uint8Array[],
  op: (v: Uint8Array, at: number) => Async<FsResult<number>>,
  finish: (errno: number, done: number) => Reply,
  live?: () => boolean,
  dead?: (done: number) => Reply,
): Reply {
  let done = 0;
  const step = (i: number): Reply => {
    for (; i < views.length; i++) {
      const v = views[i]!;
      const r = op(v, done);
      if (r instanceof Promise) {
        return r.then((n) => {
          if (live !== undefined && !live()) {
            if (!(n instanceof FsError)) done += n;
            return dead === undefined ? 0 : dead(done);
          }
          if (n instanceof FsError) return finish(n.errno, done);
          done += n;
          return n < v.length ? finish(0, done) : step(i + 1);
        });
      }
      if (r instanceof FsError) return finish(r.errno, done);
      done += r;
      if (r < v.length) break;
    }
    return finish(0, done);
  };
  return step(0);
}
