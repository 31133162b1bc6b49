// The size of libuv's thread pool, where the block domain's file I/O runs (and where the
// control reactor's epoll_wait holds one thread for the life of the process).
//
// libuv reads UV_THREADPOOL_SIZE once, when its pool starts. For an ES module entry point
// that is before the first line of the domain runs: Node's ES module loader reads the entry
// file with an asynchronous read, which starts the pool with the default of 4 threads.
// Setting process.env afterwards changes nothing (measured on Node 20: 4 pool threads at the
// first line of an ES module, none at the first line of a CommonJS one). So, unless its
// spawner already chose a size, the domain sets the variable and execve()s itself once, in
// place: same pid, same arguments, and the new image starts its pool with that size.
//
// Only stdio, the control socket and fds the inherited-fd check would report survive the
// exec (Node marks every fd it inherits close-on-exec; the ones kept here get the flag
// cleared), so the check after the exec sees what the spawner really handed over. The exec
// happens before the start seccomp filter, which refuses execve.
import * as koffi from 'koffi';
import { foreignFds } from '../runtime/fds.js';

export const THREADPOOL_ENV = 'UV_THREADPOOL_SIZE';

const libc = koffi.load('libc.so.6');
const execveFn = libc.func('int execve(const char *path, const char **argv, const char **envp)');
const fcntlFn = libc.func('int fcntl(int fd, int cmd, int arg)');
// asm-generic/fcntl.h
const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/**
 * Makes sure libuv's pool has `size` threads. Returns 'set' when the environment already named
 * a size (the spawner's, or this function's before the exec: it never loops); does not return
 * when the exec succeeds; returns why not otherwise (the domain runs with the default pool).
 * `keepThrough`: the highest fd the process was given on purpose (its control socket).
 */
export function ensureThreadpool(size: number, keepThrough: number): 'set' | { failed: string } {
  if (process.env[THREADPOOL_ENV] !== undefined) return 'set';
  process.env[THREADPOOL_ENV] = String(size);
  const keep = [...Array.from({ length: keepThrough + 1 }, (_, fd) => fd), ...foreignFds(keepThrough).map((f) => f.fd)];
  const restore: Array<{ fd: number; flags: number }> = [];
  for (const fd of keep) {
    const flags = fcntlFn(fd, F_GETFD, 0) as number;
    if (flags < 0 || (flags & FD_CLOEXEC) === 0) continue;
    if ((fcntlFn(fd, F_SETFD, flags & ~FD_CLOEXEC) as number) === 0) restore.push({ fd, flags });
  }
  const env = Object.entries(process.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  execveFn(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1), null], [...env, null]);
  const errno = koffi.errno();
  // Still here: the exec was refused. Put the flags back; the domain goes on with 4 threads.
  for (const { fd, flags } of restore) fcntlFn(fd, F_SETFD, flags);
  return { failed: `execve errno ${errno}` };
}
