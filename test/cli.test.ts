import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/node/cli.js';
import { parseMachineArgs, parseShare } from '../src/node/options.js';
import { guestCommand, virtiofsMount } from '../src/node/launch.js';

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { write: (s) => (out += String(s)) }, { write: (s) => (err += String(s)) });
  return { code, out, err };
}

const dir = mkdtempSync(join(tmpdir(), 'storvm-cli-'));
const file = join(dir, 'disk.img');
writeFileSync(file, new Uint8Array(4096));
// gzip's magic and header, then bytes that are no DEFLATE stream
const badGz = join(dir, 'Image.gz');
writeFileSync(badGz, Uint8Array.of(0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8));

describe('storvm CLI: bad input is one line and a non-zero exit, before anything boots', () => {
  const cases: Array<[string[], RegExp]> = [
    [['run', '--disk', join(dir, 'missing.img'), '--', 'true'], /^storvm: disk .*missing\.img: no such file\n$/],
    [['run', '--share', join(dir, 'nope'), '--', 'true'], /^storvm: share .*nope: no such directory\n$/],
    [['run', '--share', file, '--', 'true'], /^storvm: share .*disk\.img: not a directory\n$/],
    [['run', '--frob', '--', 'true'], /^storvm: unknown option '--frob'\n$/],
    [['run', '--mem', 'lots', '--', 'true'], /^storvm: --mem lots: give MiB between 32 and 2048\n$/],
    [['run', '--disk'], /^storvm: --disk needs a value\n$/],
    [['run', '--disk', file], /^storvm: run needs a command after --/],
    [['boot', '--', 'ls'], /^storvm: boot takes no command/],
    [['run', '--kernel', join(dir, 'vmlinux'), '--', 'true'], /^storvm: kernel .*vmlinux: no such file\n$/],
    [['run', '--trace', 'nfs', '--', 'true'], /^storvm: --trace nfs: give 9p, fuse, blk or a list like 9p,blk\n$/],
    [['run', '--trace', 'blk,scsi', '--', 'true'], /^storvm: --trace blk,scsi: give 9p, fuse, blk or a list like 9p,blk\n$/],
    [['run', '--trace-file', join(dir, 't.log'), '--', 'true'], /^storvm: --trace-file needs --trace 9p\|fuse\|blk\n$/],
    [['run', '--trace', 'blk', '--trace-file', join(dir, 'no', 'such', 't.log'), '--', 'true'], /^storvm: --trace-file .*t\.log: ENOENT/],
    [['run', '--kernel', file, '--initrd', file, '--', 'true'], /^storvm: not a RISC-V Linux Image/],
    [['run', '--no-boot-cache', '--kernel', badGz, '--', 'true'], /^storvm: kernel: [^\n]+\n$/],
    [['run', '--kernel', badGz, '--', 'true'], /^storvm: kernel: [^\n]+\n$/],
    [['run', 'ls'], /^storvm: unexpected argument 'ls' \(put the guest command after --\)\n$/],
    [['frobnicate'], /^storvm: unknown command 'frobnicate'/],
    [['run', '--cpu', 'fast', '--', 'true'], /^storvm: --cpu fast: give interp or wasm\n$/],
  ];
  for (const [argv, message] of cases) {
    it(`storvm ${argv.join(' ').replaceAll(dir, 'DIR')}`, async () => {
      const r = await cli(...argv);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
      expect(r.err.split('\n').length).toBe(2); // exactly one line
      expect(r.out).toBe('');
    });
  }
});

describe('option parsing', () => {
  it('reads disks, shares with tags and read-only flags, and the command', () => {
    const a = parseMachineArgs(['--mem', '64', '--disk', `${file}:ro`, '--share', dir, '--share', `${dir}:data:ro`, '--share', `${dir}:pt:passthrough:ro`, '--deterministic', '--', 'ls', '-l'], true);
    expect(a.memoryMiB).toBe(64);
    expect(a.disks).toEqual([{ path: file, readOnly: true }]);
    expect(a.shares).toEqual([
      { dir, tag: 'host', readOnly: false, mode: 'mapped' },
      { dir, tag: 'data', readOnly: true, mode: 'mapped' },
      { dir, tag: 'pt', readOnly: true, mode: 'passthrough' },
    ]);
    expect(parseShare(`${dir}:ro:passthrough`, 0)).toEqual({ dir, tag: 'host', readOnly: true, mode: 'passthrough' });
    expect(a.deterministic).toBe(true);
    expect(a.cpu).toBeUndefined();
    expect(parseMachineArgs(['--cpu', 'interp', '--', 'true'], true).cpu).toBe('interp');
    expect(parseMachineArgs(['--cpu', 'wasm', '--', 'true'], true).cpu).toBe('wasm');
    expect(a.command).toEqual(['ls', '-l']);
    expect(a.bootCache).toBe(true);
    expect(parseMachineArgs(['--no-boot-cache', '--', 'true'], true).bootCache).toBe(false);
  });

  it('reads virtio-fs shares: :virtiofs with or without :ro and a cache mode, tags of at most 36 characters', () => {
    expect(parseShare(`${dir}:virtiofs`, 0)).toEqual({ dir, tag: 'host', readOnly: false, mode: 'mapped', virtiofs: 'auto' });
    expect(parseShare(`${dir}:t:ro:virtiofs`, 1)).toEqual({ dir, tag: 't', readOnly: true, mode: 'mapped', virtiofs: 'auto' });
    expect(parseShare(`${dir}:t:virtiofs=none:ro`, 1)).toEqual({ dir, tag: 't', readOnly: true, mode: 'mapped', virtiofs: 'none' });
    expect(parseShare(`${dir}:virtiofs=always`, 2)).toEqual({ dir, tag: 'share2', readOnly: false, mode: 'mapped', virtiofs: 'always' });
    expect(parseShare(`${dir}:t:passthrough:virtiofs:ro`, 1)).toEqual({ dir, tag: 't', readOnly: true, mode: 'passthrough', virtiofs: 'auto' });
    expect(parseShare(`${dir}:ro`, 0)).toEqual({ dir, tag: 'host', readOnly: true, mode: 'mapped' });
    expect(() => parseShare(`${dir}:virtiofs=sometimes`, 0)).toThrow(/virtiofs cache 'sometimes': use none, auto or always/);
    expect(() => parseShare(`${dir}:${'t'.repeat(37)}:virtiofs`, 0)).toThrow(/at most 36/);
    expect(parseShare(`${dir}:${'t'.repeat(37)}`, 0).tag).toHaveLength(37); // 9p tags may be longer
  });

  it('mounts virtio-fs shares from the guest command, and starts the shell after them for boot', () => {
    expect(virtiofsMount('t', '/mnt/t', true)).toBe('mkdir -p /mnt/t&&mount -t virtiofs -o ro t /mnt/t||exit 125');
    expect(guestCommand([], ['ls', '-l'])).toBe('ls -l');
    expect(guestCommand([], [])).toBe('');
    expect(guestCommand(['M1', 'M2'], ['ls'])).toBe('M1; M2; ls');
    expect(guestCommand(['M'], [])).toBe('M; stty onlcr echo 2>/dev/null; setsid cttyhack sh');
  });

  it('refuses bad tags and duplicate tags', () => {
    expect(() => parseShare(`${dir}:bad tag`, 0)).toThrow(/share tag/);
    expect(() => parseMachineArgs(['--share', `${dir}:x`, '--share', `${dir}:x`, '--', 'true'], true)).toThrow(/same tag/);
  });
});
