/** The backends conformance tests run against. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FsBackend } from '../../src/backends/fs/backend.js';
import { MemFs } from '../../src/backends/fs/mem-fs.js';
import { HostFs } from '../../src/node/host-fs.js';
import { DirectoryHandleFs } from '../../src/browser/dir-fs.js';
import { fakeFolder } from '../support/fake-dir-handle.js';

export interface BackendCase {
  name: string;
  /** Makes a fresh, empty, writable backend. */
  make(): FsBackend;
  /** Makes a read-only backend holding one file `f` with content "hello" and a directory `d`. */
  makeReadOnly(): FsBackend;
  cleanup(): void;
  /** False for a backend whose host has no hard links (link answers EPERM). */
  hardLinks?: boolean;
}

export const memCase: BackendCase = {
  name: 'MemFs',
  make: () => new MemFs(),
  makeReadOnly: () => new MemFs({ tree: { f: 'hello', d: {} }, readOnly: true }),
  cleanup: () => {},
};

/** A fresh temporary directory, removed by cleanup(). */
export function tempDirs(prefix: string): { make(): string; cleanup(): void } {
  const made: string[] = [];
  return {
    make() {
      const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
      made.push(d);
      return d;
    },
    cleanup() {
      for (const d of made.splice(0)) {
        try {
          fs.rmSync(d, { recursive: true, force: true });
        } catch {
          // A tree deeper than PATH_MAX (the long-path tests): rm walks it by directory fds.
          spawnSync('rm', ['-rf', d]);
        }
      }
    },
  };
}

const hostDirs = tempDirs('storvm-p9-');

export const hostCase: BackendCase = {
  name: 'HostFs',
  make: () => new HostFs(hostDirs.make()),
  makeReadOnly: () => {
    const d = hostDirs.make();
    fs.writeFileSync(path.join(d, 'f'), 'hello');
    fs.mkdirSync(path.join(d, 'd'));
    return new HostFs(d, { readOnly: true });
  },
  cleanup: () => hostDirs.cleanup(),
};

/** DirectoryHandleFs over an in-memory stand-in for OPFS (sync access handles). */
export const dirHandleCase: BackendCase = {
  name: 'DirectoryHandleFs',
  make: () => new DirectoryHandleFs(fakeFolder()),
  makeReadOnly: () => {
    const root = fakeFolder();
    const root2 = root;
    void (async () => {
      const f = await root2.getFileHandle('f', { create: true });
      const w = await f.createWritable();
      await w.write(new TextEncoder().encode('hello'));
      await w.close();
      await root2.getDirectoryHandle('d', { create: true });
    })();
    return new DirectoryHandleFs(root, { readOnly: true });
  },
  cleanup: () => {},
  hardLinks: false,
};

/** The same over a folder without sync access handles (a picked folder: writable streams). */
export const dirStreamCase: BackendCase = {
  ...dirHandleCase,
  name: 'DirectoryHandleFs (streams)',
  make: () => new DirectoryHandleFs(fakeFolder({ sync: false })),
};

export const cases: BackendCase[] = [memCase, hostCase, dirHandleCase, dirStreamCase];
