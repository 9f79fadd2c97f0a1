/**
 * bin/cli-bundle.mjs: the CLI as one file. A bundled module must find its files as it did
 * unbundled (import.meta.url is its own file's URL, wherever the bundle lies), and the source
 * checkout's cache key must change whenever a file under src/ does.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs module of the bin folder, without types
import { bundle, treeKey } from '../bin/cli-bundle.mjs';

const dir = mkdtempSync(join(tmpdir(), 'storvm-bundle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the CLI bundle', () => {
  it('gives each bundled module its own import.meta.url, relative to where the bundle is', async () => {
    mkdirSync(join(dir, 'src', 'deep'), { recursive: true });
    writeFileSync(join(dir, 'src', 'deep', 'where.ts'), 'export const where: string = import.meta.url;\nexport const data = new URL("../data.txt", import.meta.url).pathname;\n');
    writeFileSync(join(dir, 'src', 'main.ts'), 'export { where, data } from "./deep/where.js";\nexport const main: string = import.meta.url;\n');
    const out = join(dir, 'cache', 'a', 'b', 'cli.mjs');
    mkdirSync(join(dir, 'cache', 'a', 'b'), { recursive: true });
    await bundle(join(dir, 'src', 'main.ts'), out);
    const m = (await import(pathToFileURL(out).href)) as { where: string; data: string; main: string };
    expect(m.where).toBe(pathToFileURL(join(dir, 'src', 'deep', 'where.ts')).href);
    expect(m.main).toBe(pathToFileURL(join(dir, 'src', 'main.ts')).href);
    expect(m.data).toBe(join(dir, 'src', 'data.txt'));
  });

  it('keys a tree by every file, so an edit makes a new bundle', () => {
    const t = join(dir, 'tree');
    mkdirSync(join(t, 'x'), { recursive: true });
    writeFileSync(join(t, 'x', 'a.ts'), 'one');
    writeFileSync(join(t, 'b.ts'), 'two');
    const k0 = treeKey([t]);
    expect(treeKey([t])).toBe(k0);
    writeFileSync(join(t, 'x', 'a.ts'), 'one!'); // size
    const k1 = treeKey([t]);
    expect(k1).not.toBe(k0);
    utimesSync(join(t, 'b.ts'), new Date(2020, 1, 1), new Date(2020, 1, 1)); // time only
    const k2 = treeKey([t]);
    expect(k2).not.toBe(k1);
    writeFileSync(join(t, 'x', 'c.ts'), ''); // a new file
    expect(treeKey([t])).not.toBe(k2);
  });

  it('takes the packages in: the CLI imports only Node modules when it starts', async () => {
    // An external package is imported at the bundle's top: fflate was loaded and run at every
    // start, though only disk images and snapshots without Node's zlib use it.
    const out = join(dir, 'cli.mjs');
    await bundle(fileURLToPath(new URL('../src/node/cli.ts', import.meta.url)), out);
    const text = readFileSync(out, 'utf8');
    const tops = [...text.matchAll(/^import [^;]*? from "([^"]+)";$/gm)].map((m) => m[1]!);
    expect(tops.length).toBeGreaterThan(0);
    expect(tops.filter((p) => !p.startsWith('node:') && p !== 'module')).toEqual([]);
    expect(text).toContain('node_modules/fflate/'); // bundled, to be run when first imported
  });
});
