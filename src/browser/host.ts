/**
 * The browser (dedicated worker) as a MachineHost. The machine yields between slices of guest
 * instructions; the yield must let the worker's message queue run (console input, share files,
 * stop) and come back at once. `setTimeout(0)` can't do that: browsers clamp it to 4 ms once
 * timers nest (bench/browser.ts measures 4.1 ms per `setTimeout(0)` in a chromium worker against
 * 0.007 ms per MessageChannel round trip), so the yield is a MessageChannel post, a task with no
 * clamp. Slices shorter than {@link YIELD_EVERY_MS} are chained with only microtasks between them,
 * so a guest in a tight loop does not pay a task per slice; input waits at most that long.
 */
import type { MachineHost } from '../machine/machine.js';
import type { DeflateCodec } from '../machine/ram-image.js';

/** Longest run of slices without a real trip through the event loop, in ms. */
export const YIELD_EVERY_MS = 4;

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

/** A MachineHost for a browser worker (or a page, for tests): performance.now, setTimeout for sleeps, an unclamped yield. */
export function browserHost(opts: { yieldEveryMs?: number } = {}): MachineHost {
  const every = opts.yieldEveryMs ?? YIELD_EVERY_MS;
  const hop = messageChannelYield();
  let last = performance.now();
  return {
    now: () => performance.now(),
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
    yield: () => {
      const now = performance.now();
      if (now - last < every) return Promise.resolve();
      last = now;
      return hop().then(() => {
        last = performance.now();
      });
    },
  };
}

async function streamAll(data: Uint8Array, stream: CompressionStream | DecompressionStream, limit: number): Promise<Uint8Array> {
  const out = new Response(new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream));
  const reader = out.body!.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    total += r.value.length;
    if (total > limit) {
      await reader.cancel();
      throw new Error(`inflates to more than ${limit} bytes`);
    }
    parts.push(r.value);
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

/**
 * The browser's own raw DEFLATE (CompressionStream / DecompressionStream 'deflate-raw') as the
 * snapshot codec: the same format as fflate's, native and off the worker's JavaScript thread.
 * Undefined where the browser lacks 'deflate-raw' (then fflate is used).
 */
export function browserCodec(): DeflateCodec | undefined {
  try {
    new DecompressionStream('deflate-raw');
    new CompressionStream('deflate-raw');
  } catch {
    return undefined;
  }
  return {
    deflate: (data) => streamAll(data, new CompressionStream('deflate-raw'), Number.MAX_SAFE_INTEGER),
    inflate: (data, size) => streamAll(data, new DecompressionStream('deflate-raw'), size),
  };
}
