/**
 * Fills a MemFs from a host folder (Node only): files, directories, symlinks (stored, never
 * followed), hard links (kept as links), and device nodes, FIFOs and sockets as metadata only —
 * none of them is ever opened. Modes, owners and times come from the host.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type FsTime, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, makeDev } from '../backends/fs/backend.js';
import { MemFs, type MemFsOptions, type MemNode } from '../backends/fs/mem-fs.js';

function time(ns: bigint): FsTime {
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}

/** Copies the tree under host directory `dir` into `target` under `at` (default its root). */
export function fillMemFsFromFolder(target: MemFs, dir: string, at: MemNode = target.rootNode): MemFs {
  const top = fs.lstatSync(dir);
  if (!top.isDirectory()) throw new Error(`fillMemFsFromFolder: ${dir} is not a directory`);
  const byIno = new Map<bigint, MemNode>();
  const walk = (hostDir: string, into: MemNode): void => {
    for (const name of fs.readdirSync(hostDir)) {
      const p = path.join(hostDir, name);
      const st = fs.lstatSync(p, { bigint: true });
      const mode = Number(st.mode);
      const type = mode & S_IFMT;
      const known = type !== S_IFDIR && st.nlink > 1n ? byIno.get(st.ino) : undefined;
      if (known !== undefined) {
        target.attach(into, name, known);
        continue;
      }
      const node = target.newNode(mode, { uid: Number(st.uid), gid: Number(st.gid) });
      if (node === undefined) throw new Error('fillMemFsFromFolder: too many inodes for the MemFs');
      if (type === S_IFREG) target.setContent(node, new Uint8Array(fs.readFileSync(p)));
      else if (type === S_IFLNK) target.setContent(node, fs.readlinkSync(p));
      else if (type !== S_IFDIR) {
        const dev = st.rdev;
        node.rdev = makeDev(Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)), Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn)));
      }
      target.attach(into, name, node);
      if (type === S_IFDIR) walk(p, node);
      node.atime = time(st.atimeNs);
      node.mtime = time(st.mtimeNs);
      node.ctime = time(st.ctimeNs);
      if (type !== S_IFDIR && st.nlink > 1n) byIno.set(st.ino, node);
    }
  };
  walk(dir, at);
  return target;
}

/** A new MemFs holding a copy of host directory `dir`; `readOnly` applies after the copy. */
export function memFsFromFolder(dir: string, opts: MemFsOptions = {}): MemFs {
  const { readOnly, ...rest } = opts;
  const m = fillMemFsFromFolder(new MemFs(rest), dir);
  return readOnly ? m.freeze() : m;
}
