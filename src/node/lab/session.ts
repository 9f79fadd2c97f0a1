/**
 * The parts of a storage-lab run that do not depend on which machine runs the guest, shared by
 * `storvm bench` (bench.ts) and the QEMU comparison (bench/lab-qemu.ts):
 *
 * - prepareLab: the control share (run.sh, labio, the source tarball), the markers, the sizes,
 *   the guest memory and the kernel command line;
 * - LabCollector (src/lab/collector.ts, re-exported): reads the guest's console, turns its `@@lab`
 *   lines into a BenchReport, and calls back when the guest asks the host to sample the stores;
 * - host-side measuring helpers (du of a directory, a marker in a file).
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabSetup } from '../../lab/collector.js';
import { labSetup } from '../../lab/setup.js';
import { tarDirectory } from './tar.js';
import { storvmVersion } from '../version.js';

// The collector and the plan are environment-free (src/lab), so the browser runs the same lab.
export { LabCollector, visibleMarkers, type LabHooks, type LabSetup, type Markers, type StoreSample } from '../../lab/collector.js';

const root = new URL('../../../', import.meta.url);

/** The guest images the lab boots, and the blank ext4 disk (storvm's sparse format). */
export const LAB_IMAGES = {
  kernelGz: new URL('guest-images/Image.gz', root).pathname,
  initrd: new URL('guest-images/initramfs.cpio.gz', root).pathname,
  ext4Sparse: new URL('guest-images/lab-ext4.sparse.gz', root).pathname,
};

/**
 * Fills `labDir` (the read-only control share, tag "lab") with the guest script, labio and the
 * tarball of storvm's own sources, and returns what the run uses.
 */
export function prepareLab(o: { sizeMiB: number; files: number; variants?: string[]; noVirtiofs?: string }, labDir: string): LabSetup {
  const srcDir = new URL('../../', import.meta.url).pathname; // src/ (or dist/ when built)
  const tar = tarDirectory(srcDir, 'src');
  writeFileSync(join(labDir, 'src.tar'), tar.bytes);
  const labio = new URL('guest/labio', import.meta.url).pathname;
  const labioSrc = existsSync(labio) ? labio : new URL('../../../src/node/lab/guest/labio', import.meta.url).pathname;
  copyFileSync(labioSrc, join(labDir, 'labio'));
  const { setup, script } = labSetup({
    ...o,
    tar: { entries: tar.entries, bytes: tar.bytes.length },
    tag: randomBytes(6).toString('hex'),
    version: storvmVersion(),
  });
  writeFileSync(join(labDir, 'run.sh'), script);
  return setup;
}

/** Host bytes a directory tree takes (allocated blocks, as du counts them). */
export function duBytes(dir: string): number {
  let n = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    n += st.blocks * 512;
    if (st.isDirectory()) n += duBytes(p);
  }
  return n;
}

export function fileContains(path: string, needle: string): boolean {
  try {
    return readFileSync(path, 'utf8').includes(needle);
  } catch {
    return false;
  }
}

