/** Twalk: names to a new fid, one backend lookup at a time, synchronously while the backend is. */
import { type FsNode, S_IFDIR, S_IFMT } from '../../../backends/fs/backend.js';
import { EINVAL, ENAMETOOLONG, ENOENT, ENOTDIR, FsError } from '../../../backends/fs/errno.js';
import { type P9Context } from '../context.js';
import { type Reply } from '../../serve.js';
import { type P9Output } from '../io.js';
import { illegalName, nameTooLong } from '../names.js';
import { Fid } from '../session.js';
import { type Decoder, MAXWELEM, P9 } from '../wire.js';

/** A Twalk in progress. */
interface WalkState {
  fid: Fid;
  fidNo: number;
  newNo: number;
  names: string[];
  qids: FsNode[];
  cur: FsNode;
  parent: FsNode | null;
  curName: string;
  failure: number;
  tag: number;
  out: P9Output;
}

export function twalk(c: P9Context, d: Decoder, tag: number, out: P9Output): Reply {
  const fidNo = d.u32();
  const newNo = d.u32();
  const n = d.u16();
  // Refuse an oversized walk before decoding, let alone allocating, anything for it.
  if (d.bad || n > MAXWELEM) return c.error(out, tag, EINVAL);
  const names: string[] = [];
  for (let i = 0; i < n; i++) names.push(d.str());
  if (d.bad) return c.error(out, tag, EINVAL);
  const fid = c.session.fid(fidNo);
  if (fid === undefined) return c.noFid(out, tag, fidNo);
  if (fid.xattrValue !== undefined || fid.xattrWrite !== undefined) return c.error(out, tag, EINVAL);
  if (newNo !== fidNo) {
    const bad = c.session.canTake(newNo);
    if (bad !== 0) return c.error(out, tag, bad);
  }
  for (const name of names) {
    if (illegalName(name)) return c.error(out, tag, ENOENT);
    if (nameTooLong(name)) return c.error(out, tag, ENAMETOOLONG);
  }
  const w: WalkState = {
    fid,
    fidNo,
    newNo,
    names,
    qids: [],
    cur: fid.node,
    parent: fid.parent,
    curName: fid.name,
    failure: 0,
    tag,
    out,
  };
  return walkFrom(c, w, 0);
}

/** Looks up names[i..] (no closures on the synchronous path: walks are the hottest message). */
function walkFrom(c: P9Context, w: WalkState, i: number): Reply {
  const names = w.names;
  for (; i < names.length; i++) {
    const name = names[i]!;
    if ((w.cur.mode & S_IFMT) !== S_IFDIR) {
      w.failure = ENOTDIR;
      break;
    }
    // '..' at the export root stays at the root.
    if (name === '..' && w.cur.ino === c.session.rootIno) {
      walkAccept(c, w, '.', w.cur);
      continue;
    }
    const r = c.fs.lookup(w.cur, name);
    if (r instanceof Promise) {
      const next = i + 1;
      return r.then((v) => (walkAccept(c, w, name, v) ? walkFrom(c, w, next) : walkFinish(c, w)));
    }
    if (!walkAccept(c, w, name, r)) break;
  }
  return walkFinish(c, w);
}

/** Takes one lookup result; false stops the walk. */
function walkAccept(c: P9Context, w: WalkState, name: string, r: FsNode | FsError): boolean {
  if (r instanceof FsError) {
    w.failure = r.errno;
    return false;
  }
  if (name === '..') {
    // The parent of the parent isn't known here; '..' results can't be renamed or removed.
    w.parent = null;
    w.curName = '';
  } else if (name !== '.') {
    w.parent = w.cur;
    w.curName = name;
  }
  w.cur = r;
  w.qids.push(r);
  return true;
}

function walkFinish(c: P9Context, w: WalkState): number {
  const { out, tag, qids, fid } = w;
  if (qids.length < w.names.length && qids.length === 0) return c.error(out, tag, w.failure || ENOENT);
  if (qids.length === w.names.length) {
    if (w.newNo === w.fidNo) {
      if (fid.file !== undefined) return c.error(out, tag, EINVAL);
      c.fs.retain(w.cur);
      c.fs.release(fid.node);
      fid.node = w.cur;
      fid.parent = w.parent;
      fid.name = w.curName;
    } else {
      if (c.session.canTake(w.newNo) !== 0) return c.error(out, tag, EINVAL);
      c.session.addFid(w.newNo, new Fid(w.cur, w.parent, w.curName, fid.uid));
    }
  }
  const e = c.begin(P9.Rwalk, tag, out);
  e.u16(qids.length);
  for (const q of qids) c.putQid(e, q);
  return c.send(tag, out);
}
