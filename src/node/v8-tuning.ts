/**
 * V8 settings for the block translator in Node.
 *
 * V8 compiles wasm with Liftoff (fast to compile) and tiers hot functions up to TurboFan on
 * background threads. The translator's page functions are large and many, and on the Linux boot
 * TurboFan took more CPU than the boot itself: 7.7 s of CPU with tier-up against 3.5 s with
 * Liftoff alone, for the same 101.6 M instructions (`--deterministic`, 2026-12-01,
 * bench/README.md). Liftoff code ran bench/cpu.ts as fast per CPU second as TurboFan code did
 * (about 320 MIPS both), so the translator in Node runs with Liftoff only. A page has no such
 * switch; there the browser's own tiering decides.
 */
import { setFlagsFromString } from 'node:v8';

let tuned = false;

/** Turns V8's wasm tier-up off for the rest of the process (takes effect for modules compiled after). */
export function tuneV8ForTranslator(): void {
  if (tuned) return;
  tuned = true;
  setFlagsFromString('--liftoff-only');
}
