/**
 * `storvm/browser` as a user gets it: the package is built (tsc → dist/ in a scratch copy), a tiny app in a scratch
 * folder imports `startVm` from "storvm/browser" through the package's exports (browser
 * condition), Vite bundles it, worker and guest images included, and chromium boots it with a
 * share and runs a command. Skips without chromium.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chromiumMissing, launchChromium, serve } from './harness.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const missing = chromiumMissing();

describe.skipIf(missing !== undefined)('the storvm/browser package entry', () => {
  it('bundles from dist through the exports map and boots a guest that reads its share', async () => {
    // The package as npm would ship it, in a scratch folder (the checkout's dist/ is left alone:
    // bin/storvm.mjs prefers it to the sources when it exists).
    const pkg = mkdtempSync(join(tmpdir(), 'storvm-pkg-'));
    for (const config of ['tsconfig.build.json', 'tsconfig.browser.json']) {
      execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, config), '--outDir', join(pkg, 'dist')], { cwd: ROOT, stdio: 'pipe' });
    }
    copyFileSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
    mkdirSync(join(pkg, 'guest-images'));
    for (const f of ['Image.gz', 'initramfs.cpio.gz']) copyFileSync(join(ROOT, 'guest-images', f), join(pkg, 'guest-images', f));
    symlinkSync(join(ROOT, 'node_modules'), join(pkg, 'node_modules'), 'dir'); // its dependencies
    const app = mkdtempSync(join(tmpdir(), 'storvm-consumer-'));
    mkdirSync(join(app, 'node_modules'));
    symlinkSync(pkg, join(app, 'node_modules', 'storvm'), 'dir');
    writeFileSync(join(app, 'index.html'), '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="./app.js"></script>');
    writeFileSync(
      join(app, 'app.js'),
      `import { startVm, ImageError } from 'storvm/browser';
       let out = '';
       const vm = await startVm({ memoryMiB: 128, shares: [{ files: { 'in.txt': 'from the package' } }], command: 'cat /mnt/host/in.txt; echo; echo sum=$((2+3))', onConsole: (b) => (out += new TextDecoder().decode(b)) });
       const exit = await vm.exited;
       let bad;
       try { await startVm({ kernel: new Uint8Array([1, 2, 3]) }); } catch (e) { bad = e instanceof ImageError ? e.code + ': ' + e.message : String(e); }
       window.result = { out, exit, bad };`,
    );
    const dist = join(app, 'dist');
    const { build } = await import('vite');
    await build({ root: app, logLevel: 'warn', configFile: false, base: './', build: { outDir: dist, target: 'es2022', assetsInlineLimit: 0 }, worker: { format: 'es' } });
    const server = await serve(dist);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(server.url + '/');
      const h = await page.waitForFunction(() => (globalThis as any).result, null, { timeout: 120_000, polling: 100 });
      const r = (await h.jsonValue()) as { out: string; exit: { reason: string; exitCode: number }; bad: string };
      expect(r.out).toContain('from the package');
      expect(r.out).toContain('sum=5');
      expect(r.exit).toMatchObject({ reason: 'poweroff', exitCode: 0 });
      expect(r.bad).toMatch(/^format: kernel: /);
    } finally {
      await browser.close();
      await server.close();
      rmSync(app, { recursive: true, force: true });
      rmSync(pkg, { recursive: true, force: true });
    }
  }, 240_000);
});
