export { type GuestMemory, GuestMemoryError } from './guest-memory.js';
export { FlatRam, MAX_FLAT_RAM } from './flat-ram.js';
export { WasmMemoryRam, type WasmMemoryLike } from './wasm-memory-ram.js';
