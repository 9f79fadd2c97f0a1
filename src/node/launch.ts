/**
 * Builds a Machine from command-line arguments: the default guest (or the given kernel and
 * initramfs), disks as /dev/vda, /dev/vdb… and 9p shares mounted by the guest's init.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { Virtio9p } from '../devices/p9/device.js';
import { VirtioBlk } from '../devices/blk/device.js';
import { Machine, type MachineOptions } from '../machine/machine.js';
import type { VirtioDevice } from '../virtio/device.js';
import { HostFs } from './host-fs.js';
import { blkTracer, p9Tracer, TraceTally } from './lab/trace.js';
import { nodeHost } from './host.js';
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

/** Where share n is mounted in the guest: the first at /mnt/host, the others at /mnt/TAG. */
export function mountPoint(index: number, tag: string): string {
  return index === 0 ? '/mnt/host' : `/mnt/${tag}`;
}

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
  const traceBlk = trace !== undefined && args.trace.includes('blk') ? trace : undefined;
  const trace9p = trace !== undefined && args.trace.includes('9p') ? trace : undefined;
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
    for (const [i, s] of args.shares.entries()) {
      const share = new HostFs(s.dir, { readOnly: s.readOnly, mode: s.mode });
      shares.push(share);
      devices.push(new Virtio9p(share, { tag: s.tag, ...(trace9p ? { trace: p9Tracer(now, trace9p, p9Tally) } : {}) }));
      shareArgs.push(`storvm.share=${s.tag}:${mountPoint(i, s.tag)}${s.readOnly ? ':ro' : ''}`);
    }
    const kernel = await readMaybeGzip(args.kernel ?? new URL('Image.gz', GUEST_IMAGES), 'kernel');
    const initrd = await readMaybeGzip(args.initrd ?? new URL('initramfs.cpio.gz', GUEST_IMAGES), 'initrd');
    const parts = ['console=ttyS0', args.verbose ? 'loglevel=7' : 'quiet loglevel=1', ...shareArgs];
    if (args.command.length > 0) parts.push(`storvm.cmd=${Buffer.from(args.command.join(' ')).toString('base64')}`);
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
    const traceSummary = (): string[] => [
      ...(traceBlk ? [blkTally.line('blk', 'requests')] : []),
      ...(trace9p ? [p9Tally.line('9p', 'messages')] : []),
    ];
    return { machine, close: closeAll, traceSummary };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
