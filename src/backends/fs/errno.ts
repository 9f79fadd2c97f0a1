/**
 * Linux errno values (include/uapi/asm-generic/errno-base.h and errno.h). 9P2000.L carries them
 * as is in Rlerror, so a backend answers with these numbers whatever host it runs on.
 */
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const E2BIG = 7;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const EXDEV = 18;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EISDIR = 21;
export const EINVAL = 22;
export const ENFILE = 23;
export const EMFILE = 24;
export const ETXTBSY = 26;
export const EFBIG = 27;
export const ENOSPC = 28;
export const ESPIPE = 29;
export const EROFS = 30;
export const EMLINK = 31;
export const ERANGE = 34;
export const EDEADLK = 35;
export const ENAMETOOLONG = 36;
export const ENOLCK = 37;
export const ENOSYS = 38;
export const ENOTEMPTY = 39;
export const ELOOP = 40;
export const ENODATA = 61;
export const EPROTO = 71;
export const EOVERFLOW = 75;
export const EMSGSIZE = 90;
export const EOPNOTSUPP = 95;
/** Linux defines ENOTSUP as EOPNOTSUPP. */
export const ENOTSUP = 95;
export const ESTALE = 116;
export const ECANCELED = 125;

/**
 * A failure a backend reports as a value (never thrown): the guest caused it, the guest gets the
 * errno. Instances are shared per errno (see `fsError`), so returning one allocates nothing.
 */
export class FsError {
  constructor(readonly errno: number) {}
  toString(): string {
    return `FsError(${this.errno})`;
  }
}

const shared = new Map<number, FsError>();

/** The shared FsError for `errno`. */
export function fsError(errno: number): FsError {
  let e = shared.get(errno);
  if (e === undefined) {
    e = new FsError(errno);
    shared.set(errno, e);
  }
  return e;
}

/** Whether a backend result is an error value. */
export function isFsError(v: unknown): v is FsError {
  return v instanceof FsError;
}
