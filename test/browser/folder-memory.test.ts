/**
 * The remembered folder's decisions, in Node over stand-ins: what recallFolder says without a
 * prompt and regainFolder after one, for each answer the browser can give. The real handle in
 * IndexedDB across a reload is tested in chromium (dir-share.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { forgetFolder, recallFolder, regainFolder, rememberFolder, type HandleStore } from '../../src/browser/folder-memory.js';

function memoryStore(): HandleStore & { map: Map<string, unknown> } {
  const map = new Map<string, unknown>();
  return { map, get: async (k) => map.get(k), put: async (k, v) => void map.set(k, v), delete: async (k) => void map.delete(k) };
}

/** A directory handle whose permission answers and presence are given. */
function folder(name: string, o: { query?: PermissionState; request?: PermissionState | Error; missing?: boolean } = {}): FileSystemDirectoryHandle {
  const asked: string[] = [];
  return {
    kind: 'directory',
    name,
    asked,
    getDirectoryHandle: async () => {
      throw new Error('unused');
    },
    ...(o.query !== undefined ? { queryPermission: async (d: { mode: string }) => (asked.push(`query ${d.mode}`), o.query) } : {}),
    ...(o.request !== undefined
      ? {
          requestPermission: async (d: { mode: string }) => {
            asked.push(`request ${d.mode}`);
            if (o.request instanceof Error) throw o.request;
            return o.request;
          },
        }
      : {}),
    keys: () => ({
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          if (o.missing) throw Object.assign(new Error('gone'), { name: 'NotFoundError' });
          return { done: true, value: undefined };
        },
      }),
    }),
  } as unknown as FileSystemDirectoryHandle;
}

describe('the remembered folder', () => {
  it('is none until one is remembered, ready while granted and there, none again once forgotten', async () => {
    const store = memoryStore();
    expect(await recallFolder(store)).toEqual({ state: 'none' });
    const h = folder('docs', { query: 'granted' });
    await rememberFolder(h, store);
    expect(await recallFolder(store)).toEqual({ state: 'ready', handle: h });
    expect((h as any).asked).toEqual(['query readwrite']);
    await forgetFolder(store);
    expect(await recallFolder(store)).toEqual({ state: 'none' });
  });

  it('asks again only from regainFolder, and says when access is refused', async () => {
    const store = memoryStore();
    const h = folder('docs', { query: 'prompt', request: 'granted' });
    await rememberFolder(h, store);
    const r = await recallFolder(store);
    expect(r).toMatchObject({ state: 'ask', message: 'the folder docs was shared before: allow access again to use it' });
    expect((h as any).asked).toEqual(['query readwrite']); // no prompt without a click
    expect(await regainFolder(h)).toEqual({ state: 'ready', handle: h });
    expect(await regainFolder(folder('docs', { request: 'denied' }))).toMatchObject({ state: 'denied', message: 'the browser refused access to the folder docs; share it again to pick it' });
    expect(await regainFolder(folder('docs', { request: Object.assign(new Error('must be handling a user gesture'), { name: 'SecurityError' }) }))).toMatchObject({
      state: 'denied',
      message: 'the folder docs: must be handling a user gesture',
    });
    await rememberFolder(folder('docs', { query: 'denied' }), store);
    expect(await recallFolder(store)).toMatchObject({ state: 'denied' });
  });

  it('says when the folder is gone or the stored value is not a folder', async () => {
    const store = memoryStore();
    await rememberFolder(folder('old', { query: 'granted', missing: true }), store);
    expect(await recallFolder(store)).toEqual({ state: 'gone', name: 'old', message: 'the folder old is no longer there (removed or moved); pick it again' });
    // A browser without queryPermission (OPFS handles in some) counts as granted.
    await rememberFolder(folder('opfs'), store);
    expect(await recallFolder(store)).toMatchObject({ state: 'ready' });
    store.map.set('folder', { kind: 'file', name: 'x' });
    expect(await recallFolder(store)).toMatchObject({ state: 'gone', message: 'the remembered folder is not a folder handle' });
    const broken: HandleStore = { ...store, get: async () => Promise.reject(new Error('IndexedDB is off')) };
    expect(await recallFolder(broken)).toMatchObject({ state: 'gone', message: 'the shared folder could not be recalled: IndexedDB is off' });
  });
});
