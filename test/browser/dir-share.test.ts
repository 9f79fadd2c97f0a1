/**
 * Shares that last, in real chromium: the demo's /mnt/keep is a DirectoryHandleFs over the
 * Origin Private File System. What the guest writes there — contents, modes, owners, times,
 * symlinks, FIFOs, renamed files and directories — is there after a reload; a file the page
 * puts in is seen by the guest; a folder handle shared as a picked folder would be (writable
 * streams, no sync access handles) gets the guest's files as plain files, with their records
 * beside them, and is remembered across a reload (its handle in IndexedDB), or said to be gone
 * when its folder is. Skips without chromium.
 */
import { rmSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDemo, chromiumMissing, launchChromium, serve, type StaticServer, typeAndWait } from './harness.js';

const missing = chromiumMissing();

describe.skipIf(missing !== undefined)('kept shares in chromium', () => {
  let server: StaticServer;
  let browser: Browser;
  let page: Page;
  let webDir: string;

  const waitBooted = (p: Page) => p.waitForFunction(() => (window as any).storvmDemo?.state.booted === true, null, { timeout: 120_000, polling: 100 });

  beforeAll(async () => {
    webDir = await buildDemo();
    server = await serve(webDir);
    browser = await launchChromium();
    page = await (await browser.newContext({ viewport: { width: 1280, height: 760 } })).newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    if (process.env.DEBUG_DIRFS) page.on('console', (m) => console.log('console:', m.text()));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (webDir) rmSync(webDir, { recursive: true, force: true });
  });

  it('keeps what the guest wrote to /mnt/keep across a reload: bytes, modes, owners, times, symlinks, FIFOs, renames', async () => {
    await page.goto(server.url + '/');
    await waitBooted(page);
    expect(await page.evaluate(() => (window as any).storvmDemo.state.vm.shares.map((s: any) => [s.mountPoint, s.persistent, s.readOnly]))).toEqual([
      ['/mnt/host', false, false],
      ['/mnt/keep', true, false],
    ]);
    await typeAndWait(
      page,
      'cd /mnt/keep && echo hello-kept > f && chmod 640 f && chown 1000:2000 f && touch -t 200102030405.06 f && ln -s ../not/followed ln && mkfifo p && ' +
        'mkdir -p d/e && echo deep > d/e/g && chmod 700 d/e && mv d d2 && echo new > r1 && echo old > r2 && mv r1 r2 && cd / && echo wrote-$((6*7))',
      /wrote-42/,
    );
    await page.reload();
    await waitBooted(page);
    const out = await typeAndWait(
      page,
      "cd /mnt/keep && stat -c '%n %A %u %g %Y' f d2/e && readlink ln && stat -c '%n %F' ln p && cat f d2/e/g r2 && ls -a | tr '\\n' ' ' && cd / && echo read-$((6*8))",
      /read-48/,
    );
    expect(out).toMatch(/f -rw-r----- 1000 2000 981173106/);
    expect(out).toMatch(/d2\/e drwx------ 0 0/);
    expect(out).toMatch(/\.\.\/not\/followed/);
    expect(out).toMatch(/ln symbolic link/);
    expect(out).toMatch(/p fifo/);
    expect(out).toMatch(/hello-kept\s+deep\s+new/);
    expect(out).toMatch(/\. \.\. d2 f ln p r2 /); // no .storvm, no r1, no d
  }, 300_000);

  it('shows the guest a file the page puts into /mnt/keep, and the page a file the guest wrote', async () => {
    await page.evaluate(() => (window as any).storvmDemo.putFiles([{ path: 'from-page/hello.txt', data: new Blob(['PUT-BY-THE-PAGE']) }], 1));
    await typeAndWait(page, 'cat /mnt/keep/from-page/hello.txt; echo; echo seen-$((2+3))', /PUT-BY-THE-PAGE\r?\nseen-5/);
    const listed = await page.evaluate(async () => (await (window as any).storvmDemo.state.vm.shares[1].list()).map((e: any) => `${e.path}:${e.type}`));
    expect(listed).toEqual(expect.arrayContaining(['f:file', 'ln:symlink', 'p:other', 'd2:dir', 'd2/e/g:file', 'from-page/hello.txt:file']));
    const text = await page.evaluate(async () => new TextDecoder().decode(await (window as any).storvmDemo.state.vm.shares[1].read('f')));
    expect(text).toBe('hello-kept\n');
  }, 120_000);

  it('keeps an unlinked open file readable, and serves a folder handle with writable streams', async () => {
    await typeAndWait(page, 'echo still-open > /mnt/keep/gone && exec 3< /mnt/keep/gone && rm /mnt/keep/gone && cat <&3 && exec 3<&- && ls /mnt/keep/gone; echo rc-$((1+1))', /still-open[\s\S]*No such file[\s\S]*rc-2/);
    // A folder handle from OPFS, shared the way a picked folder is (no sync access handles).
    await page.evaluate(async () => {
      const root = await navigator.storage.getDirectory();
      await root.removeEntry('picked', { recursive: true }).catch(() => {});
      const h = await root.getDirectoryHandle('picked', { create: true });
      const w = await (await h.getFileHandle('there-before.txt', { create: true })).createWritable();
      await w.write('FROM-THE-FOLDER');
      await w.close();
      await (window as any).storvmDemo.shareFolder(h);
    });
    await waitBooted(page);
    expect(await page.evaluate(() => (window as any).storvmDemo.state.vm.shares.map((s: any) => s.mountPoint))).toEqual(['/mnt/host', '/mnt/keep', '/mnt/folder']);
    await typeAndWait(
      page,
      'cat /mnt/folder/there-before.txt; echo; seq 1 20000 > /tmp/s && cp /tmp/s /mnt/folder/big.txt && seq 1 50 > /mnt/folder/lines.txt && chmod 600 /mnt/folder/big.txt && mv /mnt/folder/big.txt /mnt/folder/moved.txt && md5sum /mnt/folder/moved.txt; echo ok-$((3+4))',
      /FROM-THE-FOLDER[\s\S]*ok-7/,
    );
    const seen = await page.evaluate(async () => {
      const h = await (await navigator.storage.getDirectory()).getDirectoryHandle('picked');
      const names: string[] = [];
      for await (const [n] of (h as any).entries()) names.push(n);
      const text = await (await (await h.getFileHandle('moved.txt')).getFile()).text();
      const rec = await (await (await (await h.getDirectoryHandle('.storvm')).getFileHandle('moved.txt')).getFile()).text();
      return { names: names.sort(), lines: text.split('\n').length, last: text.slice(-6), rec: JSON.parse(rec).m };
    });
    expect(seen).toEqual({ names: ['.storvm', 'lines.txt', 'moved.txt', 'there-before.txt'], lines: 20001, last: '20000\n', rec: 0o100600 });
  }, 240_000);

  it('remembers the shared folder across a reload (IndexedDB), and says so when the folder is gone', async () => {
    // The folder the test above shared (an OPFS handle, which the browser always grants).
    const stored = await page.evaluate(async () => {
      const db = await new Promise<IDBDatabase>((res, rej) => {
        const r = indexedDB.open('storvm');
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      const h = await new Promise<any>((res, rej) => {
        const r = db.transaction('handles').objectStore('handles').get('folder');
        r.onsuccess = () => res(r.result);
        r.onerror = () => rej(r.error);
      });
      db.close();
      const picked = await (await navigator.storage.getDirectory()).getDirectoryHandle('picked');
      return { kind: h?.kind, name: h?.name, same: h ? await h.isSameEntry(picked) : false };
    });
    expect(stored).toEqual({ kind: 'directory', name: 'picked', same: true });
    await page.reload();
    await waitBooted(page);
    expect(await page.evaluate(() => (window as any).storvmDemo.folder().state)).toBe('ready');
    expect(await page.evaluate(() => (window as any).storvmDemo.state.vm.shares.map((s: any) => s.mountPoint))).toEqual(['/mnt/host', '/mnt/keep', '/mnt/folder']);
    await typeAndWait(page, 'cat /mnt/folder/there-before.txt; echo; head -2 /mnt/folder/lines.txt; echo back-$((2*4))', /FROM-THE-FOLDER\r?\n1\r?\n2\r?\nback-8/);
    expect(await page.locator('#folder-row').isHidden()).toBe(true);

    // The folder goes away between visits: the page says so, boots without it, and can forget it.
    await page.evaluate(async () => {
      await (window as any).storvmDemo.state.vm.stop();
      await (await navigator.storage.getDirectory()).removeEntry('picked', { recursive: true });
    });
    await page.reload();
    await waitBooted(page);
    expect(await page.evaluate(() => (window as any).storvmDemo.folder())).toMatchObject({ state: 'gone', name: 'picked' });
    expect(await page.locator('#folder-note').textContent()).toBe('the folder picked is no longer there (removed or moved); pick it again');
    expect(await page.locator('#folder-row').isVisible()).toBe(true);
    expect(await page.evaluate(() => (window as any).storvmDemo.state.vm.shares.map((s: any) => s.mountPoint))).toEqual(['/mnt/host', '/mnt/keep']);
    await page.click('#folder-forget');
    await page.locator('#folder-row').waitFor({ state: 'hidden', timeout: 5000 });
    await page.reload();
    await waitBooted(page);
    expect(await page.evaluate(() => (window as any).storvmDemo.folder().state)).toBe('none');
  }, 240_000);

  it('serves /mnt/keep over virtio-fs on ?keepfs=virtiofs: what 9p wrote is there, and what virtio-fs writes lasts', async () => {
    await page.goto(server.url + '/?keepfs=virtiofs');
    await waitBooted(page);
    expect(await page.evaluate(() => (window as any).storvmDemo.state.vm.shares.map((s: any) => s.device))).toEqual(['9p', 'virtiofs']);
    await typeAndWait(
      page,
      "grep -c 'keep /mnt/keep virtiofs' /proc/mounts; cat /mnt/keep/f; stat -c '%A %u %g' /mnt/keep/f; readlink /mnt/keep/ln; echo over-fuse > /mnt/keep/v && chmod 604 /mnt/keep/v && mv /mnt/keep/v /mnt/keep/v2 && echo w-$((4*4))",
      /1\r?\nhello-kept\r?\n-rw-r----- 1000 2000\r?\n\.\.\/not\/followed[\s\S]*w-16/m,
    );
    await page.reload();
    await waitBooted(page);
    await typeAndWait(page, "stat -c '%n %A' /mnt/keep/v2; cat /mnt/keep/v2; echo r-$((4*5))", /v2 -rw----r--\r?\nover-fuse[\s\S]*r-20/);
  }, 240_000);

  it('serves /mnt/keep read-only in a second tab, and says why', async () => {
    const second = await page.context().newPage();
    await second.goto(server.url + '/');
    await waitBooted(second);
    const keep = await second.evaluate(() => (window as any).storvmDemo.state.vm.shares[1]);
    expect(keep).toMatchObject({ mountPoint: '/mnt/keep', readOnly: true, note: 'read-only: another tab is writing this share' });
    await second.locator('#share-pick').selectOption('1');
    await second.locator('#share-note').filter({ hasText: /another tab/ }).waitFor({ timeout: 5000 });
    await typeAndWait(second, 'cat /mnt/keep/v2; echo x > /mnt/keep/new 2>&1; echo rc=$?', /over-fuse[\s\S]*rc=1/);
    await second.close();
  }, 240_000);

  it('resumes a saved state with the guest inside /mnt/keep: the 9p session finds its files by path again', async () => {
    await page.goto(server.url + '/');
    await waitBooted(page);
    await typeAndWait(page, 'mkdir -p /mnt/keep/s/e && echo deep > /mnt/keep/s/e/g && cd /mnt/keep/s && exec 4< e/g && echo cwd-$((5*5))', /cwd-25/);
    await page.evaluate(() => (window as any).storvmDemo.saveState());
    const n = await page.evaluate(() => (window as any).storvmDemo.state.boots as number);
    await page.evaluate(() => (window as any).storvmDemo.resumeSaved());
    await page.waitForFunction((k) => (window as any).storvmDemo.state.boots > k && (window as any).storvmDemo.state.booted, n, { timeout: 120_000 });
    const out = await typeAndWait(page, 'pwd; cat <&4; ls; echo back-$((5*6))', /back-30/);
    expect(out).toMatch(/\/mnt\/keep\/s\r?\ndeep\r?\ne\r?\nback-30/);
  }, 240_000);
});
