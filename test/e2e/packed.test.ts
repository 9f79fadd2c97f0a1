/**
 * Linux 6.12 with packed virtqueues: blk and 9p offer VIRTIO_F_RING_PACKED, the guest takes it,
 * and data crosses both devices intact. The same workload with packed rings off runs on split
 * rings, so both formats are exercised by a real driver.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { Machine } from '../../src/machine/machine.js';
import { F_RING_PACKED } from '../../src/virtio/constants.js';
import { HostFs } from '../../src/node/host-fs.js';
import { nodeHost } from '../../src/node/host.js';
import { FileDisk } from '../../src/node/file-disk.js';

const IMAGES = new URL('../../guest-images/', import.meta.url);

async function boot(packed: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'storvm-packed-'));
  const share = join(dir, 'share');
  mkdirSync(share);
  const data = new Uint8Array(1 << 20).map((_, i) => (i * 131 + (i >> 12)) & 0xff);
  writeFileSync(join(share, 'in.bin'), data);
  const diskPath = join(dir, 'disk.img');
  writeFileSync(diskPath, new Uint8Array(4 << 20));
  const disk = await FileDisk.open(diskPath);
  // Copy the share's file to the disk and back to the share, through the page cache and O_DIRECT.
  const cmd = [
    'dd if=/mnt/host/in.bin of=/dev/vda bs=64k 2>/dev/null',
    'sync',
    'dd if=/dev/vda of=/mnt/host/out.bin bs=4k count=256 iflag=direct 2>/dev/null',
    'md5sum /mnt/host/in.bin /mnt/host/out.bin | cut -d" " -f1 | uniq | wc -l',
  ].join('; ');
  let out = '';
  const machine = new Machine({
    memoryMiB: 64,
    kernel: gunzipSync(readFileSync(new URL('Image.gz', IMAGES))),
    initrd: readFileSync(new URL('initramfs.cpio.gz', IMAGES)),
    bootargs: `console=ttyS0 quiet loglevel=1 storvm.share=storvm:/mnt/host storvm.cmd=${Buffer.from(cmd).toString('base64')}`,
    devices: [new VirtioBlk(disk, { packed }), new Virtio9p(new HostFs(share), { packed })],
    onConsole: (b) => (out += Buffer.from(b).toString()),
    host: nodeHost,
  });
  const r = await machine.run();
  await disk.close();
  return { out, code: r.exitCode, machine, data, diskPath, share };
}

describe('Linux with packed virtqueues', () => {
  for (const packed of [true, false]) {
    it(`moves data through blk and 9p with packed rings ${packed ? 'on' : 'off'}`, async () => {
      const { out, code, machine, data, diskPath, share } = await boot(packed);
      expect(out).toBe('1\n');
      expect(code).toBe(0);
      for (const t of machine.transports) {
        expect((t.negotiatedFeatures >> BigInt(F_RING_PACKED)) & 1n).toBe(packed ? 1n : 0n);
        expect(t.queues.every((q) => q.packed === packed)).toBe(true);
      }
      expect(Buffer.compare(readFileSync(diskPath).subarray(0, data.length), data)).toBe(0);
      expect(Buffer.compare(readFileSync(join(share, 'out.bin')), data)).toBe(0);
    });
  }
});
