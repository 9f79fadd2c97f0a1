/**
 * Child process of the durability test: writes through FileDisk and the virtio-blk device, issues
 * FLUSH, prints "FLUSHED <status>" once FLUSH completed, then waits to be killed.
 * Run: node --import tsx test/blk/flush-child.ts <image>
 */
import { VirtioBlk } from '../../src/devices/blk/device.js';
import { FileDisk } from '../../src/node/file-disk.js';
import { flush, pattern, write } from '../../src/testing/index.js';
import { TestDriver } from '../../src/testing/index.js';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: flush-child.ts <image>');
const disk = await FileDisk.open(path);
const drv = new TestDriver(new VirtioBlk(disk)).init();
const q = drv.queues[0]!;
for (let i = 0; i < 16; i++) {
  const w = await write(q, i * 8, pattern(4096, 100 + i));
  if (w.status !== 0) throw new Error(`write ${i} failed: ${w.status}`);
}
const f = await flush(q);
process.stdout.write(`FLUSHED ${f.status}\n`);
// Stay alive until the parent kills us.
setInterval(() => {}, 1000);
