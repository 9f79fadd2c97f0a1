import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const root = new URL('../', import.meta.url);

describe('README', () => {
  it('shows exactly the example that examples/quickstart.ts runs', () => {
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    const example = readFileSync(new URL('examples/quickstart.ts', root), 'utf8').replace("'../src/index.js'", "'storvm'");
    const block = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBe(example);
    expect(example.split('\n').filter((l) => l.trim() !== '').length).toBeLessThanOrEqual(13);
  });

  it('the example runs and prints what its comment promises', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'examples/quickstart.ts'], { cwd: root, encoding: 'utf8' });
    expect(out.trim()).toBe('74726976 63');
  });

  it('"Testing your own device" shows exactly examples/own-device.test.ts, which vitest runs', () => {
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    const example = readFileSync(new URL('examples/own-device.test.ts', root), 'utf8')
      .replace("'../src/index.js'", "'storvm'")
      .replace("'../src/testing/index.js'", "'storvm/testing'");
    const section = readme.slice(readme.indexOf('### Testing your own device'));
    expect(/```ts\n([\s\S]*?)```/.exec(section)?.[1]).toBe(example);
    const config = readFileSync(new URL('vitest.config.ts', root), 'utf8');
    expect(config).toContain("'examples/**/*.test.ts'");
  });

  it('storvm/testing is a package export that depends only on the package root', () => {
    const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { exports: Record<string, { import: string }> };
    expect(pkg.exports['./testing']?.import).toBe('./dist/testing/index.js');
    for (const f of ['driver', 'blk', 'p9', 'recording-memory', 'hostile', 'index']) {
      const src = readFileSync(new URL(`src/testing/${f}.ts`, root), 'utf8');
      for (const m of src.matchAll(/from '([^']+)'/g)) expect(['../index.js'].includes(m[1]!) || m[1]!.startsWith('./'), `${f}: ${m[1]}`).toBe(true);
    }
  });

  it('names the test command that .ci/run runs', () => {
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    const ci = readFileSync(new URL('.ci/run', root), 'utf8');
    expect(readme).toContain('npm test');
    expect(ci).toMatch(/^npm ci$/m);
    expect(ci).toMatch(/^npm test$/m);
  });
});

describe('storvm CLI', () => {
  const run = (...args: string[]) => {
    try {
      return { code: 0, out: execFileSync(process.execPath, ['bin/storvm.mjs', ...args], { cwd: root, encoding: 'utf8', stdio: 'pipe' }), err: '' };
    } catch (e) {
      const x = e as { status: number; stdout: string; stderr: string };
      return { code: x.status, out: x.stdout, err: x.stderr };
    }
  };
  it('prints its version', () => {
    expect(run('--version').out).toMatch(/^storvm \d+\.\d+\.\d+\n$/);
  });
  it('rejects an unknown command with one line and exit status 2', () => {
    const r = run('frobnicate');
    expect(r.code).toBe(2);
    expect(r.err).toBe("storvm: unknown command 'frobnicate' (try storvm --help)\n");
  });
});
