/**
 * The CPU engines and the default one, in a module of their own so the page (src/browser/vm.ts,
 * web/main.ts) can name them without loading the hart.
 */

/** Which engine runs guest code: the interpreter alone, or the WebAssembly block translator in front of it. */
export type CpuEngine = 'interp' | 'wasm';
export const CPU_ENGINES: readonly CpuEngine[] = ['interp', 'wasm'];

/**
 * The default engine, chosen by measurement (bench/README.md, 2026-12-01): with the translator
 * the boot takes 1.03-1.29× less wall time, dd of 4 KiB blocks 1.6-1.7×, shell loops 2.1-2.9×
 * and compute 5×; fork+exec is even.
 */
export const DEFAULT_CPU: CpuEngine = 'wasm';
