// bench/browser.ts opens this page: it runs bench/cpu.ts's workload in a dedicated worker, as the
// demo runs the machine, and leaves the runs in window.cpuResult.
import cpuElf from '../cpu-guest/cpu.elf?url';

const runs = Number(new URLSearchParams(location.search).get('runs') ?? 5);
const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
worker.onmessage = (e: MessageEvent) => {
  (window as unknown as { cpuResult: unknown }).cpuResult = e.data;
  document.getElementById('out')!.textContent = JSON.stringify(e.data, null, 1);
};
worker.postMessage({ url: new URL(cpuElf, location.href).href, runs });
