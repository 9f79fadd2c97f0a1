/**
 * Saved states in the demo page (real chromium): save the running guest to OPFS and resume it
 * after a reload, with the shell's variables and the share's files; download a state and start a
 * page from it by URL (instant boot) or by uploading the file; a bad state is a visible error and
 * the running guest goes on. Skips with a message without chromium.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemo, chromiumMissing, launchChromium, serve, type StaticServer, typeAndWait } from './harness.js';

const missing = chromiumMissing();
if (missing) console.warn(missing);

describe.skipIf(missing !== undefined)('saved states in the demo page', () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let webDir: string;
  const scratch = mkdtempSync(join(tmpdir(), 'storvm-browser-snap-'));
  const demo = <T>(fn: string) => page.evaluate(`window.storvmDemo.${fn}`) as Promise<T>;
  const boots = () => demo<number>('state.boots');

  async function waitBooted(after: number, timeout = 120_000): Promise<void> {
    await page.waitForFunction((n) => (window as any).storvmDemo?.state.boots > n && (window as any).storvmDemo.state.booted === true, after, { timeout, polling: 100 });
  }

  beforeAll(async () => {
    webDir = await buildDemo();
    server = await serve(webDir);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
    page.on('pageerror', (e) => console.error('page error:', e.message));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(scratch, { recursive: true, force: true });
    if (webDir) rmSync(webDir, { recursive: true, force: true });
  }, 180_000);

  it('saves the running guest in OPFS and resumes it after a reload: shell variables, cwd and share files', async () => {
    await page.goto(server.url + '/');
    await waitBooted(0);
    await typeAndWait(page, 'x=kept-$((6*7)); cd /mnt/host; echo from-before > note.txt; echo ok-$((1+1))', /ok-2/, 60_000);
    const size = await demo<number>('saveState()');
    expect(size).toBeGreaterThan(1e6);
    expect(size).toBeLessThan(10e6);
    await page.reload();
    await waitBooted(0); // a reload boots afresh…
    expect(await demo<boolean>('hasSavedState()')).toBe(true);
    expect(await page.locator('#resume-state').isHidden()).toBe(false);
    const n = await boots();
    await page.locator('#resume-state').click(); // …and the saved state goes on where it was
    await waitBooted(n);
    expect(await page.locator('#boot-time').textContent()).toMatch(/resumed in \d+\.\d\d s/);
    const out = await typeAndWait(page, 'echo "$x"; pwd; cat note.txt; echo done-$((2+3))', /done-5/, 60_000);
    expect(out).toMatch(/kept-42\r\n\/mnt\/host\r\nfrom-before\r\n/);
    const files = await page.evaluate(() => (window as any).storvmDemo.state.vm.shares[0].list());
    expect(files.map((f: { path: string }) => f.path)).toContain('note.txt');
  }, 400_000);

  it('starts a page from a state by URL (?snapshot=) and from an uploaded file', async () => {
    const bytes = await page.evaluate(async () => Array.from(new Uint8Array(await ((await (window as any).storvmDemo.stateBlob()) as Blob).arrayBuffer())));
    const snap = Uint8Array.from(bytes);
    server.routes.set('/saved.snap', snap);
    await page.goto(server.url + '/?snapshot=/saved.snap');
    await waitBooted(0);
    expect(await page.locator('#boot-time').textContent()).toMatch(/resumed/);
    expect(await typeAndWait(page, 'echo "$x" url-$((4+4))', /url-8/, 60_000)).toMatch(/kept-42 url-8/);

    const file = join(scratch, 'state.snap');
    writeFileSync(file, snap);
    const n = await boots();
    await page.locator('#upload-state').setInputFiles(file);
    await waitBooted(n);
    expect(await typeAndWait(page, 'echo "$x" file-$((5+5))', /file-10/, 60_000)).toMatch(/kept-42 file-10/);
  }, 400_000);

  it('a state saved before init read its line resumes the handshake: the line is typed, the shares mount', async () => {
    // A cold boot with the boot cache on (its entries removed), saved at once, long before init.
    await page.evaluate(async () => {
      try {
        await (await navigator.storage.getDirectory()).removeEntry('storvm-boot-cache', { recursive: true });
      } catch {
        // none yet
      }
    });
    await page.goto(server.url + '/');
    await page.waitForFunction(() => (window as any).storvmDemo?.state.vm !== undefined, undefined, { timeout: 120_000, polling: 20 });
    const early = await page.evaluate(async () => {
      const d = (window as any).storvmDemo;
      const booted = d.state.booted as boolean;
      const blob = (await d.stateBlob()) as Blob;
      return { booted, bytes: Array.from(new Uint8Array(await blob.arrayBuffer())) };
    });
    expect(early.booted).toBe(false);
    server.routes.set('/early.snap', Uint8Array.from(early.bytes));
    await page.goto(server.url + '/?snapshot=/early.snap');
    await waitBooted(0);
    // Typed at once: held until init has its line, then the shell (with the share mounted) reads it.
    const out = await typeAndWait(page, "grep -c ' /mnt/host 9p ' /proc/mounts; echo early-$((6*7))", /early-42/, 180_000);
    expect(out).toMatch(/\r\n1\r\nearly-42/);
  }, 400_000);

  it('shows a damaged or foreign state as an error, and the running guest goes on', async () => {
    const junk = join(scratch, 'junk.snap');
    writeFileSync(junk, 'this is not a storvm snapshot');
    await page.locator('#upload-state').setInputFiles(junk);
    await page.waitForFunction(() => (window as any).storvmDemo.state.errors.length > 0, null, { timeout: 60_000 });
    const errors = await demo<string[]>('state.errors');
    expect(errors.at(-1)).toMatch(/snapshot: not a storvm snapshot \(bad magic\)/);
    expect(await page.locator('#error').isVisible()).toBe(true);
    expect(await typeAndWait(page, 'echo still-$((3*3))', /still-9/, 60_000)).toMatch(/still-9/);
  }, 300_000);
});
