// The domain sandbox (microhv/domains/sandbox.ts, driver-domains/runtime/seccomp.ts) against a
// hostile domain: tests/support/escape-attempts.ts, started through the same spawn path the
// supervisor uses, tries to reach its parent's memory and fds, the network, files and the kernel.
// What needs a namespace this machine refuses is skipped here by name; tests/sandbox.host.test.ts
// runs the same attempts inside the test host. Then supervision through the sandbox: kill -9 of
// the domain process itself is seen as its death, and a kill through the pidfd ends it.
import { readFileSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, test } from 'vitest';
import { Reactor } from '../../idl/control/reactor.js';
import { probeSandbox, type Namespace, type SandboxPlan } from '../../microhv/domains/sandbox.js';
import { DomainSupervisor } from '../../microhv/domains/supervisor.js';
import { nodePidUnder, runEscapeAttempts, type EscapeRun } from '../support/sandbox-escape.js';
import type { Attempt, Phase } from '../support/escape-attempts.js';

// Probed when the file is collected, so that what this machine refuses names the skipped tests.
const plan: SandboxPlan = probeSandbox();
const has = (...ns: Namespace[]): boolean => ns.every((n) => plan.namespaces.includes(n));
const elsewhere = (what: string): string => `${what} (not available here: ${plan.summary}; checked in tests/sandbox.host.test.ts)`;

let run: EscapeRun;
beforeAll(async () => { run = await runEscapeAttempts({ plan }); }, 60_000);

const attempt = (phase: Phase, name: string): Attempt => {
  const a = run.attempts.find((x) => x.phase === phase && x.name === name);
  if (a === undefined) throw new Error(`no ${phase}/${name} attempt in the report; stderr: ${run.stderr}`);
  return a;
};
const escaped = (phase: Phase, names: string[]): string[] => names.filter((n) => attempt(phase, n).escaped).map((n) => `${n}: ${attempt(phase, n).detail}`);

describe('sandbox: escape attempts', () => {
  test('every_attempt_ran_to_the_end', () => {
    expect(run.stderr).toBe('');
    expect(run.done).toBe(true);
    expect(run.exitCode).toBe(0);
  });

  test('the_domain_lives_in_every_namespace_the_plan_names', () => {
    const procName: Record<Namespace, string> = { user: 'user', mount: 'mnt', net: 'net', ipc: 'ipc', pid: 'pid' };
    expect(run.newNamespaces.sort()).toEqual(plan.namespaces.map((n) => procName[n]).sort());
  });

  test('the_domain_holds_no_fd_beyond_stdio_and_its_control_socket', () => {
    const fds = run.self?.fds ?? [];
    expect(fds.find((f) => f.fd === 3)?.target).toMatch(/^socket:/);
    // Above fd 3 only what Node opened itself at start-up (the readdir handle may show as gone).
    const foreign = fds.filter((f) => f.fd > 3 && !/^(anon_inode:\[(eventpoll|eventfd)\]|pipe:\[\d+\]|\(gone\))$/.test(f.target));
    expect(foreign).toEqual([]);
  });

  test.skipIf(!has('user') && !has('pid'))(has('user') || has('pid') ? 'cannot_read_or_take_the_parents_memory_or_fds_without_any_filter'
    : elsewhere('cannot_read_or_take_the_parents_memory_or_fds_without_any_filter'), () => {
    expect(escaped('namespaces', ['ptrace_attach_parent', 'process_vm_readv_parent', 'proc_parent_mem', 'proc_parent_fd_open', 'pidfd_getfd_parent'])).toEqual([]);
  });

  test.skipIf(!has('pid', 'mount'))(has('pid', 'mount') ? 'cannot_see_or_signal_the_parent_without_any_filter'
    : elsewhere('cannot_see_or_signal_the_parent_without_any_filter'), () => {
    expect(escaped('namespaces', ['proc_parent_fd_list', 'signal_parent'])).toEqual([]);
    expect(run.self?.pid).toBe(1);
  });

  test.skipIf(!has('net'))(has('net') ? 'cannot_reach_host_loopback_or_abstract_sockets_without_any_filter'
    : elsewhere('cannot_reach_host_loopback_or_abstract_sockets_without_any_filter'), () => {
    expect(escaped('namespaces', ['tcp_connect_host_loopback', 'abstract_unix_connect'])).toEqual([]);
    expect(attempt('namespaces', 'tcp_connect_host_loopback').detail).toBe('ENETUNREACH');
    expect([run.tcpConnections, run.abstractConnections]).toEqual([0, 0]);
  });

  test.skipIf(!plan.dropCaps)(plan.dropCaps ? 'cannot_mount_without_any_filter_having_no_capabilities'
    : elsewhere('cannot_mount_without_any_filter_having_no_capabilities'), () => {
    expect(escaped('namespaces', ['mount_tmpfs'])).toEqual([]);
  });

  test('the_start_filter_refuses_what_reaches_beyond_the_process', () => {
    expect(run.seccompUnavailable).toBe(false);
    expect(escaped('start', run.attempts.filter((a) => a.phase === 'start').map((a) => a.name))).toEqual([]);
    // Answers only the filter gives: the kernel itself would have run these or said otherwise.
    for (const n of ['x32_syscall', 'personality', 'keyctl', 'setns', 'tiocsti_inject_input', 'pidfd_open_self', 'execve']) expect([n, attempt('start', n).detail]).toEqual([n, 'EPERM']);
    expect(attempt('start', 'clone3').detail).toBe('ENOSYS');
  });

  test('the_sealed_filter_refuses_new_files_paths_and_sockets', () => {
    expect(escaped('sealed', ['host_file_write', 'open_read', 'socket_unix', 'mkdir', 'unlink'])).toEqual([]);
    expect(run.hostFileIntact).toBe(true);
  });
});

describe('sandbox: the attempts detect an escape', () => {
  test('without_the_sandbox_the_same_attempts_reach_the_parent_and_the_network', async () => {
    const control = await runEscapeAttempts({ plan, sandboxed: false });
    expect(control.done).toBe(true);
    expect(control.newNamespaces).toEqual([]);
    // Same uid, no namespace: the parent's fds open through /proc and both listeners answer.
    expect(control.attempts.filter((a) => a.phase === 'namespaces' && a.escaped).map((a) => a.name)).toEqual(expect.arrayContaining(['proc_parent_fd_open', 'tcp_connect_host_loopback', 'abstract_unix_connect']));
    expect([control.tcpConnections, control.abstractConnections]).toEqual([1, 1]);
  }, 60_000);
});

describe('sandbox: supervision', () => {
  let reactor: Reactor | undefined;
  afterEach(async () => { await reactor?.stop(); reactor = undefined; });
  const policy = { initialBackoffMs: 5, maxBackoffMs: 40, maxRestarts: 5, windowMs: 60_000, hungAfterMs: 10_000, heartbeatMs: 1_000, stableAfterMs: 60_000 };
  const sleeper = ['-e', 'setTimeout(() => {}, 60000)'];

  test('kill_9_of_the_domain_process_itself_is_seen_as_its_death', async () => {
    reactor = new Reactor();
    const sup = new DomainSupervisor(reactor, 'sleeper', sleeper, policy);
    const spawned: number[] = [];
    const first = new Promise<number>((r) => sup.once('spawned', (_g, _fd, pid) => r(pid)));
    sup.on('spawned', (_g, _fd, pid) => spawned.push(pid));
    const died = new Promise<string>((r) => sup.once('died', (_g, why) => r(why)));
    sup.start();
    const node = await nodePidUnder(await first);
    process.kill(node, 'SIGKILL');
    expect(await died).toBe('exited');
    for (let i = 0; i < 200 && spawned.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(spawned).toHaveLength(2);
    sup.stop();
  });

  test('a_kill_through_the_pidfd_ends_the_domain_process_inside_the_sandbox', async () => {
    reactor = new Reactor();
    const sup = new DomainSupervisor(reactor, 'sleeper', sleeper, policy);
    const first = new Promise<number>((r) => sup.once('spawned', (_g, _fd, pid) => r(pid)));
    const died = new Promise<void>((r) => sup.once('died', () => r()));
    sup.start();
    const node = await nodePidUnder(await first);
    sup.stop();
    await died;
    // Gone, or a zombie waiting for whoever inherited it.
    const alive = (): boolean => { try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${node}/stat`, 'utf8')); } catch { return false; } };
    for (let i = 0; i < 200 && alive(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(alive()).toBe(false);
  });
});
