/**
 * A flattened device tree (DTB) writer, Devicetree Specification v0.4, chapter 5.
 *
 * The tree is a plain object: a node has a name, properties and children. Property values:
 *   true            an empty property (`dma-coherent;`)
 *   string          a NUL-terminated string
 *   string[]        a string list (`compatible = "a", "b";`)
 *   number          one u32 cell
 *   number[]        u32 cells
 *   bigint          one u64 as two cells
 *   Uint8Array      raw bytes
 */
export type FdtValue = true | string | string[] | number | number[] | bigint | Uint8Array;

export interface FdtNode {
  name: string;
  props?: Record<string, FdtValue>;
  children?: FdtNode[];
}

const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_END = 9;
const HEADER_SIZE = 40;

/** Splits 64-bit values into the two u32 cells the tree stores them as (high first). */
export function cells64(...values: Array<number | bigint>): number[] {
  const out: number[] = [];
  for (const v of values) {
    const b = BigInt.asUintN(64, BigInt(v));
    out.push(Number(b >> 32n), Number(b & 0xffff_ffffn));
  }
  return out;
}

class ByteWriter {
  private buf = new Uint8Array(1024);
  private dv = new DataView(this.buf.buffer);
  length = 0;

  private grow(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.grow(4);
    this.dv.setUint32(this.length, v >>> 0, false);
    this.length += 4;
  }
  bytes(b: Uint8Array): void {
    this.grow(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  align4(): void {
    const pad = (4 - (this.length % 4)) % 4;
    this.grow(pad);
    this.buf.fill(0, this.length, this.length + pad);
    this.length += pad;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

const encoder = new TextEncoder();

function cstring(s: string): Uint8Array {
  if (s.includes('\0')) throw new RangeError(`device tree string contains NUL: ${JSON.stringify(s)}`);
  const b = encoder.encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/** Encodes one property value as the bytes the tree stores. */
export function encodeValue(v: FdtValue): Uint8Array {
  if (v === true) return new Uint8Array(0);
  if (typeof v === 'string') return cstring(v);
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'bigint') return encodeValue(cells64(v));
  const cells = typeof v === 'number' ? [v] : v;
  if (cells.length > 0 && typeof cells[0] === 'string') {
    const parts = (cells as string[]).map(cstring);
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
  const out = new Uint8Array(4 * cells.length);
  const dv = new DataView(out.buffer);
  (cells as number[]).forEach((c, i) => {
    if (!Number.isInteger(c) || c < 0 || c > 0xffff_ffff) throw new RangeError(`device tree cell out of range: ${c}`);
    dv.setUint32(4 * i, c, false);
  });
  return out;
}

/** Serializes a tree (its root's name is ignored) into a DTB, version 17. */
export function buildFdt(root: FdtNode, opts: { bootCpuId?: number; reserved?: Array<[bigint, bigint]> } = {}): Uint8Array {
  const struct = new ByteWriter();
  const strings = new ByteWriter();
  const stringOffsets = new Map<string, number>();
  const nameOffset = (name: string): number => {
    let off = stringOffsets.get(name);
    if (off === undefined) {
      off = strings.length;
      strings.bytes(cstring(name));
      stringOffsets.set(name, off);
    }
    return off;
  };
  const emit = (node: FdtNode, isRoot: boolean): void => {
    struct.u32(FDT_BEGIN_NODE);
    struct.bytes(cstring(isRoot ? '' : node.name));
    struct.align4();
    for (const [key, value] of Object.entries(node.props ?? {})) {
      const data = encodeValue(value);
      struct.u32(FDT_PROP);
      struct.u32(data.length);
      struct.u32(nameOffset(key));
      struct.bytes(data);
      struct.align4();
    }
    for (const child of node.children ?? []) emit(child, false);
    struct.u32(FDT_END_NODE);
  };
  emit(root, true);
  struct.u32(FDT_END);

  const rsv = new ByteWriter();
  for (const [addr, size] of opts.reserved ?? []) rsv.bytes(encodeValue(cells64(addr, size)));
  rsv.bytes(new Uint8Array(16));

  const offRsv = HEADER_SIZE; // 8-byte aligned
  const offStruct = offRsv + rsv.length;
  const offStrings = offStruct + struct.length;
  const total = offStrings + strings.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  const header = [FDT_MAGIC, total, offStruct, offStrings, offRsv, 17, 16, opts.bootCpuId ?? 0, strings.length, struct.length];
  header.forEach((v, i) => dv.setUint32(4 * i, v, false));
  out.set(rsv.result(), offRsv);
  out.set(struct.result(), offStruct);
  out.set(strings.result(), offStrings);
  return out;
}
