import { defineConfig } from 'vite';

// Built by bench/browser-storage.ts; not part of the demo.
export default defineConfig({
  root: new URL('.', import.meta.url).pathname,
  base: './',
  build: { target: 'es2022', emptyOutDir: true },
  worker: { format: 'es' },
  logLevel: 'warn',
});
