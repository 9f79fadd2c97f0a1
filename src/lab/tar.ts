/**
 * A minimal ustar writer, environment-free: directories and regular files into one uncompressed
 * tar archive, for the lab's "unpack a source tree" workload. Node archives storvm's sources with
 * it (src/node/lab/tar.ts); the browser's lab a generated tree.
 */

export interface TarResult {
  bytes: Uint8Array;
  /** Entries in the archive (directories and files). */
  entries: number;
  /** Bytes of file contents. */
  contentBytes: number;
}

/** One archive entry: a directory (path ending in '/') or a file with its bytes. */
export interface TarEntry {
  path: string;
  data?: Uint8Array;
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

/** Archives the entries in order (directories as `name/`, mode 0755; files 0644; mtime 0). */
export function tarEntries(list: readonly TarEntry[]): TarResult {
  const parts: Uint8Array[] = [];
  let contentBytes = 0;
  for (const e of list) {
    if (e.data === undefined) {
      parts.push(header(e.path.endsWith('/') ? e.path : e.path + '/', 0, true, 0o755));
      continue;
    }
    parts.push(header(e.path, e.data.length, false, 0o644), e.data);
    const pad = (512 - (e.data.length % 512)) % 512;
    if (pad > 0) parts.push(new Uint8Array(pad));
    contentBytes += e.data.length;
  }
  parts.push(new Uint8Array(1024));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return { bytes, entries: list.length, contentBytes };
}
