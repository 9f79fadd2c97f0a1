// The CPU workload of bench/cpu.ts, run in a browser worker: same ELF, same hart, same slices.
import { Hart } from '../../src/riscv/hart.js';
import { loadTestProgram } from '../../src/riscv/htif.js';

const scope = self as unknown as { onmessage: (e: MessageEvent) => void; postMessage(m: unknown): void };
scope.onmessage = async (e: MessageEvent<{ url: string; runs: number }>) => {
  try {
    const image = new Uint8Array(await (await fetch(e.data.url)).arrayBuffer());
    const out: Array<{ seconds: number; instructions: number }> = [];
    for (let i = 0; i < e.data.runs; i++) {
      const ram = { base: 0x8000_0000, bytes: new Uint8Array(8 << 20) };
      const hart = new Hart({ ram });
      const { htif } = loadTestProgram(hart, ram, image);
      const t0 = performance.now();
      const r = htif.run(hart, 5_000_000_000, 1_000_000);
      const seconds = (performance.now() - t0) / 1000;
      if (r.status !== 'pass') throw new Error(`guest did not pass: ${r.status}`);
      out.push({ seconds, instructions: hart.instret });
    }
    scope.postMessage({ runs: out });
  } catch (err) {
    scope.postMessage({ error: String(err) });
  }
};
