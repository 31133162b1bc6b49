// The system-call filter of a domain process (DESIGN.md 5, "seccomp where practical").
//
// Node needs a wide and version-dependent set of system calls, so an allow-list would break
// on the next Node release. The filter is a deny-list instead, in two stages:
//   - START, installed first thing: calls no domain ever needs and that reach beyond the
//     process (ptrace, other processes' memory, kernel modules, mounts, namespaces, BPF, keys,
//     exec, io_uring, signals to other processes, terminal input injection);
//   - SEALED, added once the domain holds every fd it will use: no new files, paths or
//     sockets. What a domain does after that goes through fds microhv gave it.
// Filters stack (the kernel runs every one, the strictest answer wins), so SEALED only narrows.
//
// io_uring is the one hole a filter cannot close: the operations of its SQEs (openat, connect,
// ...) run in the kernel without a system call of their own, so seccomp never sees them. Every
// domain but block is refused io_uring from the start. The block domain, unless --no-uring, may
// make one ring before it seals (START allows the three calls for it), and that ring is
// harmless by construction (../block/uring.ts): its only file is the image, its restrictions
// allow read, write, fsync and fallocate SQEs on that fixed file and nothing else, and no
// register opcode once enabled. SEALED then keeps only io_uring_enter on that ring's fd
// (uringRules): no new ring, no registration, no other ring (libuv's, should it have made one).
// The program is classic BPF over struct seccomp_data, written from the kernel's
// Documentation/userspace-api/seccomp_filter.rst and linux/filter.h, linux/seccomp.h.
import * as sys from '../../microhv/sys/index.js';
import { StructView, defineLayout, i32, u32, u64 } from '../../microhv/sys/layout.js';

/** linux/seccomp.h struct seccomp_data: what the program reads (x86-64 is little-endian, so an argument's low half is at its offset). */
export const SECCOMP_DATA = defineLayout('seccomp_data', 64, {
  nr: i32(0), arch: u32(4), ip: u64(8), arg0: u64(16), arg1: u64(24), arg2: u64(32), arg3: u64(40), arg4: u64(48), arg5: u64(56),
});
const ARG_FIELDS = ['arg0', 'arg1', 'arg2', 'arg3', 'arg4', 'arg5'] as const;

/** linux/audit.h: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE. */
export const AUDIT_ARCH_X86_64 = 0xc000_003e;
/** arch/x86/include/uapi/asm/unistd.h: x32 system calls carry this bit in nr. */
export const X32_SYSCALL_BIT = 0x4000_0000;

// linux/bpf_common.h opcodes: class | size | mode, and class | op | source.
export const BPF = {
  LD_W_ABS: 0x00 | 0x00 | 0x20,
  JMP_JEQ_K: 0x05 | 0x10 | 0x00,
  JMP_JGE_K: 0x05 | 0x30 | 0x00,
  JMP_JSET_K: 0x05 | 0x40 | 0x00,
  RET_K: 0x06 | 0x00,
} as const;

// linux/seccomp.h return values; the low 16 bits of ERRNO carry the errno.
export const SECCOMP_RET = { KILL_PROCESS: 0x8000_0000, ERRNO: 0x0005_0000, ALLOW: 0x7fff_0000 } as const;

/**
 * x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl; checked against
 * linux-libc-dev's asm/unistd_64.h, and fchmodat2 against the 6.6 table).
 */
export const NR = {
  read: 0, write: 1, open: 2, close: 3, ioctl: 16, socket: 41, connect: 42, accept: 43, bind: 49, listen: 50,
  socketpair: 53, clone: 56, fork: 57, vfork: 58, execve: 59, kill: 62, truncate: 76, rename: 82, mkdir: 83,
  rmdir: 84, creat: 85, link: 86, unlink: 87, symlink: 88, chmod: 90, chown: 92, lchown: 94, ptrace: 101,
  syslog: 103, rt_sigqueueinfo: 129, utime: 132, mknod: 133, uselib: 134, personality: 135, ustat: 136, sysfs: 139,
  vhangup: 153, modify_ldt: 154, pivot_root: 155, _sysctl: 156, prctl: 157, adjtimex: 159, chroot: 161, acct: 163,
  settimeofday: 164, mount: 165, umount2: 166, swapon: 167, swapoff: 168, reboot: 169, sethostname: 170,
  setdomainname: 171, iopl: 172, ioperm: 173, init_module: 175, delete_module: 176, quotactl: 179, setxattr: 188,
  lsetxattr: 189, removexattr: 197, lremovexattr: 198, tkill: 200, lookup_dcookie: 212, clock_settime: 227,
  tgkill: 234, utimes: 235, kexec_load: 246, add_key: 248, request_key: 249, keyctl: 250, migrate_pages: 256, openat: 257,
  mkdirat: 258, mknodat: 259, fchownat: 260, futimesat: 261, unlinkat: 263, renameat: 264, linkat: 265,
  symlinkat: 266, fchmodat: 268, unshare: 272, move_pages: 279, utimensat: 280, accept4: 288, rt_tgsigqueueinfo: 297,
  perf_event_open: 298, name_to_handle_at: 303, open_by_handle_at: 304, clock_adjtime: 305, setns: 308,
  process_vm_readv: 310, process_vm_writev: 311, kcmp: 312, finit_module: 313, renameat2: 316, seccomp: 317,
  kexec_file_load: 320, bpf: 321, execveat: 322, userfaultfd: 323, pidfd_send_signal: 424, io_uring_setup: 425,
  io_uring_enter: 426, io_uring_register: 427, open_tree: 428, move_mount: 429, fsopen: 430, fsconfig: 431,
  fsmount: 432, fspick: 433, pidfd_open: 434, clone3: 435, openat2: 437, pidfd_getfd: 438, process_madvise: 440,
  mount_setattr: 442, quotactl_fd: 443, fchmodat2: 452,
} as const;
export type SyscallName = keyof typeof NR;

export type Action =
  | { readonly kind: 'allow' }
  | { readonly kind: 'errno'; readonly errno: number }
  | { readonly kind: 'kill' };

/**
 * A test on the low 32 bits of one argument. Every argument tested here is an int or an unsigned
 * int to the kernel (or, for clone, only its low half is read), so the high half cannot change
 * what the call does.
 */
export interface ArgTest {
  readonly arg: 0 | 1 | 2 | 3 | 4 | 5;
  /** anyBit: some bit of value is set; noBit: none is; eq / ne: equality. */
  readonly op: 'anyBit' | 'noBit' | 'eq' | 'ne';
  readonly value: number;
}

/** When `nr` is called (and `when` holds, if given), answer `action`; otherwise the next rule decides. */
export interface Rule {
  readonly name: SyscallName;
  readonly action: Action;
  readonly when?: ArgTest;
}

export class SeccompError extends Error {
  override readonly name = 'SeccompError';
  constructor(readonly code: 'BAD_RULE' | 'INSTALL', message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
  }
}

const EPERM = 1;
const ENOSYS = 38;
const deny: Action = { kind: 'errno', errno: EPERM };

function retValue(a: Action): number {
  switch (a.kind) {
    case 'allow': return SECCOMP_RET.ALLOW;
    case 'kill': return SECCOMP_RET.KILL_PROCESS;
    case 'errno': return (SECCOMP_RET.ERRNO | (a.errno & 0xffff)) >>> 0;
    default: {
      const never: never = a;
      throw new SeccompError('BAD_RULE', `unknown action ${String(never)}`);
    }
  }
}

/**
 * Compiles rules into a program: a foreign architecture kills the process (its numbers mean
 * other calls, so no rule here would apply); an x32 call is denied; then the rules in order,
 * each a compare on nr with its own return, so every jump is short; then `fallback`.
 */
export function compile(rules: readonly Rule[], fallback: Action): Uint8Array {
  const insns: Array<[code: number, jt: number, jf: number, k: number]> = [];
  const emit = (code: number, jt: number, jf: number, k: number): void => { insns.push([code, jt, jf, k >>> 0]); };
  const loadNr = (): void => emit(BPF.LD_W_ABS, 0, 0, SECCOMP_DATA.fields.nr.offset);

  emit(BPF.LD_W_ABS, 0, 0, SECCOMP_DATA.fields.arch.offset);
  emit(BPF.JMP_JEQ_K, 1, 0, AUDIT_ARCH_X86_64);
  emit(BPF.RET_K, 0, 0, SECCOMP_RET.KILL_PROCESS);
  loadNr();
  emit(BPF.JMP_JGE_K, 0, 1, X32_SYSCALL_BIT);
  emit(BPF.RET_K, 0, 0, retValue(deny));
  for (const r of rules) {
    const nr = NR[r.name];
    if (nr === undefined) throw new SeccompError('BAD_RULE', `unknown system call ${r.name}`);
    const ret = retValue(r.action);
    if (r.when === undefined) {
      emit(BPF.JMP_JEQ_K, 0, 1, nr);
      emit(BPF.RET_K, 0, 0, ret);
      continue;
    }
    const { arg, op, value } = r.when;
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new SeccompError('BAD_RULE', `${r.name}: ${op} value ${value} is not a u32`);
    const field = ARG_FIELDS[arg];
    if (field === undefined) throw new SeccompError('BAD_RULE', `${r.name}: no argument ${String(arg)}`);
    // Not this call: skip the four instructions of the test, with nr still loaded.
    emit(BPF.JMP_JEQ_K, 0, 4, nr);
    emit(BPF.LD_W_ABS, 0, 0, SECCOMP_DATA.fields[field].offset);
    // jt/jf: 0 falls into the return below, 1 skips it.
    switch (op) {
      case 'anyBit': emit(BPF.JMP_JSET_K, 0, 1, value); break;
      case 'noBit': emit(BPF.JMP_JSET_K, 1, 0, value); break;
      case 'eq': emit(BPF.JMP_JEQ_K, 0, 1, value); break;
      case 'ne': emit(BPF.JMP_JEQ_K, 1, 0, value); break;
      default: {
        const never: never = op;
        throw new SeccompError('BAD_RULE', `unknown test ${String(never)}`);
      }
    }
    emit(BPF.RET_K, 0, 0, ret);
    loadNr();
  }
  emit(BPF.RET_K, 0, 0, retValue(fallback));

  const out = new Uint8Array(insns.length * sys.SOCK_FILTER.size);
  insns.forEach(([code, jt, jf, k], i) => {
    new StructView(sys.SOCK_FILTER, out, i * sys.SOCK_FILTER.size).set('code', code).set('jt', jt).set('jf', jf).set('k', k);
  });
  return out;
}

// sched.h: every CLONE_NEW* flag legacy clone() takes (CLONE_NEWTIME shares its bit with the exit signal there).
const CLONE_NEW_ANY = 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;
const CLONE_THREAD = 0x0001_0000;
// asm-generic/ioctls.h: push bytes into a terminal's input queue; select and paste on a VT.
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;

export const URING_CALLS = ['io_uring_setup', 'io_uring_enter', 'io_uring_register'] as const satisfies readonly SyscallName[];
// linux/io_uring.h: io_uring_enter's fd argument is an index into the ring fds registered with the ring.
const IORING_ENTER_REGISTERED_RING = 1 << 4;

/** Calls that reach beyond the process, and that no domain makes. */
export const START_DENIED: readonly SyscallName[] = [
  // Other processes: their memory, their fds, their state.
  'ptrace', 'process_vm_readv', 'process_vm_writev', 'pidfd_open', 'pidfd_getfd', 'pidfd_send_signal',
  'process_madvise', 'kcmp', 'migrate_pages', 'move_pages', 'tkill',
  // The kernel itself.
  'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module', 'bpf', 'perf_event_open',
  'reboot', 'swapon', 'swapoff', 'iopl', 'ioperm', 'modify_ldt', 'syslog', 'acct', 'settimeofday', 'clock_settime',
  'clock_adjtime', 'adjtimex', 'quotactl', 'quotactl_fd', 'lookup_dcookie', 'vhangup', 'uselib', 'ustat', 'sysfs',
  '_sysctl', 'userfaultfd', 'personality',
  // Keys, file handles, mounts and namespaces.
  'keyctl', 'add_key', 'request_key', 'open_by_handle_at', 'name_to_handle_at', 'mount', 'umount2', 'pivot_root',
  'chroot', 'open_tree', 'move_mount', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'mount_setattr', 'setns', 'unshare',
  'sethostname', 'setdomainname',
  // Other programs: a domain never runs one, and a forked copy of Node would outlive no purpose.
  'execve', 'execveat', 'fork', 'vfork',
  // io_uring runs file and socket operations this filter would not see (libuv falls back without it).
  ...URING_CALLS,
];

export interface StartOptions {
  /** Leave io_uring to the domain until it seals (the block domain's own, restricted ring). */
  readonly ioUring?: boolean;
}

/** START: `pid` is the domain's own pid (as its PID namespace numbers it); signals go only there. */
export function startRules(pid: number, o: StartOptions = {}): Rule[] {
  const ownPid = (name: SyscallName): Rule => ({ name, action: deny, when: { arg: 0, op: 'ne', value: pid } });
  const denied = o.ioUring === true ? START_DENIED.filter((name) => !(URING_CALLS as readonly SyscallName[]).includes(name)) : START_DENIED;
  return [
    ...denied.map((name): Rule => ({ name, action: deny })),
    { name: 'clone', action: deny, when: { arg: 0, op: 'anyBit', value: CLONE_NEW_ANY } },
    // Threads only: a clone without CLONE_THREAD is a fork.
    { name: 'clone', action: deny, when: { arg: 0, op: 'noBit', value: CLONE_THREAD } },
    // Its flags are in a struct the filter cannot read; ENOSYS makes glibc fall back to clone.
    { name: 'clone3', action: { kind: 'errno', errno: ENOSYS } },
    ownPid('kill'), ownPid('tgkill'), ownPid('rt_sigqueueinfo'), ownPid('rt_tgsigqueueinfo'),
    { name: 'ioctl', action: deny, when: { arg: 1, op: 'eq', value: TIOCSTI } },
    { name: 'ioctl', action: deny, when: { arg: 1, op: 'eq', value: TIOCLINUX } },
  ];
}

/** Calls that name a path or make a new socket: after start-up a domain works only through its fds. */
export const SEALED_DENIED: readonly SyscallName[] = [
  'open', 'openat', 'openat2', 'creat', 'socket', 'socketpair', 'connect', 'bind', 'listen',
  'unlink', 'unlinkat', 'rename', 'renameat', 'renameat2', 'mkdir', 'mkdirat', 'rmdir', 'link', 'linkat', 'symlink',
  'symlinkat', 'chmod', 'fchmodat', 'fchmodat2', 'chown', 'lchown', 'fchownat', 'truncate', 'mknod', 'mknodat',
  'utime', 'utimes', 'utimensat', 'futimesat', 'setxattr', 'lsetxattr', 'removexattr', 'lremovexattr',
];

export function sealedRules(): Rule[] {
  return SEALED_DENIED.map((name): Rule => ({ name, action: deny }));
}

/**
 * SEALED's io_uring rules for a domain whose START allowed it: io_uring_enter on `ring` (its
 * fd, by number: never a registered-ring index) and nothing else; `ring` undefined, no io_uring.
 */
export function uringRules(ring: number | undefined): Rule[] {
  const none: Rule[] = [{ name: 'io_uring_setup', action: deny }, { name: 'io_uring_register', action: deny }];
  if (ring === undefined) return [...none, { name: 'io_uring_enter', action: deny }];
  return [
    ...none,
    { name: 'io_uring_enter', action: deny, when: { arg: 0, op: 'ne', value: ring } },
    { name: 'io_uring_enter', action: deny, when: { arg: 3, op: 'anyBit', value: IORING_ENTER_REGISTERED_RING } },
  ];
}

/**
 * Sets no_new_privs (required to install a filter without CAP_SYS_ADMIN, and it keeps exec from
 * gaining privileges) and adds the filter to every thread of the process. Returns false when the
 * kernel has no seccomp (ENOSYS; the caller reports it); throws on any other failure, a program
 * the kernel refuses (EINVAL) included.
 */
export function installFilter(rules: readonly Rule[]): boolean {
  const program = compile(rules, { kind: 'allow' });
  try {
    sys.prctl(sys.consts.PR_SET_NO_NEW_PRIVS, 1);
    sys.seccompSetFilter(program, sys.consts.SECCOMP_FILTER_FLAG_TSYNC);
    return true;
  } catch (e) {
    if (e instanceof sys.SysError && e.syscall === 'seccomp' && e.errno === ENOSYS) return false;
    throw new SeccompError('INSTALL', `${rules.length} rules`, { cause: e });
  }
}
