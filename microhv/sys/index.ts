// The system-call layer: thin, typed wrappers over libc through koffi. Every call that
// fails throws SysError; nothing here keeps state except a reusable scratch buffer for
// the structs that must hold pointers (msghdr), which only synchronous calls touch.
import * as koffi from 'koffi';
import { consts } from './consts.js';
import { SysError } from './errors.js';
import { StructView, bytes, defineLayout, i32, u8, u16, u32, u64 } from './layout.js';

export { consts } from './consts.js';
export { SysError, errnoName } from './errors.js';
export * as layout from './layout.js';

const libc = koffi.load('libc.so.6');
// glibc declares ioctl, fcntl, open and prctl variadic. Their x86-64 entry points read the
// extra argument from its integer register and never consult %al, so fixed prototypes are
// safe, and they keep the calls eligible for koffi's fast and async paths.
const c = {
  open: libc.func('int open(const char *path, int flags, unsigned int mode)'),
  close: libc.func('int close(int fd)'),
  read: libc.func('long read(int fd, void *buf, size_t n)'),
  write: libc.func('long write(int fd, const void *buf, size_t n)'),
  fcntl: libc.func('int fcntl(int fd, int cmd, long arg)'),
  pipe2: libc.func('int pipe2(_Out_ int *fds, int flags)'),
  ioctlPtr: libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']),
  ioctlVal: libc.func('ioctl', 'int', ['int', 'unsigned long', 'uint64_t']),
  mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)'),
  munmap: libc.func('int munmap(void *addr, size_t len)'),
  madvise: libc.func('int madvise(void *addr, size_t len, int advice)'),
  memfdCreate: libc.func('int memfd_create(const char *name, unsigned int flags)'),
  ftruncate: libc.func('int ftruncate(int fd, int64_t len)'),
  eventfd: libc.func('int eventfd(unsigned int initval, int flags)'),
  epollCreate1: libc.func('int epoll_create1(int flags)'),
  epollCtl: libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)'),
  epollWait: libc.func('int epoll_wait(int epfd, void *events, int max, int timeout)'),
  poll: libc.func('int poll(void *fds, unsigned long n, int timeout)'),
  waitid: libc.func('int waitid(int idtype, unsigned int id, void *info, int options)'),
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  socketpair: libc.func('int socketpair(int domain, int type, int protocol, _Out_ int *sv)'),
  bind: libc.func('int bind(int fd, const void *addr, unsigned int len)'),
  connect: libc.func('int connect(int fd, const void *addr, unsigned int len)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  accept4: libc.func('int accept4(int fd, void *addr, void *len, int flags)'),
  sendmsg: libc.func('long sendmsg(int fd, void *msg, int flags)'),
  recvmsg: libc.func('long recvmsg(int fd, void *msg, int flags)'),
  prctl: libc.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)'),
  schedSetaffinity: libc.func('int sched_setaffinity(int pid, size_t size, const void *mask)'),
  unshare: libc.func('int unshare(int flags)'),
  // glibc's setresuid applies the change to every thread of the process (Node has many);
  // the raw syscall would change only the calling thread.
  setresuid: libc.func('int setresuid(unsigned int r, unsigned int e, unsigned int s)'),
  pthreadSigmask: libc.func('int pthread_sigmask(int how, const void *set, void *old)'),
  sigtimedwait: libc.func('int sigtimedwait(const void *set, void *info, const void *timeout)'),
  syscall: libc.func('long syscall(long nr, long a1, long a2, long a3, long a4)'),
  // The same entry point with a pointer third argument, for calls that take a struct.
  syscallPtr: libc.func('syscall', 'long', ['long', 'long', 'long', 'void *']),
};

// Raw syscall numbers (x86-64, arch/x86/entry/syscalls/syscall_64.tbl) for calls glibc 2.36 lacks or hides.
const SYS = { gettid: 186, tgkill: 234, seccomp: 317, pidfd_send_signal: 424, pidfd_open: 434, close_range: 436 } as const;
const EINTR = 4;
const EAGAIN = 11;
const ENAMETOOLONG = 36;
const EINVAL = 22;
const EFAULT = 14;
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

function check(syscall: string, r: number | bigint): number {
  if (r === -1 || r === -1n) throw new SysError(syscall, koffi.errno());
  return Number(r);
}

function argError(syscall: string, errno: number, why: string): SysError {
  return new SysError(syscall, errno, { cause: new RangeError(why) });
}

export function open(path: string, flags: number, mode = 0): number { return check('open', c.open(path, flags, mode)); }
export function close(fd: number): void { check('close', c.close(fd)); }
export function read(fd: number, buf: Uint8Array): number { return check('read', c.read(fd, buf, buf.byteLength)); }
export function write(fd: number, buf: Uint8Array): number { return check('write', c.write(fd, buf, buf.byteLength)); }
/** Duplicates with close-on-exec set, like every fd this layer creates: nothing leaks into a spawned domain by accident. */
export function dup(fd: number): number { return check('dup', c.fcntl(fd, consts.F_DUPFD_CLOEXEC, 0)); }

export function fcntlSetNonBlocking(fd: number, on: boolean): void {
  const flags = check('fcntl', c.fcntl(fd, consts.F_GETFL, 0));
  check('fcntl', c.fcntl(fd, consts.F_SETFL, on ? flags | consts.O_NONBLOCK : flags & ~consts.O_NONBLOCK));
}

export function pipe2(flags: number): [number, number] {
  const fds = new Int32Array(2);
  check('pipe2', c.pipe2(fds, flags));
  return [fds[0] ?? -1, fds[1] ?? -1];
}

/** A Uint8Array argument is passed as a pointer to its bytes, which the kernel may read and write. */
export function ioctl(fd: number, request: number, arg: number | bigint | Uint8Array): number {
  return check('ioctl', arg instanceof Uint8Array ? c.ioctlPtr(fd, request, arg) : c.ioctlVal(fd, request, arg));
}

export interface Mapping {
  readonly addr: bigint;
  readonly length: number;
  /** Aliases the mapped memory. It must not be touched after munmap: access would fault. */
  readonly buffer: ArrayBuffer;
}

// koffi aborts the whole process when asked for a view above 4 GiB; refuse before mapping.
// Larger guest RAM is mapped as several regions.
const MAX_MAPPING = 2 ** 32;

// Each live mapping's base address, by its buffer: what addressOf reads. x86-64 user addresses
// are below 2^47, so a number holds them exactly (and costs no BigInt on a hot path).
const mappedAt = new WeakMap<ArrayBufferLike, number>();

export function mmap(length: number, prot: number, flags: number, fd: number, offset: number | bigint): Mapping {
  if (!Number.isInteger(length) || length <= 0 || length > MAX_MAPPING) throw argError('mmap', EINVAL, `length ${length} outside 1..${MAX_MAPPING}`);
  const addr = c.mmap(null, length, prot, flags, fd, BigInt(offset)) as bigint;
  if (addr === MAP_FAILED) throw new SysError('mmap', koffi.errno());
  const m = { addr, length, buffer: koffi.view(addr, length) };
  mappedAt.set(m.buffer, Number(addr));
  return m;
}

export function munmap(m: Mapping): void {
  check('munmap', c.munmap(m.addr, m.length));
  mappedAt.delete(m.buffer);
}

/**
 * The native address of `view`'s first byte, for the kernel to reach it outside a call (an
 * io_uring iovec). Only memory from mmap above has one that stays put; a JavaScript buffer's
 * memory is V8's to move or free, so it is refused (EFAULT).
 */
export function addressOf(view: ArrayBufferView): number {
  const base = mappedAt.get(view.buffer);
  if (base === undefined) throw argError('addressOf', EFAULT, 'the buffer is not over a mapping made by sys.mmap');
  return base + view.byteOffset;
}

/** Advice on a whole mapping (e.g. MADV_HUGEPAGE for guest RAM). */
export function madvise(m: Mapping, advice: number): void { check('madvise', c.madvise(m.addr, m.length, advice)); }

export function memfdCreate(name: string, flags: number): number { return check('memfd_create', c.memfdCreate(name, flags)); }
export function addSeals(fd: number, seals: number): void { check('fcntl', c.fcntl(fd, consts.F_ADD_SEALS, seals)); }
export function getSeals(fd: number): number { return check('fcntl', c.fcntl(fd, consts.F_GET_SEALS, 0)); }
export function ftruncate(fd: number, length: number | bigint): void { check('ftruncate', c.ftruncate(fd, BigInt(length))); }

export function eventfd(initval: number, flags: number): number { return check('eventfd', c.eventfd(initval, flags)); }

export function eventfdRead(fd: number): bigint {
  const b = new BigUint64Array(1);
  check('read', c.read(fd, b, 8));
  return b[0] ?? 0n;
}

const tryReadBuf = new BigUint64Array(1);
/**
 * Reads and resets a non-blocking eventfd's counter; 0n when it was zero. An empty eventfd is the
 * common case on every wake-up of an ioreq server, so it is not an exception here (throwing costs
 * more than the read itself).
 */
export function eventfdTryRead(fd: number): bigint {
  const r = c.read(fd, tryReadBuf, 8);
  if (r === -1 || r === -1n) {
    const errno = koffi.errno();
    if (errno === EAGAIN) return 0n;
    throw new SysError('read', errno);
  }
  return tryReadBuf[0] ?? 0n;
}

export function eventfdWrite(fd: number, value: bigint): void {
  check('write', c.write(fd, new BigUint64Array([value]), 8));
}

// struct epoll_event is packed on x86-64 (12 bytes), so its u64 data sits at offset 4.
// Split into two aligned u32 halves; `data` round-trips any safe integer.
const EPOLL_EVENT = defineLayout('epoll_event', 12, { events: u32(0), dataLo: u32(4), dataHi: u32(8) });
export interface EpollEvent { events: number; data: number }
const MAX_EPOLL_EVENTS = 4096;

export function epollCreate(): number { return check('epoll_create1', c.epollCreate1(consts.EPOLL_CLOEXEC)); }

export function epollCtl(epfd: number, op: number, fd: number, events: number, data: number): void {
  if (!Number.isSafeInteger(data) || data < 0) throw argError('epoll_ctl', EINVAL, `data ${data} is not a safe non-negative integer`);
  const ev = StructView.alloc(EPOLL_EVENT).set('events', events >>> 0)
    .set('dataLo', data % 2 ** 32).set('dataHi', Math.floor(data / 2 ** 32));
  check('epoll_ctl', c.epollCtl(epfd, op, fd, ev.buffer));
}

function checkMaxEvents(maxEvents: number): void {
  if (!Number.isInteger(maxEvents) || maxEvents < 1 || maxEvents > MAX_EPOLL_EVENTS) {
    throw argError('epoll_wait', EINVAL, `maxEvents ${maxEvents} outside 1..${MAX_EPOLL_EVENTS}`);
  }
}

function decodeEvents(buf: Uint8Array, n: number): EpollEvent[] {
  const out: EpollEvent[] = [];
  for (let i = 0; i < n; i++) {
    const ev = new StructView(EPOLL_EVENT, buf, i * EPOLL_EVENT.size);
    out.push({ events: ev.get('events'), data: ev.get('dataHi') * 2 ** 32 + ev.get('dataLo') });
  }
  return out;
}

/** Blocks the calling thread. An interrupting signal (EINTR) reads as a timeout: no events. */
export function epollWait(epfd: number, maxEvents: number, timeoutMs: number): EpollEvent[] {
  checkMaxEvents(maxEvents);
  const buf = new Uint8Array(maxEvents * EPOLL_EVENT.size);
  const n = c.epollWait(epfd, buf, maxEvents, timeoutMs) as number;
  if (n === -1) {
    const errno = koffi.errno();
    if (errno === EINTR) return [];
    throw new SysError('epoll_wait', errno);
  }
  return decodeEvents(buf, n);
}

/**
 * epoll_wait on koffi's worker pool, so the event loop keeps running: this is how fds that
 * Node cannot watch itself (eventfds, raw sockets) deliver readiness into JS. The event
 * buffer is native memory owned by this call until the callback has run. Each call in
 * flight holds one thread of koffi's small pool until it returns, so keep timeouts bounded.
 */
export function epollWaitAsync(epfd: number, maxEvents: number, timeoutMs: number): Promise<EpollEvent[]> {
  checkMaxEvents(maxEvents);
  const size = maxEvents * EPOLL_EVENT.size;
  const ptr = koffi.alloc('uint8_t', size) as bigint;
  return new Promise<EpollEvent[]>((resolve, reject) => {
    const done = (err: unknown, n: number): void => {
      try {
        const errno = koffi.errno();
        // koffi reports its own failures (e.g. a full async queue) as err; there is no errno then.
        if (err) reject(new SysError('epoll_wait', EAGAIN, { cause: err }));
        else if (n === -1 && errno === EINTR) resolve([]);
        else if (n === -1) reject(new SysError('epoll_wait', errno));
        else resolve(decodeEvents(new Uint8Array(koffi.view(ptr, size)).slice(), n));
      } finally {
        koffi.free(ptr);
      }
    };
    try {
      c.epollWait.async(epfd, ptr, maxEvents, timeoutMs, done);
    } catch (err) {
      done(err, -1);
    }
  });
}

const POLLFD = defineLayout('pollfd', 8, { fd: i32(0), events: u16(4), revents: u16(6) });

/** Returns one entry per input, in order. EINTR reads as a timeout: all revents 0. */
export function poll(fds: Array<{ fd: number; events: number }>, timeoutMs: number): Array<{ fd: number; revents: number }> {
  const buf = new Uint8Array(fds.length * POLLFD.size);
  fds.forEach((p, i) => new StructView(POLLFD, buf, i * POLLFD.size).set('fd', p.fd).set('events', p.events));
  if (c.poll(buf, fds.length, timeoutMs) === -1 && koffi.errno() !== EINTR) throw new SysError('poll', koffi.errno());
  return fds.map((p, i) => ({ fd: p.fd, revents: new StructView(POLLFD, buf, i * POLLFD.size).get('revents') }));
}

export function pidfdOpen(pid: number): number { return check('pidfd_open', c.syscall(SYS.pidfd_open, pid, 0, 0, 0)); }
export function pidfdSendSignal(pidfd: number, sig: number): void {
  check('pidfd_send_signal', c.syscall(SYS.pidfd_send_signal, pidfd, sig, 0, 0));
}

// siginfo_t as waitid fills it for SIGCHLD (asm-generic/siginfo.h): 128 bytes.
const SIGINFO = defineLayout('siginfo_t', 128, { signo: i32(0), code: i32(8), pid: i32(16), uid: u32(20), status: i32(24) });

/** code is CLD_EXITED (status = exit code) or CLD_KILLED/CLD_DUMPED (status = signal). null: WNOHANG and nothing to reap. */
export function waitid(idtype: number, id: number, options: number): { pid: number; code: number; status: number } | null {
  const info = StructView.alloc(SIGINFO);
  // A SIGCHLD landing on this thread interrupts the wait; the wait itself is still wanted.
  while (c.waitid(idtype, id, info.buffer, options) === -1) {
    const errno = koffi.errno();
    if (errno !== EINTR) throw new SysError('waitid', errno);
  }
  const pid = info.get('pid');
  return pid === 0 ? null : { pid, code: info.get('code'), status: info.get('status') };
}

// Sockets and accepted connections are always close-on-exec; spawn's stdio mapping clears it where a child should inherit.
export function socket(domain: number, type: number, protocol: number): number {
  return check('socket', c.socket(domain, type | consts.SOCK_CLOEXEC, protocol));
}

export function socketpair(domain: number, type: number, protocol: number): [number, number] {
  const sv = new Int32Array(2);
  check('socketpair', c.socketpair(domain, type | consts.SOCK_CLOEXEC, protocol, sv));
  return [sv[0] ?? -1, sv[1] ?? -1];
}

const SOCKADDR_UN = defineLayout('sockaddr_un', 110, { family: u16(0), path: bytes(2, 108) });

/** A path starting with NUL names the abstract namespace (no file, no trailing NUL). */
function sockaddrUn(syscall: string, path: string): [Uint8Array, number] {
  const name = new TextEncoder().encode(path);
  const abstract = name[0] === 0;
  if (name.length === 0 || name.length > (abstract ? 108 : 107)) throw argError(syscall, ENAMETOOLONG, `unix socket path of ${name.length} bytes`);
  const sa = StructView.alloc(SOCKADDR_UN).set('family', consts.AF_UNIX);
  sa.bytes('path').set(name);
  return [sa.buffer, 2 + name.length + (abstract ? 0 : 1)];
}

export function bindUnix(fd: number, path: string): void { check('bind', c.bind(fd, ...sockaddrUn('bind', path))); }
export function connectUnix(fd: number, path: string): void { check('connect', c.connect(fd, ...sockaddrUn('connect', path))); }
export function listen(fd: number, backlog: number): void { check('listen', c.listen(fd, backlog)); }
export function accept(fd: number, flags = 0): number { return check('accept4', c.accept4(fd, null, null, flags | consts.SOCK_CLOEXEC)); }

// sys/socket.h, bits/uio.h: the message header holds pointers, so it is built in native memory.
const MSGHDR = defineLayout('msghdr', 56, {
  name: u64(0), namelen: u32(8), iov: u64(16), iovlen: u64(24), control: u64(32), controllen: u64(40), flags: i32(48),
});
const IOVEC = defineLayout('iovec', 16, { base: u64(0), len: u64(8) });
const CMSGHDR = defineLayout('cmsghdr', 16, { len: u64(0), level: i32(8), type: i32(12) });
const SCM_MAX_FD = 253; // include/net/scm.h: the kernel refuses more per message.
const align8 = (n: number): number => (n + 7) & ~7;
const cmsgSpace = (fds: number): number => (fds === 0 ? 0 : CMSGHDR.size + align8(4 * fds));

let scratchPtr = 0n;
let scratchSize = 0;
/** Native memory reused by synchronous sendmsg/recvmsg; returns its address and a view. */
function scratch(size: number): { ptr: bigint; mem: Uint8Array } {
  if (size > scratchSize) {
    if (scratchSize > 0) koffi.free(scratchPtr);
    scratchSize = Math.max(4096, 2 ** Math.ceil(Math.log2(size)));
    scratchPtr = koffi.alloc('uint8_t', scratchSize) as bigint;
  }
  const mem = new Uint8Array(koffi.view(scratchPtr, scratchSize), 0, size);
  mem.fill(0);
  return { ptr: scratchPtr, mem };
}

// Scratch layout: msghdr | iovec | control | data.
const IOV_AT = MSGHDR.size;
const CONTROL_AT = IOV_AT + IOVEC.size;

function buildMsg(dataLen: number, controlLen: number): { ptr: bigint; mem: Uint8Array; dataAt: number } {
  const dataAt = CONTROL_AT + controlLen;
  const { ptr, mem } = scratch(dataAt + dataLen);
  new StructView(MSGHDR, mem).set('iov', ptr + BigInt(IOV_AT)).set('iovlen', 1n)
    .set('control', controlLen ? ptr + BigInt(CONTROL_AT) : 0n).set('controllen', BigInt(controlLen));
  new StructView(IOVEC, mem, IOV_AT).set('base', ptr + BigInt(dataAt)).set('len', BigInt(dataLen));
  return { ptr, mem, dataAt };
}

/** Sends data with the given fds attached (SCM_RIGHTS). Returns the bytes sent. */
export function sendmsg(fd: number, data: Uint8Array, fds: number[] = []): number {
  if (fds.length > SCM_MAX_FD) throw argError('sendmsg', EINVAL, `${fds.length} fds exceed ${SCM_MAX_FD}`);
  const { ptr, mem, dataAt } = buildMsg(data.byteLength, cmsgSpace(fds.length));
  mem.set(data, dataAt);
  if (fds.length > 0) {
    const cm = new StructView(CMSGHDR, mem, CONTROL_AT)
      .set('len', BigInt(CMSGHDR.size + 4 * fds.length)).set('level', consts.SOL_SOCKET).set('type', consts.SCM_RIGHTS);
    const dv = new DataView(mem.buffer, mem.byteOffset + cm.base + CMSGHDR.size);
    fds.forEach((f, i) => dv.setInt32(4 * i, f, true)); // int[] payload of the cmsg, native order
  }
  return check('sendmsg', c.sendmsg(fd, ptr, consts.MSG_NOSIGNAL));
}

/**
 * Receives up to maxBytes and up to maxFds descriptors (close-on-exec). The peer is not
 * trusted: control messages are walked with bounds checks, and any descriptor beyond
 * maxFds (the control buffer rounds up, so the kernel can install more) is closed here.
 */
export function recvmsg(fd: number, maxBytes: number, maxFds: number): { data: Uint8Array; fds: number[]; truncated: boolean } {
  if (maxFds < 0 || maxFds > SCM_MAX_FD || maxBytes < 0) throw argError('recvmsg', EINVAL, `maxBytes ${maxBytes} maxFds ${maxFds}`);
  const controlLen = cmsgSpace(maxFds);
  const { ptr, mem, dataAt } = buildMsg(maxBytes, controlLen);
  const n = check('recvmsg', c.recvmsg(fd, ptr, consts.MSG_CMSG_CLOEXEC));
  const hdr = new StructView(MSGHDR, mem);
  let truncated = (hdr.get('flags') & (consts.MSG_TRUNC | consts.MSG_CTRUNC)) !== 0;
  const received: number[] = [];
  const end = CONTROL_AT + Math.min(Number(hdr.get('controllen')), controlLen);
  for (let at = CONTROL_AT; at + CMSGHDR.size <= end;) {
    const cm = new StructView(CMSGHDR, mem, at);
    const len = Number(cm.get('len'));
    if (len < CMSGHDR.size || at + len > end) break;
    if (cm.get('level') === consts.SOL_SOCKET && cm.get('type') === consts.SCM_RIGHTS) {
      const dv = new DataView(mem.buffer, mem.byteOffset + at + CMSGHDR.size); // int[] payload, native order
      for (let i = 0; i + 4 <= len - CMSGHDR.size; i += 4) received.push(dv.getInt32(i, true));
    }
    at += align8(len);
  }
  const fds = received.slice(0, maxFds);
  for (const extra of received.slice(maxFds)) {
    truncated = true;
    c.close(extra);
  }
  return { data: mem.slice(dataAt, dataAt + n), fds, truncated };
}

export function prctl(option: number, arg2: number | bigint = 0, arg3: number | bigint = 0, arg4: number | bigint = 0, arg5: number | bigint = 0): number {
  return check('prctl', c.prctl(option, arg2, arg3, arg4, arg5));
}

const CPU_SETSIZE = 1024;
/** pid 0 is the calling thread. */
export function schedSetaffinity(pid: number, cpus: number[]): void {
  const mask = new Uint8Array(CPU_SETSIZE / 8);
  for (const cpu of cpus) {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= CPU_SETSIZE) throw argError('sched_setaffinity', EINVAL, `cpu ${cpu}`);
    mask[cpu >> 3] = (mask[cpu >> 3] ?? 0) | (1 << (cpu & 7));
  }
  check('sched_setaffinity', c.schedSetaffinity(pid, mask.byteLength, mask));
}

export function unshare(flags: number): void { check('unshare', c.unshare(flags)); }
export function setresuid(r: number, e: number, s: number): void { check('setresuid', c.setresuid(r, e, s)); }
export function closeRange(first: number, last: number, flags: number): void {
  check('close_range', c.syscall(SYS.close_range, first, last, flags, 0));
}

// linux/filter.h: a classic BPF program is an array of sock_filter; sock_fprog points at it
// (the pointer is 8-aligned, after the u16 length).
export const SOCK_FILTER = defineLayout('sock_filter', 8, { code: u16(0), jt: u8(2), jf: u8(3), k: u32(4) });
const SOCK_FPROG = defineLayout('sock_fprog', 16, { len: u16(0), filter: u64(8) });
const BPF_MAXINSNS = 4096;

/**
 * seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog) for `program`, an array of SOCK_FILTER. With
 * SECCOMP_FILTER_FLAG_TSYNC the kernel answers a thread that cannot join the filter with that
 * thread's id instead of -1; that is a failure too (nothing was installed).
 */
export function seccompSetFilter(program: Uint8Array, flags: number): void {
  const n = program.byteLength / SOCK_FILTER.size;
  if (!Number.isInteger(n) || n < 1 || n > BPF_MAXINSNS) throw argError('seccomp', EINVAL, `program of ${program.byteLength} bytes is not 1..${BPF_MAXINSNS} instructions`);
  // The program must sit at a stable native address: sock_fprog holds a pointer to it.
  const ptr = koffi.alloc('uint8_t', program.byteLength) as bigint;
  try {
    new Uint8Array(koffi.view(ptr, program.byteLength)).set(program);
    const fprog = StructView.alloc(SOCK_FPROG).set('len', n).set('filter', ptr);
    const r = Number(c.syscallPtr(SYS.seccomp, consts.SECCOMP_SET_MODE_FILTER, flags, fprog.buffer));
    if (r > 0) throw argError('seccomp', EAGAIN, `thread ${r} cannot synchronize to the filter`);
    check('seccomp', r);
  } finally {
    koffi.free(ptr);
  }
}

export function gettid(): number { return check('gettid', c.syscall(SYS.gettid, 0, 0, 0, 0)); }
export function tgkill(tgid: number, tid: number, sig: number): void { check('tgkill', c.syscall(SYS.tgkill, tgid, tid, sig, 0)); }

const SIG_BLOCK = 0;
const SIG_UNBLOCK = 1;
/** glibc's sigset_t is 128 bytes; the kernel reads the first 8 (signal n is bit n-1). */
function sigset(signals: number[]): Uint8Array {
  const set = new Uint8Array(128);
  for (const s of signals) set[(s - 1) >> 3] = (set[(s - 1) >> 3] ?? 0) | (1 << ((s - 1) & 7));
  return set;
}
/** Blocks or unblocks signals for the calling thread only. */
export function threadSigmask(block: boolean, signals: number[]): void {
  const r = c.pthreadSigmask(block ? SIG_BLOCK : SIG_UNBLOCK, sigset(signals), null) as number;
  if (r !== 0) throw new SysError('pthread_sigmask', r); // returns the error number, not -1
}
/**
 * Takes a pending (blocked) `signal` off the calling thread without waiting; true if one was pending.
 * A kick that arrives outside KVM_RUN stays pending and ends the next KVM_RUN; unless it is taken
 * then, every later KVM_RUN would end at once as well.
 */
export function takePendingSignal(signal: number): boolean {
  const zero = new BigInt64Array(2); // struct timespec { 0, 0 }: poll
  return (c.sigtimedwait(sigset([signal]), null, zero) as number) === signal;
}
