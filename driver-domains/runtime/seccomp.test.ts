import { describe, expect, test } from 'vitest';
import {
  AUDIT_ARCH_X86_64, NR, SEALED_DENIED, SECCOMP_RET, START_DENIED, URING_CALLS, X32_SYSCALL_BIT, compile, sealedRules, startRules, uringRules,
  type Rule, type SyscallName,
} from './seccomp.js';
import { runSeccomp } from './testing.js';

const PID = 4242;
const EPERM = SECCOMP_RET.ERRNO | 1;
const ENOSYS = SECCOMP_RET.ERRNO | 38;
const start = compile(startRules(PID), { kind: 'allow' });
const sealed = compile(sealedRules(), { kind: 'allow' });
const call = (program: Uint8Array, name: SyscallName, ...args: bigint[]): number => runSeccomp(program, { nr: NR[name], args });

// Calls a serving Node process makes all the time; neither stage may touch them.
const EVERYDAY: readonly SyscallName[] = ['read', 'write', 'close', 'accept4', 'prctl', 'seccomp'];
const CLONE_THREAD_FLAGS = 0x003d0f00n; // what glibc's pthread_create passes: VM, FS, FILES, SIGHAND, THREAD, SYSVSEM, SETTLS, PARENT/CHILD_SETTID

describe('seccomp start filter', () => {
  test('denies_every_listed_call_with_eperm', () => {
    const answers = START_DENIED.map((name) => [name, call(start, name)]);
    expect(answers).toEqual(START_DENIED.map((name) => [name, EPERM]));
  });

  test('denies_the_calls_the_sandbox_brief_names', () => {
    const named: SyscallName[] = ['ptrace', 'process_vm_readv', 'process_vm_writev', 'kexec_load', 'kexec_file_load', 'init_module',
      'finit_module', 'delete_module', 'mount', 'umount2', 'pivot_root', 'chroot', 'bpf', 'perf_event_open', 'keyctl', 'add_key',
      'request_key', 'open_by_handle_at', 'setns', 'unshare', 'reboot', 'swapon', 'swapoff', 'iopl', 'ioperm', 'personality'];
    expect(named.filter((n) => call(start, n) !== EPERM)).toEqual([]);
  });

  test('allows_calls_not_listed', () => {
    expect(EVERYDAY.map((n) => call(start, n))).toEqual(EVERYDAY.map(() => SECCOMP_RET.ALLOW));
    expect(call(start, 'openat')).toBe(SECCOMP_RET.ALLOW);
  });

  test('kills_the_process_for_a_foreign_architecture', () => {
    // AUDIT_ARCH_I386 (int 0x80): its call numbers mean other calls, so no rule could be trusted.
    expect(runSeccomp(start, { nr: NR.read, arch: 0x4000_0003 })).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(runSeccomp(start, { nr: NR.ptrace, arch: 0x4000_0003 })).toBe(SECCOMP_RET.KILL_PROCESS);
  });

  test('denies_x32_calls_even_harmless_ones', () => {
    expect(runSeccomp(start, { nr: X32_SYSCALL_BIT | NR.read, arch: AUDIT_ARCH_X86_64 })).toBe(EPERM);
    expect(runSeccomp(start, { nr: 0xffff_ffff })).toBe(EPERM);
  });

  test('allows_a_thread_but_denies_fork_and_namespace_clones', () => {
    expect(call(start, 'clone', CLONE_THREAD_FLAGS)).toBe(SECCOMP_RET.ALLOW);
    expect(call(start, 'clone', 17n)).toBe(EPERM); // SIGCHLD only: fork
    expect(call(start, 'clone', CLONE_THREAD_FLAGS | 0x1000_0000n)).toBe(EPERM); // + CLONE_NEWUSER
    expect(call(start, 'clone', CLONE_THREAD_FLAGS | 0x4000_0000n)).toBe(EPERM); // + CLONE_NEWNET
    expect(call(start, 'fork')).toBe(EPERM);
    expect(call(start, 'vfork')).toBe(EPERM);
  });

  test('answers_clone3_with_enosys_so_glibc_falls_back_to_clone', () => {
    expect(call(start, 'clone3')).toBe(ENOSYS);
  });

  test('signals_reach_only_the_own_process', () => {
    expect(call(start, 'kill', BigInt(PID), 0n)).toBe(SECCOMP_RET.ALLOW);
    expect(call(start, 'tgkill', BigInt(PID), 4243n, 6n)).toBe(SECCOMP_RET.ALLOW);
    expect(call(start, 'kill', 1n, 9n)).toBe(EPERM);
    expect(call(start, 'kill', 0xffff_ffffn, 9n)).toBe(EPERM); // kill(-1): every process the uid may signal
    expect(call(start, 'kill', 0n, 9n)).toBe(EPERM); // the process group
    expect(call(start, 'tgkill', 1n, 1n, 9n)).toBe(EPERM);
    expect(call(start, 'rt_sigqueueinfo', 1n)).toBe(EPERM);
    expect(call(start, 'rt_tgsigqueueinfo', 1n)).toBe(EPERM);
    expect(call(start, 'tkill', BigInt(PID))).toBe(EPERM);
  });

  test('denies_terminal_input_injection_but_not_other_ioctls', () => {
    expect(call(start, 'ioctl', 2n, 0x5412n)).toBe(EPERM); // TIOCSTI
    expect(call(start, 'ioctl', 2n, 0x541cn)).toBe(EPERM); // TIOCLINUX
    expect(call(start, 'ioctl', 3n, 0x5401n)).toBe(SECCOMP_RET.ALLOW); // TCGETS
  });

  test('tests_only_the_low_half_of_an_int_argument', () => {
    // The kernel reads kill's pid as an int: high bits in the register do not make it another pid.
    expect(call(start, 'kill', (0xdead_beefn << 32n) | BigInt(PID), 0n)).toBe(SECCOMP_RET.ALLOW);
    expect(call(start, 'kill', (BigInt(PID) << 32n) | 1n, 0n)).toBe(EPERM);
  });
});

describe('seccomp io_uring rules', () => {
  const RING = 9;
  const IORING_ENTER_GETEVENTS = 1n;
  const IORING_ENTER_REGISTERED_RING = 16n;

  test('the_start_filter_refuses_io_uring_unless_the_domain_asks_for_it', () => {
    const withUring = compile(startRules(PID, { ioUring: true }), { kind: 'allow' });
    expect(URING_CALLS.map((n) => call(start, n))).toEqual([EPERM, EPERM, EPERM]);
    expect(URING_CALLS.map((n) => call(withUring, n))).toEqual(URING_CALLS.map(() => SECCOMP_RET.ALLOW));
    // Everything else stays as it was.
    expect(START_DENIED.filter((n) => !(URING_CALLS as readonly SyscallName[]).includes(n) && call(withUring, n) !== EPERM)).toEqual([]);
  });

  test('sealed_keeps_only_io_uring_enter_on_the_domains_own_ring', () => {
    const p = compile([...sealedRules(), ...uringRules(RING)], { kind: 'allow' });
    expect(call(p, 'io_uring_enter', BigInt(RING), 4n, 0n, 0n)).toBe(SECCOMP_RET.ALLOW);
    expect(call(p, 'io_uring_enter', BigInt(RING), 0n, 0n, IORING_ENTER_GETEVENTS)).toBe(SECCOMP_RET.ALLOW);
    expect(call(p, 'io_uring_enter', BigInt(RING + 1), 4n, 0n, 0n)).toBe(EPERM); // another ring
    expect(call(p, 'io_uring_enter', BigInt(RING), 4n, 0n, IORING_ENTER_REGISTERED_RING)).toBe(EPERM); // fd read as a registered-ring index
    expect(call(p, 'io_uring_setup', 8n, 0n)).toBe(EPERM);
    expect(call(p, 'io_uring_register', BigInt(RING), 2n, 0n, 1n)).toBe(EPERM);
    expect(call(p, 'openat')).toBe(EPERM);
  });

  test('sealed_without_a_ring_refuses_every_io_uring_call', () => {
    const p = compile([...sealedRules(), ...uringRules(undefined)], { kind: 'allow' });
    expect(URING_CALLS.map((n) => call(p, n, BigInt(RING)))).toEqual([EPERM, EPERM, EPERM]);
  });

  test('other_domains_sealed_filter_has_no_io_uring_rule_of_its_own', () => {
    // Their START refuses io_uring for good; SEALED is unchanged for them.
    expect(sealedRules().some((r) => (URING_CALLS as readonly SyscallName[]).includes(r.name))).toBe(false);
  });
});

describe('seccomp sealed filter', () => {
  test('denies_new_files_paths_and_sockets', () => {
    expect(SEALED_DENIED.filter((n) => call(sealed, n) !== EPERM)).toEqual([]);
    expect(['open', 'openat', 'openat2', 'socket', 'connect', 'bind', 'unlink', 'mkdir'].every((n) => SEALED_DENIED.includes(n as SyscallName))).toBe(true);
  });

  test('allows_work_on_fds_already_held', () => {
    expect(EVERYDAY.map((n) => call(sealed, n))).toEqual(EVERYDAY.map(() => SECCOMP_RET.ALLOW));
  });

  test('keeps_the_architecture_check', () => {
    expect(runSeccomp(sealed, { nr: NR.read, arch: 0x4000_0003 })).toBe(SECCOMP_RET.KILL_PROCESS);
  });
});

describe('seccomp compiler', () => {
  test('uses_the_fallback_for_a_call_no_rule_names', () => {
    const p = compile([{ name: 'ptrace', action: { kind: 'allow' } }], { kind: 'errno', errno: 13 });
    expect(call(p, 'read')).toBe(SECCOMP_RET.ERRNO | 13);
    expect(call(p, 'ptrace')).toBe(SECCOMP_RET.ALLOW);
  });

  test('the_first_matching_rule_decides', () => {
    const rules: Rule[] = [
      { name: 'kill', action: { kind: 'kill' }, when: { arg: 1, op: 'eq', value: 9 } },
      { name: 'kill', action: { kind: 'errno', errno: 1 } },
    ];
    const p = compile(rules, { kind: 'allow' });
    expect(call(p, 'kill', 5n, 9n)).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(call(p, 'kill', 5n, 15n)).toBe(EPERM);
  });

  test('an_argument_test_on_one_call_leaves_the_next_rules_working', () => {
    // After a failed argument test the accumulator must hold nr again.
    const p = compile([{ name: 'ioctl', action: { kind: 'errno', errno: 1 }, when: { arg: 1, op: 'eq', value: 7 } }, { name: 'read', action: { kind: 'errno', errno: 2 } }], { kind: 'allow' });
    expect(call(p, 'ioctl', 0n, 8n)).toBe(SECCOMP_RET.ALLOW);
    expect(call(p, 'read')).toBe(SECCOMP_RET.ERRNO | 2);
  });

  test('rejects_an_argument_value_that_is_not_a_u32', () => {
    expect(() => compile([{ name: 'kill', action: { kind: 'allow' }, when: { arg: 0, op: 'eq', value: -1 } }], { kind: 'allow' })).toThrow(/BAD_RULE/);
    expect(() => compile([{ name: 'kill', action: { kind: 'allow' }, when: { arg: 0, op: 'eq', value: 2 ** 32 } }], { kind: 'allow' })).toThrow(/BAD_RULE/);
  });

  test('every_program_ends_in_a_return_and_fits_the_kernel_limit', () => {
    for (const p of [start, sealed]) {
      expect(p.byteLength % 8).toBe(0);
      expect(p.byteLength / 8).toBeLessThanOrEqual(4096);
      expect(p[p.byteLength - 8]).toBe(0x06); // BPF_RET | BPF_K
    }
  });
});
