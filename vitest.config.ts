import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 60_000,
    pool: 'forks',
    // The boot cache (docs/boot-cache.md) goes to a fresh folder per test run, not the user's
    // ~/.cache/storvm: every run starts cold and leaves the user's cache alone.
    env: { STORVM_CACHE_DIR: process.env.STORVM_CACHE_DIR ?? mkdtempSync(join(tmpdir(), 'storvm-test-cache-')) },
  },
});
