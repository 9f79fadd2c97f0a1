/**
 * A pass-through block backend that records which 4 KiB blocks the guest read, for the boot
 * cache: a kernel reads partition tables while it boots, and those bytes end up in its page cache,
 * so a snapshot taken at the end of the boot is only good for disks whose blocks read so far
 * hold the same bytes. The recorded blocks and a hash of their contents go with the snapshot;
 * before a restore, {@link hashBlocks} over the disks given now must give the same hash.
 *
 * While `bootCacheMode` is on the wrapper answers `identity()` with that hash of the blocks read
 * (so a snapshot taken for the boot cache does not hash whole disks) and hides a copy-on-write
 * layer (a boot-cache snapshot is only taken before any write). Otherwise it is transparent, so a
 * user's snapshot of the same machine refers to the disk as usual.
 */
import { type BlockBackend, isPromise } from './backend.js';
import { DiskHasher, diskIdentity } from './identity.js';

/** Granularity of the record: reads are rounded out to whole 4 KiB blocks. */
export const RECORD_BLOCK = 4096;

/** Blocks as sorted, disjoint [first block, count] runs. */
export type BlockRuns = Array<[number, number]>;

/**
 * Most blocks a record may cover (64 MiB): a boot reads a few partition-table blocks, and a
 * damaged entry must not make a restore hash (or, on a lazily fetched disk, fetch) a whole disk.
 */
export const RECORD_MAX_BLOCKS = 16384;

/** Checks that runs are well formed for a disk of `size` bytes: sorted, disjoint, inside the disk, at most RECORD_MAX_BLOCKS in all. */
export function validRuns(runs: unknown, size: number): runs is BlockRuns {
  if (!Array.isArray(runs) || runs.length > 1 << 16) return false;
  const blocks = Math.ceil(size / RECORD_BLOCK);
  let next = 0;
  let total = 0;
  for (const r of runs) {
    if (!Array.isArray(r) || r.length !== 2) return false;
    const [first, count] = r as unknown[];
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count)) return false;
    if ((first as number) < next || (count as number) < 1 || (first as number) + (count as number) > blocks) return false;
    next = (first as number) + (count as number);
    total += count as number;
    if (total > RECORD_MAX_BLOCKS) return false;
  }
  return true;
}

/**
 * A hash of the runs themselves and the bytes in them (the last block cut at the disk's end).
 * Callers check the runs with {@link validRuns} first.
 */
export async function hashBlocks(disk: BlockBackend, runs: BlockRuns): Promise<string> {
  const h = new DiskHasher();
  h.update(new TextEncoder().encode(`${disk.size}:${JSON.stringify(runs)}`));
  for (const [first, count] of runs) {
    const start = first * RECORD_BLOCK;
    const end = Math.min(disk.size, (first + count) * RECORD_BLOCK);
    for (let at = start; at < end; at += 1 << 20) {
      const buf = new Uint8Array(Math.min(1 << 20, end - at));
      const r = disk.read(at, buf);
      if (isPromise(r)) await r;
      h.update(buf);
    }
  }
  return h.digest();
}

export class ReadRecordingDisk implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  /** See the file comment. */
  bootCacheMode = true;
  private recording = true;
  private readonly blocks = new Set<number>();
  private writes = 0;
  /** Present exactly when the inner backend has it, so the device offers the same features. */
  readonly discard?: (offset: number, length: number) => void | Promise<void>;
  readonly writeZeroes?: (offset: number, length: number, unmap: boolean) => void | Promise<void>;

  /** The hash of the blocks read, once `identity()` computed it (or as given for a restore). */
  bootHash: string | undefined;
  private runs: BlockRuns | undefined;

  /**
   * `restoreWith`: for a restore, the blocks the snapshot recorded and their hash, already
   * checked against this disk by the caller (nothing is recorded then).
   */
  constructor(
    readonly inner: BlockBackend,
    restoreWith?: { runs: BlockRuns; hash: string },
  ) {
    this.size = inner.size;
    this.readOnly = inner.readOnly;
    if (restoreWith !== undefined) {
      this.recording = false;
      this.runs = restoreWith.runs;
      this.bootHash = restoreWith.hash;
    }
    if (inner.discard) {
      this.discard = (o, l) => {
        this.noteWrite();
        return inner.discard!(o, l);
      };
    }
    if (inner.writeZeroes) {
      this.writeZeroes = (o, l, u) => {
        this.noteWrite();
        return inner.writeZeroes!(o, l, u);
      };
    }
  }

  read(offset: number, dst: Uint8Array): void | Promise<void> {
    if (this.recording && dst.length > 0) {
      const last = Math.floor((offset + dst.length - 1) / RECORD_BLOCK);
      for (let b = Math.floor(offset / RECORD_BLOCK); b <= last; b++) this.blocks.add(b);
    }
    return this.inner.read(offset, dst);
  }

  write(offset: number, src: Uint8Array): void | Promise<void> {
    this.noteWrite();
    return this.inner.write(offset, src);
  }

  flush(): void | Promise<void> {
    return this.inner.flush();
  }

  private noteWrite(): void {
    if (this.recording) this.writes++;
  }

  /** Whether the guest changed the disk while recording (then no boot-cache entry may be made). */
  get wrote(): boolean {
    return this.writes > 0;
  }

  /** The blocks read: recorded ones (frozen by the first call), or the ones given for a restore. */
  recordedRuns(): BlockRuns {
    if (this.runs === undefined) {
      this.recording = false;
      const sorted = [...this.blocks].sort((a, b) => a - b);
      const runs: BlockRuns = [];
      for (const b of sorted) {
        const tail = runs[runs.length - 1];
        if (tail !== undefined && tail[0] + tail[1] === b) tail[1]++;
        else runs.push([b, 1]);
      }
      this.runs = runs;
    }
    return this.runs;
  }

  async identity(): Promise<string> {
    if (this.bootCacheMode) {
      this.bootHash ??= await hashBlocks(this.inner, this.recordedRuns());
      return `boot-blocks:${this.bootHash}`;
    }
    return diskIdentity(this.inner);
  }

  get snapshotLayer(): BlockBackend['snapshotLayer'] {
    if (this.bootCacheMode || this.inner.snapshotLayer === undefined) return undefined;
    return () => this.inner.snapshotLayer!();
  }

  get restoreLayer(): BlockBackend['restoreLayer'] {
    if (this.bootCacheMode || this.inner.restoreLayer === undefined) return undefined;
    return (layer) => this.inner.restoreLayer!(layer);
  }
}
