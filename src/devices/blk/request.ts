/**
 * Parsing of one virtio-blk request (VIRTIO 1.2, 5.2.6): the 16-byte header, the data buffers
 * and the status byte, out of an already validated descriptor chain. Nothing here touches a
 * backend; `device.ts` executes what this returns.
 *
 * The layout is free (VIRTIO 1.2, 2.6.4, message framing): the header may be split across
 * descriptors, the data follows it in the readable part (OUT, DISCARD, WRITE_ZEROES) or fills the
 * writable part up to the status byte (IN, GET_ID), and the status byte is the last writable byte.
 */
import type { GuestMemory } from '../../memory/guest-memory.js';
import type { DescriptorChain } from '../../virtio/chain.js';
import {
  BLK_T_DISCARD,
  BLK_T_GET_ID,
  BLK_T_IN,
  BLK_T_OUT,
  BLK_T_WRITE_ZEROES,
  DWZ_SEGMENT_SIZE,
  REQ_HEADER_SIZE,
} from './constants.js';

/** A parsed request: the device's own copy of everything it needs from the guest's buffers. */
export interface BlkRequest {
  /** The raw request type (BLK_T_*). */
  type: number;
  /**
   * The start sector, or -1 when it is 2^44 or above (past 2^53 bytes: beyond any disk this
   * process can serve, so always out of range).
   */
  sector: number;
  /**
   * Zero-copy views of guest RAM: for IN and GET_ID the writable bytes before the status byte, for
   * OUT the readable bytes after the header; empty otherwise.
   */
  data: Uint8Array[];
  /** Total bytes of `data`. */
  dataLen: number;
  /**
   * For DISCARD and WRITE_ZEROES: a copy of the segment array (at most `maxSegments` segments),
   * or undefined when the readable payload was longer than that (then `segmentBytes` tells how long).
   */
  segments: Uint8Array | undefined;
  /** Length of the readable payload after the header, for DISCARD and WRITE_ZEROES. */
  segmentBytes: number;
  /** Guest address of the status byte. */
  statusAddr: number;
  /**
   * Writable bytes before the status byte that are not `data` (the device zeroes them so that
   * everything the used length covers was written).
   */
  padding: Uint8Array[];
  /** The used length to report: all writable bytes, the status byte last. */
  usedLen: number;
}

/**
 * Parses the request in `chain`, copying the header into `scratch` (16 bytes, reused by the
 * caller). Returns null when the chain is not a request at all — header shorter than 16 bytes,
 * no writable byte for the status, or a zero-length last writable buffer — which the device
 * completes with used length 0 (VIRTIO 1.2, 5.2.6.1; QEMU refuses the same shapes).
 *
 * `maxSegments` bounds the copy made of a DISCARD / WRITE_ZEROES payload, so no guest-chosen
 * length sizes a host allocation.
 */
export function parseRequest(
  chain: DescriptorChain,
  mem: GuestMemory,
  scratch: Uint8Array,
  maxSegments: number,
): BlkRequest | null {
  const last = chain.addrs.length - 1;
  if (chain.readableBytes < REQ_HEADER_SIZE) return null;
  if (chain.readableCount > last || chain.writableBytes < 1) return null;
  const lastLen = chain.lens[last]!;
  if (lastLen === 0) return null;

  const { addrs, lens } = chain;
  // Fast path for the layout Linux uses: the header alone in the first descriptor, the status
  // alone in the last, data descriptors in between. No cursors, just views.
  if (lens[0] === REQ_HEADER_SIZE && lastLen === 1) {
    const hdr = scratch.subarray(0, REQ_HEADER_SIZE);
    mem.read(addrs[0]!, hdr);
    const type = u32(hdr, 0);
    if (type === BLK_T_IN || (type === BLK_T_OUT && chain.writableBytes === 1)) {
      const from = type === BLK_T_IN ? chain.readableCount : 1;
      const to = type === BLK_T_IN ? last : chain.readableCount;
      const data: Uint8Array[] = [];
      let dataLen = 0;
      const bounce = chain.bounce;
      for (let i = from; i < to; i++) {
        const len = lens[i]!;
        if (len === 0) continue;
        // IN data starts the writable part, so dataLen is also its offset there.
        if (bounce === undefined) data.push(mem.view(addrs[i]!, len));
        else data.push(type === BLK_T_IN ? bounce.writable(addrs[i]!, len, dataLen) : bounce.readable(mem, addrs[i]!, len));
        dataLen += len;
      }
      const hi = u32(hdr, 12);
      return {
        type,
        sector: hi >= 0x1000 ? -1 : hi * 2 ** 32 + u32(hdr, 8),
        data,
        dataLen,
        segments: undefined,
        segmentBytes: 0,
        statusAddr: addrs[last]!,
        padding: NO_VIEWS,
        usedLen: chain.writableBytes,
      };
    }
  }

  const reader = chain.reader(mem);
  if (reader.read(scratch.subarray(0, REQ_HEADER_SIZE)) !== REQ_HEADER_SIZE) return null;
  const type = u32(scratch, 0);
  const lo = u32(scratch, 8);
  const hi = u32(scratch, 12);
  const sector = hi >= 0x1000 ? -1 : hi * 2 ** 32 + lo;

  const req: BlkRequest = {
    type,
    sector,
    data: NO_VIEWS,
    dataLen: 0,
    segments: undefined,
    segmentBytes: 0,
    statusAddr: chain.addrs[last]! + lastLen - 1,
    padding: NO_VIEWS,
    usedLen: chain.writableBytes,
  };
  const writableData = chain.writableBytes - 1;
  if (type === BLK_T_IN || type === BLK_T_GET_ID) {
    req.data = writableData > 0 ? chain.writer(mem).views(writableData) : NO_VIEWS;
    req.dataLen = writableData;
    return req;
  }
  if (writableData > 0) req.padding = chain.writer(mem).views(writableData);
  if (type === BLK_T_OUT) {
    req.dataLen = reader.remaining;
    req.data = reader.remaining > 0 ? reader.views(reader.remaining) : NO_VIEWS;
  } else if (type === BLK_T_DISCARD || type === BLK_T_WRITE_ZEROES) {
    req.segmentBytes = reader.remaining;
    if (reader.remaining <= maxSegments * DWZ_SEGMENT_SIZE) {
      const copy = new Uint8Array(reader.remaining);
      reader.read(copy);
      req.segments = copy;
    }
  }
  return req;
}

/** One DISCARD / WRITE_ZEROES segment, decoded. */
export interface DwzSegment {
  /** Start sector, or -1 when 2^44 or above (always out of range). */
  sector: number;
  numSectors: number;
  flags: number;
}

/** Decodes segment `i` of a copied segment array into `out`. */
export function readSegment(segments: Uint8Array, i: number, out: DwzSegment): DwzSegment {
  const at = i * DWZ_SEGMENT_SIZE;
  const lo = u32(segments, at);
  const hi = u32(segments, at + 4);
  out.sector = hi >= 0x1000 ? -1 : hi * 2 ** 32 + lo;
  out.numSectors = u32(segments, at + 8);
  out.flags = u32(segments, at + 12);
  return out;
}

const NO_VIEWS: Uint8Array[] = [];

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}
