/** The backends conformance tests run against. */
import type { FsBackend } from '../../src/backends/fs/backend.js';
import { MemFs } from '../../src/backends/fs/mem-fs.js';

export interface BackendCase {
  name: string;
  /** Makes a fresh, empty, writable backend. */
  make(): FsBackend;
  /** Makes a read-only backend holding one file `f` with content "hello" and a directory `d`. */
  makeReadOnly(): FsBackend;
  /** Whether paths are limited by the host (PATH_MAX). */
  hostPaths: boolean;
  cleanup(): void;
}

export const memCase: BackendCase = {
  name: 'MemFs',
  make: () => new MemFs(),
  makeReadOnly: () => new MemFs({ tree: { f: 'hello', d: {} }, readOnly: true }),
  hostPaths: false,
  cleanup: () => {},
};

export const cases: BackendCase[] = [memCase];
