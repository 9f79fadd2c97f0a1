/**
 * What the real-browser tests share: find Debian's chromium (or $STORVM_CHROMIUM), build the demo
 * page once with Vite into a temporary folder, serve it (and test fixtures) from a small static
 * server on 127.0.0.1, and launch headless chromium through playwright-core. No browser download:
 * without a chromium binary the tests skip with a message.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import type { AddressInfo } from 'node:net';

export const CHROMIUM = process.env.STORVM_CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));

export function chromiumMissing(): string | undefined {
  return CHROMIUM === undefined ? 'browser tests skipped: no chromium (apt-get install chromium, or set STORVM_CHROMIUM)' : undefined;
}

const ROOT = new URL('../../', import.meta.url).pathname;

/** Builds web/ with Vite into a new temporary folder; returns the folder. */
export async function buildDemo(): Promise<string> {
  const { build } = await import('vite');
  const outDir = mkdtempSync(join(tmpdir(), 'storvm-web-'));
  await build({ configFile: join(ROOT, 'web/vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  return outDir;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.gz': 'application/gzip',
  '.json': 'application/json',
  '.img': 'application/octet-stream',
  '.qcow2': 'application/octet-stream',
};

export interface StaticServer {
  url: string;
  close(): Promise<void>;
  /** Extra routes: path → bytes (or a status number). */
  routes: Map<string, Uint8Array | number>;
  /** Requests per path. */
  hits: Map<string, number>;
}

/** Serves `dir` and the extra routes with plain headers (no compression, no COOP/COEP). */
export async function serve(dir: string): Promise<StaticServer> {
  const routes = new Map<string, Uint8Array | number>();
  const hits = new Map<string, number>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const extra = routes.get(path);
    if (typeof extra === 'number') {
      res.writeHead(extra).end();
      return;
    }
    let body: Uint8Array | undefined = extra;
    const name = path.endsWith('/') ? path + 'index.html' : path;
    if (body === undefined) {
      const file = normalize(join(dir, name));
      if (!file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) {
        res.writeHead(404).end('not found');
        return;
      }
      body = readFileSync(file);
    }
    res.writeHead(200, { 'content-type': TYPES[extname(name)] ?? 'application/octet-stream', 'content-length': body.length, 'cache-control': 'no-store' });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    routes,
    hits,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** Headless chromium as this machine runs it: root needs --no-sandbox; no background networking. */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM!,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** The part of playwright's Page the helpers below use. */
type PageLike = import('playwright-core').Page;

/**
 * Types a command into the demo's console (through xterm.js, as a visitor would) and waits until
 * the console shows `until` after it; returns the console text from the command on. On a timeout
 * the error carries the console's end and the page's errors.
 */
export async function typeAndWait(p: PageLike, cmd: string, until: RegExp, timeout = 30_000): Promise<string> {
  const before = await p.evaluate(() => ((globalThis as any).storvmDemo.state.console as string).length);
  await p.locator('#terminal').click();
  await p.keyboard.type(cmd + '\n');
  try {
    const h = await p.waitForFunction(
      ([from, src]) => {
        const text = ((globalThis as any).storvmDemo.state.console as string).slice(from as number);
        return new RegExp(src as string).test(text) ? text : false;
      },
      [before, until.source] as const,
      { timeout, polling: 100 },
    );
    return (await h.jsonValue()) as string;
  } catch (e) {
    const tail = await p.evaluate(() => ((globalThis as any).storvmDemo.state.console as string).slice(-600));
    const errors = await p.evaluate(() => (globalThis as any).storvmDemo.state.errors);
    throw new Error(`${(e as Error).message}\nconsole: ${JSON.stringify(tail)}\nerrors: ${JSON.stringify(errors)}`);
  }
}
