/**
 * One writer per image file (as QEMU's "Failed to get write lock"): whoever opens an image
 * read-write holds `<image>.lock`, a file created with O_EXCL. A second read-write opener is
 * refused while the owner lives; read-only openers never look. A lock left by a process that died
 * (storvm crashed, or was killed) is taken over.
 *
 * The lock file is `pid\nstart\nboot\n`: the owner's pid, its start time (field 22 of
 * /proc/<pid>/stat, clock ticks since boot) and the kernel's boot id. The owner is alive when a
 * process with that pid exists (signal 0) and, where /proc tells, it started at the recorded time
 * in this boot. So a lock whose pid now belongs to another process (pids are reused, and after a
 * reboot they start over) is seen as stale. Where /proc is missing (not Linux) the fields are
 * left empty and only the pid is checked; a lock of the older form, the pid alone, is read too.
 */
import { readFileSync } from 'node:fs';
import { open, readFile, rm } from 'node:fs/promises';
import { BlockError } from '../backends/block/backend.js';

/** The image is open for writing elsewhere. */
export class ImageLockedError extends BlockError {
  override readonly name = 'ImageLockedError';
  constructor(
    readonly path: string,
    readonly pid: number,
  ) {
    super(`${path} is already open for writing by process ${pid} (open it read-only with :ro)`);
  }
}

/** Lock paths held by this process, so a second writer here is refused too. */
const held = new Set<string>();

/** What a lock file says about its owner. */
export interface LockOwner {
  pid: number;
  /** Start time of the owner in clock ticks since boot, or undefined when not recorded. */
  start: string | undefined;
  /** The kernel boot id when the lock was taken, or undefined when not recorded. */
  boot: string | undefined;
}

/** The start time of process `pid` (field 22 of /proc/<pid>/stat), or undefined if unknown. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces or ')': count from the last.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = fields[22 - 3];
    return start !== undefined && /^\d+$/.test(start) ? start : undefined;
  } catch {
    return undefined;
  }
}

/** The kernel's boot id, or undefined where there is none to read. */
export function bootId(): string | undefined {
  try {
    const id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return id === '' ? undefined : id;
  } catch {
    return undefined;
  }
}

/** Parses a lock file: `pid`, or `pid\nstart\nboot`; undefined when it names no pid. */
export function parseLock(text: string): LockOwner | undefined {
  const [p, start, boot] = text.split('\n');
  if (p === undefined || !/^\d+$/.test(p.trim())) return undefined;
  const pid = Number(p.trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return { pid, start: start?.trim() || undefined, boot: boot?.trim() || undefined };
}

/** The contents of a lock taken by this process. */
export function lockText(): string {
  return `${process.pid}\n${processStart(process.pid) ?? ''}\n${bootId() ?? ''}\n`;
}

/**
 * Whether the process that wrote a lock still runs: a process with its pid exists, and where
 * the lock and /proc both tell, it is the same process (same boot, same start time).
 */
export function ownerAlive(owner: LockOwner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false; // EPERM: exists, not ours to signal
  }
  if (owner.boot !== undefined) {
    const boot = bootId();
    if (boot !== undefined && boot !== owner.boot) return false; // taken before a reboot
  }
  if (owner.start !== undefined) {
    const start = processStart(owner.pid);
    if (start !== undefined && start !== owner.start) return false; // the pid was reused
  }
  return true;
}

export class ImageLock {
  private released = false;
  private constructor(readonly lockPath: string) {}

  /** Takes the write lock of the image at `path`, or throws {@link ImageLockedError}. */
  static async acquire(path: string): Promise<ImageLock> {
    const lockPath = `${path}.lock`;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (held.has(lockPath)) throw new ImageLockedError(path, process.pid);
      try {
        const h = await open(lockPath, 'wx');
        try {
          await h.writeFile(lockText());
        } finally {
          await h.close();
        }
        held.add(lockPath);
        return new ImageLock(lockPath);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new BlockError(`${path}: cannot create the lock file ${lockPath}: ${(e as Error).message}`);
      }
      let text: string;
      try {
        text = await readFile(lockPath, 'utf8');
      } catch {
        continue; // released meanwhile: try again
      }
      const owner = parseLock(text);
      // A lock whose owner is alive holds. One that names no pid may be mid-creation: held. One
      // with our own pid but not in `held` was left by an earlier process that had our pid.
      if (owner !== undefined && !ownerAlive(owner)) {
        await rm(lockPath, { force: true });
        continue;
      }
      throw new ImageLockedError(path, owner?.pid ?? 0);
    }
    throw new BlockError(`${path}: could not take the lock ${lockPath}`);
  }

  /** Gives the lock up; safe to call twice. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    held.delete(this.lockPath);
    await rm(this.lockPath, { force: true });
  }
}
