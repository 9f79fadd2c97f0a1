/**
 * A minimal ustar writer: a directory tree (directories and regular files; other kinds are
 * skipped) into one uncompressed tar archive, for the lab's "unpack a source tree" workload.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface TarResult {
  bytes: Uint8Array;
  /** Entries in the archive (directories and files). */
  entries: number;
  /** Bytes of file contents. */
  contentBytes: number;
}

const enc = new TextEncoder();

function header(name: string, size: number, dir: boolean, mode: number): Uint8Array {
  const h = new Uint8Array(512);
  let path = name;
  let prefix = '';
  if (enc.encode(path).length > 100) {
    const cut = path.lastIndexOf('/', path.length - 2 > 155 ? 155 : path.length - 2);
    if (cut <= 0) throw new Error(`tar: path too long: ${name}`);
    prefix = path.slice(0, cut);
    path = path.slice(cut + 1);
    if (enc.encode(path).length > 100 || enc.encode(prefix).length > 155) throw new Error(`tar: path too long: ${name}`);
  }
  const put = (s: string, at: number, len: number) => h.set(enc.encode(s).subarray(0, len), at);
  const oct = (n: number, at: number, len: number) => put(n.toString(8).padStart(len - 1, '0') + '\0', at, len);
  put(path, 0, 100);
  oct(mode & 0o7777, 100, 8);
  oct(0, 108, 8);
  oct(0, 116, 8);
  oct(size, 124, 12);
  oct(0, 136, 12); // mtime: fixed, so the archive is reproducible
  h.fill(0x20, 148, 156); // checksum field counts as spaces
  h[156] = dir ? 0x35 : 0x30;
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put(prefix, 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/** Archives `dir` with its contents under `top/` (sorted, so the output is reproducible). */
export function tarDirectory(dir: string, top: string): TarResult {
  const parts: Uint8Array[] = [];
  let entries = 0;
  let contentBytes = 0;
  const walk = (abs: string, rel: string) => {
    parts.push(header(rel + '/', 0, true, 0o755));
    entries++;
    for (const name of readdirSync(abs).sort()) {
      const a = join(abs, name);
      const st = statSync(a);
      if (st.isDirectory()) walk(a, `${rel}/${name}`);
      else if (st.isFile()) {
        const data = readFileSync(a);
        parts.push(header(`${rel}/${name}`, data.length, false, 0o644), data);
        const pad = (512 - (data.length % 512)) % 512;
        if (pad > 0) parts.push(new Uint8Array(pad));
        entries++;
        contentBytes += data.length;
      }
    }
  };
  walk(dir, top);
  parts.push(new Uint8Array(1024));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { bytes, entries, contentBytes };
}
