/**
 * POSIX locks kept by the virtio-fs server (`posixLocks: true`), from a real guest: a small C
 * program (built here, static, with riscv64-linux-gnu-gcc; skipped without it) takes a write lock,
 * its child sees it through F_SETLK (EAGAIN) and F_GETLK (range and pid), waits in F_SETLKW, and
 * gets the lock once the parent closes another descriptor of the file (close(2) drops a process's
 * locks: FLUSH with the lock owner). Nothing of the program is committed but its source below.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Machine, VirtioFs } from '../../src/index.js';
import { FUSE } from '../../src/devices/fs/fuse.js';
import { HostFs } from '../../src/node/host-fs.js';
import { nodeHost } from '../../src/node/host.js';

const GUEST = new URL('../../guest-images/', import.meta.url);
const CC = 'riscv64-linux-gnu-gcc';
const haveCc = spawnSync(CC, ['--version']).status === 0;
if (!haveCc) console.log(`virtiofs-locks: ${CC} not found (apt-get install gcc-riscv64-linux-gnu); skipped`);

const SOURCE = `#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
#include <errno.h>
#include <string.h>
static int lk(int fd, int cmd, short type, off_t start, off_t len, struct flock *out) {
  struct flock f; memset(&f, 0, sizeof f);
  f.l_type = type; f.l_whence = SEEK_SET; f.l_start = start; f.l_len = len;
  int r = fcntl(fd, cmd, &f);
  if (out) *out = f;
  return r < 0 ? -errno : 0;
}
int main(int argc, char **argv) {
  int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
  if (fd < 0) { perror("open"); return 1; }
  if (lk(fd, F_SETLK, F_WRLCK, 0, 100, 0)) { puts("parent lock failed"); return 1; }
  int go[2], done[2]; pipe(go); pipe(done);
  pid_t c = fork();
  if (c == 0) {
    int cfd = open(argv[1], O_RDWR);
    struct flock g;
    printf("child setlk: %d\\n", lk(cfd, F_SETLK, F_WRLCK, 50, 10, 0) == -EAGAIN ? 1 : 0);
    lk(cfd, F_GETLK, F_RDLCK, 0, 0, &g);
    printf("child getlk: type=%s start=%ld len=%ld pid-ok=%d\\n", g.l_type == F_WRLCK ? "W" : "?", (long)g.l_start, (long)g.l_len, g.l_pid == getppid());
    printf("child free range: %d\\n", lk(cfd, F_SETLK, F_WRLCK, 200, 10, 0));
    fflush(stdout);
    write(go[1], "x", 1);
    printf("child setlkw: %d\\n", lk(cfd, F_SETLKW, F_WRLCK, 0, 100, 0));
    fflush(stdout);
    _exit(0);
  }
  char b; read(go[0], &b, 1);
  usleep(200000);
  int other = open(argv[1], O_RDONLY);
  close(other); /* close(2) of any descriptor drops the process's locks */
  int st; waitpid(c, &st, 0);
  printf("parent done: %d\\n", WEXITSTATUS(st));
  return 0;
}
`;

describe('virtio-fs POSIX locks in a Linux guest', () => {
  it.skipIf(!haveCc)('F_SETLK, F_GETLK and F_SETLKW between two guest processes, released by close(2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-vfs-locks-'));
    writeFileSync(join(dir, 'lk.c'), SOURCE);
    const cc = spawnSync(CC, ['-O2', '-static', '-o', join(dir, 'lk'), join(dir, 'lk.c')], { encoding: 'utf8' });
    expect(cc.stderr).toBe('');
    const ops = new Map<number, number>();
    const dev = new VirtioFs(new HostFs(dir), {
      tag: 'lk',
      cache: 'none',
      posixLocks: true,
      trace: (req) => {
        const op = new DataView(req.buffer, req.byteOffset).getUint32(4, true);
        ops.set(op, (ops.get(op) ?? 0) + 1);
        return () => {};
      },
    });
    const cmd = 'mkdir /mnt/l && mount -t virtiofs lk /mnt/l && /mnt/l/lk /mnt/l/data && umount /mnt/l && echo unmounted';
    let out = '';
    const m = new Machine({
      memoryMiB: 64,
      kernel: gunzipSync(readFileSync(new URL('Image.gz', GUEST))),
      initrd: readFileSync(new URL('initramfs.cpio.gz', GUEST)),
      bootargs: `console=ttyS0 quiet loglevel=1 storvm.cmd=${Buffer.from(cmd).toString('base64')}`,
      devices: [dev],
      onConsole: (b) => (out += Buffer.from(b).toString()),
      host: nodeHost,
    });
    const r = await m.run();
    expect(out).toBe(
      [
        'child setlk: 1',
        'child getlk: type=W start=0 len=100 pid-ok=1',
        'child free range: 0',
        'child setlkw: 0',
        'parent done: 0',
        'unmounted',
        '',
      ].join('\n'),
    );
    expect(r.exitCode).toBe(0);
    // The locks went through the server, not the guest kernel's own table.
    expect(ops.get(FUSE.SETLK) ?? 0).toBeGreaterThanOrEqual(2);
    expect(ops.get(FUSE.GETLK)).toBe(1);
    expect(ops.get(FUSE.SETLKW)).toBe(1);
    expect(ops.get(FUSE.FLUSH) ?? 0).toBeGreaterThanOrEqual(1);
    expect(dev.server.session.locks.size).toBe(0);
  }, 120_000);
});
