#!/usr/bin/env node
// The storvm command. Runs the compiled CLI when the package is built (dist/), and the
// TypeScript sources through tsx in a source checkout.
import { existsSync } from 'node:fs';

const built = new URL('../dist/node/cli.js', import.meta.url);
let cli;
if (existsSync(built)) {
  cli = await import(built.href);
} else {
  const { tsImport } = await import('tsx/esm/api');
  cli = await tsImport('../src/node/cli.ts', import.meta.url);
}
process.exitCode = await cli.main(process.argv.slice(2));
