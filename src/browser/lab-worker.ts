/**
 * The storage lab in the machine's worker: the same guest script, variants, workloads and
 * collector as `storvm bench` (src/lab), on browser storage. /dev/vda (the raw disk) is a sparse
 * memory disk or a persistent OPFS disk; the share behind the 9p and virtio-fs variants is a MemFs
 * or a DirectoryHandleFs over an OPFS folder. The ext4 disk is the committed blank image in
 * memory, as in Node. The untar workload unpacks a generated tree (the page has no source tree to
 * archive), so that row differs from Node's.
 */
import type { BlockBackend } from '../backends/block/backend.js';
import { MemoryDisk } from '../backends/block/memory-disk.js';
import type { PersistentOverlayDisk } from '../backends/block/persistent-overlay.js';
import type { FsBackend } from '../backends/fs/backend.js';
import { MemFs } from '../backends/fs/mem-fs.js';
import { VirtioBlk } from '../devices/blk/device.js';
import { VirtioFs } from '../devices/fs/device.js';
import { Virtio9p } from '../devices/p9/device.js';
import { LabCollector } from '../lab/collector.js';
import { VIRTIOFS_VARIANTS } from '../lab/plan.js';
import type { BenchReport } from '../lab/report.js';
import { labSetup } from '../lab/setup.js';
import { sparseDisk } from '../lab/sparse.js';
import { tarEntries } from '../lab/tar.js';
import { Machine } from '../machine/machine.js';
import { DirectoryHandleFs, type DirHandleLike } from './dir-fs.js';
import { browserHost } from './host.js';
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
  const t0 = performance.now();
  const progress = (info: ProgressInfo) => post({ type: 'progress', info });
  const tar = labTree();
  const { setup, script } = labSetup({
    sizeMiB: m.sizeMiB,
    files: m.files,
    ...(m.variants ? { variants: m.variants } : {}),
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

  let raw: BlockBackend;
  let rawStore: PersistentOverlayDisk | undefined;
  let closeRaw = () => {};
  if (m.disk === 'opfs') {
    const d = await openOpfsDisk('storvm-lab-raw', { size: setup.rawBytes, reset: true });
    if (!d.writable) throw new Error('the lab disk is open in another tab');
    raw = d.disk;
    rawStore = d.store;
    closeRaw = () => d.close();
  } else raw = new MemoryDisk(setup.rawBytes);
  const rawBytes = () => (raw instanceof MemoryDisk ? raw.allocatedBytes : (rawStore?.dataBytes ?? 0));
  const share: FsBackend = m.share === 'opfs' ? await DirectoryHandleFs.open(await clearedOpfsDir('bench')) : new MemFs({ capacity: 2 ** 31 });
  const control = new MemFs({ tree: { 'run.sh': script, labio: MemFs.file(labio, 0o755), 'src.tar': tar.bytes }, readOnly: true });
  const devices = [
    new VirtioBlk(raw, { serial: 'storvm-lab-raw' }),
    new VirtioBlk(ext4, { serial: 'storvm-lab-ext4' }),
    new Virtio9p(share, { tag: 'bench' }),
    ...VIRTIOFS_VARIANTS.map((v) => new VirtioFs(share, { tag: v.id, cache: v.fuseCache! })),
    new Virtio9p(control, { tag: 'lab' }),
  ];
  let machine: Machine | undefined;
  let step = 0;
  const te = new TextEncoder();
  const lab: LabCollector = new LabCollector(setup, {
    begin: (what) => post({ type: 'lab-step', step: what, index: ++step, total: lab.cells.size + 2 }),
    probe: (name) => {
      void (async () => {
        const files = await listShare(share).catch(() => []);
        lab.sample(name, {
          raw: rawBytes(),
          ext4: ext4.allocatedBytes,
          share: files.reduce((n, f) => n + (f.type === 'file' ? Math.ceil(f.size / 4096) * 4096 : 0), 0),
          vis: {
            '9p-none': await shareContains(share, 'visible-none.txt', setup.markers['9p-none']!),
            '9p-loose': await shareContains(share, 'visible-loose.txt', setup.markers['9p-loose']!),
            'blk-ext4': diskContains(ext4, te.encode(setup.markers['blk-ext4']!)),
            'vfs-auto': await shareContains(share, 'visible-vfs-auto.txt', setup.markers['vfs-auto']!),
            'vfs-always': await shareContains(share, 'visible-vfs-always.txt', setup.markers['vfs-always']!),
          },
        });
        machine?.input(te.encode('\n'));
      })();
    },
  });
  post({ type: 'lab-step', step: 'booting', index: 0, total: lab.cells.size + 2 });
  machine = new Machine({ memoryMiB: setup.memoryMiB, kernel, initrd, bootargs: setup.bootargs, devices, cpu: m.cpu, host: browserHost(), onConsole: (bytes) => lab.feed(bytes) });
  try {
    const r = await machine.run();
    const guestError = r.reason !== 'poweroff' || r.exitCode !== 0 ? `the guest ${r.reason === 'stopped' ? 'was stopped' : `exited with status ${r.exitCode}`}` : undefined;
    const report = lab.finish(guestError, (performance.now() - t0) / 1000);
    (report as BenchReport & { browser?: unknown }).browser = { disk: m.disk, share: m.share, userAgent: navigator.userAgent };
    return report;
  } finally {
    closeRaw();
  }
}
