/**
 * Session messages: Tversion (a new session), Tattach (the root fid), Tflush (answers after the
 * request it flushes).
 */
import { EINVAL, EMSGSIZE, FsError } from '../../../backends/fs/errno.js';
import { MIN_MSIZE, type P9Context } from '../context.js';
import { type Reply, andThen } from '../../serve.js';
import { type P9Output } from '../io.js';
import { Fid } from '../session.js';
import { type Decoder, NOFID, P9, VERSION_9P2000L } from '../wire.js';

export function tversion(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const msize = d.u32();
  const version = d.str();
  if (d.bad) return c.error(out, tag, EINVAL);
  if (msize < MIN_MSIZE) return c.error(out, tag, EMSGSIZE);
  // A new session: every fid, open file and lock of the old one goes (9P: version(5)).
  c.session.reset();
  const ok = version === VERSION_9P2000L || version.startsWith(VERSION_9P2000L + '.');
  c.session.msize = Math.min(msize, c.maxMsize);
  const e = c.begin(P9.Rversion, tag, out);
  e.u32(c.session.msize);
  e.str(ok ? VERSION_9P2000L : 'unknown');
  if (!ok) c.session.msize = 0;
  return c.send(tag, out);
}

export function tattach(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  d.u32(); // afid: no authentication
  d.str(); // uname
  d.str(); // aname: one export per device
  const uid = d.u32();
  if (d.bad) return c.error(out, tag, EINVAL);
  const bad = c.session.canTake(fidNo);
  if (bad !== 0) return c.error(out, tag, bad);
  return andThen(c.fs.root(), (root) => {
    if (root instanceof FsError) return c.error(out, tag, root.errno);
    if (c.session.fids.has(fidNo)) return c.error(out, tag, EINVAL);
    c.session.rootIno = root.ino;
    c.session.addFid(fidNo, new Fid(root, null, '', uid === NOFID ? 0 : uid));
    const e = c.begin(P9.Rattach, tag, out);
    c.putQid(e, root);
    return c.send(tag, out);
  });
}

export function tflush(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const oldtag = d.u16();
  if (d.bad) return c.error(out, tag, EINVAL);
  const old = c.session.inFlight.get(oldtag);
  if (old === undefined || oldtag === tag) return c.simple(undefined, P9.Rflush, tag, out);
  // The flushed request answers first; Rflush follows (9P: flush(5)).
  const after = (): number => c.simple(undefined, P9.Rflush, tag, out);
  return old.then(after, after);
}
