/**
 * A MemFs that calls itself synchronous but answers one read or write late (a Promise), as a
 * buggy or wrapped backend might: the work is done at once, only the answer waits for
 * `release()`. Once armed (at once, or at `arm()`), every call's offset is kept in `calls`; the
 * first of them is the late one.
 */
import type { MemFs } from '../../src/backends/fs/mem-fs.js';

export function lateOnce(inner: MemFs, op: 'read' | 'write', armed = true) {
  const calls: number[] = [];
  let release: (() => void) | undefined;
  let recording = armed;
  let lateLeft = armed ? 1 : 0;
  const fs = new Proxy(inner, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (prop !== op) return typeof v === 'function' ? v.bind(target) : v;
      return (f: never, off: number, buf: Uint8Array) => {
        if (!recording) return target[op](f, off, buf);
        calls.push(off);
        if (lateLeft === 0) return target[op](f, off, buf);
        lateLeft = 0;
        const done = target[op](f, off, buf);
        return new Promise((resolve) => (release = () => resolve(done)));
      };
    },
  });
  const arm = () => {
    recording = true;
    lateLeft = 1;
  };
  return { fs, calls, arm, release: () => release?.() };
}
