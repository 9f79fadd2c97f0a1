/**
 * The Node side of the mapped metadata store (src/backends/fs/mapped-meta.ts): records are files
 * in one directory of the share (`.storvm` at its root, hidden from the guest), named by host inode
 * number. A write goes to a temporary file that is then renamed over the record, so a storvm
 * killed at any point leaves each record whole, old or new; stale temporaries are removed when the
 * share is opened again.
 *
 * New nodes are born here too (HostFs.placeNew): made under a `new.` name in the store, given
 * their record, and only then linked or renamed to the guest's name. A node a killed storvm left
 * here was never seen by the guest: the sweep removes it and its record, unless it had already
 * been linked to its name (two links), when only the store's name goes.
 *
 * The directory is reached through a path the owner hands over on every call (a /proc/self/fd
 * path of a directory it opened with O_NOFOLLOW, or a checked absolute path), and every file in
 * it is opened with O_NOFOLLOW: a store replaced by a symlink, a record replaced by a symlink or a
 * FIFO, degrade to "no record", never to a host file outside the share.
 */
import * as fs from 'node:fs';
import { type FsResult } from '../backends/fs/backend.js';
import * as E from '../backends/fs/errno.js';
import { fsError } from '../backends/fs/errno.js';
import { META_MAX_RECORD, type MetaFiles } from '../backends/fs/mapped-meta.js';

const C = fs.constants;
const TMP = 'tmp.';
/** Names of nodes being made (see HostFs.placeNew). */
export const NEW = 'new.';

export class HostMetaFiles implements MetaFiles {
  private serial = 0;

  /** `dir()` answers the store directory's path, or undefined when there is no usable store. */
  constructor(
    private readonly dir: (create: boolean) => string | undefined,
    private readonly errno: (err: unknown) => number,
  ) {}

  read(key: string): Uint8Array | undefined {
    const d = this.dir(false);
    if (d === undefined) return undefined;
    let fd: number;
    try {
      fd = fs.openSync(`${d}/${key}`, C.O_RDONLY | C.O_NOFOLLOW | (C.O_NONBLOCK ?? 0));
    } catch {
      return undefined;
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile() || st.size > META_MAX_RECORD) return undefined;
      const buf = new Uint8Array(st.size);
      let n = 0;
      while (n < buf.length) {
        const got = fs.readSync(fd, buf, n, buf.length - n, n);
        if (got === 0) break;
        n += got;
      }
      return buf.subarray(0, n);
    } catch {
      return undefined;
    } finally {
      fs.closeSync(fd);
    }
  }

  write(key: string, data: Uint8Array): FsResult<void> {
    const d = this.dir(true);
    if (d === undefined) return fsError(E.EIO);
    const tmp = `${d}/${TMP}${process.pid}.${this.serial++}`;
    try {
      const fd = fs.openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
      try {
        let n = 0;
        while (n < data.length) n += fs.writeSync(fd, data, n, data.length - n, n);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, `${d}/${key}`);
      return undefined;
    } catch (err) {
      try {
        fs.unlinkSync(tmp);
      } catch {
        // never made, or already gone
      }
      return fsError(this.errno(err));
    }
  }

  remove(key: string): void {
    const d = this.dir(false);
    if (d === undefined) return;
    try {
      fs.unlinkSync(`${d}/${key}`);
    } catch {
      // no record: nothing to forget
    }
  }

  /** Removes temporaries and half-made nodes a killed storvm left behind. */
  sweep(): void {
    const d = this.dir(false);
    if (d === undefined) return;
    try {
      for (const name of fs.readdirSync(d)) {
        try {
          if (name.startsWith(TMP)) fs.unlinkSync(`${d}/${name}`);
          else if (name.startsWith(NEW)) this.unborn(`${d}/${name}`);
        } catch {
          // not ours to remove (a directory where a temporary should be, say): left alone
        }
      }
    } catch {
      // an unreadable store is one without records
    }
  }

  /** A node a killed storvm was making: gone, with its record, unless it already has its name. */
  private unborn(p: string): void {
    const st = fs.lstatSync(p, { bigint: true });
    if (st.isDirectory()) fs.rmdirSync(p); // never renamed to its name, so the guest put nothing in it
    else fs.unlinkSync(p);
    if (st.isDirectory() || st.nlink <= 1n) this.remove(st.ino.toString());
  }
}
