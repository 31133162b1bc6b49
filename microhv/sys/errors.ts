// The one error type of the system-call boundary: a failed call returns -1 and sets errno,
// and that becomes a SysError naming the call and the errno.

// Index = errno (x86-64 Linux, asm-generic/errno-base.h and errno.h), for 0..40.
const LOW = ('OK EPERM ENOENT ESRCH EINTR EIO ENXIO E2BIG ENOEXEC EBADF ECHILD EAGAIN ENOMEM EACCES EFAULT ' +
  'ENOTBLK EBUSY EEXIST EXDEV ENODEV ENOTDIR EISDIR EINVAL ENFILE EMFILE ENOTTY ETXTBSY EFBIG ENOSPC ESPIPE ' +
  'EROFS EMLINK EPIPE EDOM ERANGE EDEADLK ENAMETOOLONG ENOLCK ENOSYS ENOTEMPTY ELOOP').split(' ');

const HIGH: Readonly<Record<number, string>> = {
  42: 'ENOMSG', 61: 'ENODATA', 62: 'ETIME', 71: 'EPROTO', 74: 'EBADMSG', 75: 'EOVERFLOW', 77: 'EBADFD',
  84: 'EILSEQ', 88: 'ENOTSOCK', 90: 'EMSGSIZE', 92: 'ENOPROTOOPT', 93: 'EPROTONOSUPPORT', 95: 'EOPNOTSUPP',
  97: 'EAFNOSUPPORT', 98: 'EADDRINUSE', 99: 'EADDRNOTAVAIL', 103: 'ECONNABORTED', 104: 'ECONNRESET',
  105: 'ENOBUFS', 106: 'EISCONN', 107: 'ENOTCONN', 109: 'ETOOMANYREFS', 110: 'ETIMEDOUT',
  111: 'ECONNREFUSED', 113: 'EHOSTUNREACH', 114: 'EALREADY', 115: 'EINPROGRESS', 122: 'EDQUOT',
  125: 'ECANCELED', 130: 'EOWNERDEAD',
};

/** 'EBADF' for 9; unknown numbers become 'E<number>' so a name is always printable. */
export function errnoName(errno: number): string {
  return LOW[errno] ?? HIGH[errno] ?? `E${errno}`;
}

export class SysError extends Error {
  readonly code = 'SYS' as const;
  readonly errnoName: string;

  constructor(readonly syscall: string, readonly errno: number, options?: { cause?: unknown }) {
    super(`${syscall}: ${errnoName(errno)} (${errno})`, options);
    this.name = 'SysError';
    this.errnoName = errnoName(errno);
  }
}
