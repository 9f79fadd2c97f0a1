/**
 * Every message that crosses the boundary between the page (`startVm`, src/browser/vm.ts) and the
 * machine's dedicated Worker (src/browser/worker.ts). This file is the whole protocol: nothing else
 * is posted either way. Messages are structured-cloned; byte payloads are transferred. (It also
 * holds `describe`, which both sides use to name an image source.)
 *
 * Page → worker: `start` once, then `input`, `share-put`, `share-list`, `share-read`,
 * `disk-export`, `stop`. Requests that want an answer carry an `id`; the worker answers with
 * `reply` (same id) or `reply-error`.
 *
 * Worker → page: `progress` while images load, `started` when the machine is built and boots,
 * `console` bytes, `exit` when the guest powers off or the machine stops, `fatal` when start
 * failed (the worker is then finished), `disk-chunk` pieces of an export, and the replies.
 */

/** Where an image comes from. Blobs (and Files) are read lazily when possible; URLs are fetched. */
export type ImageSource = string | URL | Blob | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array>;

/** The form of an image after the page has made it cloneable: URL objects become strings. */
export type WireImageSource = string | Blob | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array>;

/** A name for an image in messages and errors: its URL, its file name, or `fallback`. */
export function describe(source: WireImageSource, fallback: string): string {
  if (typeof source === 'string') return source;
  if (typeof File !== 'undefined' && source instanceof File) return source.name;
  return fallback;
}

export interface WireDisk {
  /** The image; absent for a blank persistent disk. */
  source?: WireImageSource;
  /** Keep the disk (or the overlay over `source`) in the Origin Private File System under this name. */
  persist?: { name: string; size?: number; reset?: boolean; import?: boolean };
  /** Fetch the image lazily (HttpDisk): chunk files named by a manifest, or Range requests. */
  lazy?: { manifestUrl?: string; imageUrl?: string };
  /** Name shown in progress and errors (a file name or the URL). */
  name: string;
  /** The guest sees a read-only disk. Otherwise writes go to an in-memory copy-on-write overlay. */
  readOnly: boolean;
  /** Skip format detection. */
  format?: 'raw' | 'gzip' | 'qcow2';
}

export interface WireShare {
  tag: string;
  /**
   * Keep the share in the Origin Private File System under `storvm-shares/<persist>`
   * (DirectoryHandleFs); absent: a MemFs that lasts as long as the machine.
   */
  persist?: string;
  /** Serve this folder (from showDirectoryPicker) through DirectoryHandleFs. */
  directory?: FileSystemDirectoryHandle;
  /** Serve over virtio-fs with this cache mode; absent: 9p. */
  virtiofs?: 'none' | 'auto' | 'always';
  /** Files to put in before boot: path (relative, '/'-separated) → contents. */
  files: Array<{ path: string; data: Uint8Array | Blob }>;
  readOnly: boolean;
}

export interface StartMessage {
  type: 'start';
  kernel: WireImageSource;
  initrd: WireImageSource;
  disks: WireDisk[];
  shares: WireShare[];
  memoryMiB: number;
  bootargs: string;
  deterministic: boolean;
  /** CPU engine: 'wasm' needs the page's CSP to allow 'wasm-unsafe-eval' in the worker. */
  cpu: 'interp' | 'wasm';
  /** Largest image (compressed or not) the worker will hold in memory, in bytes. */
  maxImageBytes: number;
  /** Go on from this snapshot instead of booting (kernel, initrd and bootargs are not used). */
  snapshot?: WireImageSource;
  /**
   * Use the boot cache in OPFS (src/browser/boot-cache.ts): `bootargs` has storvm.ctl=console and
   * init reads `line` (shares and command) on the console after the snapshot point.
   */
  bootCache?: { line: string };
}

/** Runs the storage lab (src/lab) in the worker instead of a machine with a console. */
export interface LabMessage {
  type: 'lab';
  kernel: WireImageSource;
  initrd: WireImageSource;
  /** The lab's guest program and its blank ext4 image (storvm's sparse format). */
  labio: WireImageSource;
  ext4: WireImageSource;
  sizeMiB: number;
  files: number;
  variants?: string[];
  /** Where the share of the 9p and virtio-fs variants is kept. */
  share: 'memory' | 'opfs';
  /** The blk-http variant's image: a chunk manifest URL (storvm image chunk); absent: n/a. */
  httpImage?: string;
  cpu: 'interp' | 'wasm';
  maxImageBytes: number;
  version: string;
}

export type PageMessage =
  | StartMessage
  | LabMessage
  | { type: 'input'; bytes: Uint8Array }
  | { type: 'stop' }
  | { type: 'save'; id: number }
  /** The answer to `claim`: the page let go of what the new machine needs. */
  | { type: 'claimed' }
  | { type: 'share-put'; id: number; share: number; files: Array<{ path: string; data: Uint8Array | Blob }> }
  | { type: 'share-list'; id: number; share: number }
  | { type: 'share-read'; id: number; share: number; path: string }
  | { type: 'share-remove'; id: number; share: number; path: string }
  | { type: 'disk-export'; id: number; disk: number; chunkBytes: number; format?: 'raw' | 'qcow2' };

/** What the worker says it is doing while it loads images. */
export interface ProgressInfo {
  /** 'kernel' | 'initrd' | 'disk N' | 'share N'. */
  what: string;
  /** 'download' while bytes arrive, 'unpack' while a gzip decompresses, 'ready' when done. */
  phase: 'download' | 'unpack' | 'ready';
  /** Bytes so far (downloaded, or decompressed). */
  bytes: number;
  /** Total bytes when known. */
  total: number | undefined;
}

export interface ShareEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
}

/** A typed error as it crosses the boundary; vm.ts turns it back into the matching class. */
export interface WireError {
  name: 'ImageError' | 'ShareError' | 'VmError';
  message: string;
  /** ImageError: what went wrong. */
  code?: string;
  /** The image or path it concerns. */
  subject?: string;
}

export type WorkerMessage =
  | { type: 'progress'; info: ProgressInfo }
  | {
      type: 'started';
      /** `note` says why a disk is not what was asked (e.g. read-only: another tab writes it). */
      disks: Array<{ name: string; size: number; readOnly: boolean; format: string; persistent: boolean; note?: string }>;
      /** `note` says why a share is not what was asked (e.g. read-only: another tab writes it). */
      shares: Array<{ tag: string; persistent: boolean; readOnly: boolean; device: '9p' | 'virtiofs'; note?: string }>;
      /** Restored from the boot cache ('hit'), booted and cached ('miss'), or neither ('off'). */
      bootCache: 'hit' | 'miss' | 'off';
    }
  /**
   * Images are loaded; before it opens a share kept in the browser the worker asks the page to let
   * go of it (stop the machine that has it open); the page answers `claimed`.
   */
  | { type: 'claim' }
  | { type: 'console'; bytes: Uint8Array }
  | { type: 'exit'; reason: 'poweroff' | 'reset' | 'stopped' | 'crashed'; exitCode: number; instructions: number; message?: string }
  | { type: 'fatal'; error: WireError }
  /** The lab started a step (`VARIANT WORKLOAD`, or 'booting'). */
  | { type: 'lab-step'; step: string; index: number; total: number }
  /** The lab's report (src/lab/report.ts), as `storvm bench --json` writes it. */
  | { type: 'lab-done'; report: unknown }
  /** A disk failed a guest request (e.g. a lazily fetched chunk that is missing or corrupt). */
  | { type: 'disk-error'; disk: number; message: string }
  | { type: 'reply'; id: number; value: unknown }
  | { type: 'reply-error'; id: number; error: WireError }
  /** A piece of a disk export at `offset` of the output; `size` is the disk's size (-1 for qcow2, whose length is known only at the end). */
  | { type: 'disk-chunk'; id: number; bytes: Uint8Array; offset: number; size: number };
