// A hostile domain. tests/support/sandbox-escape.ts starts it through the same spawn path
// microhv's supervisor uses for every domain (microhv/domains/sandbox.ts), with a control socket
// as fd 3, and it tries to reach what a domain must not: its parent's memory and fds, the
// network, host files, the kernel. It does so in three phases, as a compromised domain could
// at each point of its life: with only the namespaces around it (before any filter), after the
// runtime's start filter, and after the sealed filter (driver-domains/runtime/seccomp.ts).
// Each attempt is printed as one JSON line on stdout as soon as it is made, so an attempt that
// replaces or ends the process still leaves the ones before it; a final {"done":true} says
// every attempt ran.
//   node escape-attempts.js TARGET_PID SECRET_ADDR SECRET_HEX TCP_PORT ABSTRACT_NAME HOST_FILE MOUNT_DIR
import { closeSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import * as koffi from 'koffi';
import { StructView, defineLayout, u64 } from '../../microhv/sys/layout.js';
import { errnoName } from '../../microhv/sys/index.js';
import { NR, installFilter, sealedRules, startRules } from '../../driver-domains/runtime/seccomp.js';

export type Phase = 'namespaces' | 'start' | 'sealed';
/** One attempt: `escaped` is true when it reached what it aimed at. */
export interface Attempt { readonly phase: Phase; readonly name: string; readonly escaped: boolean; readonly detail: string }
/** What the process sees of itself, before any attempt. */
export interface SelfView { readonly namespaces: Record<string, string>; readonly fds: Array<{ fd: number; target: string }>; readonly pid: number; readonly uidMap: string }

const libc = koffi.load('libc.so.6');
const c = {
  syscall: libc.func('long syscall(long nr, long a1, long a2, long a3, long a4, long a5)'),
  processVmReadv: libc.func('long process_vm_readv(int pid, void *local, unsigned long liovcnt, void *remote, unsigned long riovcnt, unsigned long flags)'),
  mount: libc.func('int mount(const char *src, const char *target, const char *type, unsigned long flags, const void *data)'),
  ioctl: libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']),
  execve: libc.func('int execve(const char *path, void *argv, void *envp)'),
};
// PTRACE_SEIZE has PTRACE_ATTACH's permission check but does not stop the target, so a sandbox
// that let it through would not freeze the test; the tracee is released when this process exits.
const PTRACE_SEIZE = 0x4206;
const IOVEC = defineLayout('iovec', 16, { base: u64(0), len: u64(8) });

const [targetArg, addrArg, secretHex, portArg, abstractName, hostFile, mountDir] = process.argv.slice(2);
const target = Number(targetArg);
const secretAddr = BigInt(addrArg ?? '0');
const secret = Buffer.from(secretHex ?? '', 'hex');
let phase: Phase = 'namespaces';

function emit(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** Runs one attempt; `fn` returns what it reached (escaped) or throws why it could not. */
async function attempt(name: string, fn: () => string | Promise<string>): Promise<void> {
  let a: Attempt;
  try {
    a = { phase, name, escaped: true, detail: await fn() };
  } catch (e) {
    const err = e as { code?: string; message?: string };
    a = { phase, name, escaped: false, detail: err.code ?? err.message ?? String(e) };
  }
  emit(a);
}

/** A raw call's result, or an error carrying its errno name as `code`. */
function raw(r: number | bigint): number {
  if (Number(r) === -1) throw Object.assign(new Error('failed'), { code: errnoName(koffi.errno()) });
  return Number(r);
}
const syscall = (nr: number, ...a: Array<number | bigint>): number => raw(c.syscall(nr, a[0] ?? 0, a[1] ?? 0, a[2] ?? 0, a[3] ?? 0, a[4] ?? 0));
/** A refusal the test wants to see as such: any other errno means the call got through to the kernel's real checks. */
function expectRefused(nr: number, ...a: Array<number | bigint>): string {
  try {
    return `returned ${syscall(nr, ...a)}`;
  } catch (e) {
    const code = (e as { code: string }).code;
    if (code === 'EPERM' || code === 'EACCES' || code === 'ESRCH') throw e;
    return `reached the kernel: ${code}`;
  }
}

function selfView(): SelfView {
  const namespaces: Record<string, string> = {};
  for (const n of ['user', 'mnt', 'net', 'ipc', 'pid']) namespaces[n] = readlinkSync(`/proc/self/ns/${n}`);
  const fds = readdirSync('/proc/self/fd').map(Number).sort((a, b) => a - b).map((fd) => {
    try { return { fd, target: readlinkSync(`/proc/self/fd/${fd}`) }; } catch { return { fd, target: '(gone)' }; }
  });
  return { namespaces, fds, pid: process.pid, uidMap: readFileSync('/proc/self/uid_map', 'utf8').trim().replace(/\s+/g, ' ') };
}

function readParentMemory(): string {
  const local = koffi.alloc('uint8_t', secret.length) as bigint;
  try {
    const liov = StructView.alloc(IOVEC).set('base', local).set('len', BigInt(secret.length));
    const riov = StructView.alloc(IOVEC).set('base', secretAddr).set('len', BigInt(secret.length));
    const n = raw(c.processVmReadv(target, liov.buffer, 1, riov.buffer, 1, 0));
    const got = Buffer.from(koffi.view(local, n) as ArrayBuffer);
    return got.equals(secret) ? 'read the secret' : `read ${n} other bytes`;
  } finally {
    koffi.free(local);
  }
}

function parentMemViaProc(): string {
  const fd = openSync(`/proc/${target}/mem`, 'r');
  try {
    const buf = Buffer.alloc(secret.length);
    readSync(fd, buf, 0, buf.length, secretAddr);
    return buf.equals(secret) ? 'read the secret' : 'opened it';
  } finally {
    closeSync(fd);
  }
}

/** Any of the parent's fds opened through /proc (the secret memfd among them) is an escape. */
function parentFds(): string {
  const opened: number[] = [];
  let secretSeen = false;
  for (let fd = 0; fd < 256; fd++) {
    try {
      const h = openSync(`/proc/${target}/fd/${fd}`, 'r');
      opened.push(fd);
      const buf = Buffer.alloc(secret.length);
      try { readSync(h, buf, 0, buf.length, 0); } catch { /* not readable as a file */ }
      if (buf.equals(secret)) secretSeen = true;
      closeSync(h);
    } catch (e) {
      if (opened.length === 0 && fd === 255) throw e;
    }
  }
  if (opened.length === 0) throw Object.assign(new Error('none'), { code: 'no fd opened' });
  return `opened parent fds ${opened.join(',')}${secretSeen ? ', the secret memfd among them' : ''}`;
}

function connect(opts: { host?: string; port?: number; path?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(opts as never);
    s.once('connect', () => { s.destroy(); resolve('connected'); });
    s.once('error', (e) => reject(e));
    setTimeout(() => { s.destroy(); reject(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })); }, 3000);
  });
}

function openForWrite(path: string): string {
  closeSync(openSync(path, 'r+'));
  return `opened ${path} for writing`;
}

async function namespacePhase(): Promise<void> {
  await attempt('ptrace_attach_parent', () => expectRefused(NR.ptrace, PTRACE_SEIZE, target, 0, 0));
  await attempt('process_vm_readv_parent', readParentMemory);
  await attempt('proc_parent_mem', parentMemViaProc);
  await attempt('proc_parent_fd_list', () => `listed ${readdirSync(`/proc/${target}/fd`).length} fds`);
  await attempt('proc_parent_fd_open', parentFds);
  await attempt('pidfd_getfd_parent', () => {
    const pidfd = syscall(NR.pidfd_open, target, 0);
    for (let fd = 0; fd < 64; fd++) {
      try { return `took fd ${fd} as ${syscall(NR.pidfd_getfd, pidfd, fd, 0)}`; } catch { /* next */ }
    }
    return 'opened a pidfd on the parent';
  });
  await attempt('signal_parent', () => expectRefused(NR.kill, target, 0));
  await attempt('tcp_connect_host_loopback', () => connect({ host: '127.0.0.1', port: Number(portArg) }));
  await attempt('abstract_unix_connect', () => connect({ path: `\0${abstractName ?? ''}` }));
  await attempt('mount_tmpfs', () => `mounted: ${raw(c.mount('none', mountDir ?? '', 'tmpfs', 0, null))}`);
  // Not asserted in this phase: the domain is root of its user namespace mapped to microhv's own
  // uid, so a file microhv's uid owns is writable until the sealed filter (see ARCHITECTURE.md).
  await attempt('host_file_write', () => openForWrite(hostFile ?? ''));
}

async function startPhase(): Promise<void> {
  await attempt('ptrace_attach_parent', () => expectRefused(NR.ptrace, PTRACE_SEIZE, target, 0, 0));
  await attempt('process_vm_readv_parent', readParentMemory);
  await attempt('mount_tmpfs', () => `mounted: ${raw(c.mount('none', mountDir ?? '', 'tmpfs', 0, null))}`);
  await attempt('unshare_net', () => expectRefused(NR.unshare, 0x4000_0000));
  await attempt('setns', () => expectRefused(NR.setns, 0, 0));
  await attempt('bpf', () => expectRefused(NR.bpf, 0, 0, 0));
  await attempt('perf_event_open', () => expectRefused(NR.perf_event_open, 0, 0, -1, -1, 0));
  await attempt('keyctl', () => expectRefused(NR.keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
  await attempt('init_module', () => expectRefused(NR.init_module, 0, 0, 0));
  await attempt('kexec_load', () => expectRefused(NR.kexec_load, 0, 0, 0, 0));
  await attempt('userfaultfd', () => expectRefused(NR.userfaultfd, 0));
  await attempt('io_uring_setup', () => expectRefused(NR.io_uring_setup, 1, 0));
  await attempt('pidfd_open_self', () => expectRefused(NR.pidfd_open, process.pid, 0));
  await attempt('signal_every_process', () => expectRefused(NR.kill, -1, 0));
  await attempt('personality', () => expectRefused(NR.personality, 0xffff_ffff));
  // x32 getpid: the x32 bit plus getpid's number (39).
  await attempt('x32_syscall', () => expectRefused(0x4000_0000 | 39));
  await attempt('tiocsti_inject_input', () => {
    try {
      return `returned ${raw(c.ioctl(2, 0x5412, Buffer.from('x')))}`;
    } catch (e) {
      const code = (e as { code: string }).code;
      if (code === 'EPERM') throw e;
      return `reached the kernel: ${code}`;
    }
  });
  // clone3 answers ENOSYS (glibc then uses clone): anything else means it reached the kernel.
  await attempt('clone3', () => {
    try {
      return `returned ${syscall(NR.clone3, 0, 0)}`;
    } catch (e) {
      if ((e as { code: string }).code === 'ENOSYS') throw e;
      return `reached the kernel: ${(e as { code: string }).code}`;
    }
  });
  // Last in the phase: if it worked, the process is gone and no later line comes.
  await attempt('execve', () => `returned ${raw(c.execve('/bin/true', null, null))}`);
}

async function sealedPhase(): Promise<void> {
  await attempt('host_file_write', () => openForWrite(hostFile ?? ''));
  await attempt('open_read', () => { closeSync(openSync('/proc/self/status', 'r')); return 'opened /proc/self/status'; });
  await attempt('socket_unix', () => connect({ path: `\0${abstractName ?? ''}` }));
  await attempt('mkdir', () => { mkdirSync(`/tmp/escape-${process.pid}`); return 'made a directory'; });
  await attempt('unlink', () => { unlinkSync(hostFile ?? ''); return 'removed the host file'; });
}

async function main(): Promise<void> {
  emit({ self: selfView() });
  await namespacePhase();
  phase = 'start';
  if (!installFilter(startRules(process.pid))) emit({ seccomp: 'unavailable' });
  await startPhase();
  phase = 'sealed';
  installFilter(sealedRules());
  await sealedPhase();
  emit({ done: true });
  process.exit(0);
}

main().catch((e: unknown) => {
  process.stderr.write(`escape-attempts: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
