/** `storvm cache info|clear`: the boot cache folder, its entries, and emptying it. */
import { bootDir, cacheDir, clearCache, entrySummary, listEntries, maxBytes } from './boot-cache.js';
import { UsageError } from './options.js';

type Stream = { write(chunk: string | Uint8Array): unknown };

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

export async function cacheCommand(argv: string[], out: Stream): Promise<number> {
  const [sub, ...extra] = argv;
  if ((sub !== 'info' && sub !== 'clear') || extra.length > 0) {
    throw new UsageError(`usage: storvm cache info|clear${sub && sub !== 'info' && sub !== 'clear' ? ` (unknown subcommand '${sub}')` : ''}`);
  }
  const dir = bootDir(cacheDir());
  if (sub === 'clear') {
    const r = await clearCache(dir);
    out.write(`removed ${r.files} file(s), ${mb(r.bytes)}, from ${dir}\n`);
    return 0;
  }
  const entries = await listEntries(dir);
  const total = entries.reduce((s, e) => s + e.bytes, 0);
  out.write(`boot cache: ${dir}\n`);
  out.write(`${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, ${mb(total)} of at most ${mb(maxBytes())} (least recently used dropped first; STORVM_CACHE_MAX_MB)\n`);
  for (const e of entries) {
    const what = (await entrySummary(e.file)) ?? 'unreadable (rebuilt when next used)';
    out.write(`${e.key.slice(0, 12)}  ${mb(e.bytes).padStart(8)}  used ${e.used.toISOString()}  ${what}\n`);
  }
  return 0;
}
