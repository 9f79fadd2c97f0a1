/**
 * The storvm command line. Bad input gets one line on stderr and a non-zero exit, before anything
 * boots.
 */
import { createWriteStream } from 'node:fs';
import { BENCH_USAGE, parseBenchArgs, runBench } from './lab/bench.js';
import { chunkImage } from './image-chunk.js';
import { launch, type Launched } from './launch.js';
import { nodeCodec } from './host.js';
import { writeSnapshotFile, snapshotInfoLines } from './snapshot-file.js';
import { readFile } from 'node:fs/promises';
import { type MachineArgs, parseMachineArgs, UsageError } from './options.js';
import { storvmVersion } from './version.js';
import { cacheCommand } from './cache-cli.js';

export { UsageError };

const USAGE = `usage: storvm <command> [options]

commands:
  run [options] -- COMMAND…   boot the default guest, run COMMAND with /bin/sh -c, exit with its status
  boot [options]              boot the default guest with a shell on the serial console
                              (Ctrl-A x quits; with piped stdin the shell reads the pipe)
${BENCH_USAGE}
  snapshot info FILE          what a snapshot holds: memory, engine, guest time, devices, disks, sizes
  cache info|clear            the boot cache: where it is, its entries and size; or empty it
  image chunk IMAGE OUTDIR [--chunk-size KiB]
                              cut a raw, .gz or qcow2 image into SHA-256-named chunk files and a
                              manifest.json, for the browser's lazily fetched HttpDisk (default 1024 KiB)

options of run and boot:
  --mem MiB                   guest RAM (default 256)
  --disk FILE[:ro]            attach a raw, .gz or qcow2 image as /dev/vda, /dev/vdb, … (repeatable;
                              .gz and qcow2 get an in-memory copy-on-write layer unless :ro)
  --share DIR[:TAG][:ro][:passthrough][:virtiofs]
                              share a host directory over 9p (or virtio-fs with :virtiofs, cache
                              mode :virtiofs=none|auto|always, default auto): the first at
                              /mnt/host, others at /mnt/TAG; guest owners, modes, node types and
                              xattrs are kept in DIR/.storvm (:passthrough: use the host's own,
                              regular files only)
  --kernel FILE, --initrd FILE   boot these instead of guest-images/
  --append ARGS               more kernel command-line arguments
  --deterministic             guest time follows retired instructions, so a run replays exactly
  --no-boot-cache             boot from scratch instead of restoring (and saving) the boot cache's
                              snapshot of the booted kernel (also STORVM_NO_BOOT_CACHE=1)
  --cpu interp|wasm           how guest code runs: interpreted, or hot code translated to WebAssembly (default)
  --save-on-exit FILE         when storvm stops the guest (Ctrl-A x, Ctrl-C), save a snapshot there;
                              in boot, Ctrl-A s saves one at any moment (to FILE, or ./storvm.snap)
  --restore FILE              (boot) go on from a snapshot instead of booting, with the same
                              --disk and --share options it was saved with
  --verbose                   show kernel messages
  --trace 9p|fuse|blk[,…]     print every 9P message, FUSE request or block request, decoded, with its device time
  --trace-file FILE           write the trace there instead of to standard error

  -h, --help                  this text
  -V, --version               the storvm version`;

type Stream = { write(chunk: string | Uint8Array): unknown };

/** Runs the CLI; resolves to the process exit status. */
export async function main(argv: string[], out: Stream = process.stdout, err: Stream = process.stderr): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      out.write(USAGE + '\n');
      return command === undefined ? 2 : 0;
    }
    if (command === '-V' || command === '--version') {
      out.write(`storvm ${storvmVersion()}\n`);
      return 0;
    }
    if (command === 'run') return await run(rest, out, err);
    if (command === 'boot') return await boot(rest, out, err);
    if (command === 'bench') return await bench(rest, out, err);
    if (command === 'image') return await image(rest, out);
    if (command === 'snapshot') return await snapshot(rest, out);
    if (command === 'cache') return await cacheCommand(rest, out);
    throw new UsageError(`unknown command '${command}' (try storvm --help)`);
  } catch (e) {
    err.write(`storvm: ${e instanceof Error ? e.message : String(e)}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

/** Where `--trace` lines go: the trace file, or standard error. */
async function openTrace(args: MachineArgs, err: Stream): Promise<{ write(line: string): void; close(): Promise<void> } | undefined> {
  if (args.trace.length === 0) return undefined;
  if (args.traceFile === undefined) return { write: (s) => void err.write(s), close: async () => {} };
  const file = args.traceFile;
  const stream = createWriteStream(file);
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (e) => reject(new UsageError(`--trace-file ${file}: ${e.message}`)));
  });
  return { write: (s) => void stream.write(s), close: () => new Promise<void>((resolve) => stream.end(resolve)) };
}

async function run(argv: string[], out: Stream, err: Stream): Promise<number> {
  const args = parseMachineArgs(argv, true);
  const tracer = await openTrace(args, err);
  const launched = await launch(args, (b) => out.write(b), tracer?.write).catch(async (e: unknown) => {
    await tracer?.close();
    throw e;
  });
  const { machine, close, traceSummary } = launched;
  const onSigint = () => machine.stop();
  process.once('SIGINT', onSigint);
  try {
    const r = await machine.run();
    if (r.reason === 'stopped') {
      if (args.saveOnExit !== undefined) await saveTo(launched, args.saveOnExit, err);
      return 130;
    }
    if (args.saveOnExit !== undefined) err.write(`storvm: the guest ${r.reason === 'poweroff' ? 'powered off' : 'rebooted'}; there is nothing to resume, so no snapshot was saved\n`);
    if (r.reason === 'reset') throw new Error('the guest rebooted instead of finishing the command');
    return r.exitCode;
  } finally {
    process.off('SIGINT', onSigint);
    await close();
    for (const line of traceSummary()) tracer?.write(line);
    await tracer?.close();
  }
}

/** Exit 0 when every step reported (a workload that fails is a result too), 1 when the run broke. */
async function image(argv: string[], out: Stream): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'chunk') throw new UsageError(`usage: storvm image chunk IMAGE OUTDIR [--chunk-size KiB]${sub ? ` (unknown subcommand '${sub}')` : ''}`);
  const pos: string[] = [];
  let chunkSize: number | undefined;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--chunk-size') {
      const v = rest[++i];
      if (v === undefined || !/^\d+$/.test(v)) throw new UsageError('--chunk-size needs a number of KiB');
      chunkSize = Number(v) * 1024;
    } else if (a.startsWith('-')) throw new UsageError(`unknown option '${a}' for storvm image chunk`);
    else pos.push(a);
  }
  if (pos.length !== 2) throw new UsageError('usage: storvm image chunk IMAGE OUTDIR [--chunk-size KiB]');
  const r = await chunkImage(pos[0]!, pos[1]!, chunkSize !== undefined ? { chunkSize } : {});
  out.write(`${pos[1]}/manifest.json: ${r.size} bytes in ${r.chunks} chunks of ${r.chunkSize / 1024} KiB (${r.zeroChunks} all zeros, not stored; ${r.files} chunk files)\n`);
  return 0;
}

async function bench(argv: string[], out: Stream, err: Stream): Promise<number> {
  const args = parseBenchArgs(argv);
  const r = await runBench(args, out, err, err === process.stderr && process.stderr.isTTY === true);
  for (const c of r.results) if (c.status === 'failed') err.write(`storvm bench: ${c.workload} on ${c.variant} failed: ${c.message}\n`);
  for (const e of r.errors) err.write(`storvm bench: ${e}\n`);
  const broken = r.errors.length > 0 || r.results.some((c) => c.status === 'missing');
  return broken ? 1 : 0;
}

async function boot(argv: string[], out: Stream, err: Stream): Promise<number> {
  const args = parseMachineArgs(argv, false);
  const tracer = await openTrace(args, err);
  const launched = await launch(args, (b) => out.write(b), tracer?.write).catch(async (e: unknown) => {
    await tracer?.close();
    throw e;
  });
  const { machine, close, traceSummary } = launched;
  const input = (b: Uint8Array) => launched.input(b);
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  let ctrlA = false;
  let saving: Promise<void> = Promise.resolve();
  const onData = (chunk: Buffer) => {
    if (!raw) return input(chunk);
    for (const b of chunk) {
      // Ctrl-A x quits, Ctrl-A s saves a snapshot, Ctrl-A Ctrl-A sends one Ctrl-A, as in QEMU's
      // -nographic console.
      if (ctrlA) {
        ctrlA = false;
        if (b === 0x78) return machine.stop();
        if (b === 0x73) {
          saving = saving.then(() => saveTo(launched, args.saveOnExit ?? 'storvm.snap', err).catch((e: unknown) => void err.write(`storvm: ${(e as Error).message}\r\n`)));
          continue;
        }
        input(Uint8Array.of(b));
      } else if (b === 0x01) ctrlA = true;
      else input(Uint8Array.of(b));
    }
  };
  if (raw) stdin.setRawMode(true);
  stdin.on('data', onData);
  stdin.resume();
  try {
    const r = await machine.run();
    await saving;
    if (r.reason === 'stopped' && args.saveOnExit !== undefined) await saveTo(launched, args.saveOnExit, err);
    return r.reason === 'poweroff' ? r.exitCode : 0;
  } finally {
    stdin.off('data', onData);
    stdin.pause();
    if (raw) stdin.setRawMode(false);
    await close();
    for (const line of traceSummary()) tracer?.write(line);
    await tracer?.close();
  }
}

/** Saves the machine's snapshot to `file` (atomically) and says so on stderr. */
async function saveTo({ machine, snapshotMeta }: Launched, file: string, err: Stream): Promise<void> {
  const t0 = performance.now();
  const bytes = await machine.save({ meta: snapshotMeta, codec: nodeCodec });
  await writeSnapshotFile(file, bytes);
  err.write(`storvm: saved snapshot ${file} (${(bytes.length / 1e6).toFixed(1)} MB in ${Math.round(performance.now() - t0)} ms)\r\n`);
}

async function snapshot(argv: string[], out: Stream): Promise<number> {
  const [sub, file, ...extra] = argv;
  if (sub !== 'info' || file === undefined || extra.length > 0) throw new UsageError(`usage: storvm snapshot info FILE${sub && sub !== 'info' ? ` (unknown subcommand '${sub}')` : ''}`);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new UsageError(`snapshot ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  for (const line of snapshotInfoLines(bytes)) out.write(line + '\n');
  return 0;
}
