/**
 * HANDLE_KILLPRIV_V2: the FUSE server clears set-user-ID / set-group-ID where the kernel asks
 * (WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID, OPEN_KILL_SUIDGID), as the VFS would on a local file:
 * with DIRECT_IO (cache=none) the guest kernel can't do it itself. pjdfstest's open/write tests
 * check this.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { VirtioFs } from '../../src/devices/fs/device.js';
import { FATTR, FUSE_OPEN_KILL_SUIDGID, FUSE_WRITE_KILL_SUIDGID, INIT } from '../../src/devices/fs/fuse.js';
import { cases } from '../p9/backends.js';
import { Args, FUSE, FuseClient } from '../support/fuse.js';

const ROOT = 1n;

afterAll(() => {
  for (const c of cases) c.cleanup();
});

/** fuse_setattr_in with `valid`, a mode, an owner and a size. */
const setattrIn = (valid: number, o: { mode?: number; uid?: number; gid?: number; size?: number }) =>
  new Args().u32(valid).u32(0).u64(0).u64(o.size ?? 0).u64(0).u64(0).u64(0).u64(0).u32(0).u32(0).u32(0).u32(o.mode ?? 0).u32(0).u32(o.uid ?? 0).u32(o.gid ?? 0).u32(0).done();
const writeIn = (fh: bigint, data: Uint8Array, flags: number) => new Args().u64(fh).u64(0).u32(data.length).u32(flags).u64(0).u32(0).u32(0).bytes(data).done();

for (const bc of cases) {
  describe(`KILLPRIV_V2 over ${bc.name}`, () => {
    const setup = async (mode: number) => {
      const c = new FuseClient(new VirtioFs(bc.make(), { cache: 'none' }));
      const init = await c.init();
      expect(init.getUint32(12, true) & INIT.HANDLE_KILLPRIV_V2).toBe(INIT.HANDLE_KILLPRIV_V2);
      const { entry, fh } = await c.create(ROOT, 'f', 0o102, 0o100644);
      await c.call(FUSE.SETATTR, entry.nodeid, setattrIn(FATTR.MODE, { mode }));
      return { c, node: entry.nodeid, fh, mode: async () => (await c.getattr(entry.nodeid)).mode & 0o7777 };
    };

    it('a WRITE with WRITE_KILL_SUIDGID clears set-user-ID, and set-group-ID with group execute', async () => {
      const s = await setup(0o6755);
      await s.c.call(FUSE.WRITE, s.node, writeIn(s.fh, new Uint8Array([1]), 0));
      expect(await s.mode()).toBe(0o6755); // root's write (CAP_FSETID): nothing asked, nothing cleared
      await s.c.call(FUSE.WRITE, s.node, writeIn(s.fh, new Uint8Array([1]), FUSE_WRITE_KILL_SUIDGID));
      expect(await s.mode()).toBe(0o755);
      const g = await setup(0o2644); // set-group-ID without group execute stays
      await g.c.call(FUSE.WRITE, g.node, writeIn(g.fh, new Uint8Array([1]), FUSE_WRITE_KILL_SUIDGID));
      expect(await g.mode()).toBe(0o2644);
    });

    it('SETATTR with FATTR_KILL_SUIDGID (chown, truncate) clears the bits; a directory keeps them', async () => {
      const s = await setup(0o6775);
      await s.c.call(FUSE.SETATTR, s.node, setattrIn(FATTR.UID | FATTR.GID | FATTR.KILL_SUIDGID, { uid: 65534, gid: 65534 }));
      const st = await s.c.getattr(s.node);
      expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o775, 65534, 65534]);
      await s.c.call(FUSE.SETATTR, s.node, setattrIn(FATTR.MODE, { mode: 0o4755 }));
      await s.c.call(FUSE.SETATTR, s.node, setattrIn(FATTR.SIZE | FATTR.KILL_SUIDGID, { size: 0 }));
      expect(await s.mode()).toBe(0o755);
      const d = await s.c.mkdir(ROOT, 'd', 0o2775);
      await s.c.call(FUSE.SETATTR, d.nodeid, setattrIn(FATTR.UID | FATTR.KILL_SUIDGID, { uid: 65534 }));
      expect((await s.c.getattr(d.nodeid)).mode & 0o7777).toBe(0o2775);
    });

    it('an O_TRUNC OPEN with OPEN_KILL_SUIDGID clears them; without O_TRUNC it does not', async () => {
      const s = await setup(0o4755);
      const keep = await s.c.call(FUSE.OPEN, s.node, new Args().u32(2).u32(FUSE_OPEN_KILL_SUIDGID).done());
      expect(keep.byteLength).toBe(16);
      expect(await s.mode()).toBe(0o4755);
      await s.c.call(FUSE.OPEN, s.node, new Args().u32(0o1002).u32(FUSE_OPEN_KILL_SUIDGID).done());
      expect(await s.mode()).toBe(0o755);
    });
  });
}

for (const bc of cases) {
  describe(`open-unlinked files over ${bc.name}`, () => {
    it('GETATTR without a handle of a file unlinked while open answers from the open file (pjdfstest unlink/14.t)', async () => {
      const c = new FuseClient(new VirtioFs(bc.make(), { cache: 'none' }));
      await c.init();
      const { entry, fh } = await c.create(ROOT, 'gone', 0o102, 0o100644);
      await c.write(entry.nodeid, fh, 0, new Uint8Array([1, 2, 3]));
      await c.call(FUSE.UNLINK, ROOT, new Args().str('gone').done());
      const st = await c.getattr(entry.nodeid);
      expect([st.nlink, st.size]).toEqual([0, 3]);
      await c.release(entry.nodeid, fh);
    });
  });
}
