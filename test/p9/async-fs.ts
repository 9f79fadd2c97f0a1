/**
 * Makes any backend asynchronous for tests: every operation answers a Promise that settles only
 * when the test releases it (in any order), or after a random delay in `auto` mode.
 */
import type { FsBackend } from '../../src/backends/fs/backend.js';

const SYNC = new Set(['readOnly', 'retain', 'release', 'constructor']);

export class Gate {
  /** Held operations, oldest first. */
  held: Array<{ op: string; run: () => void }> = [];
  /** Settle each operation after a random 0–3 ms delay instead of waiting for release. */
  auto = false;
  rand: () => number = Math.random;

  /** Releases held operations: all in order, or those at the given indices in that order. */
  release(order?: number[]): void {
    const all = this.held;
    const pick = order ?? all.map((_, i) => i);
    this.held = all.filter((_, i) => !pick.includes(i));
    for (const i of pick) all[i]!.run();
  }

  /** Resolves once `n` operations are held. */
  async waitFor(n: number): Promise<void> {
    for (let i = 0; i < 1000 && this.held.length < n; i++) await new Promise((r) => setImmediate(r));
    if (this.held.length < n) throw new Error(`only ${this.held.length} operations held, wanted ${n}`);
  }
}

export function gated<T extends FsBackend>(inner: T, gate: Gate): T {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'asynchronous') return true;
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function' || typeof prop !== 'string' || SYNC.has(prop)) return v;
      return (...args: unknown[]) =>
        new Promise((resolve) => {
          const run = (): void => resolve((v as (...a: unknown[]) => unknown).apply(target, args));
          if (gate.auto) setTimeout(run, Math.floor(gate.rand() * 3));
          else gate.held.push({ op: prop, run });
        });
    },
  });
}
