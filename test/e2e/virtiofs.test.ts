/**
 * virtio-fs end to end: the committed guest mounts a storvm virtio-fs share with
 * `mount -t virtiofs TAG DIR` and files cross both ways, from the CLI over HostFs and from the
 * API over MemFs.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { MemFs, Machine, VirtioFs } from '../../src/index.js';
import { main } from '../../src/node/cli.js';
import { nodeHost } from '../../src/node/host.js';

const GUEST = new URL('../../guest-images/', import.meta.url);

async function storvm(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { write: (s) => (out += typeof s === 'string' ? s : Buffer.from(s).toString()) }, { write: (s) => (err += String(s)) });
  return { code, out, err };
}

describe('virtio-fs in a Linux guest', () => {
  it('storvm run --share DIR:virtiofs: host files read in the guest, guest files land on the host, big files intact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-vfs-'));
    const share = join(dir, 'share');
    const ro = join(dir, 'ro');
    mkdirSync(share);
    mkdirSync(ro);
    writeFileSync(join(share, 'from-host.txt'), 'written on the host\n');
    writeFileSync(join(ro, 'r.txt'), 'read only\n');
    const big = new Uint8Array(1 << 20).map((_, i) => (i * 31 + (i >> 12)) & 0xff);
    writeFileSync(join(share, 'big.bin'), big);
    const script = [
      'cat /mnt/host/from-host.txt',
      'echo written in the guest > /mnt/host/from-guest.txt',
      'cd /mnt/host; mkdir -p sub/d && ln -s ../x sub/l && mv from-guest.txt sub/d/m && mv sub/d/m from-guest.txt',
      'cp big.bin copy.bin && md5sum big.bin copy.bin | cut -c1-32 | uniq | wc -l',
      'ls | tr "\\n" " "; echo',
      'cat /mnt/r/r.txt; (echo no > /mnt/r/w) 2>/dev/null || echo refused',
      'mount | grep -c virtiofs',
    ].join('; ');
    const traceFile = join(dir, 'fuse.trace');
    const r = await storvm('run', '--mem', '64', '--share', `${share}:virtiofs`, '--share', `${ro}:r:ro:virtiofs=none`, '--trace', 'fuse', '--trace-file', traceFile, '--', script);
    expect(r.err).toBe('');
    expect(r.out).toBe('written on the host\n1\nbig.bin copy.bin from-guest.txt from-host.txt sub \nread only\nrefused\n2\n');
    expect(r.code).toBe(0);
    expect(readFileSync(join(share, 'from-guest.txt'), 'utf8')).toBe('written in the guest\n');
    expect(new Uint8Array(readFileSync(join(share, 'copy.bin')))).toEqual(big);
    expect(readlinkSync(join(share, 'sub', 'l'))).toBe('../x');
    // --trace fuse: one line per request of either share, and the summary.
    const trace = readFileSync(traceFile, 'utf8');
    expect(trace).toMatch(/^fuse host LOOKUP node=1 len=\d+ "from-host.txt"  ->  OK len=144  \d+\.\d{3} ms$/m);
    expect(trace).toMatch(/^fuse r LOOKUP node=1 len=\d+ "w"  ->  ENOENT \(2\)/m); // the ro mount refuses the create itself
    expect(trace).toMatch(/^# fuse: \d+ requests, [1-9][\d.]* MiB of data/m);
  }, 120_000); // a 1 MiB cp and md5sum in the emulated guest: about 20 s on a busy host

  it('each cache mode sends what it should: none reads through, auto keeps data within an open, always across opens', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-vfs-cache-'));
    const shares = { n: 'none', a: 'auto', w: 'always' } as const;
    const args: string[] = [];
    for (const [tag, mode] of Object.entries(shares)) {
      mkdirSync(join(dir, tag));
      writeFileSync(join(dir, tag, 'f'), 'cached?\n');
      args.push('--share', `${join(dir, tag)}:${tag}:virtiofs=${mode}`);
    }
    // On each share (the first is at /mnt/host): eight 1-byte reads in one open, a second open
    // and read, then two stats.
    const script = 'for m in host a w; do dd if=/mnt/$m/f of=/tmp/x bs=1 count=8 2>/dev/null; cat /mnt/$m/f /tmp/x | wc -c; stat -c %s /mnt/$m/f /mnt/$m/f; done | tr "\\n" " "';
    const traceFile = join(dir, 'fuse.trace');
    const r = await storvm('run', '--mem', '64', ...args, '--trace', 'fuse', '--trace-file', traceFile, '--', script);
    expect(r.err).toBe('');
    expect(r.out).toBe('16 8 8 16 8 8 16 8 8 ');
    const lines = readFileSync(traceFile, 'utf8').split('\n');
    const count = (tag: string, re: RegExp) => lines.filter((l) => l.startsWith(`fuse ${tag} `) && re.test(l)).length;
    const reads = (tag: string) => count(tag, / READ .*->  OK len=(17|24) /); // replies with 1 or all 8 bytes
    const lookups = (tag: string) => count(tag, / LOOKUP node=1 .*"f"/);
    // none: DIRECT_IO, so every read(2) is a READ, and entries time out at once (one LOOKUP per walk).
    expect(reads('n')).toBe(9);
    expect(lookups('n')).toBe(4);
    // auto: the page cache serves the 1-byte reads, and is dropped at the next open (close-to-open).
    expect(reads('a')).toBe(2);
    // always: KEEP_CACHE keeps it across opens; entries last a day, so one LOOKUP.
    expect(reads('w')).toBe(1);
    expect(lookups('w')).toBe(1);
    // auto's entries last a second of guest time, which a loaded host may stretch past: at least
    // one LOOKUP, and never more than none's one per walk.
    expect(lookups('a')).toBeGreaterThanOrEqual(1);
    expect(lookups('a')).toBeLessThanOrEqual(4);
  }, 120_000);

  it('storvm boot --share DIR:virtiofs mounts the share before the console shell starts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'storvm-vfs-boot-'));
    writeFileSync(join(dir, 'note.txt'), 'seen-from-boot\n');
    const out = execFileSync(process.execPath, ['bin/storvm.mjs', 'boot', '--mem', '64', '--share', `${dir}:virtiofs`], {
      cwd: new URL('../../', import.meta.url),
      input: 'cat /mnt/host/note.txt\necho made-in-shell > /mnt/host/back.txt\nexit\n',
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(out).toContain('\nseen-from-boot\r\n');
    expect(readFileSync(join(dir, 'back.txt'), 'utf8')).toBe('made-in-shell\n');
  });

  it('new VirtioFs(new MemFs(), { tag }) from the package root mounts in the guest', async () => {
    const fs = new MemFs({ tree: { 'hello.txt': 'hello from memfs\n', dir: { 'n.txt': '42\n' } } });
    const cmd = [
      'mkdir /mnt/m && mount -t virtiofs apitag /mnt/m',
      'cat /mnt/m/hello.txt /mnt/m/dir/n.txt',
      'seq 1 2000 > /mnt/m/dir/seq.txt && rm /mnt/m/hello.txt && wc -l < /mnt/m/dir/seq.txt',
      'umount /mnt/m && echo unmounted',
    ].join(' && ');
    const dev = new VirtioFs(fs, { tag: 'apitag', cache: 'always' });
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
    expect(out).toBe('hello from memfs\n42\n2000\nunmounted\n');
    expect(r.exitCode).toBe(0);
    // The guest's writes are in the MemFs, and DESTROY at umount dropped every node id.
    const root = fs.root();
    const d = fs.lookup(root, 'dir') as never;
    const seq = fs.lookup(d, 'seq.txt') as { ino: bigint };
    expect(typeof seq.ino).toBe('bigint');
    expect(fs.lookup(root, 'hello.txt')).toHaveProperty('errno', 2);
    expect(dev.server.nodeCount).toBe(0);
  });
});
