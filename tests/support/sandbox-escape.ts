// Runs tests/support/escape-attempts.ts as a domain: through microhv's sandboxed spawn path
// (microhv/domains/sandbox.ts), with a control socket as fd 3, while this process plays microhv
// and offers it things to steal: a memfd holding a secret (mapped, never given), a TCP listener
// on 127.0.0.1, an abstract Unix socket and a file of its own. Used by
// tests/domains/sandbox.test.ts here and, as a program, by tests/sandbox.host.test.ts inside the
// test host:
//   node dist/tests/support/sandbox-escape.js   prints one line: SANDBOX-ESCAPE <json>
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sys from '../../microhv/sys/index.js';
import { compiledWorker } from '../../microhv/worker-path.js';
import { childrenOf, probeSandbox, spawnSandboxed, type Namespace, type SandboxPlan } from '../../microhv/domains/sandbox.js';
import type { Attempt, Phase, SelfView } from './escape-attempts.js';

export interface EscapeRun {
  readonly plan: SandboxPlan;
  /** Namespaces (as /proc/self/ns names) the domain does not share with its parent. */
  readonly newNamespaces: string[];
  readonly self: SelfView | undefined;
  readonly attempts: Attempt[];
  /** Every attempt ran (the last line came). */
  readonly done: boolean;
  readonly seccompUnavailable: boolean;
  /** Seen from this side: connections that reached the listeners, and whether the file is as it was. */
  readonly tcpConnections: number;
  readonly abstractConnections: number;
  readonly hostFileIntact: boolean;
  readonly exitCode: number | null;
  readonly stderr: string;
}

const listen = (server: Server, at: { port: number; host: string } | { path: string }): Promise<void> =>
  new Promise((resolve, reject) => { server.once('error', reject); server.listen(at, () => resolve()); });

/** `sandboxed` false runs the same program with a plain spawn: the control that shows what the sandbox changes. */
export async function runEscapeAttempts(opts: { plan?: SandboxPlan; sandboxed?: boolean } = {}): Promise<EscapeRun> {
  const plan = opts.plan ?? probeSandbox();
  const secret = randomBytes(32);
  const memfd = sys.memfdCreate('escape-secret', sys.consts.MFD_CLOEXEC);
  sys.ftruncate(memfd, 4096);
  const mapping = sys.mmap(4096, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, memfd, 0);
  new Uint8Array(mapping.buffer).set(secret);
  const dir = mkdtempSync(join(tmpdir(), 'microhv-escape-'));
  const hostFile = join(dir, 'host-file');
  writeFileSync(hostFile, 'untouched', { mode: 0o644 });
  // Where the domain tries to mount; a mount that works (the unsandboxed control) lands here and is undone.
  const mountDir = join(dir, 'mnt');
  mkdirSync(mountDir);
  let tcpConnections = 0;
  let abstractConnections = 0;
  const tcp = createServer((s) => { tcpConnections++; s.destroy(); });
  const abstract = createServer((s) => { abstractConnections++; s.destroy(); });
  const abstractName = `microhv-escape-${process.pid}-${secret.subarray(0, 4).toString('hex')}`;
  const [mine, theirs] = sys.socketpair(sys.consts.AF_UNIX, sys.consts.SOCK_STREAM | sys.consts.SOCK_CLOEXEC, 0);
  try {
    await listen(tcp, { port: 0, host: '127.0.0.1' });
    await listen(abstract, { path: `\0${abstractName}` });
    const port = (tcp.address() as { port: number }).port;
    const script = compiledWorker(import.meta.url, 'escape-attempts.js');
    const args = [script, String(process.pid), `0x${mapping.addr.toString(16)}`, secret.toString('hex'), String(port), abstractName, hostFile, mountDir];
    const stdio: ['ignore', 'pipe', 'pipe', number] = ['ignore', 'pipe', 'pipe', theirs];
    const child = opts.sandboxed === false ? spawn(process.execPath, args, { stdio }) : spawnSandboxed(args, stdio, plan);
    sys.close(theirs);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exitCode = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.once('close', (code) => { clearTimeout(timer); resolve(code); });
    });
    const lines = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const self = lines.find((l) => 'self' in l)?.self as SelfView | undefined;
    const parentNs = Object.fromEntries(['user', 'mnt', 'net', 'ipc', 'pid'].map((n) => [n, readlinkSync(`/proc/self/ns/${n}`)]));
    return {
      plan, self,
      newNamespaces: self === undefined ? [] : Object.keys(parentNs).filter((n) => self.namespaces[n] !== parentNs[n]),
      attempts: lines.filter((l) => 'phase' in l) as unknown as Attempt[],
      done: lines.some((l) => l.done === true),
      seccompUnavailable: lines.some((l) => l.seccomp === 'unavailable'),
      tcpConnections, abstractConnections,
      hostFileIntact: readFileSync(hostFile, 'utf8') === 'untouched',
      exitCode, stderr,
    };
  } finally {
    if (readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mountDir} `)) spawnSync('umount', [mountDir]);
    sys.close(mine);
    tcp.close();
    abstract.close();
    sys.munmap(mapping);
    sys.close(memfd);
    rmSync(dir, { recursive: true, force: true });
  }
}

const find = (r: EscapeRun, phase: Phase, name: string): Attempt | undefined => r.attempts.find((a) => a.phase === phase && a.name === name);
/** The attempts among `names` that got through (or never reported). */
function gotThrough(r: EscapeRun, phase: Phase, names: readonly string[]): string[] {
  return names.flatMap((n) => {
    const a = find(r, phase, n);
    return a === undefined ? [`${phase}/${n}: no report`] : a.escaped ? [`${phase}/${n}: ${a.detail}`] : [];
  });
}
/** The attempts among `names` whose refusal was not exactly `errno` (the filter's own answer). */
function notAnswered(r: EscapeRun, phase: Phase, names: readonly string[], errno: string): string[] {
  return names.flatMap((n) => (find(r, phase, n)?.detail === errno ? [] : [`${phase}/${n}: ${find(r, phase, n)?.detail ?? 'no report'}, not ${errno}`]));
}
const NS_NAME: Record<Namespace, string> = { user: 'user', mount: 'mnt', net: 'net', ipc: 'ipc', pid: 'pid' };
// Node's own start-up fds (epoll, eventfds, pipes); the readdir handle may show as gone.
const NODE_OWN_FD = /^(anon_inode:\[(eventpoll|eventfd)\]|pipe:\[\d+\]|\(gone\))$/;

/** One expectation on a run. `needs` names what the sandbox plan must have for it to apply. */
export interface EscapeCheck {
  readonly name: string;
  readonly needs?: { readonly what: string; readonly holds: (p: SandboxPlan) => boolean };
  /** What broke it: empty when the sandbox held. */
  readonly violations: (r: EscapeRun) => string[];
}

const hasNs = (...ns: Namespace[]) => ({ what: `${ns.join(' and ')} namespace${ns.length > 1 ? 's' : ''}`, holds: (p: SandboxPlan) => ns.every((n) => p.namespaces.includes(n)) });

export const ESCAPE_CHECKS: readonly EscapeCheck[] = [
  { name: 'every_attempt_ran_to_the_end', violations: (r) => [...(r.done ? [] : ['no final line']), ...(r.exitCode === 0 ? [] : [`exit ${r.exitCode}`]), ...(r.stderr ? [`stderr: ${r.stderr.trim()}`] : [])] },
  { name: 'the_domain_lives_in_every_namespace_the_plan_names', violations: (r) => r.plan.namespaces.map((n) => NS_NAME[n]).filter((n) => !r.newNamespaces.includes(n)).map((n) => `shares the ${n} namespace`) },
  {
    name: 'the_domain_holds_no_fd_beyond_stdio_and_its_control_socket',
    violations: (r) => [
      ...(/^socket:/.test(r.self?.fds.find((f) => f.fd === 3)?.target ?? '') ? [] : ['fd 3 is not the control socket']),
      ...(r.self?.fds ?? []).filter((f) => f.fd > 3 && !NODE_OWN_FD.test(f.target)).map((f) => `fd ${f.fd} -> ${f.target}`),
    ],
  },
  {
    // Outside the caller's user namespace the kernel's ptrace check fails; outside its PID namespace the parent is not there.
    name: 'cannot_read_or_take_the_parents_memory_or_fds_without_any_filter',
    needs: { what: 'user or pid namespace', holds: (p) => p.namespaces.includes('user') || p.namespaces.includes('pid') },
    violations: (r) => gotThrough(r, 'namespaces', ['ptrace_attach_parent', 'process_vm_readv_parent', 'proc_parent_mem', 'proc_parent_fd_open', 'pidfd_getfd_parent']),
  },
  {
    name: 'cannot_see_or_signal_the_parent_without_any_filter',
    needs: hasNs('pid', 'mount'),
    violations: (r) => [...gotThrough(r, 'namespaces', ['proc_parent_fd_list', 'signal_parent']), ...(r.self?.pid === 1 ? [] : [`its pid is ${r.self?.pid}, not 1`])],
  },
  {
    name: 'cannot_reach_host_loopback_or_abstract_sockets_without_any_filter',
    needs: hasNs('net'),
    violations: (r) => [...gotThrough(r, 'namespaces', ['tcp_connect_host_loopback', 'abstract_unix_connect']),
      ...(r.tcpConnections + r.abstractConnections === 0 ? [] : [`${r.tcpConnections + r.abstractConnections} connections arrived`])],
  },
  {
    name: 'cannot_mount_without_any_filter_having_no_capabilities',
    needs: { what: 'capability drop', holds: (p) => p.dropCaps },
    violations: (r) => gotThrough(r, 'namespaces', ['mount_tmpfs']),
  },
  {
    name: 'the_start_filter_refuses_what_reaches_beyond_the_process',
    violations: (r) => [
      ...(r.seccompUnavailable ? ['seccomp unavailable'] : []),
      ...gotThrough(r, 'start', r.attempts.filter((a) => a.phase === 'start').map((a) => a.name)),
      // Answers only the filter gives: without it the kernel would have run these or said otherwise.
      ...notAnswered(r, 'start', ['x32_syscall', 'personality', 'keyctl', 'setns', 'tiocsti_inject_input', 'pidfd_open_self', 'execve'], 'EPERM'),
      ...notAnswered(r, 'start', ['clone3'], 'ENOSYS'),
    ],
  },
  {
    name: 'the_sealed_filter_refuses_new_files_paths_and_sockets',
    violations: (r) => [...gotThrough(r, 'sealed', ['host_file_write', 'open_read', 'socket_unix', 'mkdir', 'unlink']), ...(r.hostFileIntact ? [] : ['the host file changed'])],
  },
];

/** Every check that applies to the run's plan, and the names (with what they need) of those that do not. */
export function judge(r: EscapeRun): { violations: string[]; unchecked: string[] } {
  const applies = (c: EscapeCheck): boolean => c.needs === undefined || c.needs.holds(r.plan);
  return {
    violations: ESCAPE_CHECKS.filter(applies).flatMap((c) => c.violations(r).map((v) => `${c.name}: ${v}`)),
    unchecked: ESCAPE_CHECKS.filter((c) => !applies(c)).map((c) => `${c.name} (needs ${c.needs?.what ?? ''})`),
  };
}

function findNode(pid: number, node: string): number | undefined {
  try {
    if (readlinkSync(`/proc/${pid}/exe`) === node) return pid;
  } catch {
    return undefined;
  }
  for (const child of childrenOf(pid)) {
    const found = findNode(child, node);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * The host pid of the node process the sandbox runs under the spawned pid: that pid itself, or
 * with a PID namespace the child of `unshare --fork`, once it has exec'ed node.
 */
export async function nodePidUnder(spawned: number, timeoutMs = 5_000): Promise<number> {
  const node = realpathSync(process.execPath);
  for (const deadline = Date.now() + timeoutMs; ;) {
    const found = findNode(spawned, node);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`no ${node} process under pid ${spawned} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  runEscapeAttempts().then((r) => {
    process.stdout.write(`SANDBOX-ESCAPE ${JSON.stringify(r)}\n`);
    process.exit(0);
  }, (e: unknown) => {
    process.stderr.write(`sandbox-escape: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
