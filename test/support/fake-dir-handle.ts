/**
 * An in-memory stand-in for the File System API's directory and file handles, as chromium
 * behaves (probed on chromium 156): handles name a place (parent and name), so a moved handle
 * follows its file; a sync access handle locks its file against writables, moves and removal;
 * a writable stream writes to a copy that `close()` swaps in whole; move() replaces a file but
 * never a directory, and directories have no move(); names with '/' or '\' are refused with a
 * TypeError. `quota` makes writes past it throw QuotaExceededError. Lets DirectoryHandleFs run
 * under the 9P conformance tests in Node; the chromium tests check the real thing.
 */
import type { DirHandleLike, FileHandleLike, FileLike, SyncHandleLike, WritableLike } from '../../src/browser/dir-fs.js';

class Data {
  bytes: Uint8Array = new Uint8Array(0);
  lastModified = Date.now();
  locks = 0; // open sync access handles
  writables = 0;
}

class Dir {
  readonly entries = new Map<string, Dir | Data>();
}

const err = (name: string, message = name) => new DOMException(message, name);

function checkName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\\')) throw new TypeError('Name is not allowed.');
}

export interface FakeOptions {
  /** Offer createSyncAccessHandle (OPFS in a worker); false is a picked folder. */
  sync?: boolean;
  /** Bytes all files together may hold. */
  quota?: number;
}

class Volume {
  constructor(
    readonly root: Dir,
    readonly opts: FakeOptions,
  ) {}
  used(d: Dir = this.root): number {
    let n = 0;
    for (const v of d.entries.values()) n += v instanceof Dir ? this.used(v) : v.bytes.length;
    return n;
  }
  grow(data: Data, size: number): void {
    if (this.opts.quota !== undefined && size > data.bytes.length && this.used() - data.bytes.length + size > this.opts.quota) throw err('QuotaExceededError');
  }
}

function resize(b: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  out.set(b.subarray(0, Math.min(size, b.length)));
  return out;
}

export class FakeFileHandle implements FileHandleLike {
  readonly kind = 'file' as const;
  constructor(
    private readonly vol: Volume,
    public parent: Dir,
    public name: string,
  ) {}

  private data(): Data {
    const d = this.parent.entries.get(this.name);
    if (d === undefined) throw err('NotFoundError');
    if (d instanceof Dir) throw err('TypeMismatchError');
    return d;
  }

  async getFile(): Promise<FileLike> {
    const d = this.data();
    const bytes = d.bytes.slice();
    return { size: bytes.length, lastModified: d.lastModified, slice: (a = 0, b = bytes.length) => ({ arrayBuffer: async () => bytes.slice(a, b).buffer as ArrayBuffer }) };
  }

  async createWritable(opts?: { keepExistingData?: boolean }): Promise<WritableLike> {
    const d = this.data();
    if (d.locks > 0) throw err('NoModificationAllowedError');
    d.writables++;
    let copy: Uint8Array = opts?.keepExistingData ? d.bytes.slice() : new Uint8Array(0);
    let open = true;
    const vol = this.vol;
    const done = () => {
      open = false;
      d.writables--;
    };
    return {
      async write(arg) {
        if (!open) throw new TypeError('closed');
        const { position, data } = arg instanceof Uint8Array ? { position: copy.length, data: arg } : arg;
        if (position + data.length > copy.length) {
          vol.grow(d, position + data.length);
          copy = resize(copy, position + data.length);
        }
        copy.set(data, position);
      },
      async truncate(size) {
        vol.grow(d, size);
        copy = resize(copy, size);
      },
      async close() {
        if (!open) throw new TypeError('closed');
        done();
        d.bytes = copy;
        d.lastModified = Date.now();
      },
      async abort() {
        if (open) done();
      },
    };
  }

  get createSyncAccessHandle(): (() => Promise<SyncHandleLike>) | undefined {
    if (this.vol.opts.sync === false) return undefined;
    return async () => {
      const d = this.data();
      if (d.locks > 0 || d.writables > 0) throw err('NoModificationAllowedError');
      d.locks++;
      let open = true;
      const live = () => {
        if (!open) throw err('InvalidStateError');
      };
      return {
        read: (buf, { at }) => {
          live();
          const n = Math.max(0, Math.min(buf.length, d.bytes.length - at));
          buf.set(d.bytes.subarray(at, at + n));
          return n;
        },
        write: (buf, { at }) => {
          live();
          if (at + buf.length > d.bytes.length) {
            this.vol.grow(d, at + buf.length);
            d.bytes = resize(d.bytes, at + buf.length);
          }
          d.bytes.set(buf, at);
          d.lastModified = Date.now();
          return buf.length;
        },
        truncate: (size) => {
          live();
          this.vol.grow(d, size);
          d.bytes = resize(d.bytes, size);
        },
        getSize: () => (live(), d.bytes.length),
        flush: () => live(),
        close: () => {
          if (open) d.locks--;
          open = false;
        },
      };
    };
  }

  async move(dir: DirHandleLike, name: string): Promise<void> {
    checkName(name);
    const d = this.data();
    if (d.locks > 0) throw err('NoModificationAllowedError');
    const to = (dir as FakeDirHandle).dir();
    const there = to.entries.get(name);
    if (there instanceof Dir) throw err('InvalidModificationError');
    if (there !== undefined && there !== d && there.locks > 0) throw err('NoModificationAllowedError');
    this.parent.entries.delete(this.name);
    to.entries.set(name, d);
    this.parent = to;
    this.name = name;
  }
}

export class FakeDirHandle implements DirHandleLike {
  readonly kind = 'directory' as const;
  constructor(
    private readonly vol: Volume,
    private readonly parent: Dir | undefined,
    readonly name: string,
    private readonly self?: Dir,
  ) {}

  dir(): Dir {
    if (this.self !== undefined) return this.self;
    const d = this.parent!.entries.get(this.name);
    if (d === undefined) throw err('NotFoundError');
    if (!(d instanceof Dir)) throw err('TypeMismatchError');
    return d;
  }

  async getFileHandle(name: string, opts?: { create?: boolean }): Promise<FileHandleLike> {
    checkName(name);
    const d = this.dir();
    const e = d.entries.get(name);
    if (e instanceof Dir) throw err('TypeMismatchError');
    if (e === undefined) {
      if (!opts?.create) throw err('NotFoundError');
      d.entries.set(name, new Data());
    }
    return new FakeFileHandle(this.vol, d, name);
  }

  async getDirectoryHandle(name: string, opts?: { create?: boolean }): Promise<DirHandleLike> {
    checkName(name);
    const d = this.dir();
    const e = d.entries.get(name);
    if (e instanceof Data) throw err('TypeMismatchError');
    if (e === undefined) {
      if (!opts?.create) throw err('NotFoundError');
      d.entries.set(name, new Dir());
    }
    return new FakeDirHandle(this.vol, d, name);
  }

  async removeEntry(name: string, opts?: { recursive?: boolean }): Promise<void> {
    checkName(name);
    const d = this.dir();
    const e = d.entries.get(name);
    if (e === undefined) throw err('NotFoundError');
    const locked = (x: Dir | Data): boolean => (x instanceof Data ? x.locks > 0 : [...x.entries.values()].some(locked));
    if (locked(e)) throw err('NoModificationAllowedError');
    if (e instanceof Dir && e.entries.size > 0 && !opts?.recursive) throw err('InvalidModificationError');
    d.entries.delete(name);
  }

  async *entries(): AsyncIterableIterator<[string, FileHandleLike | DirHandleLike]> {
    const d = this.dir();
    for (const [name, e] of [...d.entries]) {
      yield [name, e instanceof Dir ? new FakeDirHandle(this.vol, d, name) : new FakeFileHandle(this.vol, d, name)];
    }
  }

  /** What ending a worker does to its sync access handles: every lock below this directory goes. */
  releaseLocks(): void {
    const walk = (d: Dir) => {
      for (const e of d.entries.values()) {
        if (e instanceof Dir) walk(e);
        else e.locks = 0;
      }
    };
    walk(this.dir());
  }

  /** The names and bytes below this directory, for tests: "a/b" → content (directories end in '/'). */
  dump(): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (d: Dir, prefix: string) => {
      for (const [name, e] of d.entries) {
        if (e instanceof Dir) {
          out[prefix + name + '/'] = '';
          walk(e, prefix + name + '/');
        } else out[prefix + name] = new TextDecoder().decode(e.bytes);
      }
    };
    walk(this.dir(), '');
    return out;
  }
}

/** A fresh empty folder. */
export function fakeFolder(opts: FakeOptions = {}): FakeDirHandle {
  const root = new Dir();
  return new FakeDirHandle(new Volume(root, opts), undefined, '', root);
}
