/**
 * The storage lab in the demo page, in real chromium: `storvm bench`'s guest script runs in a
 * second guest over a memory disk, a persistent OPFS disk, a lazily fetched image from the page's
 * server and an OPFS folder share, and the page shows them beside the committed Node figures in
 * one table and one bar chart, with the JSON report; a bad Node file is one clear message.
 * Skips without chromium.
 */
import { rmSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemo, chromiumMissing, launchChromium, serve, type StaticServer } from './harness.js';

const missing = chromiumMissing();

describe.skipIf(missing !== undefined)('the storage lab in chromium', () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let webDir: string;

  beforeAll(async () => {
    webDir = await buildDemo();
    server = await serve(webDir);
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (webDir) rmSync(webDir, { recursive: true, force: true });
  });

  it('runs the workloads on memory, OPFS and lazily fetched disks and OPFS 9p/virtio-fs stores, and shows them beside Node', async () => {
    await page.goto(server.url + '/');
    // The committed Node report is shown before the page's own run.
    await page.waitForFunction(() => (window as any).storvmDemo.lab.node !== undefined, null, { timeout: 30_000 });
    expect(await page.locator('#lab-node-status').textContent()).toMatch(/^Node figures: bench\/lab-node\.json/);
    expect(await page.locator('#lab-chart svg g.bar[data-side="node"]').count()).toBeGreaterThan(20);
    await page.fill('#lab-size', '1');
    await page.fill('#lab-files', '10');
    await page.fill('#lab-variants', 'tmpfs,blk-raw,blk-opfs,blk-http,9p-512k-none,vfs-auto');
    await page.click('#lab-run');
    await page.waitForFunction(() => {
      const l = (window as any).storvmDemo.lab;
      return l.report !== undefined || l.error !== undefined;
    }, null, { timeout: 900_000, polling: 500 });
    const { report, error } = await page.evaluate(() => ({ report: (window as any).storvmDemo.lab.report, error: (window as any).storvmDemo.lab.error }));
    expect(error).toBeUndefined();
    expect(report.browser).toMatchObject({ share: 'opfs' });
    const ok = (v: string, w: string) => report.results.find((c: any) => c.variant === v && c.workload === w);
    for (const v of ['tmpfs', 'blk-raw', 'blk-opfs', 'blk-http', '9p-512k-none', 'vfs-auto']) {
      for (const w of ['seq-write', 'seq-read', 'rand-read', 'rand-write']) expect(ok(v, w), `${v} ${w}: ${ok(v, w)?.message}`).toMatchObject({ status: 'ok' });
    }
    for (const w of ['create', 'stat', 'unlink', 'untar']) expect(ok('9p-512k-none', w)?.status, w).toBe('ok');
    expect(ok('blk-raw', 'untar')?.status).toBe('n/a');
    expect(ok('blk-http', 'untar')?.status).toBe('n/a');
    // The stores were really used: the OPFS disk held the data written, the lazy disk fetched
    // the chunks the guest read (1 MiB in 256 KiB chunks) from the page's server.
    expect(report.browser.opfsDiskBytes).toBeGreaterThanOrEqual(1 << 20);
    expect(report.browser.httpChunksFetched).toBeGreaterThanOrEqual(4);
    expect(server.hits.get('/lab-image/manifest.json')).toBe(1);
    expect([...server.hits.keys()].filter((k) => k.startsWith('/lab-image/chunks/')).length).toBeGreaterThanOrEqual(4);
    expect(report.elasticity['9p'].written).toBeGreaterThanOrEqual(1 << 20);
    expect(report.elasticity['9p'].deleted).toBeLessThan(report.elasticity['9p'].written);
    expect(report.visibility.find((v: any) => v.store === '9p-none')).toMatchObject({ afterWrite: true, afterUnmount: true });
    expect(report.errors).toEqual([]);
    // One table and one chart for both: the page's row and Node's under each workload.
    const table = (await page.locator('#lab-table').textContent())!;
    expect(table).toMatch(/^page: storvm .*1 MiB sequential/);
    expect(table).toMatch(/\nnode: storvm .*4 MiB sequential/);
    // Columns: tmpfs blk-raw 9p-512k-none vfs-auto (both ran them) blk-opfs blk-http (the page's own), then Node's others.
    expect(table).toMatch(/\n {16}tmpfs +blk-raw +9p-512k-none +vfs-auto +blk-opfs +blk-http +blk-ext4 /);
    expect(table).toMatch(/\nseq-read\n  page +([\d.]+ MB\/s +){6}— /);
    expect(table).toMatch(/\n  node +([\d.]+ MB\/s +){4}— +— +[\d.]+ MB\/s/);
    for (const v of ['blk-raw', 'blk-opfs', 'blk-http']) expect(await page.locator(`#lab-chart svg g.bar[data-variant="${v}"][data-workload="seq-read"][data-side="page"] rect`).count(), v).toBe(1);
    expect(await page.locator('#lab-chart svg g.bar[data-variant="blk-raw"][data-workload="seq-read"][data-side="node"] rect').count()).toBe(1);
    await page.locator('#lab-panel').screenshot({ path: '/tmp/storvm-lab-panel.png' });
    // The JSON download is the page's own report, in storvm bench's format.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#lab-json')]);
    const json = JSON.parse(await (await download.createReadStream()).toArray().then((b) => Buffer.concat(b).toString()));
    expect(json.results).toEqual(report.results);

    // A bad Node file: one clear message, and the figures shown before stay.
    await page.setInputFiles('#lab-node-file', { name: 'notes.json', mimeType: 'application/json', buffer: Buffer.from('{"hello": "world"}') });
    await page.waitForFunction(() => (window as any).storvmDemo.lab.nodeError !== undefined, null, { timeout: 10_000 });
    expect(await page.locator('#lab-node-status').textContent()).toBe('notes.json: not a storvm bench report (no results list); write one with storvm bench --json FILE');
    expect(await page.locator('#error-text').textContent()).toContain('notes.json: not a storvm bench report');
    expect(await page.locator('#lab-chart svg g.bar[data-side="node"]').count()).toBeGreaterThan(20);
    // A URL that is not there.
    await page.fill('#lab-node-url', server.url + '/nothing.json');
    await page.click('#lab-node-load');
    await page.waitForFunction(() => /nothing\.json: HTTP 404/.test((window as any).storvmDemo.lab.nodeError ?? ''), null, { timeout: 10_000 });
    // And the page's own JSON, read back as Node figures, is accepted.
    await page.setInputFiles('#lab-node-file', { name: 'storvm-lab.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(json)) });
    await page.waitForFunction(() => (window as any).storvmDemo.lab.nodeFrom === 'storvm-lab.json', null, { timeout: 10_000 });
    expect(await page.evaluate(() => (window as any).storvmDemo.lab.nodeError)).toBeUndefined();
  }, 960_000);
});
