/**
 * The storvm demo page: boots the default guest at once, with an xterm.js console, a MemFs share
 * at /mnt/host that takes dropped files and folders and gives back what the guest writes, disks
 * attached by URL or from a local file, and `?cmd=…` lesson links. Everything that goes wrong is
 * one line in the red bar; the guest that is running keeps running.
 *
 * Tests drive the page through `window.storvmDemo` (see test/browser/).
 */
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { forgetFolder, indexedDbHandles, recallFolder, regainFolder, rememberFolder, startVm, type FolderRecall, type ShareEntry, type Vm, type VmDiskOptions, type VmExit } from '../src/browser/index.js';
import { DEFAULT_CPU, type CpuEngine } from '../src/riscv/engine.js';
import { setupLab } from './lab-view.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const statusEl = $('status');
const bootTimeEl = $('boot-time');
const errorEl = $('error');
const errorText = $('error-text');
const progressBar = $('progress-bar');
const filesEl = $('files');
const disksEl = $('disks');

const params = new URLSearchParams(location.search);
const lessonCmd = params.get('cmd');
const memoryMiB = Number(params.get('mem') ?? 256);
const maxImageMiB = Number(params.get('maximg') ?? 1024);
const cpu = (params.get('cpu') ?? DEFAULT_CPU) as CpuEngine;
/** `?bootcache=0` boots every time instead of restoring the booted guest from OPFS. */
const bootCache = params.get('bootcache') !== '0';
/** `?snapshot=URL`: "instant boot", the page starts from a saved machine instead of booting. */
const snapshotUrl = params.get('snapshot');
/** `?keepfs=virtiofs` serves /mnt/keep over virtio-fs instead of 9p. */
const keepDevice: '9p' | 'virtiofs' = params.get('keepfs') === 'virtiofs' ? 'virtiofs' : '9p';

const term = new Terminal({ convertEol: false, cursorBlink: true, scrollback: 5000, fontSize: 14, theme: { background: '#101216' } });
const fit = new FitAddon();
term.loadAddon(fit);
term.open($('terminal'));
fit.fit();
addEventListener('resize', () => fit.fit());
new ResizeObserver(() => fit.fit()).observe($('terminal'));
// Copy and paste: Ctrl+Shift+C / Ctrl+Shift+V (plain Ctrl+C is the guest's interrupt).
term.attachCustomKeyEventHandler((e) => {
  if (e.type !== 'keydown' || !e.ctrlKey || !e.shiftKey) return true;
  if (e.code === 'KeyC') {
    const sel = term.getSelection();
    if (sel) void navigator.clipboard?.writeText(sel).catch(() => {});
    return false;
  }
  if (e.code === 'KeyV') {
    void navigator.clipboard?.readText().then((t) => vm?.write(t), () => showError('the browser did not allow reading the clipboard'));
    return false;
  }
  return true;
});
term.onData((d) => vm?.write(d));

/** What the tests read: the console transcript, the boot time, the running VM. */
interface DemoState {
  vm: Vm | undefined;
  console: string;
  booted: boolean;
  bootMs: number | undefined;
  /** performance.now() at the first prompt: ms since the page started loading. */
  promptAt: number | undefined;
  boots: number;
  exit: VmExit | undefined;
  errors: string[];
}
const state: DemoState = { vm: undefined, console: '', booted: false, bootMs: undefined, promptAt: undefined, boots: 0, exit: undefined, errors: [] };
(window as unknown as { storvmDemo: unknown }).storvmDemo = {
  state,
  boot: () => boot(),
  attachDisk: (d: VmDiskOptions) => attachDisk(d),
  putFiles: (files: Array<{ path: string; data: Blob }>, share = 0) => ((currentShare = share), putFiles(files)),
  /** Shares a folder handle at /mnt/folder (as the picker would), remembers it, and reboots; undefined forgets it. */
  shareFolder: (h: FileSystemDirectoryHandle | undefined) => shareFolder(h),
  /** What became of the folder remembered from before the reload. */
  folder: () => folderRecall,
  terminal: () => ({ cols: term.cols, rows: term.rows }),
  selectAll: () => term.selectAll(),
  detach: (i: number) => detachDisk(i),
  /** Ends the machine's worker at once, like closing the tab (for the crash tests). */
  kill: () => vm?.kill(),
  saveState: () => saveState(),
  resumeSaved: () => resumeSaved(),
  hasSavedState: () => hasSavedState(),
  stateBlob: () => stateBlob(),
  resumeFrom: (snap: Blob | Uint8Array | string) => boot({ snapshot: snap }),
};

let vm: Vm | undefined;
/** The share the files panel shows and drops into (0: /mnt/host). */
let currentShare = 0;
/** /mnt/keep, kept in OPFS (DirectoryHandleFs), unless the visitor turned it off. */
const KEEP = 'storvm-demo-keep-share';
let keepShare = localStorage.getItem(KEEP) !== 'off';
/** A folder the visitor shared with showDirectoryPicker(), remembered across reloads in IndexedDB. */
let folder: FileSystemDirectoryHandle | undefined;
const folderStore = indexedDbHandles();
let folderRecall: FolderRecall = { state: 'none' };
/** Disks that can be remembered across reloads (URLs and persistent disks) are kept in localStorage. */
const SAVED = 'storvm-demo-disks';
const disks: VmDiskOptions[] = loadSavedDisks();

function loadSavedDisks(): VmDiskOptions[] {
  try {
    const list = JSON.parse(localStorage.getItem(SAVED) ?? '[]') as VmDiskOptions[];
    return Array.isArray(list) ? list.filter((d) => typeof d === 'object' && d !== null && (typeof d.source === 'string' || d.persist !== undefined)) : [];
  } catch {
    return [];
  }
}

function saveDisks(): void {
  const keep = disks.filter((d) => d.source === undefined || typeof d.source === 'string');
  try {
    localStorage.setItem(SAVED, JSON.stringify(keep.map((d) => ({ ...d, persist: typeof d.persist === 'object' ? { ...d.persist, reset: undefined } : d.persist }))));
  } catch {
    // storage refused: the disks are not remembered
  }
}
let generation = 0;

function showError(msg: string): void {
  state.errors.push(msg);
  errorText.textContent = msg;
  errorEl.hidden = false;
}
$('error-close').addEventListener('click', () => (errorEl.hidden = true));

function mib(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

const decoder = new TextDecoder();

/** Boots with the current disks; the share's files are carried over from the VM that runs now.
 *  Resolves false (with the error shown) when the new machine could not start: the old one runs on. */
async function boot(from: { snapshot?: Blob | Uint8Array | string } = {}): Promise<boolean> {
  const attempt = ++generation;
  const old = vm;
  const snapshot = from.snapshot;
  let carried: Array<{ path: string; data: Uint8Array }> = [];
  if (old && !state.exit && snapshot === undefined) {
    try {
      const share = old.shares[0]!;
      const entries = (await share.list()).filter((e) => e.type === 'file');
      for (const e of entries) carried.push({ path: e.path, data: await share.read(e.path) });
    } catch (e) {
      showError(`the share's files could not be carried over: ${(e as Error).message}`);
      carried = [];
    }
  }
  // A persistent disk has one writer: the machine that runs now lets go of it first.
  if (old && !state.exit && disks.some((d) => d.persist !== undefined)) {
    statusEl.textContent = 'stopping the running guest…';
    await old.stop();
    state.exit = { reason: 'stopped', exitCode: 0, instructions: 0 };
  }
  statusEl.textContent = 'loading images…';
  progressBar.style.width = '0';
  const t0 = performance.now();
  let tail = '';
  let booted = false;
  let transcript = '';
  // Console bytes that arrive before this machine replaces the old one wait here.
  let adopted = false;
  const early: Uint8Array[] = [];
  let next: Vm;
  const onConsole = (bytes: Uint8Array): void => {
    if (!adopted) {
      early.push(bytes);
      return;
    }
    term.write(bytes);
    const text = decoder.decode(bytes, { stream: true });
    transcript += text;
    if (transcript.length > 4_000_000) transcript = transcript.slice(-2_000_000);
    state.console = transcript;
    if (!booted) {
      tail = (tail + text).slice(-256);
      if (/~ # /.test(tail)) {
        booted = true;
        state.booted = true;
        state.bootMs = performance.now() - t0;
        state.promptAt ??= performance.now();
        statusEl.textContent = 'running';
        bootTimeEl.textContent = `booted to a shell in ${(state.bootMs / 1000).toFixed(2)} s${next.bootCache === 'hit' ? ' (from the boot cache)' : ''}`;
        bootTimeEl.hidden = false;
        if (lessonCmd && state.boots === 1) next.write(lessonCmd + '\n');
        void refreshFiles();
      }
    }
  };
  try {
    next = await startVm({
      memoryMiB,
      maxImageMiB,
      cpu,
      disks,
      shares: [{ tag: 'host', files: carried }, ...(keepShare ? [{ tag: 'keep', persist: 'keep', device: keepDevice }] : []), ...(folder ? [{ tag: 'folder', directory: folder }] : [])],
      onClaim: async () => {
        // A kept share has one machine at a time: the one that runs now lets go of it.
        if (old && !state.exit && attempt === generation) {
          statusEl.textContent = 'stopping the running guest…';
          await old.stop();
          state.exit = { reason: 'stopped', exitCode: 0, instructions: 0 };
        }
      },
      verbose: true,
      bootCache,
      ...(snapshot !== undefined ? { snapshot } : {}),
      onProgress: (p) => {
        if (attempt !== generation) return;
        const total = p.total ? ` / ${mib(p.total)}` : '';
        statusEl.textContent = `${p.what}: ${p.phase === 'ready' ? 'ready' : `${p.phase} ${mib(p.bytes)}${total}`}`;
        if (p.total) progressBar.style.width = `${Math.min(100, (100 * p.bytes) / p.total)}%`;
      },
      onConsole,
      onDiskError: (i, message) => {
        if (adopted) showError(`/dev/vd${String.fromCharCode(97 + i)}: ${message}`);
      },
    });
  } catch (e) {
    if (attempt === generation) {
      statusEl.textContent = vm && !state.exit ? 'running' : 'not running';
      progressBar.style.width = '100%';
    }
    showError((e as Error).message);
    return false;
  }
  if (attempt !== generation) {
    void next.stop();
    return false;
  }
  if (old) await old.stop();
  vm = next;
  state.vm = next;
  state.boots++;
  state.booted = false;
  state.bootMs = undefined;
  state.exit = undefined;
  state.console = '';
  bootTimeEl.hidden = true;
  term.reset();
  statusEl.textContent = 'booting…';
  progressBar.style.width = '100%';
  renderDisks();
  renderShares();
  void showStorage();
  adopted = true;
  if (snapshot !== undefined) {
    // A restored guest prints nothing until it is asked: it is at the point where it was saved.
    booted = true;
    state.booted = true;
    state.bootMs = performance.now() - t0;
    state.promptAt ??= performance.now();
    statusEl.textContent = 'running (resumed from a saved state)';
    bootTimeEl.textContent = `resumed in ${(state.bootMs / 1000).toFixed(2)} s`;
    bootTimeEl.hidden = false;
    term.write('\x1b[2m[resumed from a saved state: the guest goes on where it was]\x1b[0m\r\n');
    void refreshFiles();
  }
  for (const b of early.splice(0)) onConsole(b);
  next.onExit((exit) => {
    if (vm !== next) return;
    state.exit = exit;
    statusEl.textContent =
      exit.reason === 'crashed' ? `the machine crashed: ${exit.message ?? ''}` : `the guest ${exit.reason === 'stopped' ? 'was stopped' : 'powered off'} (status ${exit.exitCode})`;
    if (exit.reason === 'crashed') showError(statusEl.textContent);
  });
  return true;
}

function renderShares(): void {
  const pick = $<HTMLSelectElement>('share-pick');
  const list = vm?.shares ?? [];
  if (currentShare >= list.length) currentShare = 0;
  pick.replaceChildren(
    ...list.map((s, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = s.mountPoint + (s.persistent ? ' (kept)' : '') + (s.device === 'virtiofs' ? ' virtio-fs' : '') + (s.readOnly ? ' ro' : '');
      return o;
    }),
  );
  pick.value = String(currentShare);
  const note = $('share-note');
  const s = list[currentShare];
  note.textContent = s?.note ?? '';
  note.hidden = !s?.note;
}
$<HTMLSelectElement>('share-pick').addEventListener('change', (e) => {
  currentShare = Number((e.target as HTMLSelectElement).value);
  renderShares();
  void refreshFiles();
});
$<HTMLInputElement>('keep-share').checked = keepShare;
$<HTMLInputElement>('keep-share').addEventListener('change', (e) => {
  keepShare = (e.target as HTMLInputElement).checked;
  try {
    localStorage.setItem(KEEP, keepShare ? 'on' : 'off');
  } catch {
    // not remembered
  }
  void boot();
});
const picker = (window as unknown as { showDirectoryPicker?: (o?: { mode?: string }) => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker;
$('share-folder').hidden = picker === undefined;
$('share-folder').addEventListener('click', () => {
  void picker?.({ mode: 'readwrite' }).then(
    (h) => void shareFolder(h),
    (e: Error) => {
      if (e.name !== 'AbortError') showError(`the folder could not be shared: ${e.message}`);
    },
  );
});

/** Shares `h` at /mnt/folder and remembers it (or forgets the folder), then reboots. */
async function shareFolder(h: FileSystemDirectoryHandle | undefined): Promise<boolean> {
  folder = h;
  folderRecall = h ? { state: 'ready', handle: h } : { state: 'none' };
  try {
    await (h ? rememberFolder(h, folderStore) : forgetFolder(folderStore));
  } catch (e) {
    showError(`the folder will not be remembered after a reload: ${(e as Error).message}`);
  }
  renderFolder();
  return boot();
}

/** What the page says about the folder remembered from before: gone, refused, or needing a yes. */
function renderFolder(): void {
  const r = folderRecall;
  const msg = r.state === 'none' || r.state === 'ready' ? '' : r.message;
  $('folder-note').textContent = msg;
  $('folder-row').hidden = msg === '';
  $('folder-again').hidden = r.state !== 'ask' && r.state !== 'denied';
  if (r.state === 'ask' || r.state === 'denied') $('folder-again').textContent = `allow ${r.handle.name} again`;
  $('folder-forget').hidden = msg === '';
}

/** The folder shared before the reload: used at once when the browser still grants it. */
async function recallSharedFolder(): Promise<void> {
  folderRecall = await recallFolder(folderStore).catch((e: Error): FolderRecall => ({ state: 'gone', name: '', message: e.message }));
  if (folderRecall.state === 'ready') folder = folderRecall.handle;
  renderFolder();
}
$('folder-again').addEventListener('click', () => {
  const r = folderRecall;
  if (r.state !== 'ask' && r.state !== 'denied') return;
  // A click is the user gesture requestPermission needs.
  void regainFolder(r.handle).then((again) => {
    folderRecall = again;
    renderFolder();
    if (again.state === 'ready') {
      folder = again.handle;
      void boot();
    }
  });
});
$('folder-forget').addEventListener('click', () => void forgetFolder(folderStore).then(() => ((folderRecall = { state: 'none' }), renderFolder())));

async function refreshFiles(): Promise<void> {
  const share = vm?.shares[currentShare];
  if (!share || state.exit) return;
  let entries: ShareEntry[];
  try {
    entries = await share.list();
  } catch {
    return;
  }
  filesEl.replaceChildren(
    ...entries.map((e) => {
      const li = document.createElement('li');
      li.dataset.path = e.path;
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = e.type === 'dir' ? `${e.path}/` : e.path;
      li.append(name);
      if (e.type === 'file') {
        const size = document.createElement('span');
        size.className = 'size';
        size.textContent = mib(e.size);
        li.append(size, button('download', 'download', `download ${e.path}`, () => void downloadFile(e.path)));
      }
      return li;
    }),
  );
}
$('refresh').addEventListener('click', () => void refreshFiles());
setInterval(() => {
  if (state.booted) void refreshFiles();
}, 3000);

function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function downloadFile(path: string): Promise<void> {
  try {
    const bytes = await vm!.shares[currentShare]!.read(path);
    saveBlob(new Blob([bytes as Uint8Array<ArrayBuffer>]), path.split('/').pop()!);
  } catch (e) {
    showError((e as Error).message);
  }
}

async function putFiles(files: Array<{ path: string; data: Blob }>): Promise<void> {
  if (files.length === 0) return;
  if (!vm) return showError('the guest is not running yet; drop the files again once it is');
  try {
    const share = vm.shares[currentShare]!;
    const n = await share.put(files);
    statusEl.textContent = `added ${n} file${n === 1 ? '' : 's'} to ${share.mountPoint}`;
  } catch (e) {
    showError((e as Error).message);
  }
  void refreshFiles();
}

// Drag and drop, with folders walked through the entry API.
async function entryFiles(entry: FileSystemEntry, prefix: string, out: Array<{ path: string; data: Blob }>): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
    out.push({ path: prefix + entry.name, data: file });
  } else if (entry.isDirectory) {
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    for (;;) {
      const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
      if (batch.length === 0) break;
      for (const e of batch) await entryFiles(e, `${prefix}${entry.name}/`, out);
    }
  }
}
const drop = $('drop');
for (const target of [drop, document.body]) {
  target.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
}
document.body.addEventListener('dragleave', () => drop.classList.remove('over'));
document.body.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const dt = e.dataTransfer;
  if (!dt) return;
  const entries = [...dt.items].map((i) => i.webkitGetAsEntry?.()).filter((x): x is FileSystemEntry => !!x);
  void (async () => {
    const files: Array<{ path: string; data: Blob }> = [];
    try {
      if (entries.length > 0) for (const en of entries) await entryFiles(en, '', files);
      else for (const f of dt.files) files.push({ path: f.name, data: f });
    } catch (err) {
      showError(`a dropped item could not be read: ${(err as Error).message}`);
    }
    await putFiles(files);
  })();
});
$<HTMLInputElement>('pick-files').addEventListener('change', (e) => {
  const input = e.target as HTMLInputElement;
  void putFiles([...(input.files ?? [])].map((f) => ({ path: f.name, data: f })));
  input.value = '';
});
$<HTMLInputElement>('pick-folder').addEventListener('change', (e) => {
  const input = e.target as HTMLInputElement;
  void putFiles([...(input.files ?? [])].map((f) => ({ path: f.webkitRelativePath || f.name, data: f })));
  input.value = '';
});

function button(text: string, className: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.title = title;
  b.addEventListener('click', onClick);
  return b;
}

// Disks.
function renderDisks(): void {
  const list = vm?.disks ?? [];
  disksEl.replaceChildren(
    ...list.map((d, i) => {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = `${d.device}: ${d.name}`;
      name.title = d.name;
      const size = document.createElement('span');
      size.className = 'size';
      size.textContent = `${mib(d.size)} ${d.format}${d.readOnly ? ' ro' : ''}`;
      if (d.note) size.title = d.note;
      li.append(
        name,
        size,
        button('download', 'download', 'the disk as the guest sees it now, raw', () => void downloadDisk(i, 'raw')),
        button('qcow2', 'download-qcow2', 'the same as a qcow2 image (zeros take no space)', () => void downloadDisk(i, 'qcow2')),
      );
      if (d.persistent && !d.readOnly) li.append(button('forget changes', 'forget', 'drop what the guest wrote (kept in this browser) and reboot', () => void forgetChanges(i)));
      li.append(button('×', 'detach', 'detach and reboot (a persistent disk stays stored)', () => void detachDisk(i)));
      if (d.note) {
        const note = document.createElement('div');
        note.className = 'hint note';
        note.textContent = d.note;
        li.append(note);
      }
      return li;
    }),
  );
  if (list.length === 0) {
    const li = document.createElement('li');
    li.className = 'hint';
    li.textContent = 'no disks attached';
    disksEl.append(li);
  }
}

async function downloadDisk(i: number, format: 'raw' | 'qcow2'): Promise<void> {
  const d = vm?.disks[i];
  if (!d) return;
  try {
    statusEl.textContent = `exporting ${d.device}…`;
    const blob = await d.exportBlob(undefined, format);
    const base = (d.name.split('/').pop() ?? 'disk').replace(/\.(gz|qcow2)$/, '').replace(/\.img$/, '');
    saveBlob(blob, `${base}.${format === 'qcow2' ? 'qcow2' : 'img'}`);
    statusEl.textContent = `exported ${d.device} (${mib(blob.size)})`;
  } catch (e) {
    showError(`export of ${d.device} failed: ${(e as Error).message}`);
  }
}

async function attachDisk(d: VmDiskOptions): Promise<boolean> {
  disks.push(d);
  const ok = await boot();
  if (!ok) disks.pop();
  else {
    // An imported disk stands alone from now on: no source, no second import.
    const p = d.persist;
    if (typeof p === 'object' && p.import) disks[disks.length - 1] = { persist: { name: p.name, size: vm!.disks[disks.length - 1]!.size }, name: d.name ?? p.name };
    saveDisks();
  }
  return ok;
}

/** A name for the persistent copy of an image: its file name, made safe, plus a short hash of the source. */
function persistName(source: string | File): string {
  const label = typeof source === 'string' ? source : `${source.name}:${source.size}:${source.lastModified}`;
  let h = 2166136261;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 16777619) >>> 0;
  const base = (typeof source === 'string' ? source.split('/').pop() ?? 'disk' : source.name).replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 48) || 'disk';
  return `${base}-${h.toString(16)}`;
}

async function forgetChanges(i: number): Promise<void> {
  const d = disks[i];
  if (!d?.persist) return;
  const name = typeof d.persist === 'string' ? d.persist : d.persist.name;
  const size = typeof d.persist === 'string' ? undefined : d.persist.size;
  disks[i] = { ...d, persist: { name, ...(size ? { size } : {}), reset: true } };
  await boot();
  disks[i] = { ...d, persist: { name, ...(size ? { size } : {}) } };
}

async function detachDisk(i: number): Promise<void> {
  const [removed] = disks.splice(i, 1);
  if (!(await boot()) && removed) disks.splice(i, 0, removed);
  else saveDisks();
}

async function showStorage(): Promise<void> {
  const el = $('storage');
  const st = navigator.storage;
  if (!st?.estimate) {
    el.textContent = 'this browser does not report its storage';
    return;
  }
  const [est, persisted] = await Promise.all([st.estimate(), st.persisted?.() ?? Promise.resolve(false)]);
  el.textContent = `browser storage: ${mib(est.usage ?? 0)} used of ${mib(est.quota ?? 0)}; ${persisted ? 'kept by the browser' : 'may be cleared by the browser under pressure'}`;
  $('persist-storage').hidden = persisted;
}
$('persist-storage').addEventListener('click', () => {
  void navigator.storage
    .persist()
    .then((ok) => (ok ? showStorage() : showError('the browser declined to keep this storage (it decides by how much the site is used)')));
});
$('blank-disk').addEventListener('click', () => {
  const n = disks.filter((d) => d.source === undefined).length;
  void attachDisk({ persist: { name: n === 0 ? 'scratch' : `scratch${n}`, size: 1 << 30 } });
});

$<HTMLFormElement>('attach').addEventListener('submit', (e) => {
  e.preventDefault();
  const url = $<HTMLInputElement>('disk-url').value.trim();
  const file = $<HTMLInputElement>('disk-file').files?.[0];
  const readOnly = $<HTMLInputElement>('disk-ro').checked;
  if (!url && !file) return showError('give an image URL or pick a file to attach');
  // A local file can't be picked again by itself after a reload, so it is copied into the browser;
  // a URL stays the base of an overlay that is kept.
  const keep = $<HTMLInputElement>('disk-persist').checked && !readOnly;
  const persist = keep ? (file ? { persist: { name: persistName(file), import: true } } : { persist: persistName(url) }) : {};
  const lazy = !file && $<HTMLInputElement>('disk-lazy').checked ? { lazy: true } : {};
  void attachDisk(file ? { source: file, readOnly, name: file.name, ...persist } : { source: url, readOnly, ...persist, ...lazy }).then((ok) => {
    if (ok) {
      $<HTMLInputElement>('disk-url').value = '';
      $<HTMLInputElement>('disk-file').value = '';
    }
  });
});
$('reboot').addEventListener('click', () => void boot());

const lab = setupLab(showError);
(window as unknown as { storvmDemo: { lab: unknown } }).storvmDemo.lab = lab;

renderDisks();
void recallSharedFolder().finally(() => boot(snapshotUrl ? { snapshot: new URL(snapshotUrl, location.href).href } : {}));

// ---- saved states (snapshots): kept in OPFS, downloaded, uploaded, or fetched from ?snapshot=

const STATE_FILE = 'storvm-state.snap';

async function stateDir(): Promise<FileSystemDirectoryHandle> {
  if (!navigator.storage?.getDirectory) throw new Error('this browser has no Origin Private File System to keep a saved state in');
  return navigator.storage.getDirectory();
}

async function hasSavedState(): Promise<boolean> {
  try {
    await (await stateDir()).getFileHandle(STATE_FILE);
    return true;
  } catch {
    return false;
  }
}

/** Saves the running machine to OPFS; resolves to its size in bytes. */
async function saveState(): Promise<number> {
  if (!vm || state.exit) throw new Error('no machine is running');
  statusEl.textContent = 'saving the state…';
  const bytes = await vm.save();
  const handle = await (await stateDir()).getFileHandle(STATE_FILE, { create: true });
  const w = await handle.createWritable();
  await w.write(bytes as Uint8Array<ArrayBuffer>);
  await w.close();
  statusEl.textContent = `running (state saved, ${mib(bytes.length)})`;
  void renderStateButtons();
  return bytes.length;
}

async function stateBlob(): Promise<Blob> {
  if (!vm || state.exit) throw new Error('no machine is running');
  return new Blob([(await vm.save()) as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' });
}

async function resumeSaved(): Promise<boolean> {
  let file: File;
  try {
    file = await (await (await stateDir()).getFileHandle(STATE_FILE)).getFile();
  } catch {
    showError('there is no saved state in this browser');
    return false;
  }
  return boot({ snapshot: file });
}

async function renderStateButtons(): Promise<void> {
  $('resume-state').hidden = !(await hasSavedState());
}

const guard = (p: Promise<unknown>) => void p.catch((e: unknown) => showError((e as Error).message));
$('save-state').addEventListener('click', () => guard(saveState()));
$('resume-state').addEventListener('click', () => guard(resumeSaved()));
$('download-state').addEventListener('click', () =>
  guard(
    stateBlob().then((blob) => saveBlob(blob, 'storvm-state.snap')),
  ),
);
$<HTMLInputElement>('upload-state').addEventListener('change', (e) => {
  const f = (e.target as HTMLInputElement).files?.[0];
  if (f) guard(boot({ snapshot: f }));
  (e.target as HTMLInputElement).value = '';
});
void renderStateButtons();
