// fallocate(2) on koffi, for DISCARD and WRITE_ZEROES. Local to the block domain, following the
// conventions of microhv/sys (whose line count belongs to the core's budget): a typed wrapper,
// failures as SysError. The call runs on koffi's worker pool, so a slow ZERO_RANGE does not
// stall the event loop; koffi hands the worker's errno back to the callback.
import * as koffi from 'koffi';
import { SysError } from '../../microhv/sys/errors.js';

// linux/falloc.h
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
// asm-generic/errno.h: what a file system says when it cannot do a mode.
export const EOPNOTSUPP = 95;
export const ENOSYS = 38;

const libc = koffi.load('libc.so.6');
const fallocateFn = libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)');

/** fallocate(fd, mode, offset, length); rejects with SysError. */
export function fallocate(fd: number, mode: number, offset: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err: unknown, r: number): void => {
      // koffi reports its own failures (e.g. a full async queue) as err; there is no errno then.
      if (err) reject(new SysError('fallocate', EOPNOTSUPP, { cause: err }));
      else if (r === -1) reject(new SysError('fallocate', koffi.errno()));
      else resolve();
    };
    try {
      fallocateFn.async(fd, mode, offset, length, done);
    } catch (err) {
      done(err, -1);
    }
  });
}

/**
 * The file system lacks the mode: fall back rather than fail the request. The errno is the
 * SysError's, here or as the cause of the BlockError an io_uring completion becomes.
 */
export function unsupported(err: unknown): boolean {
  const e = err instanceof Error && !(err instanceof SysError) ? err.cause : err;
  return e instanceof SysError && (e.errno === EOPNOTSUPP || e.errno === ENOSYS);
}
