/**
 * Web-standard globals the environment-free core may use: they exist in Node, browsers and
 * workers alike. Only tsconfig.core.json includes this file (Node's types declare them otherwise).
 */
declare class TextEncoder {
  encode(input?: string): Uint8Array;
  encodeInto(source: string, destination: Uint8Array): { read: number; written: number };
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  decode(input?: ArrayBufferView | ArrayBuffer, options?: { stream?: boolean }): string;
}
/** A timer (HTML standard; Node, browsers and workers). The core uses it only in src/testing, to let host I/O finish. */
declare function setTimeout(callback: () => void, ms?: number): unknown;
