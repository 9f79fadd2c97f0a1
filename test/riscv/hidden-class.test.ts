/**
 * A hart's fields keep one V8 representation whatever the guest does. When a guest's first LR
 * or satp write stored a number of another kind (a double where every hart so far had a small
 * integer), V8 gave every hart a new hidden class: the optimised interpreter loop and the TLB
 * functions were thrown away early in every boot ("wrong map" in `node --trace-deopt`,
 * bench/README.md). The check needs V8's natives syntax, so it runs in a child process.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

it("a guest's LR/SC and satp writes leave the harts' hidden class as it was", () => {
  const child = fileURLToPath(new URL('./support/hidden-class-child.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', child], { encoding: 'utf8', timeout: 60_000 });
  expect(r.stderr).toBe('');
  expect(JSON.parse(r.stdout)).toEqual({ 'interp lr/sc': true, 'interp satp': true, 'wasm lr/sc': true, 'wasm satp': true });
});
