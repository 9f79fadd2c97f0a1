/**
 * Session messages: INIT (what the server agrees to, and the root as node id 1). DESTROY is a
 * session reset, in the dispatcher.
 */
import { EINVAL, EPROTO, FsError } from '../../../backends/fs/errno.js';
import { type FuseContext, type Req } from '../context.js';
import { type Reply, andThen } from '../../serve.js';
import { type FuseReader, FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION, INIT } from '../fuse.js';

export function init(c: FuseContext, q: Req, r: FuseReader): Reply {
  const major = r.u32();
  const minor = r.u32();
  const maxReadahead = r.u32();
  const flags = r.u32();
  if (r.bad) return c.error(q, EINVAL);
  if (major < FUSE_KERNEL_VERSION) return c.error(q, EPROTO);
  // A second INIT starts a new session, as after DESTROY.
  if (c.session.initialized) c.session.reset();
  const w = c.begin(q);
  if (major > FUSE_KERNEL_VERSION) {
    // Answer our major only: the kernel retries with it (fuse_lowlevel.c does the same).
    w.u32(FUSE_KERNEL_VERSION);
    w.u32(FUSE_KERNEL_MINOR_VERSION);
    w.zeros(56);
    return c.send(q);
  }
  let want = INIT.ASYNC_READ | INIT.ATOMIC_O_TRUNC | INIT.BIG_WRITES | INIT.PARALLEL_DIROPS | INIT.ASYNC_DIO | INIT.MAX_PAGES;
  // READDIRPLUS answers lookups with each listing; with zero timeouts (cache=none) the kernel
  // would throw them away and ask again, so only the caching modes offer it (as virtiofsd does).
  if (c.cache !== 'none') want |= INIT.DO_READDIRPLUS | INIT.READDIRPLUS_AUTO;
  if (c.cache === 'auto') want |= INIT.AUTO_INVAL_DATA;
  if (c.cache === 'always') want |= INIT.WRITEBACK_CACHE | INIT.CACHE_SYMLINKS;
  if (c.posixLocks) want |= INIT.POSIX_LOCKS;
  // The server clears set-user-ID / set-group-ID when the kernel says so on WRITE, truncating
  // SETATTR, chown and O_TRUNC opens: with DIRECT_IO (cache=none) the kernel can't do it itself,
  // and it saves the security.capability GETXATTR it would send before each cached write.
  want |= INIT.HANDLE_KILLPRIV_V2;
  c.session.flags = (want & flags) >>> 0;
  c.session.minor = Math.min(minor, FUSE_KERNEL_MINOR_VERSION);
  w.u32(FUSE_KERNEL_VERSION);
  w.u32(c.session.minor);
  w.u32(Math.min(maxReadahead, c.maxWrite));
  w.u32(c.session.flags);
  w.u16(64); // max_background
  w.u16(48); // congestion_threshold
  w.u32(c.maxWrite);
  w.u32(1); // time_gran: nanoseconds
  w.u16(c.maxWrite / 4096); // max_pages
  w.u16(0); // map_alignment: no DAX window
  w.zeros(32); // flags2, max_stack_depth, unused
  const n = c.send(q);
  if (n > 0) {
    c.session.initialized = true;
    // The root is node id 1 for the whole session and is never forgotten.
    return andThen(c.fs.root(), (root) => {
      if (root instanceof FsError) {
        c.session.initialized = false;
        return n;
      }
      c.session.addRoot(root);
      return n;
    });
  }
  return n;
}
