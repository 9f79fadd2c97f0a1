/**
 * The demo page in a real browser (Debian's chromium through playwright-core): it boots the
 * committed guest to a prompt, runs what is typed, moves files both ways through the share,
 * attaches disks by URL and from a local file, exports a disk the guest wrote, and shows a clear
 * error for bad images while the running guest goes on. Skips with a message without chromium.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDisk } from '../../src/backends/block/memory-disk.js';
import { Qcow2Disk } from '../../src/backends/block/qcow2.js';
import { buildDemo, chromiumMissing, launchChromium, serve, type StaticServer, typeAndWait } from './harness.js';

const missing = chromiumMissing();
if (missing) console.warn(missing);

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

/** A 1 MiB raw disk with a marker in sector 2. */
function markedDisk(marker: string): Uint8Array {
  const d = new Uint8Array(1 << 20);
  d.set(new TextEncoder().encode(marker), 1024);
  return d;
}

describe.skipIf(missing !== undefined)('the demo page in chromium', () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let webDir: string;
  const scratch = mkdtempSync(join(tmpdir(), 'storvm-browser-test-'));

  const consoleText = () => page.evaluate(() => (window as any).storvmDemo.state.console as string);
  const errors = () => page.evaluate(() => (window as any).storvmDemo.state.errors as string[]);
  const boots = () => page.evaluate(() => (window as any).storvmDemo.state.boots as number);

  /** Types a command at the console (through xterm.js, as a visitor would) and waits for `until`. */
  const run = (cmd: string, until: RegExp, timeout = 30_000) => typeAndWait(page, cmd, until, timeout);

  async function waitBooted(timeout = 90_000): Promise<void> {
    await page.waitForFunction(() => (window as any).storvmDemo?.state.booted === true, null, { timeout, polling: 100 });
  }

  beforeAll(async () => {
    webDir = await buildDemo();
    server = await serve(webDir);
    browser = await launchChromium();
    page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1280, height: 760 } });
    page.on('pageerror', (e) => console.error('page error:', e.message));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(scratch, { recursive: true, force: true });
    if (webDir) rmSync(webDir, { recursive: true, force: true });
  }, 180_000);

  it('boots the committed guest to a shell prompt, shows the boot time, and looks right', async () => {
    await page.goto(server.url + '/');
    await waitBooted();
    expect(await consoleText()).toContain('Run /init as init process');
    expect(await page.locator('#boot-time').textContent()).toMatch(/booted to a shell in \d+\.\d\d s/);
    const shot = join(scratch, 'booted.png');
    await page.screenshot({ path: shot });
    const png = readFileSync(shot);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.readUInt32BE(16)).toBe(1280);
    writeFileSync(join(tmpdir(), 'storvm-demo-booted.png'), png); // kept for a human to look at
  }, 180_000);

  it('runs a command typed into the console', async () => {
    const out = await run('echo answer=$((6*7)); uname -m', /answer=42\r?\nriscv64/);
    expect(out).toMatch(/answer=42/);
  }, 180_000);

  it('copies with Ctrl+Shift+C, pastes with Ctrl+Shift+V, and fits the terminal to the window', async () => {
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    await page.locator('#terminal').click(); // focus the console
    await page.evaluate(() => (window as any).storvmDemo.selectAll());
    await page.keyboard.press('Control+Shift+KeyC');
    await page.waitForFunction(async () => /BusyBox/.test(await navigator.clipboard.readText()), null, { timeout: 5000 });
    await page.evaluate(() => navigator.clipboard.writeText('echo pasted-$((5*5))\n'));
    const before = (await consoleText()).length;
    await page.keyboard.press('Control+Shift+KeyV');
    await page.waitForFunction((from) => /pasted-25/.test(((window as any).storvmDemo.state.console as string).slice(from)), before, { timeout: 20_000 });
    const wide = await page.evaluate(() => (window as any).storvmDemo.terminal());
    await page.setViewportSize({ width: 900, height: 500 });
    await page.waitForFunction((w) => (window as any).storvmDemo.terminal().cols < w.cols && (window as any).storvmDemo.terminal().rows < w.rows, wide, { timeout: 5000 });
    await page.setViewportSize({ width: 1280, height: 760 });
  }, 180_000);

  it('puts picked files and folders into /mnt/host, and the guest reads them', async () => {
    const folder = join(scratch, 'lesson');
    mkdirSync(join(folder, 'sub'), { recursive: true });
    writeFileSync(join(folder, 'sub', 'deep.txt'), 'from a dropped folder\n');
    await page.setInputFiles('#pick-folder', folder);
    const file = join(scratch, 'notes.txt');
    writeFileSync(file, 'picked on the page\n');
    await page.setInputFiles('#pick-files', file);
    await page.waitForSelector('#files li[data-path="notes.txt"]', { timeout: 10_000 });
    const out = await run('cat /mnt/host/notes.txt /mnt/host/lesson/sub/deep.txt', /from a dropped folder/);
    expect(out).toContain('picked on the page');
  }, 180_000);

  it('takes a file dropped onto the page', async () => {
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['dropped bytes\n'], 'dropped.txt'));
      document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await run('cat /mnt/host/dropped.txt', /dropped bytes/);
  }, 180_000);

  it('downloads a file the guest wrote, with the same bytes', async () => {
    const out = await run('head -c 300000 /dev/urandom > /mnt/host/out.bin && md5sum /mnt/host/out.bin', /[0-9a-f]{32}\s+\/mnt\/host\/out\.bin/);
    const guestMd5 = /([0-9a-f]{32})\s+\/mnt\/host\/out\.bin/.exec(out)![1];
    await page.click('#refresh');
    const row = page.locator('#files li[data-path="out.bin"]');
    await row.waitFor({ timeout: 10_000 });
    const [download] = await Promise.all([page.waitForEvent('download'), row.locator('button.download').click()]);
    const saved = join(scratch, 'out.bin');
    await download.saveAs(saved);
    const bytes = readFileSync(saved);
    expect(bytes.length).toBe(300000);
    expect(md5(bytes)).toBe(guestMd5);
  }, 180_000);

  it('shows a clear error for a broken image URL and a truncated .gz, and the guest keeps running', async () => {
    const gz = gzipSync(markedDisk('never seen'));
    server.routes.set('/bad/truncated.img.gz', gz.subarray(0, gz.length >> 1));
    const before = await boots();
    for (const [url, pattern] of [
      [`${server.url}/bad/missing.img`, /missing\.img: HTTP 404/],
      [`${server.url}/bad/truncated.img.gz`, /truncated\.img\.gz: .*(truncated|corrupt|unexpected)/i],
    ] as const) {
      await page.fill('#disk-url', url);
      await page.click('#attach button[type=submit]');
      await page.locator('#error-text').filter({ hasText: pattern }).waitFor({ timeout: 20_000 });
      expect(await page.locator('#error').isVisible()).toBe(true);
      await page.click('#error-close');
    }
    expect(await boots()).toBe(before);
    await run('echo still-$((1+1))', /still-2/);
  }, 180_000);

  it('says so on the page when the guest RAM asked for is more than it can have', async () => {
    const p = await browser.newPage();
    await p.goto(`${server.url}/?mem=4096`);
    await p.locator('#error-text').filter({ hasText: /memoryMiB must be an integer 16\.\.2048, got 4096/ }).waitFor({ timeout: 20_000 });
    expect(await p.locator('#status').textContent()).toBe('not running');
    await p.close();
  }, 60_000);

  it('refuses an image larger than the memory the page may use, with a message', async () => {
    // The default limit is 1 GiB; the page's `maximg` knob lowers it so a 3 MiB image is too big
    // (the 1.7 MB kernel and 1 MB initramfs still fit).
    server.routes.set('/big.img', new Uint8Array(3 << 20));
    const small = await browser.newPage();
    await small.goto(`${server.url}/?maximg=2`);
    await small.waitForFunction(() => (window as any).storvmDemo?.state.booted === true, null, { timeout: 90_000 });
    await small.evaluate((url) => (window as any).storvmDemo.attachDisk({ source: url }), `${server.url}/big.img`);
    await small.locator('#error-text').filter({ hasText: /big\.img: 3\.0 MiB is more than this page may hold in memory \(2\.0 MiB\)/ }).waitFor({ timeout: 20_000 });
    expect(await small.evaluate(() => (window as any).storvmDemo.state.vm.disks.length)).toBe(0);
    await small.close();
  }, 180_000);

  it('attaches a disk by URL (dd reads it) and from a local file, and exports what the guest wrote', async () => {
    server.routes.set('/disks/a.img.gz', gzipSync(markedDisk('MARKER-FROM-URL')));
    await page.fill('#disk-url', `${server.url}/disks/a.img.gz`);
    await page.click('#attach button[type=submit]');
    await page.waitForFunction((n) => (window as any).storvmDemo.state.boots > n, await boots(), { timeout: 60_000 });
    await waitBooted();
    // The share's files came along across the reboot.
    await run('cat /mnt/host/dropped.txt', /dropped bytes/);
    const local = join(scratch, 'local.img');
    writeFileSync(local, markedDisk('MARKER-FROM-FILE'));
    await page.setInputFiles('#disk-file', local);
    await page.click('#attach button[type=submit]');
    await page.waitForFunction(() => (window as any).storvmDemo.state.vm?.disks.length === 2, null, { timeout: 60_000 });
    await waitBooted();
    // vda is the URL, vdb the local file.
    await run('dd if=/dev/vda bs=512 skip=2 count=1 2>/dev/null | head -c 15; echo', /MARKER-FROM-URL/);
    await run('dd if=/dev/vdb bs=512 skip=2 count=1 2>/dev/null | head -c 16; echo', /MARKER-FROM-FILE/);
    await run('printf GUEST-WROTE-THIS | dd of=/dev/vdb bs=512 seek=5 conv=sync,notrunc 2>/dev/null; sync; echo written', /written/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#disks li').nth(1).locator('button.download').click()]);
    const saved = join(scratch, 'exported.img');
    await download.saveAs(saved);
    const img = readFileSync(saved);
    expect(img.length).toBe(1 << 20);
    const expected = markedDisk('MARKER-FROM-FILE');
    expected.set(new TextEncoder().encode('GUEST-WROTE-THIS'), 5 * 512);
    expect(md5(img)).toBe(md5(expected));
    // The same disk as qcow2, read back through storvm's own qcow2 reader.
    const [qdl] = await Promise.all([page.waitForEvent('download'), page.locator('#disks li').nth(1).locator('button.download-qcow2').click()]);
    const qpath = join(scratch, 'exported.qcow2');
    await qdl.saveAs(qpath);
    expect(qdl.suggestedFilename()).toBe('local.qcow2');
    const q = await Qcow2Disk.open(new MemoryDisk(new Uint8Array(readFileSync(qpath)), { readOnly: true }));
    const viaQcow2 = new Uint8Array(q.size);
    await q.read(0, viaQcow2);
    expect(md5(viaQcow2)).toBe(md5(expected));
    // The local file itself is untouched: the guest's write went to the overlay.
    expect(md5(readFileSync(local))).toBe(md5(markedDisk('MARKER-FROM-FILE')));
  }, 180_000);

  it('reports a share file that cannot be read, and the guest keeps running', async () => {
    const gone = join(scratch, 'gone.txt');
    writeFileSync(gone, 'soon deleted\n');
    await page.evaluate(() => {
      const input = document.createElement('input');
      input.type = 'file';
      input.id = 'test-only-input';
      document.body.append(input);
    });
    await page.setInputFiles('#test-only-input', gone);
    rmSync(gone);
    await page.evaluate(() => {
      const f = (document.getElementById('test-only-input') as HTMLInputElement).files![0]!;
      return (window as any).storvmDemo.putFiles([{ path: 'gone.txt', data: f }]);
    });
    await page.locator('#error-text').filter({ hasText: /gone\.txt: the file could not be read/ }).waitFor({ timeout: 10_000 });
    await run('ls /mnt/host/gone.txt 2>&1; echo alive', /alive/);
  }, 180_000);

  it('boots straight into a lesson command with ?cmd=', async () => {
    const lesson = await browser.newPage();
    await lesson.goto(`${server.url}/?cmd=${encodeURIComponent('echo lesson-$((40+2))')}`);
    await lesson.waitForFunction(() => /lesson-42/.test((window as any).storvmDemo?.state.console ?? ''), null, { timeout: 90_000, polling: 200 });
    await lesson.close();
  }, 180_000);

  it('boots and runs with the WebAssembly translator (?cpu=wasm)', async () => {
    const p = await browser.newPage();
    await p.goto(`${server.url}/?cpu=wasm&cmd=${encodeURIComponent('i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; echo loop-done-$i')}`);
    await p.waitForFunction(() => /loop-done-3000/.test((window as any).storvmDemo?.state.console ?? ''), null, { timeout: 120_000, polling: 200 });
    await p.close();
  }, 180_000);

  it('stops cleanly', async () => {
    expect(await errors()).not.toContain(undefined);
    const exit = await page.evaluate(() => (window as any).storvmDemo.state.vm.stop());
    expect(exit.reason).toBe('stopped');
  }, 180_000);
});
