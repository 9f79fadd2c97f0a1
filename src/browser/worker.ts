/**
 * The machine's dedicated Worker. It receives one `start` message, loads the images, builds the
 * Machine with its disks and MemFs shares and runs it; between slices of guest instructions the
 * browser host yields, so the page's messages (console input, share files, export, stop) are
 * handled while the guest runs. The whole protocol is in protocol.ts.
 */
import type { BlockBackend } from '../backends/block/backend.js';
import type { FsBackend } from '../backends/fs/backend.js';
import { MemFs } from '../backends/fs/mem-fs.js';
import { VirtioBlk } from '../devices/blk/device.js';
import { Virtio9p } from '../devices/p9/device.js';
import { VirtioFs } from '../devices/fs/device.js';
import { BootImageError } from '../machine/loader.js';
import { Machine } from '../machine/machine.js';
import type { VirtioDevice } from '../virtio/device.js';
import { ImageError, ShareError, toWire, VmError } from './errors.js';
import { browserCodec, browserHost } from './host.js';
import { readSnapshot, SnapshotError } from '../machine/snapshot-format.js';
import { describe } from './protocol.js';
import { type LoadedDisk, loadDisk, loadInitrd, loadKernel, readAll } from './images.js';
import { OverlayDisk } from '../backends/block/overlay-disk.js';
import { qcow2Image } from '../backends/block/qcow2-writer.js';
import { HttpDisk, opfsChunkCache } from './http-disk.js';
import { openOpfsDisk, type OpenedOpfsDisk } from './opfs.js';
import type { LabMessage, PageMessage, ProgressInfo, StartMessage, WorkerMessage } from './protocol.js';
import { runLab } from './lab-worker.js';
import { listShare, putFile, readFile, removeFile } from './share.js';
import { openDirShare, type OpenedDirShare } from './dir-share.js';
import { isZero } from '../backends/block/bytes.js';
import { hashBlocks, ReadRecordingDisk } from '../backends/block/read-record.js';
import { entryFor, type KeyDevice } from '../machine/boot-cache-entry.js';
import { EarlyConsole, Handshake, restoredHandshake } from '../machine/boot-handshake.js';
import { snapshotInfo } from '../machine/snapshot-info.js';
import { BROWSER_VERSION, browserCacheKey, readBrowserEntry, removeBrowserEntry, workerCodeIdentity, writeBrowserEntry } from './boot-cache.js';

/** The part of DedicatedWorkerGlobalScope used here (the DOM lib types `self` as a Window). */
interface WorkerScope {
  postMessage(message: WorkerMessage, transfer?: Transferable[]): void;
  onmessage: ((e: MessageEvent<PageMessage>) => void) | null;
  close(): void;
}

const scope = self as unknown as WorkerScope;
const codec = browserCodec();

let machine: Machine | undefined;
/** With the boot cache: the handshake with init, which console input goes through. */
let handshake: Handshake | undefined;
let starting = false;
let pendingInput: Uint8Array[] = [];
let stopRequested = false;
const shares: FsBackend[] = [];
const keptShares: OpenedDirShare[] = [];
/** Resolves when the page answers `claim`. */
let claimed: (() => void) | undefined;
const disks: LoadedDisk[] = [];
const persistent: OpenedOpfsDisk[] = [];

function post(m: WorkerMessage, transfer: Transferable[] = []): void {
  scope.postMessage(m, transfer);
}

/** Shares are capped so a visitor's drop can't take all of the tab's memory: 1 GiB each. */
const SHARE_CAPACITY = 2 ** 30;

async function blobBytes(data: Uint8Array | Blob, path: string): Promise<Uint8Array> {
  if (data instanceof Uint8Array) return data;
  try {
    return new Uint8Array(await data.arrayBuffer());
  } catch (e) {
    throw new ShareError(`${path}: the file could not be read (${e instanceof Error ? e.message : String(e)})`, path);
  }
}

/**
 * Puts files into a share. Every readable file goes in; when some could not be read, the
 * answer is a ShareError naming them (after the others were put in).
 */
async function putFiles(fs: FsBackend, files: Array<{ path: string; data: Uint8Array | Blob }>): Promise<number> {
  const failed: string[] = [];
  let added = 0;
  for (const f of files) {
    try {
      await putFile(fs, f.path, await blobBytes(f.data, f.path));
      added++;
    } catch (e) {
      failed.push(e instanceof Error ? e.message : String(e));
    }
  }
  if (failed.length > 0) {
    throw new ShareError(failed.length === 1 ? failed[0]! : `${failed.length} of ${files.length} files were not added: ${failed.join('; ')}`, files[0]?.path ?? '');
  }
  return added;
}

async function start(m: StartMessage): Promise<void> {
  const progress = (info: ProgressInfo) => post({ type: 'progress', info });
  const ramBytes = m.memoryMiB * 2 ** 20;
  const snapshot = m.snapshot === undefined ? undefined : await readAll(m.snapshot, 'snapshot', describe(m.snapshot, 'snapshot'), m.maxImageBytes, progress);
  const kernel = snapshot ? new Uint8Array(0) : await loadKernel(m.kernel, m.maxImageBytes, ramBytes, progress);
  const initrd = snapshot ? new Uint8Array(0) : await loadInitrd(m.initrd, m.maxImageBytes, ramBytes, progress);
  const blks: Array<{ disk: BlockBackend; readOnly: boolean; serial: string }> = [];
  const fsDevs: Array<{ fs: FsBackend; tag: string; virtiofs?: 'none' | 'auto' | 'always'; readOnly: boolean }> = [];
  const infos: Extract<WorkerMessage, { type: 'started' }>['disks'] = [];
  const lazyDisks = new Map<number, HttpDisk>();
  const cache = m.disks.some((d) => d.lazy) ? await opfsChunkCache() : undefined;
  for (const [i, d] of m.disks.entries()) {
    let loaded: LoadedDisk;
    let readOnly = d.readOnly;
    let note: string | undefined;
    if (d.lazy) {
      const http = await HttpDisk.open({ ...d.lazy, ...(cache ? { cache } : {}), onError: (message) => post({ type: 'disk-error', disk: i, message }) });
      lazyDisks.set(i, http);
    }
    const lazyBase = lazyDisks.get(i);
    if (d.persist?.import) {
      const src = lazyBase ? { disk: lazyBase, format: 'http' } : d.source !== undefined ? await loadDisk({ ...d, source: d.source, readOnly: true }, `disk ${i}`, m.maxImageBytes, progress) : undefined;
      if (src === undefined) throw new ImageError(`persistent disk ${d.persist.name}: nothing to import`, 'format', d.persist.name);
      const opened = await openOpfsDisk(d.persist.name, { size: src.disk.size, reset: true });
      persistent.push(opened);
      if (!opened.writable) throw new ImageError(`persistent disk ${d.persist.name}: another tab is writing it; close it there to import`, 'read', d.persist.name);
      await importInto(opened.disk, src.disk, (bytes) => progress({ what: `disk ${i}`, phase: 'unpack', bytes, total: src.disk.size }));
      loaded = { disk: opened.disk, format: 'opfs' };
      progress({ what: `disk ${i}`, phase: 'ready', bytes: src.disk.size, total: src.disk.size });
    } else if (d.persist) {
      const base = lazyBase ? { disk: lazyBase, format: 'http' } : d.source === undefined ? undefined : await loadDisk({ ...d, source: d.source, readOnly: true }, `disk ${i}`, m.maxImageBytes, progress);
      if (base === undefined && !(Number.isSafeInteger(d.persist.size) && d.persist.size! > 0)) throw new ImageError(`persistent disk ${d.persist.name}: give an image or a size`, 'format', d.persist.name);
      const opened = await openOpfsDisk(d.persist.name, {
        ...(base ? { base: base.disk, baseId: `${d.name}:${base.disk.size}` } : { size: d.persist.size! }),
        ...(d.persist.reset ? { reset: true } : {}),
      });
      persistent.push(opened);
      loaded = { disk: opened.disk, format: base ? `${base.format}+opfs` : 'opfs' } as LoadedDisk;
      if (!opened.writable) {
        readOnly = true;
        note = 'read-only: another tab is writing this disk';
      }
      progress({ what: `disk ${i}`, phase: 'ready', bytes: opened.disk.size, total: opened.disk.size });
    } else if (lazyBase) {
      loaded = { disk: d.readOnly ? lazyBase : new OverlayDisk(lazyBase), format: 'http' };
    } else {
      if (d.source === undefined) throw new ImageError(`${d.name}: no image given`, 'format', d.name);
      loaded = await loadDisk({ ...d, source: d.source }, `disk ${i}`, m.maxImageBytes, progress);
    }
    disks.push(loaded);
    infos.push({ name: d.name, size: loaded.disk.size, readOnly, format: loaded.format, persistent: d.persist !== undefined, ...(note ? { note } : {}) });
    blks.push({ disk: loaded.disk, readOnly, serial: `storvm-disk${i}` });
  }
  if (m.shares.some((s) => s.persist !== undefined || s.directory !== undefined)) {
    // The machine this one replaces may hold the kept shares open: the page lets go first. A
    // snapshot that is not one is refused before that, so the running guest goes on.
    if (snapshot) {
      try {
        readSnapshot(snapshot);
      } catch (e) {
        if (e instanceof SnapshotError) throw new ImageError(`snapshot: ${e.message}`, 'format', 'snapshot');
        throw e;
      }
    }
    const answer = new Promise<void>((r) => (claimed = r));
    post({ type: 'claim' });
    await answer;
  }
  const shareInfos: Extract<WorkerMessage, { type: 'started' }>['shares'] = [];
  for (const [i, s] of m.shares.entries()) {
    progress({ what: `share ${i}`, phase: 'download', bytes: 0, total: s.files.length });
    let fs: FsBackend;
    let note: string | undefined;
    if (s.persist !== undefined || s.directory !== undefined) {
      // A kept share is not in a snapshot: a restored session finds its files by path again.
      const kept = await openDirShare(s, s.readOnly);
      keptShares.push(kept);
      fs = kept.fs;
      note = kept.note;
      if (!fs.readOnly) await putFiles(fs, s.files);
    } else {
      const mem = new MemFs({ capacity: SHARE_CAPACITY });
      // Restored from a snapshot, the share's files come from the snapshot (and it is frozen after).
      if (!snapshot) await putFiles(mem, s.files);
      if (s.readOnly && !snapshot) mem.freeze();
      fs = mem;
    }
    shares.push(fs);
    shareInfos.push({ tag: s.tag, persistent: s.persist !== undefined || s.directory !== undefined, readOnly: fs.readOnly, device: s.virtiofs ? 'virtiofs' : '9p', ...(note ? { note } : {}) });
    fsDevs.push({ fs, tag: s.tag, readOnly: fs.readOnly, ...(s.virtiofs ? { virtiofs: s.virtiofs } : {}) });
  }
  if (stopRequested) {
    post({ type: 'exit', reason: 'stopped', exitCode: 0, instructions: 0 });
    return;
  }
  /** The devices, over the disks as loaded or through read-recording wrappers (boot cache). */
  const makeDevices = (wrap: (disk: BlockBackend, i: number) => BlockBackend = (d) => d): VirtioDevice[] => [
    ...blks.map((b, i) => new VirtioBlk(wrap(b.disk, i), { readOnly: b.readOnly, serial: b.serial })),
    ...fsDevs.map((f) => (f.virtiofs ? new VirtioFs(f.fs, { tag: f.tag, cache: f.virtiofs }) : new Virtio9p(f.fs, { tag: f.tag }))),
  ];
  let vm: Machine;
  let bootCache: 'hit' | 'miss' | 'off' = 'off';
  if (snapshot) {
    // A snapshot of a guest booted with the handshake (the boot cache's init): its exit marker
    // still ends the run, and a line init had not read yet when it was saved is typed now.
    const { handshake: hs, deliver } = await restoredHandshake(() => snapshotInfo(snapshot).meta, postConsole);
    try {
      vm = await Machine.restore(snapshot, { devices: makeDevices(), host: browserHost(), onConsole: hs.output, ...(codec ? { codec } : {}), ...(m.cpu ? { cpu: m.cpu } : {}) });
    } catch (e) {
      if (e instanceof SnapshotError) throw new ImageError(`snapshot: ${e.message}`, 'format', 'snapshot');
      throw new VmError(`the snapshot could not be restored: ${e instanceof Error ? e.message : String(e)}`);
    }
    hs.attach(vm);
    if (deliver) hs.deliver();
    handshake = hs;
    m.shares.forEach((s, i) => {
      const fs = shares[i];
      if (s.readOnly && fs instanceof MemFs) fs.freeze();
    });
  } else {
    const cached = m.bootCache ? await bootCached(m, kernel, initrd, blks, fsDevs, makeDevices) : undefined;
    if (cached !== undefined) {
      vm = cached.machine;
      bootCache = cached.hit ? 'hit' : 'miss';
    } else try {
      vm = new Machine({
        kernel,
        initrd,
        bootargs: m.bootargs,
        memoryMiB: m.memoryMiB,
        devices: makeDevices(),
        deterministic: m.deterministic,
        cpu: m.cpu,
        host: browserHost(),
        onConsole: postConsole,
      });
    } catch (e) {
      if (e instanceof BootImageError) throw new ImageError(`kernel: ${e.message}`, 'format', 'kernel');
      throw new VmError(`the machine could not be built: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  machine = vm;
  for (const b of pendingInput) (handshake ?? vm).input(b);
  pendingInput = [];
  post({
    type: 'started',
    disks: infos,
    shares: shareInfos,
    bootCache,
  });
  try {
    const r = await vm.run();
    // A clean stop or power-off makes what the guest wrote to persistent disks durable; a killed
    // worker keeps what the guest last flushed (the store is crash-safe).
    for (const p of persistent) {
      try {
        await p.store?.flush();
      } catch {
        // the guest's last FLUSH still holds
      }
    }
    post({ type: 'exit', reason: r.reason, exitCode: r.exitCode, instructions: r.instructions });
  } catch (e) {
    post({ type: 'exit', reason: 'crashed', exitCode: -1, instructions: vm.hart.instret, message: e instanceof Error ? e.message : String(e) });
  }
}

function postConsole(bytes: Uint8Array): void {
  // Transfer only a buffer this view owns whole: detaching a larger one would cut off the rest.
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  post({ type: 'console', bytes: own }, [own.buffer as ArrayBuffer]);
}

/** Console output before the snapshot point kept for replay; more than this and nothing is cached. */
const CONSOLE_KEEP_MAX = 256 * 1024;

/**
 * The boot cache (src/browser/boot-cache.ts): the machine restored from this origin's entry for
 * these inputs, or booting cold with the handshake that saves one when init starts. Undefined
 * only when the machine could not be built (the caller then reports it as usual).
 */
async function bootCached(
  m: StartMessage,
  kernel: Uint8Array,
  initrd: Uint8Array,
  blks: Array<{ disk: BlockBackend; readOnly: boolean; serial: string }>,
  fsDevs: Array<{ tag: string; readOnly: boolean }>,
  makeDevices: (wrap?: (disk: BlockBackend, i: number) => BlockBackend) => VirtioDevice[],
): Promise<{ machine: Machine; hit: boolean } | undefined> {
  const line = m.bootCache!.line;
  const devices: KeyDevice[] = [
    ...blks.map((b): KeyDevice => ({ kind: 'blk', size: b.disk.size, readOnly: b.readOnly || b.disk.readOnly, discard: b.disk.discard !== undefined, writeZeroes: b.disk.writeZeroes !== undefined, serial: b.serial })),
    ...fsDevs.map((f): KeyDevice => ({ kind: '9p', tag: f.tag, readOnly: f.readOnly, mode: 'memory' })),
  ];
  const key = await browserCacheKey({
    code: await workerCodeIdentity((self as unknown as { location: Location }).location.href),
    kernel,
    initrd,
    bootargs: m.bootargs,
    memoryMiB: m.memoryMiB,
    cpu: m.cpu,
    deterministic: m.deterministic,
    devices,
  });
  const p9s = (devs: VirtioDevice[]) => devs.filter((d): d is Virtio9p => d instanceof Virtio9p);
  const hooks = { host: browserHost(), ...(codec ? { codec } : {}) };

  const entry = await readBrowserEntry(key, blks.map((b) => b.disk.size));
  if (entry !== undefined) {
    try {
      // The blocks the kernel read while booting must hold the same bytes on the disks given now.
      let same = true;
      for (const [i, d] of entry.header.disks.entries()) if ((await hashBlocks(blks[i]!.disk, d.runs)) !== d.hash) same = false;
      if (same) {
        const hs = new Handshake(line, postConsole, { ready: true });
        const recorders = blks.map((b, i) => new ReadRecordingDisk(b.disk, entry.header.disks[i]!));
        const devs = makeDevices((_, i) => recorders[i]!);
        // The entry holds no share files (snapshotContents was off): the ones given now stay.
        for (const d of p9s(devs)) d.snapshotContents = false;
        const vm = await Machine.restore(entry.snapshot, { devices: devs, onConsole: hs.output, ...hooks, ...(m.deterministic ? { deterministic: true } : {}), cpu: m.cpu });
        for (const r of recorders) r.bootCacheMode = false;
        for (const d of p9s(devs)) d.snapshotContents = true;
        if (entry.console.length > 0) postConsole(entry.console);
        hs.attach(vm);
        hs.deliver();
        handshake = hs;
        return { machine: vm, hit: true };
      }
    } catch {
      await removeBrowserEntry(key);
    }
  }

  const recorders = blks.map((b) => new ReadRecordingDisk(b.disk));
  const devs = makeDevices((_, i) => recorders[i]!);
  const early = new EarlyConsole(CONSOLE_KEEP_MAX);
  let vm: Machine | undefined;
  const hs: Handshake = new Handshake(
    line,
    (b) => {
      if (!hs.isReady) early.push(b);
      postConsole(b);
    },
    {
      onReady: () => {
        for (const d of p9s(devs)) d.snapshotContents = false;
        const saving = vm!.save({ meta: { savedIn: 'browser', bootCache: key }, ...(codec ? { codec } : {}) });
        void saving.then(
          async (snap) => {
            for (const d of p9s(devs)) d.snapshotContents = true;
            for (const r of recorders) r.bootCacheMode = false;
            hs.deliver();
            const summary = `${m.memoryMiB} MiB, cpu ${m.cpu}${m.deterministic ? ', deterministic' : ''}, ${blks.length} disk(s), ${fsDevs.length} share(s)`;
            const entry = entryFor({ key, storvm: BROWSER_VERSION, summary, recorders, early, snapshot: snap });
            if (entry === undefined) return;
            await writeBrowserEntry(key, entry).catch(() => {}); // a full quota only costs the next visit a boot
          },
          () => {
            for (const d of p9s(devs)) d.snapshotContents = true;
            for (const r of recorders) r.bootCacheMode = false;
            hs.deliver();
          },
        );
      },
    },
  );
  try {
    vm = new Machine({ kernel, initrd, bootargs: m.bootargs, memoryMiB: m.memoryMiB, devices: devs, deterministic: m.deterministic, cpu: m.cpu, onConsole: hs.output, ...hooks });
  } catch (e) {
    if (e instanceof BootImageError) throw new ImageError(`kernel: ${e.message}`, 'format', 'kernel');
    throw new VmError(`the machine could not be built: ${e instanceof Error ? e.message : String(e)}`);
  }
  hs.attach(vm);
  handshake = hs;
  return { machine: vm, hit: false };
}

/** Copies `from` into `to` a MiB at a time, skipping runs of zeros, then flushes. */
async function importInto(to: BlockBackend, from: BlockBackend, progress: (bytes: number) => void): Promise<void> {
  const buf = new Uint8Array(1 << 20);
  for (let at = 0; at < from.size; at += buf.length) {
    const piece = buf.subarray(0, Math.min(buf.length, from.size - at));
    await from.read(at, piece);
    if (!isZero(piece)) await to.write(at, piece);
    if ((at & ((16 << 20) - 1)) === 0) progress(at);
  }
  await to.flush();
}

function share(i: number): FsBackend {
  const fs = shares[i];
  if (fs === undefined) throw new VmError(`there is no share ${i}`);
  return fs;
}

/** Streams a disk's current contents (its overlay over its base) to the page in chunks, raw or as qcow2. */
async function exportDisk(id: number, i: number, chunkBytes: number, format: 'raw' | 'qcow2' = 'raw'): Promise<void> {
  const d: BlockBackend | undefined = disks[i]?.disk;
  if (d === undefined) throw new VmError(`there is no disk ${i}`);
  if (format === 'qcow2') {
    let at = 0;
    for await (const bytes of qcow2Image(d)) {
      post({ type: 'disk-chunk', id, bytes, offset: at, size: -1 }, [bytes.buffer as ArrayBuffer]);
      at += bytes.length;
    }
    return;
  }
  const chunk = Math.max(4096, Math.min(16 << 20, chunkBytes - (chunkBytes % 512)));
  for (let at = 0; at < d.size; at += chunk) {
    const bytes = new Uint8Array(Math.min(chunk, d.size - at));
    await d.read(at, bytes);
    post({ type: 'disk-chunk', id, bytes, offset: at, size: d.size }, [bytes.buffer]);
  }
}

async function request(m: Exclude<PageMessage, StartMessage | LabMessage | { type: 'input' } | { type: 'stop' } | { type: 'claimed' }>): Promise<void> {
  try {
    let value: unknown;
    let transfer: Transferable[] = [];
    switch (m.type) {
      case 'share-put':
        value = await putFiles(share(m.share), m.files);
        break;
      case 'share-list':
        value = await listShare(share(m.share));
        break;
      case 'share-read': {
        const bytes = await readFile(share(m.share), m.path);
        value = bytes;
        transfer = [bytes.buffer];
        break;
      }
      case 'share-remove':
        await removeFile(share(m.share), m.path);
        value = true;
        break;
      case 'disk-export':
        await exportDisk(m.id, m.disk, m.chunkBytes, m.format);
        value = true;
        break;
      case 'save': {
        if (machine === undefined) throw new VmError('the machine is not running yet');
        // The handshake's open part, as the CLI keeps it: a save before init read its line resumes it.
        const pending = handshake?.pending();
        const bytes = await machine.save({ ...(codec ? { codec } : {}), meta: { savedIn: 'browser', ...(pending ? { handshake: pending } : {}) } });
        value = bytes;
        transfer = [bytes.buffer];
        break;
      }
    }
    post({ type: 'reply', id: m.id, value }, transfer);
  } catch (e) {
    post({ type: 'reply-error', id: m.id, error: toWire(e) });
  }
}

scope.onmessage = (e) => {
  const m = e.data;
  switch (m.type) {
    case 'start':
      if (starting) return;
      starting = true;
      start(m).catch((err) => post({ type: 'fatal', error: toWire(err) }));
      return;
    case 'input':
      if (machine) (handshake ?? machine).input(m.bytes);
      else pendingInput.push(m.bytes);
      return;
    case 'lab':
      if (starting) return;
      starting = true;
      runLab(m, post).then(
        (report) => post({ type: 'lab-done', report }),
        (err) => post({ type: 'fatal', error: toWire(err) }),
      );
      return;
    case 'claimed':
      claimed?.();
      claimed = undefined;
      return;
    case 'stop':
      stopRequested = true;
      machine?.stop();
      return;
    default:
      void request(m);
  }
};
