/**
 * What every 9P message handler (ops/) works with: the backend, the session, and the reply
 * plumbing over one encoder. Replies are built with `begin` … `send`; a reply that doesn't fit
 * becomes Rlerror(EMSGSIZE), and `error` writes Rlerror when even that fits.
 */
import type { FsBackend, FsNode } from '../../backends/fs/backend.js';
import { S_IFDIR, S_IFLNK, S_IFMT } from '../../backends/fs/backend.js';
import { EMSGSIZE, FsError } from '../../backends/fs/errno.js';
import type { P9Output } from './io.js';
import type { P9Session } from './session.js';
import { Encoder, IO_HEADER_SIZE, P9, QT_DIR, QT_FILE, QT_SYMLINK } from './wire.js';

/** Smallest msize a client may ask for. */
export const MIN_MSIZE = 4096;
/** Largest msize storvm offers by default: what Linux asks for with msize=512000. */
export const DEFAULT_MAX_MSIZE = 512000;

export class P9Context {
  constructor(
    readonly fs: FsBackend,
    readonly session: P9Session,
    /** Largest msize to agree to. */
    readonly maxMsize: number,
    /** The reply encoder, over a buffer of maxMsize bytes. */
    readonly enc: Encoder,
    /** The request header buffer: 7 bytes, or Twrite's 23. */
    readonly hdr: Uint8Array,
  ) {}

  begin(type: number, tag: number, out: P9Output): Encoder {
    this.enc.begin(type, tag, Math.min(this.session.msize || this.maxMsize, out.remaining));
    return this.enc;
  }

  /** Sends the reply built since `begin`; one that doesn't fit becomes Rlerror(EMSGSIZE). */
  send(tag: number, out: P9Output): number {
    const n = this.enc.finish();
    if (n < 0) return this.error(out, tag, EMSGSIZE);
    return out.write(this.enc.buf.subarray(0, n)) === n ? n : 0;
  }

  /** Rlerror for fids the message named that are not in the table (ESTALE for ones a restore lost). */
  noFid(out: P9Output, tag: number, ...nos: number[]): number {
    return this.error(out, tag, this.session.missingFid(...nos));
  }

  error(out: P9Output, tag: number, errno: number): number {
    if (out.remaining < IO_HEADER_SIZE) return 0;
    const e = this.enc;
    e.begin(P9.Rlerror, tag, IO_HEADER_SIZE);
    e.u32(errno);
    return out.write(e.buf.subarray(0, e.finish())) === IO_HEADER_SIZE ? IO_HEADER_SIZE : 0;
  }

  /** An empty reply of `type`, or Rlerror when r is an FsError. */
  simple(r: unknown, type: number, tag: number, out: P9Output): number {
    if (r instanceof FsError) return this.error(out, tag, r.errno);
    this.begin(type, tag, out);
    return this.send(tag, out);
  }

  /** Rmkdir / Rmknod / Rsymlink: a qid. */
  qidReply(r: FsNode | FsError, type: number, tag: number, out: P9Output): number {
    if (r instanceof FsError) return this.error(out, tag, r.errno);
    const e = this.begin(type, tag, out);
    this.putQid(e, r);
    return this.send(tag, out);
  }

  putQid(e: Encoder, node: FsNode): void {
    e.qidOf(qidType(node.mode), node.version, node.ino);
  }
}

export function qidType(mode: number): number {
  const t = mode & S_IFMT;
  return t === S_IFDIR ? QT_DIR : t === S_IFLNK ? QT_SYMLINK : QT_FILE;
}

/** d_type of a mode (DT_* = S_IFMT >> 12). */
export function direntType(mode: number): number {
  return (mode & S_IFMT) >>> 12;
}
