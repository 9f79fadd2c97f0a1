import { readFileSync } from 'node:fs';

/** storvm's version, from package.json (two levels up from src/node or dist/node). */
export function storvmVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
