// OPFS disk speed in a worker: storvm's persistent disk (PersistentOverlayDisk over sync access
// handles, a FLUSH at the end of each write pass) against a plain FileSystemSyncAccessHandle
// doing the same reads and writes, in the same run.
import { openOpfsDisk } from '../../src/browser/opfs.js';

type Handle = { read(b: Uint8Array, o: { at: number }): number; write(b: Uint8Array, o: { at: number }): number; flush(): void; close(): void; truncate(n: number): void };
interface Target {
  write(at: number, b: Uint8Array): void | Promise<void>;
  read(at: number, b: Uint8Array): void | Promise<void>;
  flush(): void | Promise<void>;
}

const scope = self as unknown as { onmessage: (e: MessageEvent) => void; postMessage(m: unknown): void };

async function measure(t: Target, mib: number, ops: number): Promise<Record<string, number>> {
  const size = mib << 20;
  const big = new Uint8Array(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
  const small = new Uint8Array(4096).fill(7);
  let x = 12345;
  const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0) % (size / 4096)) * 4096;
  let t0 = performance.now();
  for (let at = 0; at < size; at += big.length) await t.write(at, big);
  await t.flush();
  const seqWrite = mib / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  for (let at = 0; at < size; at += big.length) await t.read(at, big);
  const seqRead = mib / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  for (let i = 0; i < ops; i++) await t.write(rnd(), small);
  await t.flush();
  const randWrite = ops / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  for (let i = 0; i < ops; i++) await t.read(rnd(), small);
  const randRead = ops / ((performance.now() - t0) / 1000);
  return { seqWriteMBs: seqWrite, seqReadMBs: seqRead, randWriteIops: randWrite, randReadIops: randRead };
}

scope.onmessage = async (e: MessageEvent<{ mib: number; ops: number; storvmFirst: boolean }>) => {
  try {
    const { mib, ops, storvmFirst } = e.data;
    const root = await navigator.storage.getDirectory();
    const runPlain = async () => {
      const fh = (await root.getFileHandle('bench-plain', { create: true })) as FileSystemFileHandle & { createSyncAccessHandle(): Promise<Handle> };
      const h = await fh.createSyncAccessHandle();
      h.truncate(0);
      const plain: Target = { write: (at, b) => void h.write(b, { at }), read: (at, b) => void h.read(b, { at }), flush: () => h.flush() };
      const r = await measure(plain, mib, ops);
      h.close();
      await root.removeEntry('bench-plain');
      return r;
    };
    const runStorvm = async () => {
      const d = await openOpfsDisk('bench-disk', { size: mib << 20, reset: true });
      const disk: Target = { write: (at, b) => d.disk.write(at, b), read: (at, b) => d.disk.read(at, b), flush: () => d.disk.flush() };
      const r = await measure(disk, mib, ops);
      d.close();
      return r;
    };
    // The order alternates between rounds: the first pass over a new file pays for growing it.
    const storvm = storvmFirst ? await runStorvm() : undefined;
    const baseline = await runPlain();
    scope.postMessage({ baseline, storvm: storvm ?? (await runStorvm()) });
  } catch (err) {
    scope.postMessage({ error: String(err) });
  }
};
