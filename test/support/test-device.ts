/**
 * A small device for transport and queue tests: it answers every chain by reading its readable
 * bytes and writing into its writable bytes, either at once or later (to test async completion).
 */
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import type { DescriptorChain } from '../../src/virtio/chain.js';
import { COMMON_FEATURES, QueueDevice } from '../../src/virtio/device.js';

export type Behaviour =
  /** Reads a 16-byte header and writes one status byte (0), like a block request. */
  | 'status'
  /** Reads every readable byte and fills every writable byte with 0x5a. */
  | 'fill';

export interface TestDeviceOptions {
  queues?: number[];
  features?: bigint;
  behaviour?: Behaviour;
  /** Complete through a Promise the test resolves with `release()`. */
  deferred?: boolean;
}

export const TEST_DEVICE_ID = 0x3f;

export class TestDevice extends QueueDevice {
  readonly deviceId = TEST_DEVICE_ID;
  readonly features: bigint;
  readonly queueMaxSizes: readonly number[];
  readonly behaviour: Behaviour;
  deferred: boolean;
  /** Every header the device read, as it saw it. */
  readonly headers: Uint8Array[] = [];
  /** Chains handled, in order: [queue, head]. */
  readonly handled: Array<[number, number]> = [];
  activations = 0;
  resets = 0;
  /** A small writable config space. */
  readonly configSpace = new Uint8Array(8);
  private waiting: Array<{ run: () => number; resolve: (n: number) => void }> = [];
  private readonly header = new Uint8Array(16);

  constructor(opts: TestDeviceOptions = {}) {
    super();
    this.queueMaxSizes = opts.queues ?? [256];
    this.features = opts.features ?? COMMON_FEATURES;
    this.behaviour = opts.behaviour ?? 'status';
    this.deferred = opts.deferred ?? false;
  }

  override activate(ctx: Parameters<QueueDevice['activate']>[0]): void {
    this.activations++;
    super.activate(ctx);
  }

  protected override onReset(): void {
    this.resets++;
  }

  readConfig(offset: number, size: number): number {
    if (offset < 0 || offset + size > this.configSpace.length) return 0;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = v * 256 + this.configSpace[offset + i]!;
    return v;
  }

  override writeConfig(offset: number, size: number, value: number): void {
    if (offset < 0 || offset + size > this.configSpace.length) return;
    for (let i = 0; i < size; i++) this.configSpace[offset + i] = (value >>> (8 * i)) & 0xff;
  }

  protected handle(queue: number, chain: DescriptorChain, mem: GuestMemory): number | Promise<number> {
    this.handled.push([queue, chain.head]);
    const run = (): number => (this.isLive(queue, chain) ? this.serve(chain, mem) : 0);
    if (!this.deferred) return run();
    return new Promise((resolve) => this.waiting.push({ run, resolve }));
  }

  private serve(chain: DescriptorChain, mem: GuestMemory): number {
    const reader = chain.reader(mem);
    const writer = chain.writer(mem);
    if (this.behaviour === 'status') {
      if (!reader.readExact(this.header)) return 0;
      this.headers.push(this.header.slice());
      writer.skip(writer.remaining - 1);
      writer.writeU8(0);
      return writer.written;
    }
    const buf = new Uint8Array(4096);
    while (reader.remaining > 0) reader.read(buf);
    buf.fill(0x5a);
    while (writer.remaining > 0) writer.write(buf.subarray(0, Math.min(buf.length, writer.remaining)));
    return writer.written;
  }

  /** Requests waiting for `release`. */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Completes deferred requests, in the given order of their arrival indices (default all, FIFO). */
  release(order?: number[]): void {
    const all = this.waiting;
    const pick = order ?? all.map((_, i) => i);
    const chosen = pick.map((i) => all[i]!);
    this.waiting = all.filter((_, i) => !pick.includes(i));
    for (const w of chosen) w.resolve(w.run());
  }
}
