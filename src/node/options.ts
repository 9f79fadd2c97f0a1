/**
 * Command-line options of `storvm run` and `storvm boot`, parsed and checked before anything
 * boots: a missing file or a share that is not a directory is a UsageError, reported in one line.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { CPU_ENGINES, type CpuEngine } from '../riscv/engine.js';

/** Raised for bad command-line input: printed as one line, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface DiskSpec {
  path: string;
  readOnly: boolean;
}

export interface ShareSpec {
  dir: string;
  tag: string;
  readOnly: boolean;
  /** Set for a virtio-fs share (absent for 9p): the cache mode its FUSE server runs with. */
  virtiofs?: 'none' | 'auto' | 'always';
  /** How guest metadata is kept: in a store beside the files (mapped), or as the host's own. */
  mode: 'mapped' | 'passthrough';
}

/** Longest virtio-fs tag (the config field is 36 bytes). */
const VIRTIOFS_TAG_MAX = 36;

export interface MachineArgs {
  memoryMiB: number;
  disks: DiskSpec[];
  shares: ShareSpec[];
  kernel?: string;
  initrd?: string;
  append?: string;
  deterministic: boolean;
  /** CPU engine; undefined means the machine's default. */
  cpu?: CpuEngine;
  verbose: boolean;
  /** For `run`: the words after `--`. */
  command: string[];
  /** Devices whose requests are traced (`--trace 9p,blk`), one decoded line each. */
  trace: TraceKind[];
  /** Where trace lines go (`--trace-file`); default standard error. */
  traceFile?: string;
  /** `--save-on-exit FILE`: where a snapshot goes when storvm stops the guest (and Ctrl-A s). */
  saveOnExit?: string;
  /** `--restore FILE` (boot only): go on from this snapshot instead of booting. */
  restore?: string;
  /** Whether --mem was given (a restore takes the snapshot's memory size otherwise). */
  memGiven?: boolean;
  /** Use the boot cache (default; `--no-boot-cache` turns it off). */
  bootCache: boolean;
}

export type TraceKind = '9p' | 'fuse' | 'blk';

const TAG_RE = /^[A-Za-z0-9_.-]{1,64}$/;

function checkFile(path: string, what: string): string {
  const abs = resolve(path);
  let st;
  try {
    st = statSync(abs);
  } catch {
    throw new UsageError(`${what} ${path}: no such file`);
  }
  if (!st.isFile()) throw new UsageError(`${what} ${path}: not a regular file`);
  try {
    accessSync(abs, constants.R_OK);
  } catch {
    throw new UsageError(`${what} ${path}: not readable`);
  }
  return abs;
}

/** `FILE[:ro]` */
export function parseDisk(spec: string): DiskSpec {
  const readOnly = spec.endsWith(':ro');
  const path = readOnly ? spec.slice(0, -3) : spec;
  if (path === '') throw new UsageError('--disk needs a file');
  return { path: checkFile(path, 'disk'), readOnly };
}

/** `DIR[:TAG][:ro][:passthrough][:virtiofs[=none|auto|always]]` (the suffixes in any order). */
export function parseShare(spec: string, index: number): ShareSpec {
  let rest = spec;
  let readOnly = false;
  let mode: ShareSpec['mode'] = 'mapped';
  let virtiofs: ShareSpec['virtiofs'];
  for (;;) {
    const m = /:virtiofs(?:=([a-z]*))?$/.exec(rest);
    if (!readOnly && rest.endsWith(':ro')) {
      readOnly = true;
      rest = rest.slice(0, -3);
    } else if (mode === 'mapped' && rest.endsWith(':passthrough')) {
      mode = 'passthrough';
      rest = rest.slice(0, -12);
    } else if (virtiofs === undefined && m !== null) {
      const cache = m[1] ?? 'auto';
      if (cache !== 'none' && cache !== 'auto' && cache !== 'always') {
        throw new UsageError(`share ${spec}: virtiofs cache '${cache}': use none, auto or always`);
      }
      virtiofs = cache;
      rest = rest.slice(0, m.index);
    } else break;
  }
  let tag = index === 0 ? 'host' : `share${index}`;
  const colon = rest.lastIndexOf(':');
  if (colon > 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw new UsageError(`share tag '${tag}': use 1-64 letters, digits, '_', '.' or '-'`);
  }
  if (rest === '') throw new UsageError('--share needs a directory');
  const dir = resolve(rest);
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new UsageError(`share ${rest}: no such directory`);
  }
  if (!st.isDirectory()) throw new UsageError(`share ${rest}: not a directory`);
  if (virtiofs === undefined) return { dir, tag, readOnly, mode };
  if (tag.length > VIRTIOFS_TAG_MAX) throw new UsageError(`share tag '${tag}': a virtio-fs tag has at most ${VIRTIOFS_TAG_MAX} characters`);
  return { dir, tag, readOnly, mode, virtiofs };
}

/** Parses the options of `run` / `boot`. */
export function parseMachineArgs(argv: string[], wantCommand: boolean): MachineArgs {
  const args: MachineArgs = { memoryMiB: 256, disks: [], shares: [], deterministic: false, verbose: false, command: [], trace: [], bootCache: true };
  const value = (i: number, name: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new UsageError(`${name} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case '--':
        args.command = argv.slice(i + 1);
        i = argv.length;
        break;
      case '--mem': {
        const n = Number(value(i++, a));
        if (!Number.isInteger(n) || n < 32 || n > 2048) throw new UsageError(`--mem ${argv[i]}: give MiB between 32 and 2048`);
        args.memoryMiB = n;
        args.memGiven = true;
        break;
      }
      case '--disk':
        args.disks.push(parseDisk(value(i++, a)));
        break;
      case '--share':
        args.shares.push(parseShare(value(i++, a), args.shares.length));
        break;
      case '--kernel':
        args.kernel = checkFile(value(i++, a), 'kernel');
        break;
      case '--initrd':
        args.initrd = checkFile(value(i++, a), 'initrd');
        break;
      case '--append':
        args.append = value(i++, a);
        break;
      case '--deterministic':
        args.deterministic = true;
        break;
      case '--no-boot-cache':
        args.bootCache = false;
        break;
      case '--trace': {
        const v = value(i++, a);
        for (const k of v.split(',')) {
          if (k !== '9p' && k !== 'fuse' && k !== 'blk') throw new UsageError(`--trace ${v}: give 9p, fuse, blk or a list like 9p,blk`);
          if (!args.trace.includes(k)) args.trace.push(k);
        }
        break;
      }
      case '--trace-file':
        args.traceFile = resolve(value(i++, a));
        break;
      case '--cpu': {
        const v = value(i++, a);
        if (!(CPU_ENGINES as readonly string[]).includes(v)) throw new UsageError(`--cpu ${v}: give ${CPU_ENGINES.join(' or ')}`);
        args.cpu = v as CpuEngine;
        break;
      }
      case '--save-on-exit':
        args.saveOnExit = resolve(value(i++, a));
        break;
      case '--restore':
        if (wantCommand) throw new UsageError('--restore goes with storvm boot (the restored guest goes on where it was)');
        args.restore = checkFile(value(i++, a), 'snapshot');
        break;
      case '--verbose':
      case '-v':
        args.verbose = true;
        break;
      default:
        throw new UsageError(a.startsWith('-') ? `unknown option '${a}'` : `unexpected argument '${a}' (put the guest command after --)`);
    }
  }
  if (args.traceFile !== undefined && args.trace.length === 0) throw new UsageError('--trace-file needs --trace 9p|fuse|blk');
  if (args.disks.length + args.shares.length > 8) throw new UsageError('at most 8 disks and shares in all');
  const tags = new Set(args.shares.map((s) => s.tag));
  if (tags.size !== args.shares.length) throw new UsageError('two shares have the same tag');
  if (args.restore !== undefined) {
    const own = [args.kernel && '--kernel', args.initrd && '--initrd', args.append !== undefined && '--append'].filter(Boolean);
    if (own.length > 0) throw new UsageError(`--restore can't take ${own.join(', ')}: the snapshot holds the booted kernel`);
  }
  if (wantCommand && args.command.length === 0) throw new UsageError('run needs a command after --, e.g. storvm run -- uname -a');
  if (!wantCommand && args.command.length > 0) throw new UsageError('boot takes no command; use storvm run -- COMMAND');
  return args;
}
