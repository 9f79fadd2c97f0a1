/**
 * The one check of a directory entry name every backend makes (hostile-guest line 33): empty,
 * '.', '..', or holding '/' or NUL is never a name. Backends that reserve a name (DirectoryHandleFs's
 * `.storvm`) check that beside it.
 */
export function badEntryName(name: string): boolean {
  return name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0');
}
