/**
 * The browser (dedicated worker) as a MachineHost. The machine yields between slices of guest
 * instructions; the yield must let the worker's message queue run (console input, share files,
 * stop) and come back at once. A MessageChannel post is a task with no clamp, unlike
 * `setTimeout(0)`, which browsers clamp to 4 ms after a few nested calls — that would cost ~4 ms
 * per 200,000 instructions, a large share of the guest's speed.
 */
import type { MachineHost } from '../machine/machine.js';

/** Makes a yield function backed by one MessageChannel; resolvers run in order. */
export function messageChannelYield(): () => Promise<void> {
  const channel = new MessageChannel();
  const waiting: Array<() => void> = [];
  channel.port1.onmessage = () => {
    waiting.shift()?.();
  };
  return () =>
    new Promise<void>((resolve) => {
      waiting.push(resolve);
      channel.port2.postMessage(0);
    });
}

/** A MachineHost for a browser worker (or a page, for tests): performance.now, timers, an unclamped yield. */
export function browserHost(): MachineHost {
  return {
    now: () => performance.now(),
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
    yield: messageChannelYield(),
  };
}
