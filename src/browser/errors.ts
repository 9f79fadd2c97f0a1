/**
 * The typed errors of `storvm/browser`. The worker sends them as {@link WireError}s and the page
 * API rejects with these classes, so `err instanceof ImageError` works on the page.
 */
import type { WireError } from './protocol.js';

/** What was wrong with an image. */
export type ImageErrorCode =
  /** The URL answered with an HTTP error status (404, 500, …). */
  | 'http'
  /** fetch() itself failed: no network, a refused connection, CORS. */
  | 'network'
  /** The bytes are not a usable image: corrupt or truncated gzip, a bad qcow2 header, empty. */
  | 'format'
  /** The image is larger than the memory the page may use for it (`maxImageMiB`). */
  | 'too-large'
  /** A local file could not be read (moved, deleted, or permission withdrawn). */
  | 'read';

/** A kernel, initramfs or disk image that could not be loaded. */
export class ImageError extends Error {
  override name = 'ImageError' as const;
  constructor(
    message: string,
    readonly code: ImageErrorCode,
    /** The image's name or URL. */
    readonly subject: string,
  ) {
    super(message);
  }
}

/** A share operation that failed: a file that could not be read, a path that is not there. */
export class ShareError extends Error {
  override name = 'ShareError' as const;
  constructor(
    message: string,
    /** The share path or file name concerned. */
    readonly subject: string,
  ) {
    super(message);
  }
}

/** The machine could not be built or is not running (bad options, stopped VM, worker crash). */
export class VmError extends Error {
  override name = 'VmError' as const;
}

export type BrowserVmError = ImageError | ShareError | VmError;

export function toWire(e: unknown): WireError {
  if (e instanceof ImageError) return { name: 'ImageError', message: e.message, code: e.code, subject: e.subject };
  if (e instanceof ShareError) return { name: 'ShareError', message: e.message, subject: e.subject };
  return { name: 'VmError', message: e instanceof Error ? e.message : String(e) };
}

export function fromWire(w: WireError): BrowserVmError {
  if (w.name === 'ImageError') return new ImageError(w.message, (w.code ?? 'format') as ImageErrorCode, w.subject ?? '');
  if (w.name === 'ShareError') return new ShareError(w.message, w.subject ?? '');
  return new VmError(w.message);
}
