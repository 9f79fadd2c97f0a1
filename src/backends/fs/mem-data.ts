/**
 * A MemFs file's contents: sparse, in chunks of CHUNK bytes allocated only where something was
 * written. A chunk that was never written, or was punched or truncated away, reads as zeros, so
 * a file may be far larger than the memory it takes (a write at offset 3 GiB holds one chunk).
 *
 * Each chunk has an extent, `len`: the end of the highest byte written into it. Bytes from the
 * extent to the chunk's end read as zeros, and a chunk's buffer past its extent is kept zero, so
 * growing the extent never uncovers old bytes. What the filesystem charges against its capacity
 * is the sum of the extents (`held`), which for a file written from start to end is its size. A
 * chunk's buffer grows geometrically up to CHUNK as its extent grows, so a small file takes about
 * its size, and the slack is at most the extent again.
 */

/** Bytes per chunk. */
export const CHUNK = 1 << 16;
/** The smallest buffer a chunk gets. */
const MIN_BUF = 64;

interface Chunk {
  buf: Uint8Array;
  /** Bytes from the chunk's start to the end of its highest written byte; ≤ buf.length. */
  len: number;
}

/** The contents of one regular file. Offsets are byte offsets below 2^53; callers check sizes. */
export class FileData {
  private readonly chunks = new Map<number, Chunk>();
  /** Sum of the chunks' extents: the bytes this file is charged for. */
  held = 0;

  /** How many chunks hold data (for tests and st_blocks). */
  get chunkCount(): number {
    return this.chunks.size;
  }

  /**
   * Calls `visit` for each chunk that [offset, offset + length) overlaps, lowest first, with the
   * chunk's index, where the range starts inside it (`within`), how many of the range's bytes
   * fall in it (`piece`) and how far into the range they start (`done`).
   */
  private eachChunk(offset: number, length: number, visit: (idx: number, within: number, piece: number, done: number) => void): void {
    for (let done = 0; done < length; ) {
      const at = offset + done;
      const idx = Math.floor(at / CHUNK);
      const within = at - idx * CHUNK;
      const piece = Math.min(length - done, CHUNK - within);
      visit(idx, within, piece, done);
      done += piece;
    }
  }

  /** Copies [offset, offset + n) into dst[0..n), zeros where nothing is held. */
  read(offset: number, dst: Uint8Array, n: number): void {
    this.eachChunk(offset, n, (idx, within, piece, done) => {
      const c = this.chunks.get(idx);
      const have = c === undefined ? 0 : Math.max(0, Math.min(piece, c.len - within));
      if (have > 0) dst.set(c!.buf.subarray(within, within + have), done);
      if (have < piece) dst.fill(0, done + have, done + piece);
    });
  }

  /** The first n bytes as one new array, holes as zeros. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    this.read(0, out, n);
    return out;
  }

  /** How much `held` would grow by if [offset, offset + length) were written. */
  growth(offset: number, length: number): number {
    let grow = 0;
    this.eachChunk(offset, length, (idx, within, piece) => {
      grow += Math.max(0, within + piece - (this.chunks.get(idx)?.len ?? 0));
    });
    return grow;
  }

  /** Writes src at offset, allocating chunks as needed; answers how much `held` grew by. */
  write(offset: number, src: Uint8Array): number {
    const before = this.held;
    this.eachChunk(offset, src.length, (idx, within, piece, done) => {
      const c = this.room(idx, within + piece);
      c.buf.set(src.subarray(done, done + piece), within);
      if (within + piece > c.len) {
        this.held += within + piece - c.len;
        c.len = within + piece;
      }
    });
    return this.held - before;
  }

  /** The chunk at idx with a buffer of at least `need` bytes, made or grown. */
  private room(idx: number, need: number): Chunk {
    let c = this.chunks.get(idx);
    if (c === undefined) {
      c = { buf: new Uint8Array(need === CHUNK ? CHUNK : Math.min(CHUNK, Math.max(need, MIN_BUF))), len: 0 };
      this.chunks.set(idx, c);
    } else if (c.buf.length < need) {
      const next = new Uint8Array(Math.min(CHUNK, Math.max(need, c.buf.length * 2)));
      next.set(c.buf.subarray(0, c.len));
      c.buf = next;
    }
    return c;
  }

  /** Drops every byte at or after `size`; answers how much `held` shrank by (≤ 0). */
  truncate(size: number): number {
    const before = this.held;
    const keep = Math.ceil(size / CHUNK); // chunks below this index keep something
    for (const [idx, c] of this.chunks) {
      if (idx >= keep) {
        this.held -= c.len;
        this.chunks.delete(idx);
      } else if (idx === keep - 1) {
        const within = size - idx * CHUNK;
        if (c.len > within) {
          c.buf.fill(0, within, c.len);
          this.held -= c.len - within;
          c.len = within;
        }
      }
    }
    return this.held - before;
  }

  /**
   * Makes [offset, offset + length) read as zeros: chunks wholly inside are freed, the rest
   * zeroed, and an extent that ends inside the range is cut back. Answers the change in `held`.
   */
  punch(offset: number, length: number): number {
    const before = this.held;
    const end = offset + length;
    if (length <= 0) return 0;
    const first = Math.floor(offset / CHUNK);
    const last = Math.floor((end - 1) / CHUNK);
    const zero = (idx: number): void => {
      const c = this.chunks.get(idx);
      if (c === undefined) return;
      const from = Math.max(offset - idx * CHUNK, 0);
      const to = Math.min(end - idx * CHUNK, CHUNK);
      if (from >= c.len) return; // nothing held there
      if (from === 0 && to >= c.len) {
        this.held -= c.len;
        this.chunks.delete(idx);
      } else if (to >= c.len) {
        c.buf.fill(0, from, c.len);
        this.held -= c.len - from;
        c.len = from;
      } else {
        c.buf.fill(0, from, to);
      }
    };
    if (last - first + 1 > this.chunks.size) {
      // A wide range over few chunks: visit the chunks, not the range.
      for (const idx of [...this.chunks.keys()]) if (idx >= first && idx <= last) zero(idx);
    } else {
      for (let idx = first; idx <= last; idx++) zero(idx);
    }
    return this.held - before;
  }

  /** Every chunk holding data, lowest first: its index and its bytes up to its extent (views). */
  pieces(): Array<[number, Uint8Array]> {
    return [...this.chunks.entries()].sort((a, b) => a[0] - b[0]).map(([i, c]) => [i, c.buf.subarray(0, c.len)]);
  }

  /** Drops everything (the file's last link and open went). */
  clear(): void {
    this.chunks.clear();
    this.held = 0;
  }
}

