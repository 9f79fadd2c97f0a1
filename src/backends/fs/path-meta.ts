/**
 * Path-keyed records for the mapped metadata model (mapped-meta.ts), for hosts whose files have no
 * inode numbers, birth times, owners or modes of their own: a browser's FileSystemDirectoryHandle
 * (src/browser/dir-fs.ts), say. The records, their encoding and the rules for laying them over
 * the host's facts are mapped-meta.ts's; only where a record is kept differs, and one rule.
 *
 * Where: a record belongs to a directory entry, not an inode. The records of a directory's
 * entries are small files in a hidden subdirectory of it, `.storvm`, each named as its entry
 * (QEMU's mapped-file layout). A directory that is renamed or moved takes its entries' records
 * with it; renaming one entry moves one record. The root's own record lives under a name no entry
 * can have, `.storvm/.storvm/` at the root, beside the backend's other private files. The name
 * `.storvm` is reserved in every directory: the guest can neither see nor make it.
 *
 * The rule that differs: such a host has no symlinks, so a symlink is a regular file holding its
 * target, and its record may show that file as a symlink (`PATH_MAPPABLE`). This reaches nothing
 * outside the share: the backend never resolves a path through a symlink (the guest's kernel
 * does, inside its own namespace), and the backend reaches host files only by walking directory
 * handles one checked name at a time. A record still can't turn a file into a directory or a
 * directory into anything else.
 *
 * Without birth times a record left behind by a crash between moving an entry and moving its
 * record names the old path, and a file made there later by another program shows its
 * attributes: wrong attributes only, like any corrupt record (hostile-guest line 55). Files the
 * backend makes itself always get a fresh record (or none).
 */
import type { Async, FsResult } from './backend.js';
import { S_IFLNK, andThen } from './backend.js';
import { type HostFacts, MAPPABLE, type MetaRecord, decodeRecord, encodeRecord, mappedStat, recordFromHost } from './mapped-meta.js';
import type { FsStat } from './backend.js';

/** The hidden directory of records in every directory of the share. */
export const PATH_META_DIR = '.storvm';

/** What a host regular file may stand for in a path-keyed store: mapped-meta's types and symlinks. */
export const PATH_MAPPABLE: ReadonlySet<number> = new Set([...MAPPABLE, S_IFLNK]);

/**
 * Where records live. `D` is the backend's handle on a directory. `write` must be atomic (old or
 * new bytes whatever stops the page in between); `read` answers undefined for a missing,
 * unreadable or oversized record.
 */
export interface PathMetaFiles<D> {
  read(dir: D, name: string): Async<Uint8Array | undefined>;
  write(dir: D, name: string, data: Uint8Array): Async<FsResult<void>>;
  remove(dir: D, name: string): Async<void>;
}

/** The guest's stat of a node: the host's facts with its record laid over them. */
export function pathStat(host: HostFacts, rec: MetaRecord | undefined): FsStat {
  return mappedStat(host, rec, PATH_MAPPABLE);
}

/** A record that shows what the node shows now (the starting point of a change). */
export function pathRecordFromHost(host: HostFacts, prev: MetaRecord | undefined): MetaRecord {
  return recordFromHost(host, prev, PATH_MAPPABLE);
}

/** Whether a record shows nothing the host's own facts don't (so none need be kept). */
export function recordRedundant(host: HostFacts, rec: MetaRecord): boolean {
  const shown = pathStat(host, undefined);
  const want = pathStat(host, rec);
  return (
    shown.mode === want.mode &&
    shown.uid === want.uid &&
    shown.gid === want.gid &&
    shown.rdev === want.rdev &&
    rec.atime === undefined &&
    rec.mtime === undefined &&
    rec.xattrs.size === 0
  );
}

/** Records by directory and entry name over a PathMetaFiles. Holds no cache: backends keep a node's record. */
export class PathMetaStore<D> {
  constructor(readonly files: PathMetaFiles<D>) {}

  /** The record of `name` in `dir`; undefined when there is none or it doesn't parse. */
  get(dir: D, name: string): Async<MetaRecord | undefined> {
    return andThen(this.files.read(dir, name), (bytes) => (bytes === undefined ? undefined : decodeRecord(bytes)));
  }

  /** Stores a record, or removes the stored one when it shows only what the host shows. */
  put(dir: D, name: string, host: HostFacts, rec: MetaRecord): Async<FsResult<void>> {
    if (recordRedundant(host, rec)) return andThen(this.files.remove(dir, name), () => undefined);
    return this.files.write(dir, name, encodeRecord(rec));
  }

  drop(dir: D, name: string): Async<void> {
    return this.files.remove(dir, name);
  }

  /**
   * Moves an entry's record after the entry itself moved: written under the new name first, then
   * removed from the old one, so a stop in between leaves the moved entry with its record. With
   * no record (or one that shows only what the host shows), one left at the new name goes.
   */
  move(from: D, fromName: string, to: D, toName: string, host: HostFacts, rec: MetaRecord | undefined): Async<FsResult<void>> {
    const written = rec === undefined || recordRedundant(host, rec) ? andThen(this.files.remove(to, toName), () => undefined) : this.files.write(to, toName, encodeRecord(rec));
    return andThen(written, (r) => (r !== undefined ? r : andThen(this.files.remove(from, fromName), () => undefined)));
  }
}
