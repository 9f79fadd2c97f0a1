/**
 * Child process of the kill test: over a HostFs share in mapped mode, updates one FIFO's record
 * (mode and owner together), then makes a FIFO, a regular file and a directory whose group only a
 * record can show, again and again, printing "SET i" after each round was answered, until the
 * parent kills it.
 * Run: node --import tsx test/p9/meta-kill-child.ts <share>
 */
import { S_IFIFO } from '../../src/backends/fs/backend.js';
import { Virtio9p } from '../../src/devices/p9/device.js';
import { HostFs } from '../../src/node/host-fs.js';
import { P9Client } from '../../src/testing/index.js';

/** A group the host process is not in, so every node made here needs its record. */
const GID = 4242;
const share = process.argv[2];
if (share === undefined) throw new Error('usage: meta-kill-child.ts <share>');
const c = new P9Client(new Virtio9p(new HostFs(share)));
await c.mount(65536);
await c.walk(0, 1, []);
await c.mknod(1, 'f', S_IFIFO | 0o600);
await c.walk(0, 2, ['f']);
for (let i = 1; ; i++) {
  // Mode and uid change in one Tsetattr, so a torn record would show a pair that never was.
  await c.setattr(2, { valid: 0x1 | 0x2, mode: i % 0o1000, uid: i });
  await c.mknod(1, `n${i}`, S_IFIFO | 0o640);
  await c.walk(0, 3, []);
  await c.lcreate(3, `c${i}`, 0o1, 0o640, GID);
  await c.clunk(3);
  await c.mkdir(1, `d${i}`, 0o750, GID);
  process.stdout.write(`SET ${i}\n`);
}
