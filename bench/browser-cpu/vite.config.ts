import { defineConfig } from 'vite';

// Built by bench/browser.ts; not part of the demo.
export default defineConfig({
  root: new URL('.', import.meta.url).pathname,
  base: './',
  assetsInclude: ['**/*.elf'],
  build: { target: 'es2022', assetsInlineLimit: 0, emptyOutDir: true },
  worker: { format: 'es' },
  logLevel: 'warn',
});
