/**
 * A lab run's setup from its sizes, environment-free: the markers, the guest script, the guest's
 * memory, the raw disk's size and the kernel command line. Node's prepareLab
 * (src/node/lab/session.ts) adds the control share's files on the host; the browser's lab puts
 * the same files in a MemFs.
 */
import { toBase64 } from '../backends/block/bytes.js';
import type { LabSetup, Markers } from './collector.js';
import { VIS_STORES, VIS_VIRTIOFS_STORES, guestScript, labVariants } from './plan.js';

export interface LabSetupOptions {
  sizeMiB: number;
  files: number;
  variants?: readonly string[];
  noVirtiofs?: string;
  /**
   * The browser's lab: its disks (BROWSER_VARIANTS) are variants too, and the control files come
   * in the initramfs (src/lab/cpio.ts) rather than on a share, which leaves a virtio slot for them.
   */
  browser?: boolean;
  /** Variants that can't run here, with the reason (see PlanOptions.unavailable). */
  unavailable?: Readonly<Record<string, string>>;
  /** Entries and bytes of the tarball the untar workload unpacks. */
  tar: { entries: number; bytes: number };
  /** A fresh random tag for the markers (hex). */
  tag: string;
  version: string;
}

/** The raw disk's size for a run of `sizeMiB`: a MiB more than the sequential data. */
export function labRawBytes(sizeMiB: number): number {
  return (sizeMiB + 1) * 1048576;
}

/** The setup and the guest script (run.sh) of one run. */
export function labSetup(o: LabSetupOptions): { setup: LabSetup; script: string } {
  const S = o.sizeMiB;
  const ops = Math.max(64, Math.min(4096, S * 64));
  const markers: Markers = {};
  for (const st of [...VIS_STORES, ...(o.noVirtiofs === undefined ? VIS_VIRTIOFS_STORES : [])]) markers[st] = `storvm-vis-${st}-${o.tag}`;
  const variants = labVariants(o.browser ?? false).filter((v) => o.variants === undefined || o.variants.includes(v.id));
  const script = guestScript({
    sizeMiB: S,
    files: o.files,
    ops,
    tarEntries: o.tar.entries,
    markers,
    ...(o.variants !== undefined ? { variants: o.variants } : {}),
    ...(o.noVirtiofs !== undefined ? { noVirtiofs: o.noVirtiofs } : {}),
    ...(o.browser ? { browser: true } : {}),
    ...(o.unavailable !== undefined ? { unavailable: o.unavailable } : {}),
  });
  const bootargs = ['console=ttyS0', 'quiet loglevel=1', ...(o.browser ? [] : ['storvm.share=lab:/mnt/lab:ro']), `storvm.cmd=${toBase64('/bin/sh /mnt/lab/run.sh')}`].join(' ');
  const setup: LabSetup = {
    sizeMiB: S,
    files: o.files,
    ops,
    tarEntries: o.tar.entries,
    tarBytes: o.tar.bytes,
    markers,
    variants: [...variants],
    memoryMiB: Math.min(2048, 256 + 2 * S),
    rawBytes: labRawBytes(S),
    bootargs,
    version: o.version,
    ...(o.noVirtiofs !== undefined ? { noVirtiofs: o.noVirtiofs } : {}),
  };
  return { setup, script };
}
