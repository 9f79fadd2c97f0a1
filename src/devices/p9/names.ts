/** How the 9P server screens names the guest sends, before any backend sees them. */
import { NAME_MAX } from '../../backends/fs/backend.js';
import { EEXIST, EINVAL, ENAMETOOLONG } from '../../backends/fs/errno.js';

const enc8 = new TextEncoder();

/** How a name may not look: empty, with '/' or NUL. */
export function illegalName(name: string): boolean {
  return name === '' || name.includes('/') || name.includes('\0');
}

/** Longer than NAME_MAX bytes of UTF-8. */
export function nameTooLong(name: string): boolean {
  if (name.length > NAME_MAX) return true;
  for (let i = 0; i < name.length; i++) {
    if (name.charCodeAt(i) > 0x7f) return enc8.encode(name).length > NAME_MAX;
  }
  return false;
}

/** Checks a name for something to be created: answers an errno or 0. */
export function checkNewName(name: string): number {
  if (illegalName(name)) return EINVAL;
  if (name === '.' || name === '..') return EEXIST;
  if (nameTooLong(name)) return ENAMETOOLONG;
  return 0;
}

/** Checks a name to remove or rename. */
export function checkOldName(name: string): number {
  if (illegalName(name)) return EINVAL;
  if (name === '.' || name === '..') return EINVAL;
  if (nameTooLong(name)) return ENAMETOOLONG;
  return 0;
}

export function illegalXattrName(name: string): boolean {
  return name === '' || name.includes('\0') || nameTooLong(name);
}
