/**
 * A minimal cpio "newc" writer, environment-free, for files appended to an initramfs. Linux
 * unpacks every archive of a concatenated initramfs, compressed or not, each starting on a 4-byte
 * boundary (Documentation/driver-api/early-userspace/buffer-format.rst); zeros between archives
 * are skipped. The browser's lab puts its control files (the script, labio, the tarball) into the
 * guest's root this way, so they take no virtio device.
 */

export interface CpioEntry {
  /** A path without a leading '/'; a directory's ends in '/'. */
  path: string;
  data?: Uint8Array;
  /** Permission bits; default 0o755 for directories, 0o644 for files. */
  mode?: number;
}

const enc = new TextEncoder();
const pad4 = (n: number) => (4 - (n % 4)) % 4;

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

/** The archive of `entries` (and the trailer). */
export function cpioArchive(entries: readonly CpioEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let total = 0;
  const push = (b: Uint8Array) => {
    parts.push(b);
    total += b.length;
  };
  const one = (name: string, mode: number, data: Uint8Array, ino: number) => {
    const nameBytes = enc.encode(name + '\0');
    const fields = [ino, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0];
    const head = enc.encode('070701' + fields.map(hex8).join(''));
    push(head);
    push(nameBytes);
    push(new Uint8Array(pad4(head.length + nameBytes.length)));
    push(data);
    push(new Uint8Array(pad4(data.length)));
  };
  let ino = 1;
  for (const e of entries) {
    const dir = e.path.endsWith('/');
    const name = dir ? e.path.slice(0, -1) : e.path;
    if (name === '' || name.startsWith('/') || name.split('/').some((n) => n === '' || n === '.' || n === '..')) throw new RangeError(`cpio: bad path ${JSON.stringify(e.path)}`);
    one(name, (dir ? 0o040000 : 0o100000) | (e.mode ?? (dir ? 0o755 : 0o644)), dir ? new Uint8Array(0) : (e.data ?? new Uint8Array(0)), ino++);
  }
  one('TRAILER!!!', 0, new Uint8Array(0), 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An initramfs with `archive` appended on a 4-byte boundary. */
export function appendToInitramfs(initrd: Uint8Array, archive: Uint8Array): Uint8Array {
  const at = initrd.length + pad4(initrd.length);
  const out = new Uint8Array(at + archive.length);
  out.set(initrd, 0);
  out.set(archive, at);
  return out;
}
