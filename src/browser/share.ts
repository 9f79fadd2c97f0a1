/**
 * The page's side of a MemFs share, run in the worker while the guest runs: put files in (making
 * the directories on the way), list the tree, read a file back, remove one. The guest mounts the
 * share with cache=none, so it sees every change at its next lookup.
 */
import { FsError } from '../backends/fs/errno.js';
import { O_TRUNC, O_WRONLY, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../backends/fs/backend.js';
import type { MemFs, MemNode } from '../backends/fs/mem-fs.js';
import { ShareError } from './errors.js';
import type { ShareEntry } from './protocol.js';

const ROOT = { uid: 0, gid: 0 };

/** Splits a page-side path ("a/b/c.txt", leading "/" allowed) into checked names. */
export function splitPath(path: string): string[] {
  const names = path.split('/').filter((n) => n !== '' && n !== '.');
  if (names.length === 0) throw new ShareError(`share path "${path}" names no file`, path);
  for (const n of names) {
    if (n === '..' || n.includes('\0')) throw new ShareError(`share path "${path}": "${n}" is not allowed`, path);
  }
  return names;
}

function sync<T>(r: T | FsError | Promise<T | FsError>, path: string, what: string): T {
  if (r instanceof Promise) throw new Error('unreachable: MemFs answers synchronously');
  if (r instanceof FsError) throw new ShareError(`${path}: ${what} failed (errno ${r.errno})`, path);
  return r;
}

function child(fs: MemFs, dir: MemNode, name: string): MemNode | undefined {
  const r = fs.lookup(dir, name);
  if (r instanceof Promise) throw new Error('unreachable: MemFs answers synchronously');
  return r instanceof FsError ? undefined : r;
}

/** Writes `data` at `path`, replacing a file that is there and making missing directories. */
export function putFile(fs: MemFs, path: string, data: Uint8Array): void {
  const names = splitPath(path);
  let dir = fs.rootNode;
  for (const n of names.slice(0, -1)) {
    const c = child(fs, dir, n);
    if (c === undefined) dir = sync(fs.mkdir(dir, n, 0o755, ROOT), path, `mkdir ${n}`);
    else if (c.isDir) dir = c;
    else throw new ShareError(`${path}: ${n} is a file, not a directory`, path);
  }
  const leaf = names[names.length - 1]!;
  const existing = child(fs, dir, leaf);
  if (existing !== undefined && (existing.mode & S_IFMT) !== S_IFREG) throw new ShareError(`${path}: exists and is not a regular file`, path);
  const file =
    existing === undefined
      ? sync(fs.create(dir, leaf, O_WRONLY | O_TRUNC, 0o644, ROOT), path, 'create')
      : sync(fs.open(existing, O_WRONLY | O_TRUNC), path, 'open');
  try {
    const n = sync(fs.write(file, 0, data), path, 'write');
    if (n !== data.length) throw new ShareError(`${path}: only ${n} of ${data.length} bytes fit in the share`, path);
  } finally {
    fs.close(file);
  }
}

function find(fs: MemFs, path: string): MemNode {
  let node = fs.rootNode;
  for (const n of splitPath(path)) {
    const c = node.isDir ? child(fs, node, n) : undefined;
    if (c === undefined) throw new ShareError(`${path}: no such file in the share`, path);
    node = c;
  }
  return node;
}

/** A copy of the file at `path`. */
export function readFile(fs: MemFs, path: string): Uint8Array {
  const node = find(fs, path);
  if ((node.mode & S_IFMT) !== S_IFREG) throw new ShareError(`${path}: not a regular file`, path);
  return node.data.slice(0, node.size);
}

/** Removes the file (or empty directory) at `path`. */
export function removeFile(fs: MemFs, path: string): void {
  const names = splitPath(path);
  const parent = names.length === 1 ? fs.rootNode : find(fs, names.slice(0, -1).join('/'));
  const node = find(fs, path);
  sync(fs.unlink(parent, names[names.length - 1]!, node.isDir), path, 'remove');
}

/** Every entry of the share, depth first, directories before their contents. At most `limit`. */
export function listShare(fs: MemFs, limit = 100_000): ShareEntry[] {
  const out: ShareEntry[] = [];
  const walk = (dir: MemNode, prefix: string): void => {
    for (const [name, node] of fs.entries(dir)) {
      if (out.length >= limit) return;
      const fmt = node.mode & S_IFMT;
      const type = fmt === S_IFREG ? 'file' : fmt === S_IFDIR ? 'dir' : fmt === S_IFLNK ? 'symlink' : 'other';
      const path = prefix + name;
      out.push({ path, type, size: fmt === S_IFREG ? node.size : 0, mtimeMs: node.mtime.sec * 1000 + Math.floor(node.mtime.nsec / 1e6) });
      if (type === 'dir') walk(node, path + '/');
    }
  };
  walk(fs.rootNode, '');
  return out;
}
