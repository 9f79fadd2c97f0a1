/**
 * The storage lab in the demo page, in real chromium: `storvm bench`'s guest script runs in a
 * second guest over a persistent OPFS disk and an OPFS folder share, and the page shows the same
 * table the CLI prints and a bar chart of the rates, with the JSON report. Skips without chromium.
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

  it('runs the workloads on OPFS-backed blk and 9p/virtio-fs stores and shows the table, a chart and the JSON', async () => {
    await page.goto(server.url + '/');
    await page.fill('#lab-size', '1');
    await page.fill('#lab-files', '10');
    await page.fill('#lab-variants', 'tmpfs,blk-raw,9p-512k-none,vfs-auto');
    await page.click('#lab-run');
    await page.waitForFunction(() => {
      const l = (window as any).storvmDemo.lab;
      return l.report !== undefined || l.error !== undefined;
    }, null, { timeout: 900_000, polling: 500 });
    const { report, error } = await page.evaluate(() => ({ report: (window as any).storvmDemo.lab.report, error: (window as any).storvmDemo.lab.error }));
    expect(error).toBeUndefined();
    expect(report.browser).toMatchObject({ disk: 'opfs', share: 'opfs' });
    const ok = (v: string, w: string) => report.results.find((c: any) => c.variant === v && c.workload === w);
    for (const v of ['tmpfs', 'blk-raw', '9p-512k-none', 'vfs-auto']) {
      for (const w of ['seq-write', 'seq-read', 'rand-read', 'rand-write']) expect(ok(v, w), `${v} ${w}: ${ok(v, w)?.message}`).toMatchObject({ status: 'ok' });
    }
    for (const w of ['create', 'stat', 'unlink', 'untar']) expect(ok('9p-512k-none', w)?.status, w).toBe('ok');
    expect(ok('blk-raw', 'untar')?.status).toBe('n/a');
    // The stores were really used: the OPFS disk and the OPFS share held the data written.
    expect(report.elasticity['blk-raw'].written).toBeGreaterThanOrEqual(1 << 20);
    expect(report.elasticity['9p'].written).toBeGreaterThanOrEqual(1 << 20);
    expect(report.elasticity['9p'].deleted).toBeLessThan(report.elasticity['9p'].written);
    expect(report.visibility.find((v: any) => v.store === '9p-none')).toMatchObject({ afterWrite: true, afterUnmount: true });
    expect(report.errors).toEqual([]);
    const table = await page.locator('#lab-table').textContent();
    expect(table).toMatch(/^storvm bench: 1 MiB sequential/);
    expect(table).toMatch(/seq-write\s+[\d.]+ MB\/s\s+[\d.]+ MB\/s/);
    expect(await page.locator('#lab-chart svg g.bar[data-variant="blk-raw"][data-workload="seq-write"] rect').count()).toBe(1);
    expect(await page.locator('#lab-chart svg g.bar').count()).toBeGreaterThanOrEqual(16);
    await page.locator('#lab-panel').screenshot({ path: '/tmp/storvm-lab-panel.png' });
  }, 960_000);
});
