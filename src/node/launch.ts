/**
 * Builds a Machine from command-line arguments: the default guest (or the given kernel and
 * initramfs), disks as /dev/vda, /dev/vdb… and shares: 9p ones mounted by the guest's init
 * (storvm.share=), virtio-fs ones by a prefix of the guest command, since the committed init
 * knows only 9p.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { gunzip } from 'node:zlib';
import { VirtioBlk } from '../devices/blk/device.js';
import { DEFAULT_CPU, Machine, type MachineOptions, type RestoreOptions } from '../machine/machine.js';
import { Hart } from '../riscv/hart.js';
import type { BlockBackend } from '../backends/block/backend.js';
import { hashBlocks, ReadRecordingDisk } from '../backends/block/read-record.js';
import { bootDir, cacheKey, codeIdentity, decodeEntry, entryPath, type KeyDevice, readEntry, removeEntry, touchEntry, writeEntry } from './boot-cache.js';
import { entryFor } from '../machine/boot-cache-entry.js';
import { CTL_LINE_MAX, ctlLine, EarlyConsole, Handshake, restoredHandshake } from '../machine/boot-handshake.js';
import { storvmVersion } from './version.js';
import type { VirtioDevice } from '../virtio/device.js';
import type { HostFs } from './host-fs.js';
import { nodeCodec, nodeHost } from './host.js';
import type { OpenedImage } from './image-disk.js';
import { UsageError, type MachineArgs } from './options.js';
import { tuneV8ForTranslator } from './v8-tuning.js';

const GUEST_IMAGES = new URL('../../guest-images/', import.meta.url);

/** The Linux kernel command line is at most 1024 bytes on RISC-V (COMMAND_LINE_SIZE). */
const CMDLINE_MAX = 1024;

/** Reads a kernel or initramfs file as it is on disk (synchronously, as readEntry does). */
async function readImageFile(path: string | URL, what: string): Promise<Uint8Array> {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new UsageError(`${what} ${path instanceof URL ? path.pathname : path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (run guest-images/build.sh)' : (e as Error).message}`);
  }
}

/**
 * A file's bytes, gunzipped when they are gzip: the kernel Image (only a cold boot needs it), the
 * default initramfs. On libuv's thread pool, so a cold boot inflates both while the main thread
 * runs the CPU's warm-up (`bootImages`).
 */
function gunzipped(data: Uint8Array, what: string): Promise<Uint8Array> {
  if (data[0] !== 0x1f || data[1] !== 0x8b) return Promise.resolve(data);
  // One output chunk of the size the gzip trailer gives (ISIZE, the size mod 2^32 of a single
  // member): with zlib's default 16 KiB chunks the main thread took 15 ms of callbacks for the
  // kernel. A wrong ISIZE (several members) only means more chunks.
  const isize = data.length >= 18 ? new DataView(data.buffer, data.byteOffset + data.length - 4, 4).getUint32(0, true) : 0;
  const chunkSize = Math.min(Math.max(isize, 1 << 16), 1 << 28);
  return new Promise((resolve, reject) => gunzip(data, { chunkSize }, (e, out) => (e ? reject(new UsageError(`${what}: ${e.message}`)) : resolve(out))));
}

/**
 * The initramfs as the guest gets it. The default one (guest-images/initramfs.cpio.gz, one gzip
 * member) is gunzipped here, so the kernel unpacks a plain cpio archive: inflating its 1.6 MB
 * took the guest about 33 M of a cold boot's 110 M instructions, the host's zlib takes a few
 * milliseconds (bench/README.md, "Start-up"). The kernel reads either form (initramfs may be
 * compressed or not) and unpacks the same files. A file given with --initrd goes as it is: it
 * may hold several archives, compressed or not, one after another.
 */
function guestInitrd(file: Uint8Array, isDefault: boolean): Promise<Uint8Array> {
  return isDefault ? gunzipped(file, 'initrd') : Promise.resolve(file);
}

/**
 * The kernel and initramfs of a cold boot. The main thread runs the CPU engine's warm-up (which
 * the hart's first `run` would do, Hart.warmUp) while the thread pool inflates them: a cold
 * `run -- true` had spent 22 ms of its main thread on the kernel's gunzip and 7 ms on the
 * initramfs's before the guest's first instruction.
 */
async function bootImages(kernelFile: Uint8Array, initrd: Uint8Array, args: MachineArgs): Promise<{ kernel: Uint8Array; initrd: Uint8Array }> {
  const images = Promise.all([gunzipped(kernelFile, 'kernel'), guestInitrd(initrd, args.initrd === undefined)]);
  images.catch(() => {}); // awaited below; should the warm-up throw, a failed gunzip is not reported as unhandled
  const cpu = args.cpu ?? DEFAULT_CPU;
  tuneV8For(cpu);
  Hart.warmUp(cpu);
  const [kernel, rd] = await images;
  return { kernel, initrd: rd };
}

// Where shares are mounted and how virtio-fs ones are: shared with the browser's startVm.
export { guestCommand, mountPoint, virtiofsMount } from '../machine/guest-init.js';
import { guestCommand, mountPoint, virtiofsMount } from '../machine/guest-init.js';

export interface Launched {
  machine: Machine;
  close(): Promise<void>;
  /** With tracing on: one summary line per traced kind (count, data, mean device time). */
  traceSummary(): string[];
  /**
   * Console input from the user. With the boot cache it is held until init has taken the line
   * that carries the shares and the command, then passed on in order.
   */
  input(bytes: Uint8Array): void;
  /** How the boot went: restored from the boot cache ('hit'), booted and cached ('miss'), or neither ('off'). */
  bootCache: 'hit' | 'miss' | 'off';
  /**
   * The META of a snapshot the user saves (`--save-on-exit`, Ctrl-A s), read when it is taken:
   * with the boot cache's handshake still open, what a restore must finish of it.
   */
  snapshotMeta(): Record<string, unknown>;
}

/** Console output before the snapshot point kept for replay; more than this and nothing is cached. */
const CONSOLE_KEEP_MAX = 256 * 1024;

/**
 * Opens every disk and share, then builds the machine. Nothing boots until `machine.run()`.
 * Code that only some runs need (disk images, shares, virtio-fs, tracing) is loaded when they do:
 * a warm `storvm run` spends a good part of its time loading modules.
 */
export async function launch(args: MachineArgs, onConsole: (bytes: Uint8Array) => void, trace?: (line: string) => void): Promise<Launched> {
  // `--trace`: the decoder of `storvm bench --trace`, device time measured on the host clock.
  const now = () => performance.now();
  const traceBlk = trace !== undefined && args.trace.includes('blk') ? trace : undefined;
  const trace9p = trace !== undefined && args.trace.includes('9p') ? trace : undefined;
  const traceFuse = trace !== undefined && args.trace.includes('fuse') ? trace : undefined;
  const tr = traceBlk || trace9p || traceFuse ? await import('./lab/trace.js') : undefined;
  const blkTally = tr && new tr.TraceTally();
  const p9Tally = tr && new tr.TraceTally();
  const fuseTally = tr && new tr.TraceTally();
  const hasShares = args.shares.length > 0;
  const [imageDisk, hostFs, p9, fs] = await Promise.all([
    args.disks.length > 0 ? import('./image-disk.js') : undefined,
    hasShares ? import('./host-fs.js') : undefined,
    args.shares.some((s) => s.virtiofs === undefined) ? import('../devices/p9/device.js') : undefined,
    args.shares.some((s) => s.virtiofs !== undefined) ? import('../devices/fs/device.js') : undefined,
  ]);
  const opened: OpenedImage[] = [];
  const shares: HostFs[] = [];
  let cacheWrite: Promise<void> = Promise.resolve();
  const closeAll = async () => {
    await cacheWrite;
    for (const s of shares.splice(0)) s.dispose();
    await Promise.all(opened.map((o) => o.close()));
  };
  try {
    for (const d of args.disks) {
      try {
        opened.push(await imageDisk!.openDiskImage(d.path, { readOnly: d.readOnly }));
      } catch (e) {
        throw new UsageError(`disk ${d.path}: ${(e as Error).message}`);
      }
    }
    const shareArgs: string[] = [];
    const mounts: string[] = [];
    for (const [i, s] of args.shares.entries()) {
      shares.push(new hostFs!.HostFs(s.dir, { readOnly: s.readOnly, mode: s.mode }));
      if (s.virtiofs !== undefined) mounts.push(virtiofsMount(s.tag, mountPoint(i, s.tag), s.readOnly));
      else shareArgs.push(`storvm.share=${s.tag}:${mountPoint(i, s.tag)}${s.readOnly ? ':ro' : ''}`);
    }
    /** The devices, over the disks as given or through read-recording wrappers (boot cache). */
    const makeDevices = (disks: BlockBackend[]): VirtioDevice[] => {
      const devices: VirtioDevice[] = [];
      for (const [i, d] of args.disks.entries()) {
        const name = `vd${String.fromCharCode(0x61 + i)}`;
        devices.push(new VirtioBlk(disks[i]!, { readOnly: d.readOnly, serial: `storvm-disk${i}`, ...(traceBlk ? { trace: tr!.blkTracer(name, now, traceBlk, blkTally!) } : {}) }));
      }
      for (const [i, s] of args.shares.entries()) {
        const share = shares[i]!;
        if (s.virtiofs !== undefined) devices.push(new fs!.VirtioFs(share, { tag: s.tag, cache: s.virtiofs, ...(traceFuse ? { trace: tr!.fuseTracer(s.tag, now, traceFuse, fuseTally!) } : {}) }));
        else devices.push(new p9!.Virtio9p(share, { tag: s.tag, ...(trace9p ? { trace: tr!.p9Tracer(now, trace9p, p9Tally!) } : {}) }));
      }
      return devices;
    };
    const traceSummary = (): string[] => [
      ...(traceBlk ? [blkTally!.line('blk', 'requests')] : []),
      ...(trace9p ? [p9Tally!.line('9p', 'messages')] : []),
      ...(traceFuse ? [fuseTally!.line('fuse', 'requests')] : []),
    ];
    const base = { close: closeAll, traceSummary };
    /** What the user's snapshot keeps, with the handshake's open part. */
    const metaWith = (hs: Handshake | undefined) => (): Record<string, unknown> => {
      const pending = hs?.pending();
      return { ...snapshotMeta(args), ...(pending ? { handshake: pending } : {}) };
    };
    if (args.restore !== undefined) {
      const { machine, handshake } = await restoreMachine(args, makeDevices(opened.map((o) => o.disk)), onConsole);
      return { ...base, machine, input: (b) => handshake.input(b), bootCache: 'off', snapshotMeta: metaWith(handshake) };
    }
    const kernelFile = await readImageFile(args.kernel ?? new URL('Image.gz', GUEST_IMAGES), 'kernel');
    const initrd = await readImageFile(args.initrd ?? new URL('initramfs.cpio.gz', GUEST_IMAGES), 'initrd');
    const command = guestCommand(mounts, args.command);
    const quiet = args.verbose ? 'loglevel=7' : 'quiet loglevel=1';
    const cmdArg = command !== '' ? [`storvm.cmd=${Buffer.from(command).toString('base64')}`] : [];
    const machineOpts = async (bootargs: string, devices: VirtioDevice[], out: (b: Uint8Array) => void): Promise<MachineOptions> => {
      const images = await bootImages(kernelFile, initrd, args);
      const opts: MachineOptions = { memoryMiB: args.memoryMiB, kernel: images.kernel, initrd: images.initrd, bootargs, devices, deterministic: args.deterministic, onConsole: out, host: nodeHost };
      if (args.cpu !== undefined) opts.cpu = args.cpu;
      return opts;
    };
    const newMachine = (opts: MachineOptions): Machine => {
      try {
        return new Machine(opts); // (bootImages has tuned V8 for opts.cpu)
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    };

    if (!bootCacheUsable(args)) {
      const parts = ['console=ttyS0', quiet, ...shareArgs, ...cmdArg];
      if (args.append) parts.push(args.append);
      const bootargs = parts.join(' ');
      if (bootargs.length >= CMDLINE_MAX) throw new UsageError(`the guest command line is ${bootargs.length} bytes; the kernel takes at most ${CMDLINE_MAX - 1} (shorten the command)`);
      const machine = newMachine(await machineOpts(bootargs, makeDevices(opened.map((o) => o.disk)), onConsole));
      return { ...base, machine, input: (b) => machine.input(b), bootCache: 'off', snapshotMeta: metaWith(undefined) };
    }

    // The boot cache: the kernel command line is the same for every run with these inputs, and
    // what varies (shares, the command) is typed to init on the console after the snapshot point.
    const bootargs = ['console=ttyS0', quiet, 'storvm.ctl=console', ...(args.append ? [args.append] : [])].join(' ');
    if (bootargs.length >= CMDLINE_MAX) throw new UsageError(`the guest command line is ${bootargs.length} bytes; the kernel takes at most ${CMDLINE_MAX - 1} (shorten --append)`);
    const line = ctlLine(shareArgs.map((a) => a.slice('storvm.share='.length)), command);
    if (line.length > CTL_LINE_MAX) throw new UsageError(`the guest command is ${line.length} bytes encoded; init takes at most ${CTL_LINE_MAX} (shorten the command)`);
    const key = cacheKey({
      code: codeIdentity(),
      kernel: kernelFile,
      initrd,
      bootargs,
      memoryMiB: args.memoryMiB,
      cpu: args.cpu ?? DEFAULT_CPU,
      deterministic: args.deterministic,
      devices: [
        ...args.disks.map((d, i): KeyDevice => {
          const disk = opened[i]!.disk;
          return { kind: 'blk', size: disk.size, readOnly: d.readOnly || disk.readOnly, discard: disk.discard !== undefined, writeZeroes: disk.writeZeroes !== undefined, serial: `storvm-disk${i}` };
        }),
        ...args.shares.map((s): KeyDevice => ({ kind: '9p', tag: s.tag, readOnly: s.readOnly, mode: s.mode })),
      ],
    });
    const dir = bootDir();
    const file = entryPath(key, dir);

    const warm = new Handshake(line, onConsole, { ready: true });
    const restored = await restoreFromCache(file, key, opened, makeDevices, warm.output, onConsole, args);
    if (restored !== undefined) {
      warm.attach(restored);
      warm.deliver();
      await touchEntry(file);
      return { ...base, machine: restored, input: (b) => warm.input(b), bootCache: 'hit', snapshotMeta: metaWith(warm) };
    }

    const recorders = opened.map((o) => new ReadRecordingDisk(o.disk));
    const early = new EarlyConsole(CONSOLE_KEEP_MAX);
    let machine: Machine | undefined;
    const cold: Handshake = new Handshake(
      line,
      (b) => {
        if (!cold.isReady) early.push(b);
        onConsole(b);
      },
      {
        onReady: () => {
          const saving = machine!.save({ meta: { ...snapshotMeta(args), bootCache: key }, codec: nodeCodec });
          cacheWrite = saving.then(
            async (snap) => {
              cold.deliver();
              for (const r of recorders) r.bootCacheMode = false;
              const summary = `${args.memoryMiB} MiB, cpu ${args.cpu ?? DEFAULT_CPU}${args.deterministic ? ', deterministic' : ''}, ${args.disks.length} disk(s), ${args.shares.length} share(s)${args.kernel ? `, kernel ${args.kernel}` : ''}${args.append ? `, --append '${args.append}'` : ''}`;
              const entry = entryFor({ key, storvm: storvmVersion(), summary, recorders, early, snapshot: snap });
              if (entry === undefined) return;
              await writeEntry(file, entry, dir).catch((e: unknown) => {
                if (args.verbose) process.stderr.write(`storvm: boot cache entry ${file} not written: ${(e as Error).message}\n`);
              });
            },
            () => {
              // No snapshot (the devices would not settle): this run goes on uncached.
              for (const r of recorders) r.bootCacheMode = false;
              cold.deliver();
            },
          );
        },
      },
    );
    machine = newMachine(await machineOpts(bootargs, makeDevices(recorders), cold.output));
    cold.attach(machine);
    return { ...base, machine, input: (b) => cold.input(b), bootCache: 'miss', snapshotMeta: metaWith(cold) };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

export { ctlLine } from '../machine/boot-handshake.js';

/** Whether this run can use the boot cache (see docs/boot-cache.md for why each case can't). */
export function bootCacheUsable(args: MachineArgs): boolean {
  if (!args.bootCache || process.env.STORVM_NO_BOOT_CACHE) return false;
  // A foreign initramfs may not know storvm.ctl=console; virtio-fs can't be saved yet.
  return args.initrd === undefined && args.shares.every((s) => s.virtiofs === undefined);
}

/** V8 settings for the engine that will run (src/node/v8-tuning.ts); undefined: not known yet, maybe wasm. */
function tuneV8For(cpu: string | undefined): void {
  if (cpu !== 'interp') tuneV8ForTranslator();
}

/** The options of both restores (a cache entry, `--restore`): devices given now, the node host, `--deterministic` and `--cpu`. */
function restoreOptions(args: MachineArgs, devices: VirtioDevice[], onConsole: (bytes: Uint8Array) => void, cpu: string | undefined): RestoreOptions {
  const opts: RestoreOptions = { devices, host: nodeHost, onConsole, codec: nodeCodec };
  if (args.deterministic) opts.deterministic = true;
  if (args.cpu !== undefined) opts.cpu = args.cpu;
  tuneV8For(cpu);
  return opts;
}

/**
 * A machine restored from the cache entry, over the disks given now, or undefined (no entry, or one
 * that must not be used: it is deleted, unless only the disks differ, and the run boots cold).
 * `out` takes the machine's console; `replay` the output from before the snapshot point.
 */
async function restoreFromCache(
  file: string,
  key: string,
  opened: OpenedImage[],
  makeDevices: (disks: BlockBackend[]) => VirtioDevice[],
  out: (bytes: Uint8Array) => void,
  replay: (bytes: Uint8Array) => void,
  args: MachineArgs,
): Promise<Machine | undefined> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readEntry(file);
  } catch {
    return undefined;
  }
  if (bytes === undefined) return undefined;
  try {
    const { header, snapshot, console: early } = decodeEntry(bytes, key, opened.map((o) => o.disk.size));
    // The blocks the kernel read while booting must hold the same bytes on the disks given now.
    for (const [i, d] of header.disks.entries()) {
      if ((await hashBlocks(opened[i]!.disk, d.runs)) !== d.hash) return undefined;
    }
    const recorders = opened.map((o, i) => new ReadRecordingDisk(o.disk, header.disks[i]!));
    const machine = await Machine.restore(snapshot, restoreOptions(args, makeDevices(recorders), out, args.cpu ?? DEFAULT_CPU));
    for (const r of recorders) r.bootCacheMode = false;
    if (early.length > 0) replay(early);
    return machine;
  } catch (e) {
    if (args.verbose) process.stderr.write(`storvm: boot cache entry ${file} not used (${(e as Error).message}); booting\n`);
    await removeEntry(file);
    return undefined;
  }
}

/**
 * `boot --restore FILE`: the machine from the snapshot, over the disks and shares given now. A
 * snapshot of a run with the boot cache's handshake still open (saved before init had its line)
 * finishes it: the line is typed when init asks for it, or at once when it already had.
 */
async function restoreMachine(args: MachineArgs, devices: VirtioDevice[], onConsole: (bytes: Uint8Array) => void): Promise<{ machine: Machine; handshake: Handshake }> {
  const file = args.restore!;
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new UsageError(`snapshot ${file}: ${(e as Error).message}`);
  }
  const { handshake, deliver } = await restoredHandshake(async () => (await import('../machine/snapshot-info.js')).snapshotInfo(bytes).meta, onConsole);
  // The snapshot is read and checked by restore; its memory size is the machine's.
  const machine = await Machine.restore(bytes, restoreOptions(args, devices, handshake.output, args.cpu));
  const savedMiB = machine.ram.size / 2 ** 20;
  if (args.memGiven && savedMiB !== args.memoryMiB) {
    throw new UsageError(`--mem ${args.memoryMiB}: the snapshot was saved with ${savedMiB} MiB (leave --mem out)`);
  }
  handshake.attach(machine);
  if (deliver) handshake.deliver();
  return { machine, handshake };
}

/** What `storvm snapshot info` shows of how a snapshot was made (kept in its META section). */
export function snapshotMeta(args: MachineArgs): Record<string, unknown> {
  return {
    storvm: storvmVersion(),
    disks: args.disks.map((d) => ({ path: d.path, readOnly: d.readOnly })),
    shares: args.shares.map((s) => ({ dir: s.dir, tag: s.tag, readOnly: s.readOnly, mode: s.mode, virtiofs: s.virtiofs ?? null })),
  };
}
