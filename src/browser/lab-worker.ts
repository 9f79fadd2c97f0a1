/**
 * The storage lab in the machine's worker: the same guest script, variants, workloads and
 * collector as `storvm bench` (src/lab), on browser storage. /dev/vda (blk-raw) is a sparse memory
 * disk, as in Node. Beside it are the browser's own raw disks (plan.ts BROWSER_VARIANTS), found by
 * serial: blk-opfs, a persistent OPFS disk, and blk-http, a lazily fetched image (HttpDisk over
 * chunk files, no chunk cache, so every first read of a chunk goes over the network) under a
 * memory copy-on-write layer. The share behind the 9p and virtio-fs variants is a MemFs or a
 * DirectoryHandleFs over an OPFS folder. The ext4 disk is the committed blank image in memory, as
 * in Node. The control files (run.sh, labio, the tarball) are appended to the initramfs rather
 * than shared, because the board has eight virtio slots and the two disks take the last. The untar workload unpacks a generated tree (the page has no source tree to archive),
 * so that row differs from Node's.
 */
import type { BlockBackend } from '../backends/block/backend.js';
import { MemoryDisk } from '../backends/block/memory-disk.js';
import { OverlayDisk } from '../backends/block/overlay-disk.js';
import type { FsBackend } from '../backends/fs/backend.js';
import { MemFs } from '../backends/fs/mem-fs.js';
import { VirtioBlk } from '../devices/blk/device.js';
import { VirtioFs } from '../devices/fs/device.js';
import { Virtio9p } from '../devices/p9/device.js';
import { LabCollector, visibleMarkers } from '../lab/collector.js';
import { appendToInitramfs, cpioArchive } from '../lab/cpio.js';
import { BROWSER_VARIANTS, VIRTIOFS_VARIANTS } from '../lab/plan.js';
import type { BenchReport } from '../lab/report.js';
import { labRawBytes, labSetup } from '../lab/setup.js';
import { sparseDisk } from '../lab/sparse.js';
import { tarEntries } from '../lab/tar.js';
import { Machine } from '../machine/machine.js';
import { DirectoryHandleFs, type DirHandleLike } from './dir-fs.js';
import { browserHost } from './host.js';
import { HttpDisk } from './http-disk.js';
import { gunzipBytes, loadInitrd, loadKernel, readAll } from './images.js';
import { openOpfsDisk } from './opfs.js';
import type { LabMessage, ProgressInfo, WorkerMessage } from './protocol.js';
import { listShare, readFile } from './share.js';

/** A generated source-like tree: 8 directories of 24 text files, 200 B to 12 KiB, the same every run. */
function labTree(): ReturnType<typeof tarEntries> {
  const list: Array<{ path: string; data?: Uint8Array }> = [{ path: 'src/' }];
  let x = 7;
  const te = new TextEncoder();
  for (let d = 0; d < 8; d++) {
    list.push({ path: `src/dir${d}/` });
    for (let f = 0; f < 24; f++) {
      x = (x * 1103515245 + 12345) >>> 0;
      const n = 200 + (x % 12_000);
      const line = `// storvm lab file ${d}/${f}: generated text to unpack\n`;
      list.push({ path: `src/dir${d}/file${f}.ts`, data: te.encode(line.repeat(Math.ceil(n / line.length)).slice(0, n)) });
    }
  }
  return tarEntries(list);
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  const first = needle[0]!;
  for (let i = hay.indexOf(first); i >= 0 && i + needle.length <= hay.length; i = hay.indexOf(first, i + 1)) {
    let k = 1;
    while (k < needle.length && hay[i + k] === needle[k]) k++;
    if (k === needle.length) return true;
  }
  return false;
}

function diskContains(disk: BlockBackend, needle: Uint8Array): boolean {
  const piece = 1 << 20;
  const buf = new Uint8Array(piece + needle.length);
  for (let at = 0; at < disk.size; at += piece) {
    const n = Math.min(buf.length, disk.size - at);
    void disk.read(at, buf.subarray(0, n)); // a MemoryDisk answers at once
    if (contains(buf.subarray(0, n), needle)) return true;
  }
  return false;
}

async function shareContains(fs: FsBackend, path: string, marker: string): Promise<boolean> {
  try {
    return new TextDecoder().decode(await readFile(fs, path)).includes(marker);
  } catch {
    return false;
  }
}

async function clearedOpfsDir(name: string): Promise<DirHandleLike> {
  const root = await navigator.storage.getDirectory();
  const lab = await root.getDirectoryHandle('storvm-lab', { create: true });
  await lab.removeEntry(name, { recursive: true }).catch(() => {});
  return (await lab.getDirectoryHandle(name, { create: true })) as unknown as DirHandleLike;
}

/** Runs the lab; progress and the report go to the page through `post`. */
export async function runLab(m: LabMessage, post: (msg: WorkerMessage) => void): Promise<BenchReport> {
  const closers: Array<() => void> = [];
  try {
    return await labRun(m, post, closers);
  } finally {
    for (const c of closers) c();
  }
}

async function labRun(m: LabMessage, post: (msg: WorkerMessage) => void, closers: Array<() => void>): Promise<BenchReport> {
  const t0 = performance.now();
  const progress = (info: ProgressInfo) => post({ type: 'progress', info });
  const tar = labTree();
  const wanted = (id: string) => m.variants === undefined || m.variants.includes(id);
  const rawBytes0 = labRawBytes(m.sizeMiB);
  const unavailable: Record<string, string> = {};
  const extra: VirtioBlk[] = [];
  let opfsBytes = () => 0;
  const [opfsVariant, httpVariant] = BROWSER_VARIANTS;
  // The browser's own raw disks. One that can't be had here is n/a, with the reason.
  if (wanted(opfsVariant!.id)) {
    try {
      const d = await openOpfsDisk('storvm-lab-raw', { size: rawBytes0, reset: true });
      closers.push(() => d.close());
      if (!d.writable) throw new Error('the lab disk is open in another tab');
      extra.push(new VirtioBlk(d.disk, { serial: opfsVariant!.serial! }));
      opfsBytes = () => d.store?.dataBytes ?? 0;
    } catch (e) {
      unavailable[opfsVariant!.id] = `no OPFS disk here: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  let http: HttpDisk | undefined;
  if (wanted(httpVariant!.id)) {
    if (m.httpImage === undefined) unavailable[httpVariant!.id] = 'no lazily fetched image was given (httpImage)';
    else {
      try {
        http = await HttpDisk.open({ manifestUrl: m.httpImage });
        if (http.size < rawBytes0) throw new Error(`the image is ${http.size} bytes; this run needs ${rawBytes0} (at most ${Math.floor(http.size / 1048576) - 1} MiB)`);
        extra.push(new VirtioBlk(new OverlayDisk(http), { serial: httpVariant!.serial! }));
      } catch (e) {
        http = undefined;
        unavailable[httpVariant!.id] = `${m.httpImage}: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
  }
  const { setup, script } = labSetup({
    sizeMiB: m.sizeMiB,
    files: m.files,
    ...(m.variants ? { variants: m.variants } : {}),
    browser: true,
    unavailable,
    tar: { entries: tar.entries, bytes: tar.bytes.length },
    tag: [...crypto.getRandomValues(new Uint8Array(6))].map((b) => b.toString(16).padStart(2, '0')).join(''),
    version: m.version,
  });
  const ramBytes = setup.memoryMiB * 2 ** 20;
  const kernel = await loadKernel(m.kernel, m.maxImageBytes, ramBytes, progress);
  const initrd = await loadInitrd(m.initrd, m.maxImageBytes, ramBytes, progress);
  const labio = await readAll(m.labio, 'labio', 'labio', 16 << 20, progress);
  const ext4Gz = await readAll(m.ext4, 'ext4', 'lab-ext4.sparse.gz', 16 << 20, progress);
  const ext4 = sparseDisk(gunzipBytes(ext4Gz, 'ext4', 'lab-ext4.sparse.gz', 64 << 20, progress));

  const te = new TextEncoder();
  const raw = new MemoryDisk(setup.rawBytes);
  const share: FsBackend = m.share === 'opfs' ? await DirectoryHandleFs.open(await clearedOpfsDir('bench')) : new MemFs({ capacity: 2 ** 31 });
  // The control files (storvm bench's read-only "lab" share) come in the initramfs: a ninth
  // virtio device would not fit the board's eight slots.
  const control = cpioArchive([
    { path: 'mnt/' },
    { path: 'mnt/lab/' },
    { path: 'mnt/lab/run.sh', data: te.encode(script), mode: 0o444 },
    { path: 'mnt/lab/labio', data: labio, mode: 0o555 },
    { path: 'mnt/lab/src.tar', data: tar.bytes, mode: 0o444 },
  ]);
  const devices = [
    new VirtioBlk(raw, { serial: 'storvm-lab-raw' }),
    new VirtioBlk(ext4, { serial: 'storvm-lab-ext4' }),
    new Virtio9p(share, { tag: 'bench' }),
    ...VIRTIOFS_VARIANTS.map((v) => new VirtioFs(share, { tag: v.id, cache: v.fuseCache! })),
    ...extra,
  ];
  let machine: Machine | undefined;
  let step = 0;
  const lab: LabCollector = new LabCollector(setup, {
    begin: (what) => post({ type: 'lab-step', step: what, index: ++step, total: lab.cells.size + 2 }),
    probe: (name) => {
      void (async () => {
        const files = await listShare(share).catch(() => []);
        lab.sample(name, {
          raw: raw.allocatedBytes,
          ext4: ext4.allocatedBytes,
          share: files.reduce((n, f) => n + (f.type === 'file' ? Math.ceil(f.size / 4096) * 4096 : 0), 0),
          vis: await visibleMarkers(setup.markers, (file, marker) => shareContains(share, file, marker), (marker) => diskContains(ext4, te.encode(marker))),
        });
        machine?.input(te.encode('\n'));
      })();
    },
  });
  post({ type: 'lab-step', step: 'booting', index: 0, total: lab.cells.size + 2 });
  machine = new Machine({ memoryMiB: setup.memoryMiB, kernel, initrd: appendToInitramfs(initrd, control), bootargs: setup.bootargs, devices, cpu: m.cpu, host: browserHost(), onConsole: (bytes) => lab.feed(bytes) });
  const r = await machine.run();
  const guestError = r.reason !== 'poweroff' || r.exitCode !== 0 ? `the guest ${r.reason === 'stopped' ? 'was stopped' : `exited with status ${r.exitCode}`}` : undefined;
  const report = lab.finish(guestError, (performance.now() - t0) / 1000);
  (report as BenchReport & { browser?: unknown }).browser = {
    share: m.share,
    userAgent: navigator.userAgent,
    // What the browser's disks held at the end, and what the lazy one fetched.
    opfsDiskBytes: opfsBytes(),
    ...(http !== undefined ? { httpImage: m.httpImage, httpChunksFetched: http.fetched, httpChunkBytes: http.chunkSize } : {}),
  };
  return report;
}
