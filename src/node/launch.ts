/**
 * Builds a Machine from command-line arguments: the default guest (or the given kernel and
 * initramfs), disks as /dev/vda, /dev/vdb… and shares: 9p ones mounted by the guest's init
 * (storvm.share=), virtio-fs ones by a prefix of the guest command, since the committed init
 * knows only 9p.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { VirtioFs } from '../devices/fs/device.js';
import { Virtio9p } from '../devices/p9/device.js';
import { VirtioBlk } from '../devices/blk/device.js';
import { Machine, type MachineOptions, type RestoreOptions } from '../machine/machine.js';
import { snapshotInfo } from '../machine/snapshot-info.js';
import { storvmVersion } from './version.js';
import type { VirtioDevice } from '../virtio/device.js';
import { HostFs } from './host-fs.js';
import { blkTracer, fuseTracer, p9Tracer, TraceTally } from './lab/trace.js';
import { nodeCodec, nodeHost } from './host.js';
import { openDiskImage, type OpenedImage } from './image-disk.js';
import { UsageError, type MachineArgs } from './options.js';

const GUEST_IMAGES = new URL('../../guest-images/', import.meta.url);

/** The Linux kernel command line is at most 1024 bytes on RISC-V (COMMAND_LINE_SIZE). */
const CMDLINE_MAX = 1024;

/** Reads a file, gunzipping it when it is gzip. */
async function readMaybeGzip(path: string | URL, what: string): Promise<Uint8Array> {
  let data: Uint8Array;
  try {
    data = await readFile(path);
  } catch (e) {
    throw new UsageError(`${what} ${path instanceof URL ? path.pathname : path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file (run guest-images/build.sh)' : (e as Error).message}`);
  }
  return data[0] === 0x1f && data[1] === 0x8b && what === 'kernel' ? gunzipSync(data) : data;
}

// Where shares are mounted and how virtio-fs ones are: shared with the browser's startVm.
export { guestCommand, mountPoint, virtiofsMount } from '../machine/guest-init.js';
import { guestCommand, mountPoint, virtiofsMount } from '../machine/guest-init.js';

export interface Launched {
  machine: Machine;
  close(): Promise<void>;
  /** With tracing on: one summary line per traced kind (count, data, mean device time). */
  traceSummary(): string[];
}

/** Opens every disk and share, then builds the machine. Nothing boots until `machine.run()`. */
export async function launch(args: MachineArgs, onConsole: (bytes: Uint8Array) => void, trace?: (line: string) => void): Promise<Launched> {
  // `--trace`: the decoder of `storvm bench --trace`, device time measured on the host clock.
  const now = () => performance.now();
  const blkTally = new TraceTally();
  const p9Tally = new TraceTally();
  const fuseTally = new TraceTally();
  const traceBlk = trace !== undefined && args.trace.includes('blk') ? trace : undefined;
  const trace9p = trace !== undefined && args.trace.includes('9p') ? trace : undefined;
  const traceFuse = trace !== undefined && args.trace.includes('fuse') ? trace : undefined;
  const opened: OpenedImage[] = [];
  const shares: HostFs[] = [];
  const closeAll = async () => {
    for (const s of shares.splice(0)) s.dispose();
    await Promise.all(opened.map((o) => o.close()));
  };
  try {
    const devices: VirtioDevice[] = [];
    for (const [i, d] of args.disks.entries()) {
      let img: OpenedImage;
      try {
        img = await openDiskImage(d.path, { readOnly: d.readOnly });
      } catch (e) {
        throw new UsageError(`disk ${d.path}: ${(e as Error).message}`);
      }
      opened.push(img);
      const name = `vd${String.fromCharCode(0x61 + i)}`;
      devices.push(new VirtioBlk(img.disk, { readOnly: d.readOnly, serial: `storvm-disk${i}`, ...(traceBlk ? { trace: blkTracer(name, now, traceBlk, blkTally) } : {}) }));
    }
    const shareArgs: string[] = [];
    const mounts: string[] = [];
    for (const [i, s] of args.shares.entries()) {
      const share = new HostFs(s.dir, { readOnly: s.readOnly, mode: s.mode });
      shares.push(share);
      if (s.virtiofs !== undefined) {
        devices.push(new VirtioFs(share, { tag: s.tag, cache: s.virtiofs, ...(traceFuse ? { trace: fuseTracer(s.tag, now, traceFuse, fuseTally) } : {}) }));
        mounts.push(virtiofsMount(s.tag, mountPoint(i, s.tag), s.readOnly));
        continue;
      }
      devices.push(new Virtio9p(share, { tag: s.tag, ...(trace9p ? { trace: p9Tracer(now, trace9p, p9Tally) } : {}) }));
      shareArgs.push(`storvm.share=${s.tag}:${mountPoint(i, s.tag)}${s.readOnly ? ':ro' : ''}`);
    }
    const traceSummary = (): string[] => [
      ...(traceBlk ? [blkTally.line('blk', 'requests')] : []),
      ...(trace9p ? [p9Tally.line('9p', 'messages')] : []),
      ...(traceFuse ? [fuseTally.line('fuse', 'requests')] : []),
    ];
    if (args.restore !== undefined) {
      const machine = await restoreMachine(args, devices, onConsole);
      return { machine, close: closeAll, traceSummary };
    }
    const kernel = await readMaybeGzip(args.kernel ?? new URL('Image.gz', GUEST_IMAGES), 'kernel');
    const initrd = await readMaybeGzip(args.initrd ?? new URL('initramfs.cpio.gz', GUEST_IMAGES), 'initrd');
    const parts = ['console=ttyS0', args.verbose ? 'loglevel=7' : 'quiet loglevel=1', ...shareArgs];
    const command = guestCommand(mounts, args.command);
    if (command !== '') parts.push(`storvm.cmd=${Buffer.from(command).toString('base64')}`);
    if (args.append) parts.push(args.append);
    const bootargs = parts.join(' ');
    if (bootargs.length >= CMDLINE_MAX) throw new UsageError(`the guest command line is ${bootargs.length} bytes; the kernel takes at most ${CMDLINE_MAX - 1} (shorten the command)`);
    const opts: MachineOptions = { memoryMiB: args.memoryMiB, kernel, initrd, bootargs, devices, deterministic: args.deterministic, onConsole, host: nodeHost };
    if (args.cpu !== undefined) opts.cpu = args.cpu;
    let machine: Machine;
    try {
      machine = new Machine(opts);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    return { machine, close: closeAll, traceSummary };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** `boot --restore FILE`: the machine from the snapshot, over the disks and shares given now. */
async function restoreMachine(args: MachineArgs, devices: VirtioDevice[], onConsole: (bytes: Uint8Array) => void): Promise<Machine> {
  const file = args.restore!;
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new UsageError(`snapshot ${file}: ${(e as Error).message}`);
  }
  const info = snapshotInfo(bytes);
  if (args.memGiven && info.meta.memoryMiB !== args.memoryMiB) {
    throw new UsageError(`--mem ${args.memoryMiB}: the snapshot was saved with ${String(info.meta.memoryMiB)} MiB (leave --mem out)`);
  }
  const opts: RestoreOptions = { devices, host: nodeHost, onConsole, codec: nodeCodec };
  if (args.deterministic) opts.deterministic = true;
  if (args.cpu !== undefined) opts.cpu = args.cpu;
  return Machine.restore(bytes, opts);
}

/** What `storvm snapshot info` shows of how a snapshot was made (kept in its META section). */
export function snapshotMeta(args: MachineArgs): Record<string, unknown> {
  return {
    storvm: storvmVersion(),
    disks: args.disks.map((d) => ({ path: d.path, readOnly: d.readOnly })),
    shares: args.shares.map((s) => ({ dir: s.dir, tag: s.tag, readOnly: s.readOnly, mode: s.mode, virtiofs: s.virtiofs ?? null })),
  };
}
