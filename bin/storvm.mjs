#!/usr/bin/env -S node --v8-pool-size=1
// The storvm command. Runs the compiled CLI when the package is built (dist/), and the
// TypeScript sources in a source checkout: bundled into one file by esbuild (bin/cli-bundle.mjs),
// or through tsx when esbuild is not installed.
//
// --v8-pool-size=1: V8's background threads compile hot JavaScript with TurboFan, the hart's
// loop and the translator's emitter among them (0.8-1.3 s of CPU in a cold boot). With Node's
// default of four such threads on a two-core machine they took the main thread's core for much
// of the boot's first second; with one, a cold `storvm run -- true` took 10 % less wall time
// (bench/README.md, "Start-up"). It applies when the file runs as a program (npx storvm, an
// installed bin), not under `node bin/storvm.mjs`.
import { existsSync } from 'node:fs';
import { distCli, sourceCli } from './cli-bundle.mjs';

const built = new URL('../dist/node/cli.js', import.meta.url);
let cli;
if (existsSync(built)) {
  cli = await import(distCli() ?? built.href);
} else {
  const bundled = await sourceCli();
  if (bundled !== undefined) cli = await import(bundled);
  else {
    const { tsImport } = await import('tsx/esm/api');
    cli = await tsImport('../src/node/cli.ts', import.meta.url);
  }
}
process.exitCode = await cli.main(process.argv.slice(2));
