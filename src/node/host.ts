/** The Node.js event loop as a MachineHost. */
import { performance } from 'node:perf_hooks';
import type { MachineHost } from '../machine/machine.js';

export const nodeHost: MachineHost = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  yield: () => new Promise((resolve) => setImmediate(resolve)),
};
