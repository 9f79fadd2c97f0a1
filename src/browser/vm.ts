/**
 * The page-side API of `storvm/browser`: `startVm` starts a dedicated Worker that owns the
 * machine (nothing emulates on the page's thread) and gives back a handle to type into the
 * console, stop the guest, and work with its shares and disks while it runs.
 *
 * ```ts
 * const vm = await startVm({ kernel: url1, initrd: url2, shares: [{ files: { 'hello.txt': 'hi' } }],
 *                            onConsole: (b) => term.write(b) });
 * vm.write('ls /mnt/host\n');
 * const exit = await vm.exited;
 * ```
 */
import { toBase64 } from '../backends/block/bytes.js';
import { CPU_ENGINES, DEFAULT_CPU } from '../riscv/engine.js';
import { fromWire, ImageError, VmError } from './errors.js';
import { guestCommand, mountPoint, virtiofsMount } from '../machine/guest-init.js';
import { CTL_LINE_MAX, ctlLine } from '../machine/boot-handshake.js';
import { describe, type ImageSource, type PageMessage, type ProgressInfo, type ShareEntry, type StartMessage, type WireError, type WireImageSource, type WorkerMessage } from './protocol.js';

export interface VmDiskOptions {
  /** The image. May be left out for a blank persistent disk (`persist` with a `size`). */
  source?: ImageSource;
  /**
   * Keep the disk in this browser (the Origin Private File System) under a name: a blank disk of
   * `size` bytes, or a copy-on-write overlay over `source` that survives reloads while the image
   * stays as it is. FLUSH is a real durability point. `reset` forgets what was stored. Another tab
   * that has the same disk open makes this one read-only (see `VmDisk.note`). With `import`, the
   * image is copied into the persistent disk (which then stands alone: later boots need only
   * `{ persist: { name, size } }`) instead of being kept as its base.
   */
  persist?: string | { name: string; size?: number; reset?: boolean; import?: boolean };
  /**
   * Fetch the image (a URL) lazily, chunk by chunk, instead of whole before boot. A URL ending in
   * `manifest.json` names chunk files made by `storvm image chunk`; any other URL is read with HTTP
   * Range requests. Verified chunks are cached in OPFS, so a second boot fetches nothing.
   */
  lazy?: boolean;
  /** Read-only for the guest; otherwise its writes go to an in-memory copy-on-write layer. */
  readOnly?: boolean;
  /** Shown in progress and errors; default the file name or URL. */
  name?: string;
  /** Skip format detection (raw, gzip or qcow2 is found from the first bytes). */
  format?: 'raw' | 'gzip' | 'qcow2';
}

export type ShareFiles = Record<string, Uint8Array | Blob | string> | Array<{ path: string; data: Uint8Array | Blob | string }>;

export interface VmShareOptions {
  /** The 9p mount tag; default "host" for the first share, "share1", "share2"… after. */
  tag?: string;
  /** Files to start with (paths relative to the share). */
  files?: ShareFiles;
  readOnly?: boolean;
  /**
   * Keep the share in this browser (the Origin Private File System, `storvm-shares/<name>`):
   * what the guest writes is there after a reload. Modes, owners, symlinks and special files are
   * kept too (DirectoryHandleFs). One tab writes it; another gets it read-only, with a note.
   */
  persist?: string;
  /** Serve a folder the visitor picked (`showDirectoryPicker()`, with readwrite permission). */
  directory?: FileSystemDirectoryHandle;
  /**
   * The device: '9p' (default; init mounts it) or 'virtiofs' (FUSE over virtio-fs, mounted by a
   * line before the command or shell), with virtiofsd's cache mode (default 'auto').
   */
  device?: '9p' | 'virtiofs';
  cache?: 'none' | 'auto' | 'always';
}

export interface StartVmOptions {
  /** The Linux Image (or Image.gz). Default: the guest image shipped with storvm. */
  kernel?: ImageSource;
  /** The initramfs. Default: the busybox initramfs shipped with storvm. */
  initrd?: ImageSource;
  /** Disks, as /dev/vda, /dev/vdb… */
  disks?: Array<VmDiskOptions | ImageSource>;
  /** Shares over 9p (MemFs, or kept in the browser): the first at /mnt/host, others at /mnt/TAG. */
  shares?: VmShareOptions[];
  /** Guest RAM in MiB, 16..2048; default 256. */
  memoryMiB?: number;
  /** Run this with /bin/sh -c instead of a shell, then power off with its status. */
  command?: string;
  /** More kernel command-line arguments. */
  append?: string;
  /** Show kernel messages while booting. */
  verbose?: boolean;
  /** Guest time follows retired instructions, so a run replays exactly. */
  deterministic?: boolean;
  /**
   * 'wasm' (the default) translates hot guest code to WebAssembly in the worker (the page's CSP
   * must allow 'wasm-unsafe-eval'); 'interp' only interprets.
   */
  cpu?: 'interp' | 'wasm';
  /** Largest image held in memory, in MiB (kernel, initramfs, downloaded disks); default 1024. */
  maxImageMiB?: number;
  onConsole?(bytes: Uint8Array): void;
  onProgress?(info: ProgressInfo): void;
  /** A disk failed a guest request (e.g. a lazily fetched chunk that is corrupt); the guest saw IOERR. */
  onDiskError?(disk: number, message: string): void;
  /**
   * Called before the new machine opens shares kept in the browser, which one machine at a time
   * may hold: stop the machine this one replaces here. Without it the new one waits a moment for
   * the share and then serves it read-only.
   */
  onClaim?(): Promise<void> | void;
  /** The worker to run in; default a module worker from this package's worker.js. */
  worker?: Worker;
  /**
   * Go on from a snapshot (made by `vm.save()` or `storvm boot --save-on-exit`) instead of booting:
   * the guest is at once where it was saved. Give the same disks and shares (tags, read-only) it
   * was saved with; in-memory shares get their files back from the snapshot, so give them none.
   * `kernel`, `initrd`, `command` and `append` don't apply.
   */
  snapshot?: ImageSource;
  /**
   * The boot cache (docs/boot-cache.md), on by default: the first boot with these images, memory,
   * engine and devices saves the booted guest in this origin's OPFS (`storvm-boot-cache/`) when
   * its init starts, and later ones (a second visit) restore it and start at the prompt or the
   * command. `false` boots every time. A custom `initrd`, a snapshot or a virtio-fs share boot
   * without it.
   */
  bootCache?: boolean;
}

export interface VmExit {
  reason: 'poweroff' | 'reset' | 'stopped' | 'crashed';
  exitCode: number;
  instructions: number;
  /** Why, when the machine crashed. */
  message?: string;
}

export interface VmShare {
  readonly tag: string;
  /** Kept in the browser (a persistent or picked-folder share). */
  readonly persistent: boolean;
  readonly readOnly: boolean;
  readonly device: '9p' | 'virtiofs';
  /** Why the share is not what was asked, e.g. read-only because another tab writes it. */
  readonly note?: string;
  /** Where the guest's init mounts it. */
  readonly mountPoint: string;
  /** Puts files in while the guest runs; resolves to the number added. Rejects with a ShareError
   *  naming the files that could not be read (the others are in). */
  put(files: ShareFiles): Promise<number>;
  list(): Promise<ShareEntry[]>;
  read(path: string): Promise<Uint8Array>;
  remove(path: string): Promise<void>;
}

export interface VmDisk {
  readonly name: string;
  /** `/dev/vda`, … */
  readonly device: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly format: string;
  /** Kept in the Origin Private File System. */
  readonly persistent: boolean;
  /** Why the disk is not what was asked, e.g. read-only because another tab writes it. */
  readonly note?: string;
  /**
   * The disk as the guest sees it now (overlay merged with its base), as a stream of chunks: raw,
   * or a qcow2 image in which clusters of zeros take no space.
   */
  export(chunkBytes?: number, format?: 'raw' | 'qcow2'): ReadableStream<Uint8Array>;
  /** The same, gathered into a Blob part by part (never one ArrayBuffer), e.g. for a download. */
  exportBlob(chunkBytes?: number, format?: 'raw' | 'qcow2'): Promise<Blob>;
}

export interface Vm {
  /** Types at the guest's serial console. */
  write(data: Uint8Array | string): void;
  /** Stops the machine (at the next slice boundary) and ends the worker. */
  stop(): Promise<VmExit>;
  /** Ends the worker at once, as closing the tab would: nothing more is flushed. */
  kill(): VmExit;
  /** Resolves when the guest powers off or resets, the machine stops, or it crashes. */
  readonly exited: Promise<VmExit>;
  /** Calls `fn` once with the exit. */
  onExit(fn: (exit: VmExit) => void): void;
  readonly shares: readonly VmShare[];
  readonly disks: readonly VmDisk[];
  readonly bootargs: string;
  /** How this machine started: restored from the boot cache ('hit'), booted and cached ('miss'), or neither ('off'). */
  readonly bootCache: 'hit' | 'miss' | 'off';
  /**
   * A snapshot of the running machine (docs/snapshots.md): the guest pauses at the next slice
   * boundary while requests in flight finish, and goes on after. Give it to `startVm({ snapshot })`.
   */
  save(): Promise<Uint8Array>;
}

/** The Linux kernel command line is at most 1024 bytes on RISC-V. */
const CMDLINE_MAX = 1024;

const utf8 = new TextEncoder();


function toWireSource(s: ImageSource): WireImageSource {
  return s instanceof URL ? s.href : s;
}

function shareFiles(files: ShareFiles | undefined): Array<{ path: string; data: Uint8Array | Blob }> {
  if (files === undefined) return [];
  const list = Array.isArray(files) ? files : Object.entries(files).map(([path, data]) => ({ path, data }));
  return list.map(({ path, data }) => ({ path, data: typeof data === 'string' ? utf8.encode(data) : data }));
}

/** Where share `i` with `tag` is mounted in the guest. */
export { mountPoint };

// src/browser/vm.ts and dist/browser/vm.js both sit two levels below the package root; bundlers
// (Vite, esbuild, webpack) see these URLs and ship the two images with the page.
const DEFAULT_KERNEL = () => new URL('../../guest-images/Image.gz', import.meta.url);
const DEFAULT_INITRD = () => new URL('../../guest-images/initramfs.cpio.gz', import.meta.url);

/** Starts a VM in a new worker. Resolves once the images are loaded and the guest is booting. */
export async function startVm(opts: StartVmOptions = {}): Promise<Vm> {
  const cpu = opts.cpu ?? DEFAULT_CPU;
  if (!CPU_ENGINES.includes(cpu)) throw new VmError(`cpu must be ${CPU_ENGINES.map((e) => `'${e}'`).join(' or ')}, got '${String(cpu)}'`);
  const memoryMiB = opts.memoryMiB ?? 256;
  if (!Number.isInteger(memoryMiB) || memoryMiB < 16 || memoryMiB > 2048) {
    throw new VmError(`memoryMiB must be an integer 16..2048, got ${memoryMiB}`);
  }
  const tags = new Set<string>();
  const shareOpts = (opts.shares ?? []).map((s, i) => {
    const tag = s.tag ?? (i === 0 ? 'host' : `share${i}`);
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(tag)) throw new VmError(`share tag "${tag}" must be 1..64 letters, digits, '.', '_' or '-'`);
    if (tags.has(tag)) throw new VmError(`share tag "${tag}" is used twice`);
    tags.add(tag);
    if (s.persist !== undefined && s.directory !== undefined) throw new VmError(`share ${tag}: give persist or directory, not both`);
    const device = s.device ?? '9p';
    if (device !== '9p' && device !== 'virtiofs') throw new VmError(`share ${tag}: device must be '9p' or 'virtiofs', got '${String(device)}'`);
    if (s.cache !== undefined && !['none', 'auto', 'always'].includes(s.cache)) throw new VmError(`share ${tag}: cache must be none, auto or always`);
    return {
      tag,
      files: shareFiles(s.files),
      readOnly: s.readOnly ?? false,
      ...(s.persist !== undefined ? { persist: s.persist } : {}),
      ...(s.directory ? { directory: s.directory } : {}),
      ...(device === 'virtiofs' ? { virtiofs: s.cache ?? 'auto' } : {}),
    };
  });
  const diskOpts = (opts.disks ?? []).map((d, i) => {
    const o: VmDiskOptions = typeof d === 'object' && d !== null && ('source' in d || 'persist' in d) ? (d as VmDiskOptions) : { source: d as ImageSource };
    const persist = typeof o.persist === 'string' ? { name: o.persist } : o.persist;
    if (o.source === undefined && (persist === undefined || !(Number.isSafeInteger(persist.size) && persist.size! > 0))) {
      throw new VmError(`disk ${i}: give a source image, or persist with a size for a blank disk`);
    }
    let lazy: { manifestUrl?: string; imageUrl?: string } | undefined;
    if (o.lazy) {
      const url = typeof o.source === 'string' ? o.source : o.source instanceof URL ? o.source.href : undefined;
      if (url === undefined) throw new VmError(`disk ${i}: lazy needs the image's URL`);
      lazy = /manifest\.json(\?.*)?$/.test(url) ? { manifestUrl: new URL(url, location.href).href } : { imageUrl: new URL(url, location.href).href };
    }
    return {
      ...(lazy ? { lazy } : o.source !== undefined ? { source: toWireSource(o.source) } : {}),
      name: o.name ?? (o.source !== undefined ? describe(toWireSource(o.source), `disk ${i}`) : persist!.name),
      readOnly: o.readOnly ?? false,
      ...(persist ? { persist } : {}),
      ...(o.format ? { format: o.format } : {}),
    };
  });
  if (diskOpts.length + shareOpts.length > 8) throw new VmError('at most 8 disks and shares together');
  if (opts.snapshot !== undefined) {
    if (shareOpts.some((s) => s.files.length > 0)) throw new VmError('a share restored from a snapshot gets its files from the snapshot: give it no files');
    if (opts.command !== undefined || opts.append !== undefined) throw new VmError('command and append do not apply to a restored snapshot: the guest goes on where it was');
  }
  const parts = ['console=ttyS0', opts.verbose ? 'loglevel=7' : 'quiet loglevel=1'];
  const mounts: string[] = [];
  const shareWords: string[] = [];
  shareOpts.forEach((s, i) => {
    if (s.virtiofs !== undefined) mounts.push(virtiofsMount(s.tag, mountPoint(i, s.tag), s.readOnly));
    else shareWords.push(`${s.tag}:${mountPoint(i, s.tag)}${s.readOnly ? ':ro' : ''}`);
  });
  const command = guestCommand(mounts, opts.command !== undefined && opts.command !== '' ? [opts.command] : []);
  // The boot cache: the kernel command line is the same for every visit with these inputs, and
  // the shares and the command reach init on the console after the snapshot point.
  const cached = opts.bootCache !== false && opts.snapshot === undefined && opts.initrd === undefined && shareOpts.every((s) => s.virtiofs === undefined);
  let line: string | undefined;
  if (cached) {
    parts.push('storvm.ctl=console');
    line = ctlLine(shareWords, command);
    if (line.length > CTL_LINE_MAX) throw new VmError(`the guest command is ${line.length} bytes encoded; init takes at most ${CTL_LINE_MAX} (shorten the command)`);
  } else {
    for (const w of shareWords) parts.push(`storvm.share=${w}`);
    if (command !== '') parts.push(`storvm.cmd=${toBase64(command)}`);
  }
  if (opts.append) parts.push(opts.append);
  const bootargs = parts.join(' ');
  if (bootargs.length >= CMDLINE_MAX) {
    throw new VmError(`the guest command line is ${bootargs.length} bytes; the kernel takes at most ${CMDLINE_MAX - 1} (shorten the command)`);
  }

  const start: StartMessage = {
    type: 'start',
    kernel: toWireSource(opts.kernel ?? DEFAULT_KERNEL()),
    initrd: toWireSource(opts.initrd ?? DEFAULT_INITRD()),
    disks: diskOpts,
    shares: shareOpts,
    memoryMiB,
    bootargs,
    deterministic: opts.deterministic ?? false,
    cpu,
    maxImageBytes: Math.floor((opts.maxImageMiB ?? 1024) * 2 ** 20),
    ...(opts.snapshot !== undefined ? { snapshot: toWireSource(opts.snapshot) } : {}),
    ...(line !== undefined ? { bootCache: { line } } : {}),
  };

  let worker: Worker;
  try {
    worker = opts.worker ?? new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
  } catch (e) {
    throw new VmError(`could not start the machine's worker: ${e instanceof Error ? e.message : String(e)}`);
  }
  return connect(worker, start, shareOpts, opts);
}

function connect(worker: Worker, start: StartMessage, shareOpts: Array<{ tag: string }>, opts: StartVmOptions): Promise<Vm> {
  let nextId = 1;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; chunk?(bytes: Uint8Array): void }>();
  let exitResolve!: (e: VmExit) => void;
  const exited = new Promise<VmExit>((r) => (exitResolve = r));
  let done: VmExit | undefined;
  const finish = (e: VmExit): void => {
    if (done) return;
    done = e;
    for (const p of pending.values()) p.reject(new VmError(`the machine has ${e.reason === 'crashed' ? 'crashed' : 'stopped'}`));
    pending.clear();
    worker.terminate();
    exitResolve(e);
  };

  const send = (m: PageMessage, transfer: Transferable[] = []): void => {
    if (done) throw new VmError('the machine is not running');
    worker.postMessage(m, transfer);
  };

  const call = <T>(make: (id: number) => PageMessage, chunk?: (bytes: Uint8Array) => void): Promise<T> => {
    if (done) return Promise.reject(new VmError('the machine is not running'));
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject, ...(chunk ? { chunk } : {}) });
      send(make(id));
    });
  };

  return new Promise<Vm>((resolve, reject) => {
    let started = false;
    worker.onerror = (ev) => {
      ev.preventDefault?.();
      const err = new VmError(`the machine's worker failed: ${ev.message || 'it could not be loaded'}`);
      if (!started) {
        worker.terminate();
        reject(err);
      } else finish({ reason: 'crashed', exitCode: -1, instructions: 0, message: err.message });
    };
    worker.onmessage = (ev: MessageEvent<WorkerMessage>) => {
      const m = ev.data;
      switch (m.type) {
        case 'progress':
          opts.onProgress?.(m.info);
          return;
        case 'console':
          opts.onConsole?.(m.bytes);
          return;
        case 'disk-error':
          opts.onDiskError?.(m.disk, m.message);
          return;
        case 'claim':
          void Promise.resolve()
            .then(() => opts.onClaim?.())
            .catch(() => {})
            .then(() => {
              if (!done) worker.postMessage({ type: 'claimed' } satisfies PageMessage);
            });
          return;
        case 'fatal': {
          const err = fromWire(m.error);
          worker.terminate();
          if (!started) reject(err);
          else finish({ reason: 'crashed', exitCode: -1, instructions: 0, message: err.message });
          return;
        }
        case 'started': {
          started = true;
          const shares: VmShare[] = shareOpts.map((s, i) => ({
            tag: s.tag,
            persistent: m.shares[i]?.persistent ?? false,
            readOnly: m.shares[i]?.readOnly ?? false,
            device: m.shares[i]?.device ?? '9p',
            ...(m.shares[i]?.note ? { note: m.shares[i]!.note } : {}),
            mountPoint: mountPoint(i, s.tag),
            put: (files) => call<number>((id) => ({ type: 'share-put', id, share: i, files: shareFiles(files) })),
            list: () => call<ShareEntry[]>((id) => ({ type: 'share-list', id, share: i })),
            read: (path) => call<Uint8Array>((id) => ({ type: 'share-read', id, share: i, path })),
            remove: (path) => call<boolean>((id) => ({ type: 'share-remove', id, share: i, path })).then(() => undefined),
          }));
          const disks: VmDisk[] = m.disks.map((d, i) => {
            const exportStream = (chunkBytes = 1 << 20, format: 'raw' | 'qcow2' = 'raw'): ReadableStream<Uint8Array> =>
              new ReadableStream<Uint8Array>({
                start: (controller) => {
                  call<boolean>((id) => ({ type: 'disk-export', id, disk: i, chunkBytes, format }), (bytes) => controller.enqueue(bytes)).then(
                    () => controller.close(),
                    (e: Error) => controller.error(e),
                  );
                },
              });
            return {
              ...d,
              device: `/dev/vd${String.fromCharCode(97 + i)}`,
              export: exportStream,
              exportBlob: async (chunkBytes?: number, format?: 'raw' | 'qcow2') => {
                const parts: Blob[] = [];
                const reader = exportStream(chunkBytes, format).getReader();
                for (;;) {
                  const r = await reader.read();
                  if (r.done) break;
                  parts.push(new Blob([r.value as Uint8Array<ArrayBuffer>]));
                }
                return new Blob(parts, { type: 'application/octet-stream' });
              },
            };
          });
          const vm: Vm = {
            write: (data) => {
              const bytes = typeof data === 'string' ? utf8.encode(data) : data.slice();
              if (!done) send({ type: 'input', bytes }, [bytes.buffer]);
            },
            stop: () => {
              if (!done) worker.postMessage({ type: 'stop' } satisfies PageMessage);
              // The worker stops at the next slice boundary and flushes persistent disks; one that
              // does not answer in 5 s is ended anyway (what the guest flushed is safe either way).
              const t = setTimeout(() => finish({ reason: 'stopped', exitCode: 0, instructions: 0 }), 5000);
              return exited.finally(() => clearTimeout(t));
            },
            kill: () => {
              finish({ reason: 'stopped', exitCode: 0, instructions: 0, message: 'killed' });
              return done!;
            },
            exited,
            onExit: (fn) => void exited.then(fn),
            shares,
            disks,
            bootargs: start.bootargs,
            bootCache: m.bootCache,
            save: () => call<Uint8Array>((id) => ({ type: 'save', id })),
          };
          resolve(vm);
          return;
        }
        case 'exit':
          finish({ reason: m.reason, exitCode: m.exitCode, instructions: m.instructions, ...(m.message ? { message: m.message } : {}) });
          return;
        case 'reply':
        case 'reply-error': {
          const p = pending.get(m.id);
          if (!p) return;
          pending.delete(m.id);
          if (m.type === 'reply') p.resolve(m.value);
          else p.reject(fromWire(m.error));
          return;
        }
        case 'disk-chunk':
          pending.get(m.id)?.chunk?.(m.bytes);
          return;
      }
    };
    try {
      // Bytes are cloned, not transferred: the caller may keep using its arrays.
      worker.postMessage(start);
    } catch (e) {
      worker.terminate();
      reject(new VmError(`could not hand the images to the worker: ${e instanceof Error ? e.message : String(e)}`));
    }
  });
}

export { ImageError };
export type { WireError };
