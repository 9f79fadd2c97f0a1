/**
 * The boot cache in the demo page (real chromium): the first visit boots and leaves an entry in
 * OPFS (`storvm-boot-cache/`), the second visit restores it and starts at a working prompt with
 * the share's files of this visit; a damaged entry is not trusted (the visit boots and rebuilds
 * it); `?bootcache=0` boots without it. Skips with a message without chromium.
 */
import { rmSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemo, chromiumMissing, launchChromium, serve, type StaticServer, typeAndWait } from './harness.js';

const missing = chromiumMissing();
if (missing) console.warn(missing);

describe.skipIf(missing !== undefined)('the boot cache in the demo page', () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let webDir: string;

  const waitBooted = () => page.waitForFunction(() => (window as any).storvmDemo?.state.booted === true, undefined, { timeout: 180_000, polling: 100 });
  const bootCache = () => page.evaluate(() => (window as any).storvmDemo.state.vm.bootCache as string);
  /** The entries in OPFS: name and size. */
  const entries = () =>
    page.evaluate(async () => {
      const out: Array<{ name: string; size: number }> = [];
      try {
        const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('storvm-boot-cache');
        for await (const [name, h] of (dir as any).entries()) out.push({ name, size: (await (h as FileSystemFileHandle).getFile()).size });
      } catch {
        // no folder yet
      }
      return out;
    });
  const waitEntry = async () => {
    for (let i = 0; i < 600; i++) {
      const e = await entries();
      // Only a finished entry: chromium writes through NAME.snap.crswap and swaps it in at close.
      const done = e.filter((x) => x.name.endsWith('.snap'));
      if (done.length > 0 && done[0]!.size > 1e6) return done;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('no boot-cache entry was written');
  };

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
    if (webDir) rmSync(webDir, { recursive: true, force: true });
  }, 180_000);

  it('the first visit boots and saves the booted guest; the second restores it and starts at a working prompt', async () => {
    await page.goto(server.url + '/');
    await waitBooted();
    expect(await bootCache()).toBe('miss');
    const [entry] = await waitEntry();
    expect(entry!.name).toMatch(/^[0-9a-f]{40}\.snap$/);
    await typeAndWait(page, 'echo first-$((2+2))', /first-4/, 60_000);

    await page.reload();
    await waitBooted();
    expect(await bootCache()).toBe('hit');
    expect(await page.locator('#boot-time').textContent()).toMatch(/from the boot cache/);
    // A working shell: the share is mounted and serves files the page puts in now.
    await page.evaluate(() => (window as any).storvmDemo.state.vm.shares[0].put({ 'visit2.txt': 'put-on-visit-2\n' }));
    const out = await typeAndWait(page, "grep -c ' /mnt/host 9p ' /proc/mounts; cat /mnt/host/visit2.txt; echo second-$((3*3))", /second-9/, 60_000);
    expect(out).toMatch(/\r\n1\r\nput-on-visit-2\r\n/);
    expect((await entries()).length).toBe(1);
  }, 600_000);

  it('a damaged entry is not trusted: the visit boots and writes it again; ?bootcache=0 boots without it', async () => {
    const [entry] = await entries();
    await page.evaluate(async (name) => {
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('storvm-boot-cache');
      const w = await (await dir.getFileHandle(name)).createWritable({ keepExistingData: true });
      await w.write({ type: 'write', position: 100, data: new Uint8Array(64).fill(0x5a) });
      await w.close();
    }, entry!.name);
    await page.reload();
    await waitBooted();
    expect(await bootCache()).toBe('miss');
    await typeAndWait(page, 'echo rebuilt-$((5+5))', /rebuilt-10/, 60_000);
    await waitEntry();
    await page.reload();
    await waitBooted();
    expect(await bootCache()).toBe('hit');

    await page.goto(server.url + '/?bootcache=0');
    await waitBooted();
    expect(await bootCache()).toBe('off');
    await typeAndWait(page, 'echo off-$((1+6))', /off-7/, 60_000);
  }, 900_000);
});
