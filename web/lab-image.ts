/**
 * The storage lab's lazily fetched disk (its blk-http column): a Vite plugin that serves a
 * generated image as chunk files in the layout `storvm image chunk` writes — `lab-image/
 * manifest.json` and `lab-image/chunks/<sha256>` — from the dev server and into the built page, so
 * the page's own server is the image's server. The image is 33 MiB (runs of up to 32 MiB), every
 * 4 KiB block starting with its number, so no chunk is zeros and no two chunks are alike: each
 * first read of a chunk is a real fetch. Runs in Node (Vite) with Web Crypto only.
 */
import type { Plugin } from 'vite';

export const LAB_IMAGE_DIR = 'lab-image';
const SIZE = 33 << 20;
const CHUNK = 256 << 10;

interface Files {
  manifest: string;
  chunks: Map<string, Uint8Array>;
}

let made: Promise<Files> | undefined;

async function makeImage(): Promise<Files> {
  const te = new TextEncoder();
  const hashes: string[] = [];
  const chunks = new Map<string, Uint8Array>();
  for (let at = 0; at < SIZE; at += CHUNK) {
    const c = new Uint8Array(Math.min(CHUNK, SIZE - at));
    for (let b = 0; b < c.length; b += 4096) c.set(te.encode(`storvm lab image block ${(at + b) / 4096}\n`), b);
    const h = [...new Uint8Array(await crypto.subtle.digest('SHA-256', c))].map((x) => x.toString(16).padStart(2, '0')).join('');
    hashes.push(h);
    chunks.set(h, c);
  }
  const manifest = JSON.stringify({ format: 'storvm-chunks', version: 1, size: SIZE, chunkSize: CHUNK, chunks: hashes });
  return { manifest, chunks };
}

const files = () => (made ??= makeImage());

export function labImage(): Plugin {
  return {
    name: 'storvm-lab-image',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const path = (req.url ?? '').split('?')[0]!;
        const m = new RegExp(`^/${LAB_IMAGE_DIR}/(manifest\\.json|chunks/([0-9a-f]{64}))$`).exec(path);
        if (m === null) return next();
        void files().then((f) => {
          const body = m[2] === undefined ? te.encode(f.manifest) : f.chunks.get(m[2]);
          if (body === undefined) {
            res.statusCode = 404;
            res.end();
            return;
          }
          res.setHeader('content-type', m[2] === undefined ? 'application/json' : 'application/octet-stream');
          res.setHeader('content-length', String(body.length));
          res.end(body);
        });
      });
    },
    async generateBundle() {
      const f = await files();
      this.emitFile({ type: 'asset', fileName: `${LAB_IMAGE_DIR}/manifest.json`, source: f.manifest });
      for (const [h, c] of f.chunks) this.emitFile({ type: 'asset', fileName: `${LAB_IMAGE_DIR}/chunks/${h}`, source: c });
    },
  };
}

const te = new TextEncoder();
