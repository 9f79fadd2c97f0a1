/**
 * One writer per image file (as QEMU's "Failed to get write lock"): whoever opens an image
 * read-write holds `<image>.lock`, a file created with O_EXCL that holds the owner's pid. A second
 * read-write opener is refused while that process lives; read-only openers never look. A lock
 * left by a process that died (storvm crashed, or was killed) is taken over: the pid in it is
 * checked for liveness with signal 0.
 */
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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, but not ours to signal
  }
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
          await h.writeFile(`${process.pid}\n`);
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
      const pid = Number.parseInt(text, 10);
      // A lock whose owner is alive holds. One that is empty may be mid-creation: treat it as held.
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !alive(pid)) {
        await rm(lockPath, { force: true });
        continue;
      }
      throw new ImageLockedError(path, Number.isInteger(pid) ? pid : 0);
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
