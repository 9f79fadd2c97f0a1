/**
 * `runStorageLab`: `storvm bench`'s storage lab in a dedicated Worker — the same guest script,
 * variants, workloads and report (src/lab) — over browser storage. Beside `storvm bench`'s columns
 * (/dev/vda in memory) it has two raw disks of its own: `blk-opfs`, a persistent disk in the
 * Origin Private File System, and `blk-http`, a lazily fetched image (HttpDisk) from `httpImage`.
 * The 9p and virtio-fs share is a MemFs or an OPFS folder. Resolves to the report `storvm bench
 * --json` writes; `formatTable` (re-exported) prints it as the CLI does, `formatComparison` beside
 * a Node report read with `parseBenchReport`.
 */
import type { BenchReport } from '../lab/report.js';
import { DEFAULT_CPU } from '../riscv/engine.js';
import { fromWire, VmError } from './errors.js';
import type { ImageSource, LabMessage, ProgressInfo, WorkerMessage } from './protocol.js';

export { BenchReportError, formatComparison, formatTable, parseBenchReport, toCsv, toJson, type BenchReport, type Cell, type LabSide } from '../lab/report.js';

export interface StorageLabOptions {
  /** MiB per sequential workload; default 4 (the CLI's default is 16). */
  sizeMiB?: number;
  /** Files for create/stat/unlink; default 50. */
  files?: number;
  /** Variant ids (src/lab/plan.ts, with blk-opfs and blk-http); default all. */
  variants?: string[];
  /**
   * The image of the blk-http variant: the URL of a chunk manifest (`storvm image chunk`) of at
   * least sizeMiB + 1 MiB. Without one that variant reports n/a.
   */
  httpImage?: string | URL;
  /** What the 9p and virtio-fs variants share; default 'memory'. */
  share?: 'memory' | 'opfs';
  /** Default DEFAULT_CPU ('wasm'). */
  cpu?: 'interp' | 'wasm';
  kernel?: ImageSource;
  initrd?: ImageSource;
  labio?: ImageSource;
  ext4?: ImageSource;
  /** The storvm version the report names. */
  version?: string;
  /** A step started: `VARIANT WORKLOAD` (or 'booting'), its number and the number of steps. */
  onStep?(step: string, index: number, total: number): void;
  onProgress?(info: ProgressInfo): void;
  worker?: Worker;
}

const url = (s: ImageSource | undefined, fallback: () => URL) => {
  const v = s ?? fallback();
  return v instanceof URL ? v.href : v;
};

/** Runs the lab; rejects with a VmError (or ImageError) when it can't start or the worker fails. */
export function runStorageLab(opts: StorageLabOptions = {}): Promise<BenchReport> & { stop(): void } {
  const sizeMiB = opts.sizeMiB ?? 4;
  const files = opts.files ?? 50;
  if (!Number.isInteger(sizeMiB) || sizeMiB < 1 || sizeMiB > 512) throw new VmError(`sizeMiB must be an integer 1..512, got ${sizeMiB}`);
  if (!Number.isInteger(files) || files < 1 || files > 100_000) throw new VmError(`files must be an integer 1..100000, got ${files}`);
  const msg: LabMessage = {
    type: 'lab',
    kernel: url(opts.kernel, () => new URL('../../guest-images/Image.gz', import.meta.url)) as LabMessage['kernel'],
    initrd: url(opts.initrd, () => new URL('../../guest-images/initramfs.cpio.gz', import.meta.url)) as LabMessage['initrd'],
    ext4: url(opts.ext4, () => new URL('../../guest-images/lab-ext4.sparse.gz', import.meta.url)) as LabMessage['ext4'],
    labio: url(opts.labio, () => new URL('../../src/node/lab/guest/labio', import.meta.url)) as LabMessage['labio'],
    sizeMiB,
    files,
    ...(opts.variants ? { variants: opts.variants } : {}),
    ...(opts.httpImage !== undefined ? { httpImage: new URL(opts.httpImage, typeof location !== 'undefined' ? location.href : undefined).href } : {}),
    share: opts.share ?? 'memory',
    cpu: opts.cpu ?? DEFAULT_CPU,
    maxImageBytes: 1 << 30,
    version: opts.version ?? '',
  };
  const worker = opts.worker ?? new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  let stop = () => {};
  const p = new Promise<BenchReport>((resolve, reject) => {
    stop = () => {
      worker.terminate();
      reject(new VmError('the lab was stopped'));
    };
    worker.onerror = (ev) => {
      ev.preventDefault?.();
      worker.terminate();
      reject(new VmError(`the lab's worker failed: ${ev.message || 'it could not be loaded'}`));
    };
    worker.onmessage = (ev: MessageEvent<WorkerMessage>) => {
      const m = ev.data;
      if (m.type === 'lab-step') opts.onStep?.(m.step, m.index, m.total);
      else if (m.type === 'progress') opts.onProgress?.(m.info);
      else if (m.type === 'lab-done') {
        worker.terminate();
        resolve(m.report as BenchReport);
      } else if (m.type === 'fatal') {
        worker.terminate();
        reject(fromWire(m.error));
      }
    };
    worker.postMessage(msg);
  });
  return Object.assign(p, { stop: () => stop() });
}
