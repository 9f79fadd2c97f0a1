/** Writing a file whole or not at all, for snapshot files and boot-cache entries. */
import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Writes `bytes` to a temporary file in the target's folder and renames it over `file`, so a
 * reader sees the old file or the whole new one, and two writers each rename a complete file.
 * The temporary file is named `.tmp-NAME-PID-RANDOM` and removed when anything fails.
 */
export async function writeWhole(file: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dirname(file), `.tmp-${basename(file)}-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
