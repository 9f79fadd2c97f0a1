/**
 * The lab's tarball of a host directory tree (directories and regular files; other kinds are
 * skipped), written by the environment-free ustar writer in src/lab/tar.ts.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type TarEntry, type TarResult, tarEntries } from '../../lab/tar.js';

export type { TarResult };

/** Archives `dir` with its contents under `top/` (sorted, so the output is reproducible). */
export function tarDirectory(dir: string, top: string): TarResult {
  const list: TarEntry[] = [];
  const walk = (abs: string, rel: string) => {
    list.push({ path: rel + '/' });
    for (const name of readdirSync(abs).sort()) {
      const a = join(abs, name);
      const st = statSync(a);
      if (st.isDirectory()) walk(a, `${rel}/${name}`);
      else if (st.isFile()) list.push({ path: `${rel}/${name}`, data: readFileSync(a) });
    }
  };
  walk(dir, top);
  return tarEntries(list);
}
