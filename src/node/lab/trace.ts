/**
 * `storvm bench --trace 9p|fuse|blk`: one line per 9P message, FUSE request or block request, decoded, with the time
 * the device took to answer it (host milliseconds from the request reaching the device to its
 * reply being written; the guest's own time in its driver and in the queue is not included).
 */
import type { BlkTraceHook } from '../../devices/blk/device.js';
import { Decoder, P9 } from '../../devices/p9/wire.js';
import type { P9TraceHook } from '../../devices/p9/server.js';
import { FUSE } from '../../devices/fs/fuse.js';
import type { FuseTraceHook } from '../../devices/fs/server.js';

const BLK_TYPES: Record<number, string> = { 0: 'READ', 1: 'WRITE', 4: 'FLUSH', 8: 'GET_ID', 11: 'DISCARD', 13: 'WRITE_ZEROES' };
const BLK_STATUS: Record<number, string> = { 0: 'OK', 1: 'IOERR', 2: 'UNSUPP' };

/** Linux errno names the lab's reports use. */
import { ERRNO } from '../../lab/collector.js';
export { ERRNO };

/** Per-workload totals of what was traced. */
export class TraceTally {
  count = 0;
  bytes = 0;
  ms = 0;
  add(bytes: number, ms: number): void {
    this.count++;
    this.bytes += bytes;
    this.ms += ms;
  }
  line(label: string, what: string): string {
    const mean = this.count === 0 ? 0 : this.ms / this.count;
    return `# ${label}: ${this.count} ${what}, ${(this.bytes / 1048576).toFixed(2)} MiB of data, ${mean.toFixed(3)} ms mean device time\n`;
  }
  reset(): void {
    this.count = 0;
    this.bytes = 0;
    this.ms = 0;
  }
}

export function formatBlk(disk: string, type: number, sector: number, bytes: number, status: number, ms: number): string {
  const t = (BLK_TYPES[type] ?? `T${type}`).padEnd(12);
  const where = type === 0 || type === 1 || type === 11 || type === 13 ? `sector ${String(sector).padStart(9)} ${String(bytes).padStart(8)} B` : ''.padEnd(28);
  return `blk ${disk} ${t} ${where}  ${BLK_STATUS[status] ?? `status ${status}`}  ${ms.toFixed(3)} ms\n`;
}

/** A blk trace hook writing lines to `write`, and counting into `tally`. */
export function blkTracer(disk: string, now: () => number, write: (s: string) => void, tally: TraceTally): BlkTraceHook {
  return (type, sector, bytes) => {
    const t0 = now();
    return (status) => {
      const ms = now() - t0;
      tally.add(type === 0 || type === 1 ? bytes : 0, ms);
      write(formatBlk(disk, type, sector, bytes, status, ms));
    };
  };
}

const NAMES: Record<number, string> = {};
for (const [k, v] of Object.entries(P9)) if (typeof v === 'number') NAMES[v] = k;

function str(s: string): string {
  return JSON.stringify(s);
}

/** Decodes the interesting fields of a T-message (its first bytes, as the server trace gives them). */
export function describeRequest(b: Uint8Array): string {
  if (b.length < 7) return `(short message, ${b.length} bytes)`;
  const d = new Decoder(b);
  const size = d.u32();
  const type = d.u8();
  const tag = d.u16();
  const name = NAMES[type] ?? `type${type}`;
  let f = '';
  switch (type) {
    case P9.Tversion: f = `msize=${d.u32()} ${str(d.str())}`; break;
    case P9.Tattach: f = `fid=${d.u32()} afid=${d.u32() | 0} uname=${str(d.str())} aname=${str(d.str())} uid=${d.u32()}`; break;
    case P9.Twalk: {
      f = `fid=${d.u32()} newfid=${d.u32()}`;
      const n = d.u16();
      const names: string[] = [];
      for (let i = 0; i < n && !d.bad; i++) names.push(str(d.str()));
      f += ` [${names.join(' ')}]`;
      break;
    }
    case P9.Tlopen: f = `fid=${d.u32()} flags=0x${d.u32().toString(16)}`; break;
    case P9.Tlcreate: f = `fid=${d.u32()} name=${str(d.str())} flags=0x${d.u32().toString(16)} mode=0${d.u32().toString(8)}`; break;
    case P9.Tread: case P9.Treaddir: f = `fid=${d.u32()} offset=${d.u64()} count=${d.u32()}`; break;
    case P9.Twrite: f = `fid=${d.u32()} offset=${d.u64()} count=${d.u32()}`; break;
    case P9.Tclunk: case P9.Tremove: case P9.Tstatfs: f = `fid=${d.u32()}`; break;
    case P9.Tfsync: f = `fid=${d.u32()}`; break;
    case P9.Tgetattr: f = `fid=${d.u32()} mask=0x${d.u64().toString(16)}`; break;
    case P9.Tsetattr: f = `fid=${d.u32()} valid=0x${d.u32().toString(16)}`; break;
    case P9.Tmkdir: f = `dfid=${d.u32()} name=${str(d.str())}`; break;
    case P9.Tunlinkat: f = `dfid=${d.u32()} name=${str(d.str())} flags=0x${d.u32().toString(16)}`; break;
    case P9.Trenameat: f = `olddfid=${d.u32()} ${str(d.str())} newdfid=${d.u32()} ${str(d.str())}`; break;
    case P9.Txattrwalk: f = `fid=${d.u32()} newfid=${d.u32()} name=${str(d.str())}`; break;
    case P9.Tflush: f = `oldtag=${d.u16()}`; break;
    default: break;
  }
  return `${name} tag=${tag} size=${size}${f ? ' ' + f : ''}`;
}

/** Decodes an R-message's type and its key field. */
export function describeReply(b: Uint8Array): string {
  if (b.length < 7) return '(no reply)';
  const d = new Decoder(b);
  const size = d.u32();
  const type = d.u8();
  d.u16();
  const name = NAMES[type] ?? `type${type}`;
  let f = '';
  switch (type) {
    case P9.Rlerror: { const e = d.u32(); f = `${ERRNO[e] ?? 'errno'} (${e})`; break; }
    case P9.Rread: case P9.Rreaddir: case P9.Rwrite: f = `count=${d.u32()}`; break;
    case P9.Rwalk: f = `nwqid=${d.u16()}`; break;
    case P9.Rversion: f = `msize=${d.u32()}`; break;
    default: break;
  }
  return `${name} size=${size}${f ? ' ' + f : ''}`;
}

/** Bytes of file data a 9P exchange moved (Tread / Twrite counts). */
function dataBytes(req: Uint8Array, reply: Uint8Array): number {
  if (req.length >= 7 && req[4] === P9.Twrite && req.length >= 23) return new DataView(req.buffer, req.byteOffset).getUint32(19, true);
  if (reply.length >= 11 && reply[4] === P9.Rread) return new DataView(reply.buffer, reply.byteOffset).getUint32(7, true);
  return 0;
}

/** A 9P trace hook writing lines to `write`, and counting into `tally`. */
export function p9Tracer(now: () => number, write: (s: string) => void, tally: TraceTally): P9TraceHook {
  return () => {
    const t0 = now();
    return (req, reply) => {
      const ms = now() - t0;
      tally.add(dataBytes(req, reply), ms);
      write(`9p  ${describeRequest(req)}  ->  ${describeReply(reply)}  ${ms.toFixed(3)} ms\n`);
    };
  };
}

const FUSE_NAMES: Record<number, string> = {};
for (const [k, v] of Object.entries(FUSE)) FUSE_NAMES[v] = k;
/** Opcodes whose first argument after a fixed struct of this many bytes is a name. */
const FUSE_NAME_AT: Record<number, number> = {
  [FUSE.LOOKUP]: 0, [FUSE.UNLINK]: 0, [FUSE.RMDIR]: 0, [FUSE.SYMLINK]: 0, [FUSE.MKDIR]: 8, [FUSE.MKNOD]: 16,
  [FUSE.CREATE]: 16, [FUSE.RENAME]: 8, [FUSE.RENAME2]: 16, [FUSE.LINK]: 8, [FUSE.GETXATTR]: 8, [FUSE.SETXATTR]: 8, [FUSE.REMOVEXATTR]: 0,
};

/** Decodes a FUSE request's opcode, node id and key fields (its first bytes, as the server trace gives them). */
export function describeFuseRequest(b: Uint8Array): string {
  if (b.length < 40) return `(short request, ${b.length} bytes)`;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const op = dv.getUint32(4, true);
  let f = `${FUSE_NAMES[op] ?? `op${op}`} node=${dv.getBigUint64(16, true)} len=${dv.getUint32(0, true)}`;
  const at = FUSE_NAME_AT[op];
  if (at !== undefined && b.length > 40 + at) {
    const rest = b.subarray(40 + at);
    const nul = rest.indexOf(0);
    f += ` ${str(new TextDecoder().decode(rest.subarray(0, nul < 0 ? rest.length : nul)))}`;
  }
  if ((op === FUSE.READ || op === FUSE.WRITE || op === FUSE.READDIR || op === FUSE.READDIRPLUS) && b.length >= 60) {
    f += ` fh=${dv.getBigUint64(40, true)} offset=${dv.getBigUint64(48, true)} size=${dv.getUint32(56, true)}`;
  }
  if (op === FUSE.FORGET && b.length >= 48) f += ` nlookup=${dv.getBigUint64(40, true)}`;
  if (op === FUSE.BATCH_FORGET && b.length >= 44) f += ` count=${dv.getUint32(40, true)}`;
  return f;
}

/** A reply's outcome: OK with its length, or the errno. */
export function describeFuseReply(b: Uint8Array): string {
  if (b.length < 16) return '(no reply)';
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const err = -dv.getInt32(4, true);
  return err === 0 ? `OK len=${dv.getUint32(0, true)}` : `${ERRNO[err] ?? 'errno'} (${err})`;
}

/** A FUSE trace hook writing lines to `write`, and counting into `tally` (data = READ/WRITE bytes). */
export function fuseTracer(label: string, now: () => number, write: (s: string) => void, tally: TraceTally): FuseTraceHook {
  return (req) => {
    const t0 = now();
    return (reply) => {
      const ms = now() - t0;
      const dv = new DataView(req.buffer, req.byteOffset, req.byteLength);
      const op = req.length >= 8 ? dv.getUint32(4, true) : 0;
      let data = 0;
      if (op === FUSE.WRITE && req.length >= 60) data = dv.getUint32(56, true);
      else if (op === FUSE.READ && reply.length >= 16) data = new DataView(reply.buffer, reply.byteOffset).getUint32(0, true) - 16;
      tally.add(Math.max(0, data), ms);
      write(`fuse ${label} ${describeFuseRequest(req)}  ->  ${describeFuseReply(reply)}  ${ms.toFixed(3)} ms\n`);
    };
  };
}
