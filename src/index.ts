/**
 * storvm: a pure-TypeScript virtual machine built around its storage.
 * The package root is environment-free; Node-only pieces live in `storvm/node`.
 */
export * from './memory/index.js';
export * from './virtio/index.js';
