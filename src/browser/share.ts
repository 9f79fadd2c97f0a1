/**
 * The page's side of a share, run in the worker while the guest runs: put files in (making the
 * directories on the way), list the tree, read a file back, remove one. They work on any
 * FsBackend — the MemFs of a share that lasts as long as the page, or the DirectoryHandleFs of
 * one kept in the Origin Private File System or a picked folder — through its ordinary
 * operations, so what the page does follows the same rules as what the guest does. The guest
 * mounts the share with cache=none, so it sees every change at its next lookup.
 */
import { ENOTSUP, FsError } from '../backends/fs/errno.js';
import { type FsBackend, type FsFile, type FsNode, type FsReply, O_RDONLY, O_TRUNC, O_WRONLY, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../backends/fs/backend.js';
import { ShareError } from './errors.js';
import type { ShareEntry } from './protocol.js';

const ROOT = { uid: 0, gid: 0 };
/** Bytes moved per backend call when a file is put or read. */
const PIECE = 1 << 20;

/** Splits a page-side path ("a/b/c.txt", leading "/" allowed) into checked names. */
export function splitPath(path: string): string[] {
  const names = path.split('/').filter((n) => n !== '' && n !== '.');
  if (names.length === 0) throw new ShareError(`share path "${path}" names no file`, path);
  for (const n of names) {
    if (n === '..' || n.includes('\0')) throw new ShareError(`share path "${path}": "${n}" is not allowed`, path);
  }
  return names;
}

async function must<T>(r: FsReply<T>, path: string, what: string): Promise<T> {
  const v = await r;
  if (v instanceof FsError) throw new ShareError(`${path}: ${what} failed (errno ${v.errno})`, path);
  return v;
}

async function child(fs: FsBackend, dir: FsNode, name: string): Promise<FsNode | undefined> {
  const r = await fs.lookup(dir, name);
  return r instanceof FsError ? undefined : r;
}

const isDir = (n: FsNode) => (n.mode & S_IFMT) === S_IFDIR;

/** Writes `data` at `path`, replacing a file that is there and making missing directories. */
export async function putFile(fs: FsBackend, path: string, data: Uint8Array): Promise<void> {
  const names = splitPath(path);
  let dir = await must(fs.root(), path, 'root');
  for (const n of names.slice(0, -1)) {
    const c = await child(fs, dir, n);
    if (c === undefined) dir = await must(fs.mkdir(dir, n, 0o755, ROOT), path, `mkdir ${n}`);
    else if (isDir(c)) dir = c;
    else throw new ShareError(`${path}: ${n} is a file, not a directory`, path);
  }
  const leaf = names[names.length - 1]!;
  const existing = await child(fs, dir, leaf);
  if (existing !== undefined && (existing.mode & S_IFMT) !== S_IFREG) throw new ShareError(`${path}: exists and is not a regular file`, path);
  const file: FsFile =
    existing === undefined
      ? await must(fs.create(dir, leaf, O_WRONLY | O_TRUNC, 0o644, ROOT), path, 'create')
      : await must(fs.open(existing, O_WRONLY | O_TRUNC), path, 'open');
  try {
    for (let at = 0; at < data.length; at += PIECE) {
      const piece = data.subarray(at, Math.min(data.length, at + PIECE));
      const n = await must(fs.write(file, at, piece), path, 'write');
      if (n !== piece.length) throw new ShareError(`${path}: only ${at + n} of ${data.length} bytes fit in the share`, path);
    }
    const synced = await fs.fsync(file, false);
    if (synced instanceof FsError && synced.errno !== ENOTSUP) throw new ShareError(`${path}: fsync failed (errno ${synced.errno})`, path);
  } finally {
    await fs.close(file);
  }
}

/** The node at `names` (of `path`), walking from the root once. */
async function find(fs: FsBackend, path: string, names = splitPath(path)): Promise<FsNode> {
  let node = await must(fs.root(), path, 'root');
  for (const n of names) {
    const c = isDir(node) ? await child(fs, node, n) : undefined;
    if (c === undefined) throw new ShareError(`${path}: no such file in the share`, path);
    node = c;
  }
  return node;
}

/** A copy of the file at `path`. */
export async function readFile(fs: FsBackend, path: string): Promise<Uint8Array> {
  const node = await find(fs, path);
  const st = await must(fs.getattr(node), path, 'stat');
  if ((st.mode & S_IFMT) !== S_IFREG) throw new ShareError(`${path}: not a regular file`, path);
  const file = await must(fs.open(node, O_RDONLY), path, 'open');
  try {
    const out = new Uint8Array(st.size);
    let at = 0;
    while (at < out.length) {
      const n = await must(fs.read(file, at, out.subarray(at, Math.min(out.length, at + PIECE))), path, 'read');
      if (n === 0) break;
      at += n;
    }
    return at === out.length ? out : out.slice(0, at);
  } finally {
    await fs.close(file);
  }
}

/** Removes the file (or empty directory) at `path`. */
export async function removeFile(fs: FsBackend, path: string): Promise<void> {
  const names = splitPath(path);
  const leaf = names[names.length - 1]!;
  const parent = await find(fs, path, names.slice(0, -1));
  const node = isDir(parent) ? await child(fs, parent, leaf) : undefined;
  if (node === undefined) throw new ShareError(`${path}: no such file in the share`, path);
  await must(fs.unlink(parent, leaf, isDir(node)), path, 'remove');
}

/** Every entry of the share, depth first, directories before their contents. At most `limit`. */
export async function listShare(fs: FsBackend, limit = 100_000): Promise<ShareEntry[]> {
  const out: ShareEntry[] = [];
  const walk = async (dir: FsNode, prefix: string): Promise<void> => {
    const f = await must(fs.open(dir, O_RDONLY), prefix || '/', 'opendir');
    const names: string[] = [];
    try {
      for (let cookie = 0; ; ) {
        const got = await must(fs.readdir(f, cookie, 256), prefix || '/', 'readdir');
        if (got.length === 0) break;
        for (const e of got) if (e.name !== '.' && e.name !== '..') names.push(e.name);
        cookie = got[got.length - 1]!.next;
      }
    } finally {
      await fs.close(f);
    }
    names.sort();
    for (const name of names) {
      if (out.length >= limit) return;
      const node = await child(fs, dir, name);
      if (node === undefined) continue;
      const st = await fs.getattr(node);
      if (st instanceof FsError) continue;
      const fmt = st.mode & S_IFMT;
      const type = fmt === S_IFREG ? 'file' : fmt === S_IFDIR ? 'dir' : fmt === S_IFLNK ? 'symlink' : 'other';
      const path = prefix + name;
      out.push({ path, type, size: fmt === S_IFREG ? st.size : 0, mtimeMs: st.mtime.sec * 1000 + Math.floor(st.mtime.nsec / 1e6) });
      if (type === 'dir') await walk(node, path + '/');
    }
  };
  await walk(await must(fs.root(), '/', 'root'), '');
  return out;
}
