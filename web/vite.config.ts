import { defineConfig } from 'vite';
import { labImage } from './lab-image.js';

// The demo page: `npm run demo` serves it, `npm run build:web` writes static files to dist/web.
// No SharedArrayBuffer is used, so no COOP/COEP headers are needed.
export default defineConfig({
  root: new URL('.', import.meta.url).pathname,
  base: './',
  // The guest images ship as they are; never let a server or plugin treat .gz as an encoding.
  assetsInclude: ['**/*.gz'],
  // The storage lab's lazily fetched disk, served as chunk files (web/lab-image.ts).
  plugins: [labImage()],
  build: {
    outDir: new URL('../dist/web', import.meta.url).pathname,
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 2048,
  },
  worker: { format: 'es' },
  server: { host: '127.0.0.1', port: 5173, fs: { allow: ['..'] } },
  preview: { host: '127.0.0.1', port: 4173 },
});
