// bench/browser-storage.ts opens this page: the worker measures OPFS disks and leaves the result
// in window.storageResult.
const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const params = new URLSearchParams(location.search);
worker.onmessage = (e: MessageEvent) => {
  (window as unknown as { storageResult: unknown }).storageResult = e.data;
  document.getElementById('out')!.textContent = JSON.stringify(e.data, null, 1);
};
worker.postMessage({ mib: Number(params.get('mib') ?? 64), ops: Number(params.get('ops') ?? 4000), storvmFirst: params.get('first') === 'storvm' });
