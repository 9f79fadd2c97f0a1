// The CPU workload of bench/cpu.ts, run in a browser worker: same ELF, same hart, same slices.
import { runCpuElf } from './run-cpu.js';

const scope = self as unknown as { onmessage: (e: MessageEvent) => void; postMessage(m: unknown): void };
scope.onmessage = async (e: MessageEvent<{ url: string; runs: number }>) => {
  try {
    const image = new Uint8Array(await (await fetch(e.data.url)).arrayBuffer());
    const out: Array<{ seconds: number; instructions: number }> = [];
    for (let i = 0; i < e.data.runs; i++) out.push(runCpuElf(image));
    scope.postMessage({ runs: out });
  } catch (err) {
    scope.postMessage({ error: String(err) });
  }
};
