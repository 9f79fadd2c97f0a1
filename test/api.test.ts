/** The public names outside conformance tests rely on, from the package root and storvm/node. */
import { describe, expect, it } from 'vitest';
import * as root from '../src/index.js';
import * as node from '../src/node/index.js';

describe('public API', () => {
  it('exports the foundation, devices and backends from the package root', () => {
    for (const name of ['FlatRam', 'GuestMemoryError', 'MmioTransport', 'QueueDevice', 'SplitQueue', 'VirtioBlk', 'MemoryDisk', 'OverlayDisk', 'Qcow2Disk', 'loadGzipImage', 'Virtio9p', 'VirtioFs', 'FuseServer', 'MemFs', 'FsBackend', 'Machine', 'Hart', 'WasmMemoryRam', 'HostCallTransport', 'legacyVringLayout', 'VirtioWasmHost']) {
      expect(typeof (root as Record<string, unknown>)[name], name).toBe('function');
    }
  });

  it('exports the Node-only pieces from storvm/node', () => {
    for (const name of ['FileDisk', 'HostFs', 'openDiskImage', 'memFsFromFolder', 'cli', 'launch']) {
      expect(typeof (node as Record<string, unknown>)[name], name).toBe('function');
    }
  });

  it('drives a VirtioBlk over a MemoryDisk through the transport, as the README shows', async () => {
    const ram = new root.FlatRam(0x8000_0000, 1 << 20);
    const t = new root.MmioTransport(new root.VirtioBlk(new root.MemoryDisk(1 << 20)), ram, { set() {} });
    expect(t.read(0x008, 4)).toBe(2); // DeviceID: block
    expect(t.read(0x100, 4)).toBe(2048); // capacity in sectors, low half
    await t.idle();
  });
});
