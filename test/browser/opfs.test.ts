/**
 * Disks that last, in real chromium: a persistent (OPFS) disk keeps what the guest wrote across a
 * reload; a second tab gets it read-only and says so; an overlay over a URL image keeps changes
 * while the image stays as it is, and "forget changes" drops them; and killing the machine's
 * worker at random moments while the guest writes and syncs never loses a completed FLUSH nor
 * leaves garbage. Skips without chromium.
 *
 * The guest writes with `dd conv=fsync`: fsync on a block device is what makes Linux send a FLUSH.
 * A plain `sync` writes the page cache out but sends none for a raw disk without a filesystem.
 */
import { rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemo, chromiumMissing, launchChromium, serve, type StaticServer, typeAndWait } from './harness.js';

const missing = chromiumMissing();

describe.skipIf(missing !== undefined)('persistent disks in chromium', () => {
  let server: StaticServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let webDir: string;

  const waitBooted = (p: Page) => p.waitForFunction(() => (window as any).storvmDemo?.state.booted === true, null, { timeout: 120_000, polling: 100 });

  const run = typeAndWait;

  async function reboots(p: Page, action: () => Promise<unknown>): Promise<void> {
    const n = await p.evaluate(() => (window as any).storvmDemo.state.boots as number);
    await action();
    await p.waitForFunction((k) => (window as any).storvmDemo.state.boots > k, n, { timeout: 60_000 });
    await waitBooted(p);
  }

  beforeAll(async () => {
    webDir = await buildDemo();
    server = await serve(webDir);
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
    page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (webDir) rmSync(webDir, { recursive: true, force: true });
  });

  it('keeps what the guest wrote to a persistent disk across a reload', async () => {
    await page.goto(server.url + '/');
    await waitBooted(page);
    await reboots(page, () => page.evaluate(() => (window as any).storvmDemo.attachDisk({ persist: { name: 'keep', size: 64 << 20 } })));
    await run(page, 'printf KEPT-ACROSS-RELOAD | dd of=/dev/vda bs=512 seek=9 conv=notrunc,fsync 2>/dev/null; echo wrote-$((1+1))', /wrote-2/);
    await page.reload();
    await waitBooted(page);
    expect(await page.evaluate(() => (window as any).storvmDemo.state.vm.disks.map((d: any) => [d.persistent, d.readOnly]))).toEqual([[true, false]]);
    await run(page, 'dd if=/dev/vda bs=512 skip=9 count=1 2>/dev/null | head -c 18; echo', /KEPT-ACROSS-RELOAD/);
  }, 240_000);

  it('opens the disk read-only in a second tab, and says why', async () => {
    const second = await context.newPage();
    await second.goto(server.url + '/');
    await waitBooted(second);
    const disks = await second.evaluate(() => (window as any).storvmDemo.state.vm.disks.map((d: any) => ({ ro: d.readOnly, note: d.note })));
    expect(disks).toEqual([{ ro: true, note: 'read-only: another tab is writing this disk' }]);
    await second.locator('#disks .note').filter({ hasText: /another tab/ }).waitFor({ timeout: 5000 });
    await run(second, 'dd if=/dev/vda bs=512 skip=9 count=1 2>/dev/null | head -c 18; echo; echo x > /dev/vda 2>&1; echo rc=$?', /rc=1/);
    expect(await second.evaluate(() => (window as any).storvmDemo.state.console)).toContain('KEPT-ACROSS-RELOAD');
    await second.close();
  }, 240_000);

  it('keeps an overlay over a URL image across a reload, leaves the image alone, and forgets on request', async () => {
    const image = new Uint8Array(1 << 20);
    image.set(new TextEncoder().encode('BASE-IMAGE-BYTES'), 4096);
    server.routes.set('/img/base.img.gz', gzipSync(image));
    await page.fill('#disk-url', `${server.url}/img/base.img.gz`);
    await page.check('#disk-persist');
    await reboots(page, () => page.click('#attach button[type=submit]'));
    await run(page, 'dd if=/dev/vdb bs=4096 skip=1 count=1 2>/dev/null | head -c 16; echo', /BASE-IMAGE-BYTES/);
    await run(page, 'printf CHANGED-BY-GUEST | dd of=/dev/vdb bs=4096 seek=1 conv=notrunc,fsync 2>/dev/null; echo done-$((3*3))', /done-9/);
    await page.reload();
    await waitBooted(page);
    await run(page, 'dd if=/dev/vdb bs=4096 skip=1 count=1 2>/dev/null | head -c 16; echo', /CHANGED-BY-GUEST/);
    await reboots(page, () => page.locator('#disks li').nth(1).locator('button.forget').click());
    await run(page, 'dd if=/dev/vdb bs=4096 skip=1 count=1 2>/dev/null | head -c 16; echo', /BASE-IMAGE-BYTES/);
  }, 240_000);

  it('imports a local file into the browser, so it boots after a reload without the file', async () => {
    if (!page.url().startsWith(server.url)) {
      await page.goto(server.url + '/');
      await waitBooted(page);
    }
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(mkdtempSync(join(tmpdir(), 'storvm-import-')), 'local-disk.img');
    const img = new Uint8Array(2 << 20);
    img.set(new TextEncoder().encode('IMPORTED-FROM-A-FILE'), 3 * 512);
    writeFileSync(file, img);
    await page.setInputFiles('#disk-file', file);
    await page.check('#disk-persist');
    await reboots(page, () => page.click('#attach button[type=submit]'));
    await page.uncheck('#disk-persist');
    const n = (await page.evaluate(() => (window as any).storvmDemo.state.vm.disks.length)) as number;
    const dev = `/dev/vd${String.fromCharCode(96 + n)}`;
    await run(page, `dd if=${dev} bs=512 skip=3 count=1 2>/dev/null | head -c 20; echo`, /IMPORTED-FROM-A-FILE/);
    await run(page, `printf AND-CHANGED | dd of=${dev} bs=512 seek=7 conv=notrunc,fsync 2>/dev/null; echo ok-$((2*4))`, /ok-8/);
    await page.reload();
    await waitBooted(page);
    await run(page, `dd if=${dev} bs=512 skip=3 count=1 2>/dev/null | head -c 20; echo; dd if=${dev} bs=512 skip=7 count=1 2>/dev/null | head -c 11; echo`, /IMPORTED-FROM-A-FILE\r?\nAND-CHANGED/);
  }, 300_000);

  it('boots with a lazily fetched disk, fetches nothing the second time, and names a corrupt chunk', async () => {
    if (!page.url().startsWith(server.url)) {
      await page.goto(server.url + '/');
      await waitBooted(page);
    }
    const { chunkImage } = await import('../../src/node/image-chunk.js');
    const { mkdtempSync, readFileSync, writeFileSync, readdirSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { createHash } = await import('node:crypto');
    const work = mkdtempSync(join(tmpdir(), 'storvm-lazy-'));
    const img = new Uint8Array(6 << 20);
    for (let i = 0; i < img.length; i += 4096) img.set(new TextEncoder().encode(`block ${i / 4096} `), i);
    writeFileSync(join(work, 'lazy.img'), img);
    await chunkImage(join(work, 'lazy.img'), join(work, 'out'), { chunkSize: 256 * 1024 });
    server.routes.set('/lazy/manifest.json', readFileSync(join(work, 'out/manifest.json')));
    const files = readdirSync(join(work, 'out/chunks'));
    for (const f of files) server.routes.set(`/lazy/chunks/${f}`, readFileSync(join(work, 'out/chunks', f)));
    const md5 = createHash('md5').update(img).digest('hex');
    const chunkHits = () => [...server.hits.entries()].filter(([p]) => p.startsWith('/lazy/chunks/')).reduce((n, [, k]) => n + k, 0);
    await reboots(page, () => page.evaluate((url) => (window as any).storvmDemo.attachDisk({ source: url, lazy: true, readOnly: true }), `${server.url}/lazy/manifest.json`));
    const n = (await page.evaluate(() => (window as any).storvmDemo.state.vm.disks.length)) as number;
    const dev = `/dev/vd${String.fromCharCode(96 + n)}`;
    await run(page, `md5sum ${dev}`, new RegExp(`[0-9a-f]{32}\\s+${dev}`));
    expect(await page.evaluate(() => (window as any).storvmDemo.state.console)).toContain(md5);
    const first = chunkHits();
    expect(first).toBe(files.length);
    await page.reload();
    await waitBooted(page);
    await run(page, `md5sum ${dev} | cut -c1-32`, /[0-9a-f]{32}\r?\n/);
    expect(chunkHits()).toBe(first); // all from the OPFS cache
    // A different page (its own storage, so an empty cache) with one chunk corrupted on the server.
    server.routes.set(`/lazy/chunks/${files[1]}`, new Uint8Array(256 * 1024));
    const other = await browser.newPage();
    await other.goto(server.url + '/');
    await waitBooted(other);
    await other.evaluate((url) => (window as any).storvmDemo.attachDisk({ source: url, lazy: true, readOnly: true }), `${server.url}/lazy/manifest.json`);
    await waitBooted(other);
    await run(other, 'md5sum /dev/vda; echo rc=$?', /rc=\d/);
    await other.locator('#error-text').filter({ hasText: /\/dev\/vda: chunk \d+ is corrupt: its SHA-256 is/ }).waitFor({ timeout: 20_000 });
    await other.close();
  }, 300_000);

  it('answers IOERR for writes past the storage quota, and keeps what was stored before', async () => {
    const ctx = await browser.newContext();
    const p = await ctx.newPage();
    await p.goto(server.url + '/');
    await waitBooted(p);
    await reboots(p, () => p.evaluate(() => (window as any).storvmDemo.attachDisk({ persist: { name: 'quota', size: 64 << 20 } })));
    await run(p, 'printf BEFORE-THE-QUOTA | dd of=/dev/vda bs=512 seek=2 conv=notrunc,fsync 2>/dev/null; echo first-$((1+2))', /first-3/);
    // Chromium lets a test set an origin's quota: 4 MiB more than it uses now.
    const cdp = await ctx.newCDPSession(p);
    const usage = await p.evaluate(async () => (await navigator.storage.estimate()).usage ?? 0);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url, quotaSize: usage + (4 << 20) });
    const out = await run(p, 'dd if=/dev/urandom of=/dev/vda bs=1M seek=8 count=16 conv=notrunc,fsync; echo rc=$?', /rc=\d/, 120_000);
    expect(out).toMatch(/dd: \/dev\/vda: Input\/output error/);
    expect(out).toMatch(/rc=1/);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: server.url });
    await p.reload();
    await waitBooted(p);
    await run(p, 'dd if=/dev/vda bs=512 skip=2 count=1 2>/dev/null | head -c 16; echo', /BEFORE-THE-QUOTA/);
    await ctx.close();
  }, 300_000);

  it('never loses a completed FLUSH when the worker is killed at random moments', async () => {
    for (let round = 0; round < 3; round++) {
      const cmd = 'i=$(dd if=/dev/vda bs=512 skip=1 count=1 2>/dev/null | head -c 8); i=$((10#${i:-0})); while true; do i=$((i+1)); printf "%08d" $i | dd of=/dev/vda bs=512 seek=1 conv=notrunc,fsync 2>/dev/null; echo "synced $i"; done';
      const before = await page.evaluate(() => ((window as any).storvmDemo.state.console as string).length);
      await page.locator('#terminal').click();
      await page.keyboard.type(cmd + '\n');
      await page.waitForFunction((from) => /synced \d+/.test(((window as any).storvmDemo.state.console as string).slice(from)), before, { timeout: 30_000 });
      await page.waitForTimeout(300 + Math.floor(Math.random() * 1500));
      const text = await page.evaluate(() => {
        const s = (window as any).storvmDemo;
        s.kill();
        return s.state.console as string;
      });
      const acked = Math.max(...[...text.slice(before).matchAll(/synced (\d+)/g)].map((m) => Number(m[1])));
      await page.reload();
      await waitBooted(page);
      const out = await run(page, 'v=$(dd if=/dev/vda bs=512 skip=1 count=1 2>/dev/null | head -c 8); echo "VAL[$v]"', /VAL\[[^$\]]*\]/);
      const value = /VAL\[(\d{8})\]/.exec(out);
      expect(value, out).not.toBeNull();
      const v = Number(value![1]);
      expect(v, `round ${round}: read ${v}, last acknowledged FLUSH ${acked}`).toBeGreaterThanOrEqual(acked);
      // Later writes may be on the disk too: the console lines of the last passes can still be on
      // their way (UART, worker, page) when the kill lands. Only a counter the loop wrote is valid.
      expect(v).toBeLessThanOrEqual(acked + 8);
    }
  }, 400_000);
});
