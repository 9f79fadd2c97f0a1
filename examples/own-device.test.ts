import { describe, expect, it } from 'vitest';
import { COMMON_FEATURES, FlatRam, PACKED_FEATURES, QueueDevice, type DescriptorChain, type GuestMemory } from '../src/index.js';
import { formatFailures, RecordingMemory, runHostileSuite, TestDriver } from '../src/testing/index.js';

/** A toy device: it answers each request with the request's bytes reversed. */
class Reverse extends QueueDevice {
  readonly deviceId = 0x3f;
  readonly features = COMMON_FEATURES | PACKED_FEATURES; // indirect, EVENT_IDX, packed rings
  readonly queueMaxSizes = [64];
  readConfig(): number {
    return 0;
  }
  protected handle(_queue: number, chain: DescriptorChain, mem: GuestMemory): number {
    const request = new Uint8Array(Math.min(chain.readableBytes, 4096));
    chain.reader(mem).read(request);
    return chain.writer(mem).write(request.reverse()); // the used length
  }
}

describe('Reverse', () => {
  for (const packed of [false, true]) {
    it(`reverses a request on a ${packed ? 'packed' : 'split'} ring`, async () => {
      const ram = new FlatRam(0x8000_0000, 1 << 20);
      const seen = new RecordingMemory(ram); // every access the device makes
      const drv = new TestDriver(new Reverse(), ram, { deviceMem: seen }).init({ packed });
      const hello = new TextEncoder().encode('storvm');
      const { used, data } = await drv.ring(0).submit({ readable: [hello], writable: [4, 12], indirect: true });
      expect(used.len).toBe(6);
      expect(new TextDecoder().decode(data)).toBe('mvrots');
      expect(seen.writes().length).toBeGreaterThan(0);
    });
  }

  it('keeps every transport and queue rule of the hostile-guest list', async () => {
    const report = await runHostileSuite(() => new Reverse());
    expect(formatFailures(report)).toBe('');
  });
});
