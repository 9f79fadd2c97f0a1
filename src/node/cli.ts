/**
 * The storvm command line. Bad input gets one line on stderr and a non-zero exit.
 */
import { readFileSync } from 'node:fs';

const USAGE = `usage: storvm <command> [options]

commands:
  run  [options] -- COMMAND   boot the default guest and run COMMAND in it   (not yet available)
  boot [options]              boot the default guest with a shell on the console   (not yet available)
  bench [options]             measure 9p against virtio-blk inside a guest   (not yet available)

options:
  -h, --help       this text
  -v, --version    the storvm version`;

/** Raised for bad command-line input: printed as one line, exit status 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs the CLI; resolves to the process exit status. */
export async function main(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      out.write(USAGE + '\n');
      return command === undefined ? 2 : 0;
    }
    if (command === '-v' || command === '--version') {
      out.write(`storvm ${version()}\n`);
      return 0;
    }
    if (command === 'run' || command === 'boot' || command === 'bench') {
      void rest;
      throw new UsageError(`'${command}' needs the RISC-V machine, which is not built yet`);
    }
    throw new UsageError(`unknown command '${command}' (try storvm --help)`);
  } catch (e) {
    err.write(`storvm: ${e instanceof Error ? e.message : String(e)}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}
