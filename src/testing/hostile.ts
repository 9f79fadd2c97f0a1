/**
 * The hostile-guest suite as a function: `runHostileSuite(makeDevice)` runs the transport and
 * queue lines of docs/hostile-guest.md (1–21, and 49–51) against any VirtioDevice through the
 * real MmioTransport, as a hostile driver would. The device under test only has to keep the
 * invariants that hold whatever its requests mean:
 *
 * - nothing throws out of the transport, and the device never throws (a throw is a device bug,
 *   even though the transport turns it into DEVICE_NEEDS_RESET);
 * - a chain the queue refused (its `error` is set) is given back with used length 0, or the device
 *   goes to DEVICE_NEEDS_RESET, and none of its buffers is touched;
 * - the device writes only into the writable buffers of chains it was given and into the used
 *   ring, and a used length never exceeds the chain's writable bytes;
 * - once Status reads 0 after a reset, the device touches no guest memory.
 *
 * A device built on QueueDevice gets most of this for free; the suite is for checking that it
 * did not undo it, and for devices that pop their own queues.
 */
import {
  DESC_F_AVAIL,
  DESC_F_INDIRECT,
  DESC_F_NEXT,
  DESC_F_USED,
  DESC_F_WRITE,
  F_INDIRECT_DESC,
  F_RING_PACKED,
  FlatRam,
  MMIO,
  STATUS_ACKNOWLEDGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER,
  type VirtioDevice,
} from '../index.js';
import { type DriverQueue, type PackedDriverQueue, RAM_BASE, type Submitted, TestDriver, type UsedElem } from './driver.js';
import { type Access, RecordingMemory } from './recording-memory.js';

/** The outcome of one check. */
export interface HostileResult {
  /** The line of docs/hostile-guest.md the check is for. */
  line: number;
  title: string;
  ok: boolean;
  /** Why it failed. */
  detail?: string;
  /** Why it did not run (e.g. the device does not offer the feature). */
  skipped?: string;
}

export interface HostileReport {
  results: HostileResult[];
  /** The results that failed. */
  failures: HostileResult[];
  ok: boolean;
}

export interface HostileSuiteOptions {
  /** Guest RAM for each check; default 2 MiB. */
  ramBytes?: number;
  /** Run only these lines. */
  only?: number[];
}

const HDR = new Uint8Array(16);

/** One fresh device, transport and driver, with every device access recorded. */
class Rig {
  readonly ram: FlatRam;
  readonly rec: RecordingMemory;
  readonly drv: TestDriver;
  readonly errors: unknown[] = [];

  constructor(
    makeDevice: () => VirtioDevice,
    ramBytes: number,
  ) {
    this.ram = new FlatRam(RAM_BASE, ramBytes);
    this.rec = new RecordingMemory(this.ram);
    this.drv = new TestDriver(makeDevice(), this.ram, { deviceMem: this.rec, onDeviceError: (e) => this.errors.push(e) });
  }
  get device(): VirtioDevice {
    return this.drv.device;
  }
  split(size = 8, features?: bigint): DriverQueue {
    this.drv.init({ queues: 1, queueSizes: [Math.min(size, this.device.queueMaxSizes[0]!)], features });
    this.rec.clear();
    return this.drv.queues[0]!;
  }
  packed(size = 8): PackedDriverQueue {
    this.drv.init({ queues: 1, queueSizes: [Math.min(size, this.device.queueMaxSizes[0]!)], packed: true });
    this.rec.clear();
    return this.drv.packedQueues[0]!;
  }
  get needsReset(): boolean {
    return (this.drv.status & STATUS_DEVICE_NEEDS_RESET) !== 0;
  }
  buf(len: number, fill = 0xee): number {
    const a = this.drv.allocator.alloc(Math.max(1, len), 16);
    this.ram.fill(a, len, fill);
    return a;
  }
  async settle(): Promise<void> {
    await this.drv.transport.idle();
    this.device.flushCompletions?.();
  }
  /** Device writes outside the given ranges, if any. */
  strayWrite(allowed: Array<[number, number]>): Access | undefined {
    return this.rec.writes().find((w) => !allowed.some(([a, n]) => w.addr >= a && w.addr + w.len <= a + n));
  }
  /** Why the device misbehaved in ways every check forbids, or undefined. */
  baseline(): string | undefined {
    if (this.errors.length > 0) return `the device threw: ${String(this.errors[0])}`;
    return undefined;
  }
}

function usedArea(q: DriverQueue): [number, number] {
  return [q.used, 6 + 8 * q.size];
}
function packedAreas(q: PackedDriverQueue): Array<[number, number]> {
  return [
    [q.ring, 16 * q.size],
    [q.deviceEvent, 4],
  ];
}

/** The refused-chain invariant on a split queue: len 0 (or NEEDS_RESET), nothing else written. */
async function expectRefused(rig: Rig, q: DriverQueue, head: number, what: string): Promise<string | undefined> {
  q.kick();
  await rig.settle();
  const used = q.takeUsed();
  const stray = rig.strayWrite([usedArea(q)]);
  if (stray) return `${what}: the device wrote ${stray.len} bytes at 0x${stray.addr.toString(16)}, outside the used ring`;
  if (rig.needsReset) return undefined;
  const u = used.find((e) => e.id === head);
  if (u === undefined) return `${what}: the chain was neither given back nor did the device ask for a reset`;
  if (u.len !== 0) return `${what}: given back with used length ${u.len}, not 0`;
  return undefined;
}

async function expectPackedRefused(rig: Rig, q: PackedDriverQueue, id: number, what: string): Promise<string | undefined> {
  q.kick();
  await rig.settle();
  const used = q.takeUsed();
  const stray = rig.strayWrite(packedAreas(q));
  if (stray) return `${what}: the device wrote ${stray.len} bytes at 0x${stray.addr.toString(16)}, outside the ring`;
  if (rig.needsReset) return undefined;
  const u = used.find((e) => e.id === id);
  if (u === undefined) return `${what}: the buffer was neither given back nor did the device ask for a reset`;
  if (u.len !== 0) return `${what}: given back with used length ${u.len}, not 0`;
  return undefined;
}

/** Writes a raw split chain at descriptor indices `ids` (NEXT links them) and publishes it. */
function rawChain(q: DriverQueue, ids: number[], descs: Array<{ addr: number; len: number; flags: number; next?: number }>): number {
  descs.forEach((d, i) => {
    const last = i === descs.length - 1;
    q.writeDesc(ids[i]!, { addr: d.addr, len: d.len, flags: d.flags | (last ? 0 : DESC_F_NEXT), next: d.next ?? (last ? 0 : ids[i + 1]!) });
  });
  q.publish(ids[0]!);
  return ids[0]!;
}

/** Checks that every used element of `subs` stayed within its writable bytes and buffers. */
function checkWrites(rig: Rig, q: DriverQueue, subs: Submitted[], used: UsedElem[]): string | undefined {
  const allowed: Array<[number, number]> = [usedArea(q)];
  for (const s of subs) for (const w of s.writable) allowed.push([w.addr, w.len]);
  const stray = rig.strayWrite(allowed);
  if (stray) return `the device wrote ${stray.len} bytes at 0x${stray.addr.toString(16)}, outside every writable buffer`;
  for (const u of used) {
    const s = subs.find((x) => x.head === u.id);
    const cap = s ? s.writable.reduce((n, w) => n + w.len, 0) : 0;
    if (u.len > cap) return `used length ${u.len} for chain ${u.id} exceeds its ${cap} writable bytes`;
  }
  return undefined;
}

type Check = { line: number; title: string; needs?: 'indirect' | 'packed'; run: (rig: Rig) => Promise<string | undefined> };

const CHECKS: Check[] = [
  {
    line: 1,
    title: 'desc.next >= queue size refuses the chain',
    run: async (rig) => {
      const q = rig.split();
      const head = rawChain(q, [7], [{ addr: rig.buf(16), len: 16, flags: DESC_F_NEXT, next: q.size }]);
      return expectRefused(rig, q, head, 'next out of range');
    },
  },
  {
    line: 2,
    title: 'a loop in a chain is refused, without spinning',
    run: async (rig) => {
      const q = rig.split();
      const b = rig.buf(16);
      const head = rawChain(q, [6, 7], [
        { addr: b, len: 16, flags: 0 },
        { addr: b, len: 16, flags: 0, next: 6 },
      ]);
      return expectRefused(rig, q, head, 'loop');
    },
  },
  {
    line: 3,
    title: 'a chain of exactly queue-size descriptors is served; one more inside an indirect table is refused',
    run: async (rig) => {
      const q = rig.split(8);
      const sub = q.add({ readable: [HDR], writable: [16, 16, 16, 16, 16, 16, 16] });
      q.kick();
      await rig.settle();
      const used = q.takeUsed();
      if (rig.needsReset) return `a chain of ${q.size} descriptors made the device ask for a reset`;
      if (!used.some((u) => u.id === sub.head)) return 'a chain of queue-size descriptors was not given back';
      const bad = checkWrites(rig, q, [sub], used);
      if (bad) return bad;
      if (!(rig.drv.features & (1n << BigInt(F_INDIRECT_DESC)))) return undefined;
      const table = rig.drv.allocator.alloc(16 * 9, 16);
      for (let i = 0; i < 9; i++) q.writeDesc(i, { addr: rig.buf(16), len: 16, flags: i < 8 ? DESC_F_NEXT : DESC_F_WRITE, next: i + 1 }, table);
      rig.rec.clear();
      const head = rawChain(q, [7], [{ addr: table, len: 16 * 9, flags: DESC_F_INDIRECT }]);
      return expectRefused(rig, q, head, 'indirect table of queue size + 1');
    },
  },
  {
    line: 4,
    title: 'avail.idx more than queue size ahead: DEVICE_NEEDS_RESET, never a spin',
    run: async (rig) => {
      const q = rig.split();
      q.setAvailIdx(q.size + 1);
      q.kick();
      await rig.settle();
      if (!rig.needsReset) return 'the device did not ask for a reset';
      if (q.usedIdx !== 0) return `the device gave back ${q.usedIdx} phantom chains`;
      return undefined;
    },
  },
  {
    line: 5,
    title: 'an available ring entry >= queue size is refused',
    run: async (rig) => {
      const q = rig.split();
      q.publish(q.size + 3);
      q.kick();
      await rig.settle();
      const stray = rig.strayWrite([usedArea(q)]);
      if (stray) return 'the device wrote outside the used ring';
      const used = q.takeUsed();
      if (!rig.needsReset && used.some((u) => u.len !== 0)) return 'a chain with an invalid head was served';
      if (!rig.needsReset && used.length === 0) return 'neither refused nor a reset';
      return undefined;
    },
  },
  {
    line: 6,
    title: 'u16 indices wrap from 0xFFFF to 0',
    run: async (rig) => {
      const q = rig.split(8);
      const subs = Array.from({ length: 4 }, () => q.add({ readable: [HDR], writable: [1] }));
      q.kick();
      await rig.settle();
      q.takeUsed();
      rig.rec.recording = false;
      let served = 4;
      while (served < 0x10000 + 40) {
        for (const s of subs) q.publish(s.head);
        q.kick();
        await rig.settle();
        const used = q.takeUsed();
        if (used.length !== subs.length) return `after ${served} chains the device gave back ${used.length} of ${subs.length}`;
        served += subs.length;
        if (rig.needsReset) return `the device asked for a reset after ${served} chains`;
      }
      if (q.usedIdx !== (served & 0xffff)) return `used.idx is ${q.usedIdx}, expected ${served & 0xffff}`;
      return undefined;
    },
  },
  {
    line: 7,
    title: 'INDIRECT inside an indirect table, INDIRECT with NEXT, INDIRECT not negotiated: refused',
    needs: 'indirect',
    run: async (rig) => {
      const q = rig.split();
      const inner = rig.drv.allocator.alloc(16, 16);
      q.writeDesc(0, { addr: rig.buf(16), len: 16, flags: 0, next: 0 }, inner);
      const outer = rig.drv.allocator.alloc(16, 16);
      q.writeDesc(0, { addr: inner, len: 16, flags: DESC_F_INDIRECT, next: 0 }, outer);
      let r = await expectRefused(rig, q, rawChain(q, [7], [{ addr: outer, len: 16, flags: DESC_F_INDIRECT }]), 'nested indirect');
      if (r) return r;
      r = await expectRefused(rig, q, rawChain(q, [6], [{ addr: inner, len: 16, flags: DESC_F_INDIRECT | DESC_F_NEXT, next: 5 }]), 'INDIRECT with NEXT');
      return r;
    },
  },
  {
    line: 7,
    title: 'INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated is refused',
    run: async (rig) => {
      const q = rig.split(8, ~(1n << BigInt(F_INDIRECT_DESC)));
      const table = rig.drv.allocator.alloc(16, 16);
      q.writeDesc(0, { addr: rig.buf(16), len: 16, flags: 0, next: 0 }, table);
      return expectRefused(rig, q, rawChain(q, [7], [{ addr: table, len: 16, flags: DESC_F_INDIRECT }]), 'indirect not negotiated');
    },
  },
  {
    line: 8,
    title: 'indirect tables of length 0, not a multiple of 16, or outside RAM are refused',
    needs: 'indirect',
    run: async (rig) => {
      const q = rig.split();
      const table = rig.drv.allocator.alloc(32, 16);
      q.writeDesc(0, { addr: rig.buf(16), len: 16, flags: 0, next: 0 }, table);
      for (const [addr, len, what] of [
        [table, 0, 'length 0'],
        [table, 24, 'length 24'],
        [RAM_BASE + rig.ram.size - 8, 16, 'table outside RAM'],
      ] as const) {
        const r = await expectRefused(rig, q, rawChain(q, [7], [{ addr, len, flags: DESC_F_INDIRECT }]), what);
        if (r) return r;
      }
      return undefined;
    },
  },
  {
    line: 9,
    title: 'a buffer leaving RAM or wrapping past 2^64 refuses the chain before any I/O',
    run: async (rig) => {
      const q = rig.split();
      const end = RAM_BASE + rig.ram.size;
      for (const [addr, what] of [
        [end - 8, 'buffer past the end of RAM'],
        [2 ** 64 - 4096, 'buffer wrapping past 2^64'],
        [RAM_BASE - 16, 'buffer below RAM'],
      ] as const) {
        // A valid writable buffer first: a device that serves a refused chain would write there.
        const head = rawChain(q, [5, 6, 7], [
          { addr: rig.buf(16), len: 16, flags: 0 },
          { addr: rig.buf(64), len: 64, flags: DESC_F_WRITE },
          { addr, len: 16, flags: DESC_F_WRITE },
        ]);
        const r = await expectRefused(rig, q, head, what);
        if (r) return r;
      }
      return undefined;
    },
  },
  {
    line: 10,
    title: 'a buffer ending exactly at the last byte of RAM is valid',
    run: async (rig) => {
      const q = rig.split();
      const end = RAM_BASE + rig.ram.size;
      const head = rawChain(q, [6, 7], [
        { addr: rig.buf(16), len: 16, flags: 0 },
        { addr: end - 64, len: 64, flags: DESC_F_WRITE },
      ]);
      q.kick();
      await rig.settle();
      const used = q.takeUsed();
      if (rig.needsReset) return 'the device asked for a reset';
      const stray = rig.strayWrite([usedArea(q), [end - 64, 64]]);
      if (stray) return 'the device wrote outside the chain';
      return used.some((u) => u.id === head) ? undefined : 'the chain was not given back';
    },
  },
  {
    line: 11,
    title: 'a chain whose total length overflows u32 is refused',
    run: async (rig) => {
      const q = rig.split();
      const head = rawChain(q, [5, 6, 7], [
        { addr: RAM_BASE, len: 16, flags: 0 },
        { addr: RAM_BASE, len: 0xffff_fff8, flags: DESC_F_WRITE },
        { addr: RAM_BASE, len: 16, flags: DESC_F_WRITE },
      ]);
      return expectRefused(rig, q, head, 'u32 overflow');
    },
  },
  {
    line: 12,
    title: 'a readable descriptor after a writable one is refused',
    run: async (rig) => {
      const q = rig.split();
      const head = rawChain(q, [4, 5, 6, 7], [
        { addr: rig.buf(16), len: 16, flags: 0 },
        { addr: rig.buf(16), len: 16, flags: DESC_F_WRITE },
        { addr: rig.buf(16), len: 16, flags: 0 },
        { addr: rig.buf(16), len: 16, flags: DESC_F_WRITE },
      ]);
      return expectRefused(rig, q, head, 'readable after writable');
    },
  },
  {
    line: 13,
    title: 'the device writes only into writable buffers; used.len is written before used.idx',
    run: async (rig) => {
      const q = rig.split(16);
      const subs = [
        q.add({ readable: [HDR], writable: [1] }),
        q.add({ readable: [HDR, new Uint8Array(512)], writable: [1] }),
        q.add({ readable: [HDR], writable: [512, 1] }),
        q.add({ readable: [HDR], writable: [4096, 7, 1], indirect: (rig.drv.features & (1n << BigInt(F_INDIRECT_DESC))) !== 0n }),
      ];
      q.kick();
      await rig.settle();
      const used = q.takeUsed();
      const bad = checkWrites(rig, q, subs, used);
      if (bad) return bad;
      // Each used element's length is written before the used.idx write that publishes it.
      const log = rig.rec.writes();
      const idxAt = (i: number) => log.findIndex((w, k) => k > i && w.addr === q.used + 2);
      for (let k = 0; k < log.length; k++) {
        const w = log[k]!;
        if (w.addr >= q.used + 4 && w.addr < q.used + 4 + 8 * q.size && idxAt(k) < 0) return 'a used element was written after the last used.idx write';
      }
      return undefined;
    },
  },
  {
    line: 14,
    title: 'ring addresses misaligned or outside RAM keep the queue from going ready',
    run: async (rig) => {
      const end = RAM_BASE + rig.ram.size;
      for (const [reg, addr] of [
        [MMIO.QueueDescLow, RAM_BASE + 8],
        [MMIO.QueueDriverLow, RAM_BASE + 0x1001],
        [MMIO.QueueDeviceLow, RAM_BASE + 0x2002],
        [MMIO.QueueDescLow, end - 16],
        [MMIO.QueueDeviceLow, end - 8],
      ] as const) {
        rig.drv.negotiate();
        rig.drv.write(MMIO.QueueSel, 0);
        rig.drv.write(MMIO.QueueNum, 8);
        rig.drv.writeAddress(MMIO.QueueDescLow, RAM_BASE);
        rig.drv.writeAddress(MMIO.QueueDriverLow, RAM_BASE + 0x1000);
        rig.drv.writeAddress(MMIO.QueueDeviceLow, RAM_BASE + 0x2000);
        rig.drv.writeAddress(reg, addr);
        rig.drv.write(MMIO.QueueReady, 1);
        if (rig.drv.read(MMIO.QueueReady) !== 0) return `the queue went ready with register 0x${reg.toString(16)} = 0x${addr.toString(16)}`;
      }
      return undefined;
    },
  },
  {
    line: 15,
    title: 'QueueNum of 0, above QueueNumMax or not a power of two is ignored',
    run: async (rig) => {
      rig.drv.negotiate();
      rig.drv.write(MMIO.QueueSel, 0);
      const max = rig.drv.read(MMIO.QueueNumMax);
      const q = rig.drv.transport.queues[0]!;
      const before = q.size;
      for (const n of [0, max * 2, 3]) {
        rig.drv.write(MMIO.QueueNum, n);
        if (q.size !== before) return `QueueNum ${n} was taken`;
      }
      return undefined;
    },
  },
  {
    line: 16,
    title: 'register writes in the wrong phase, bad QueueSel, unknown offsets, narrow accesses are ignored',
    run: async (rig) => {
      const t = rig.drv.transport;
      t.write(MMIO.QueueNum, 4, 4); // before FEATURES_OK
      t.write(MMIO.DriverFeatures, 4, 0xffff_ffff); // before DRIVER
      t.write(MMIO.Status, 1, STATUS_ACKNOWLEDGE); // narrow
      if (rig.drv.status !== 0) return 'a one-byte Status write was taken';
      t.write(MMIO.Status, 4, STATUS_ACKNOWLEDGE | STATUS_DRIVER | 8); // skips a step
      if (rig.drv.status !== 0) return 'a Status write that skips steps was taken';
      for (const off of [0x0c4, 0x0f0, 0x0ff, 0x200]) t.write(off, 4, 0xdead_beef);
      rig.drv.write(MMIO.QueueSel, 0xffff);
      if (rig.drv.read(MMIO.QueueNumMax) !== 0) return 'a QueueSel out of range reads a QueueNumMax';
      t.read(MMIO.Status, 2);
      return rig.rec.log.length === 0 ? undefined : 'register accesses made the device touch guest memory';
    },
  },
  {
    line: 17,
    title: 'notify before DRIVER_OK, after reset, or for a missing queue does nothing',
    run: async (rig) => {
      rig.drv.negotiate();
      const q = rig.drv.setupQueue(0, 8);
      q.add({ readable: [HDR], writable: [1] });
      rig.rec.clear();
      q.kick(); // before DRIVER_OK
      rig.drv.write(MMIO.QueueNotify, 999);
      await rig.settle();
      if (rig.rec.log.length > 0) return 'a notify before DRIVER_OK made the device touch guest memory';
      rig.drv.write(MMIO.Status, 0);
      q.kick(); // after reset
      await rig.settle();
      return rig.rec.log.length === 0 ? undefined : 'a notify after reset made the device touch guest memory';
    },
  },
  {
    line: 18,
    title: 'descriptors are read once: rewriting the table after the kick changes nothing',
    run: async (rig) => {
      const q = rig.split();
      const sub = q.add({ readable: [HDR], writable: [64, 1] });
      q.kick();
      const decoy = rig.buf(4096, 0x33);
      for (const i of sub.descs) q.writeDesc(i, { addr: decoy, len: 4096, flags: DESC_F_WRITE, next: 0 });
      await rig.settle();
      const used = q.takeUsed();
      return checkWrites(rig, q, [sub], used) ?? (rig.ram.view(decoy, 4096).every((b) => b === 0x33) ? undefined : 'the device wrote through a rewritten descriptor');
    },
  },
  {
    line: 19,
    title: 'chains that are no valid request are completed (or NEEDS_RESET); the device never throws',
    run: async (rig) => {
      const q = rig.split(64);
      let x = 0x1234_5678;
      const rnd = () => ((x = (x * 1103515245 + 12345) >>> 0), x >>> 8);
      const subs: Submitted[] = [];
      for (let i = 0; i < 24; i++) {
        const readable = Array.from({ length: 1 + (rnd() % 2) }, () => new Uint8Array(rnd() % 40).map(() => rnd() & 0xff));
        const writable = Array.from({ length: rnd() % 3 }, () => rnd() % 64);
        subs.push(q.add({ readable, writable }));
      }
      q.kick();
      await rig.settle();
      const used = q.takeUsed();
      const bad = checkWrites(rig, q, subs, used) ?? rig.baseline();
      if (bad) return bad;
      if (!rig.needsReset && used.length !== subs.length) return `${subs.length - used.length} garbage chains were never given back`;
      return undefined;
    },
  },
  {
    line: 20,
    title: 'reset while requests are in flight: late completions never reach the new rings',
    run: async (rig) => {
      const q = rig.split(32);
      for (let i = 0; i < 3; i++) q.add({ readable: [HDR], writable: [512, 1] });
      q.kick();
      rig.drv.write(MMIO.Status, 0);
      const oldIdx = q.usedIdx;
      for (let i = 0; i < 200 && rig.drv.status !== 0; i++) await new Promise<void>((r) => setTimeout(r, 1));
      if (rig.drv.status !== 0) return 'Status never read 0 after the reset';
      const q2 = rig.split();
      await rig.settle();
      if (q.usedIdx !== oldIdx) return 'a completion reached the old used ring after the reset';
      if (q2.usedIdx !== 0) return 'a completion from before the reset reached the new used ring';
      return undefined;
    },
  },
  {
    line: 21,
    title: 'acknowledged features are masked to those offered',
    run: async (rig) => {
      const offered = rig.drv.deviceFeatures();
      rig.drv.write(MMIO.Status, 0);
      rig.drv.write(MMIO.Status, STATUS_ACKNOWLEDGE);
      rig.drv.write(MMIO.Status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
      rig.drv.writeFeatures(0xffff_ffff_ffff_ffffn);
      const got = rig.drv.transport.negotiatedFeatures;
      return got === offered ? undefined : `negotiated 0x${got.toString(16)} but offered 0x${offered.toString(16)}`;
    },
  },
  {
    line: 49,
    title: 'once Status read 0 after a reset, the device touches no guest memory',
    run: async (rig) => {
      const q = rig.split(32);
      for (let i = 0; i < 4; i++) q.add({ readable: [HDR, new Uint8Array(512)], writable: [4096, 1] });
      q.kick();
      rig.drv.write(MMIO.Status, 0);
      for (let i = 0; i < 2000 && rig.drv.status !== 0; i++) await new Promise<void>((r) => setTimeout(r, 0));
      if (rig.drv.status !== 0) return 'Status never read 0 after the reset';
      rig.rec.clear();
      await rig.settle();
      await new Promise<void>((r) => setTimeout(r, 5));
      const a = rig.rec.log[0];
      return a === undefined ? undefined : `after Status read 0 the device made a ${a.kind} of ${a.len} bytes at 0x${a.addr.toString(16)}`;
    },
  },
  {
    line: 50,
    title: 'packed: descriptors whose AVAIL/USED bits disagree with the wrap counter are not available',
    needs: 'packed',
    run: async (rig) => {
      const q = rig.packed();
      const b = rig.buf(16);
      for (const flags of [DESC_F_AVAIL | DESC_F_USED, 0, DESC_F_USED]) {
        q.writeDesc(0, { addr: b, len: 16, id: 0, flags });
        q.kick();
      }
      await rig.settle();
      if (rig.needsReset) return 'the device asked for a reset over a descriptor that is not available';
      const stray = rig.strayWrite([[q.deviceEvent, 4]]);
      return stray ? 'the device wrote into the ring for a descriptor that is not available' : undefined;
    },
  },
  {
    line: 50,
    title: 'packed: a chain longer than the ring, or a buffer id >= ring size, is refused without spinning',
    needs: 'packed',
    run: async (rig) => {
      let q = rig.packed(8);
      const b = rig.buf(16);
      for (let i = 0; i < 8; i++) q.writeDesc(i, { addr: b, len: 16, id: 0, flags: DESC_F_AVAIL | DESC_F_NEXT });
      q.kick();
      await rig.settle();
      if (!rig.needsReset) {
        const r = await expectPackedRefused(rig, q, 0, 'chain longer than the ring');
        if (r) return r;
      }
      q = rig.packed(8);
      q.publishRaw([{ addr: b, len: 16, id: 8, flags: 0 }]);
      q.kick();
      await rig.settle();
      const used = q.takeUsed();
      if (!rig.needsReset && used.some((u) => u.len !== 0)) return 'a buffer id beyond the ring was served';
      return undefined;
    },
  },
  {
    line: 50,
    title: 'packed: bad buffers, readable after writable, u32 overflow and bad indirect tables are refused',
    needs: 'packed',
    run: async (rig) => {
      const q = rig.packed(8);
      const end = RAM_BASE + rig.ram.size;
      const table = rig.drv.allocator.alloc(32, 16);
      q.writeDesc(0, { addr: rig.buf(16), len: 16, id: 0, flags: DESC_F_INDIRECT }, table);
      const cases: Array<[string, Array<{ addr: number; len: number; id: number; flags: number }>]> = [
        ['buffer outside RAM', [{ addr: end - 8, len: 16, id: 1, flags: 0 }]],
        ['readable after writable', [
          { addr: rig.buf(4), len: 4, id: 1, flags: DESC_F_WRITE },
          { addr: rig.buf(4), len: 4, id: 1, flags: 0 },
        ]],
        ['u32 overflow', [
          { addr: RAM_BASE, len: 0xffff_fff8, id: 1, flags: DESC_F_WRITE },
          { addr: RAM_BASE, len: 16, id: 1, flags: DESC_F_WRITE },
        ]],
        ['indirect of length 24', [{ addr: table, len: 24, id: 1, flags: DESC_F_INDIRECT }]],
        ['nested indirect', [{ addr: table, len: 16, id: 1, flags: DESC_F_INDIRECT }]],
      ];
      for (const [what, descs] of cases) {
        q.publishRaw(descs);
        const r = await expectPackedRefused(rig, q, 1, what);
        if (r) return r;
        if (rig.needsReset) return undefined;
      }
      return undefined;
    },
  },
  {
    line: 51,
    title: 'packed: event suppression structures misaligned or outside RAM keep the queue from going ready',
    needs: 'packed',
    run: async (rig) => {
      const end = RAM_BASE + rig.ram.size;
      for (const [reg, addr] of [
        [MMIO.QueueDriverLow, RAM_BASE + 0x1002],
        [MMIO.QueueDeviceLow, end - 2],
      ] as const) {
        rig.drv.negotiate(~0n);
        rig.drv.write(MMIO.QueueSel, 0);
        rig.drv.write(MMIO.QueueNum, 8);
        rig.drv.writeAddress(MMIO.QueueDescLow, RAM_BASE);
        rig.drv.writeAddress(MMIO.QueueDriverLow, RAM_BASE + 0x1000);
        rig.drv.writeAddress(MMIO.QueueDeviceLow, RAM_BASE + 0x1004);
        rig.drv.writeAddress(reg, addr);
        rig.drv.write(MMIO.QueueReady, 1);
        if (rig.drv.read(MMIO.QueueReady) !== 0) return `the queue went ready with register 0x${reg.toString(16)} = 0x${addr.toString(16)}`;
      }
      return undefined;
    },
  },
];

/**
 * Runs the transport and queue lines of the hostile-guest list against devices from
 * `makeDevice` (a fresh one per check). Lines that need a feature the device does not offer
 * (indirect descriptors, packed rings) are reported as skipped. Never throws for a failing
 * device: every problem is a failed result.
 */
export async function runHostileSuite(makeDevice: () => VirtioDevice, opts: HostileSuiteOptions = {}): Promise<HostileReport> {
  const results: HostileResult[] = [];
  for (const check of CHECKS) {
    if (opts.only && !opts.only.includes(check.line)) continue;
    let rig: Rig;
    try {
      rig = new Rig(makeDevice, opts.ramBytes ?? 2 << 20);
    } catch (e) {
      results.push({ line: check.line, title: check.title, ok: false, detail: `setting up the device failed: ${String(e)}` });
      continue;
    }
    const offered = rig.device.features;
    if (check.needs === 'indirect' && !(offered & (1n << BigInt(F_INDIRECT_DESC)))) {
      results.push({ line: check.line, title: check.title, ok: true, skipped: 'VIRTIO_F_INDIRECT_DESC not offered' });
      continue;
    }
    if (check.needs === 'packed' && !(offered & (1n << BigInt(F_RING_PACKED)))) {
      results.push({ line: check.line, title: check.title, ok: true, skipped: 'VIRTIO_F_RING_PACKED not offered' });
      continue;
    }
    let detail: string | undefined;
    try {
      detail = (await check.run(rig)) ?? rig.baseline();
    } catch (e) {
      detail = `threw: ${e instanceof Error ? e.message : String(e)}`;
    }
    results.push(detail === undefined ? { line: check.line, title: check.title, ok: true } : { line: check.line, title: check.title, ok: false, detail });
  }
  const failures = results.filter((r) => !r.ok);
  return { results, failures, ok: failures.length === 0 };
}

/** One line per failure, for an assertion message. */
export function formatFailures(report: HostileReport): string {
  return report.failures.map((f) => `line ${f.line}: ${f.title}: ${f.detail ?? ''}`).join('\n');
}
