import { describe, expect, test } from 'vitest';
import { digestError } from './failure-digest.js';

describe('failure digest', () => {
  test('a_test_host_error_brings_its_code_the_last_diagnostic_output_lines_the_kernel_tail_the_last_heartbeat_and_qemus_threads', () => {
    const lines = digestError({
      name: 'TestHostError', code: 'TIMEOUT', message: 'command did not finish within 330 s\nsecond line',
      output: 'boot noise\nmicrohv: guest reset (triple fault on vCPU 0)\n\nplain words\nrun-exit=137\n',
      kernelLogTail: 'k1\nk2\nk3\nwatchdog: BUG: soft lockup - CPU#1 stuck for 80s!\n',
      heartbeatTail: 'beat 300.1 load 2.00 2/99 R 81(node)\nbeat 305.1 load 2.00 1/99 D 90(node)@io_schedule',
      qemuThreads: ['CPU 0/TCG R 99%', 'CPU 1/TCG S 0% futex_wait_queue', 'qemu-system-x86 S 0% do_sys_poll', 'worker S 0%', 'call_rcu S 0%'],
    });
    expect(lines).toEqual([
      '  TestHostError TIMEOUT: command did not finish within 330 s',
      '    output | microhv: guest reset (triple fault on vCPU 0)',
      '    output | run-exit=137',
      '    kernel | k2',
      '    kernel | k3',
      '    kernel | watchdog: BUG: soft lockup - CPU#1 stuck for 80s!',
      '    beat   | beat 305.1 load 2.00 1/99 D 90(node)@io_schedule',
      '    qemu   | CPU 0/TCG R 99%',
      '    qemu   | CPU 1/TCG S 0% futex_wait_queue',
      '    qemu   | qemu-system-x86 S 0% do_sys_poll',
      '    qemu   | worker S 0%',
    ]);
  });

  test('a_failed_expectation_brings_the_last_diagnostic_lines_of_the_value_it_checked_each_cut_to_200', () => {
    const long = `microhv: ${'x'.repeat(300)}`;
    const lines = digestError({ name: 'AssertionError', message: "expected '…' to contain 'run-exit=0'", actual: `a\nb\n${long}\nrun-exit=1\nkvm-trace: kvm_exit: vcpu 0 reason shutdown rip 0x1` });
    expect(lines[0]).toBe("  AssertionError: expected '…' to contain 'run-exit=0'");
    expect(lines.slice(1).map((l) => l.slice(0, 13))).toEqual(['    actual | ', '    actual | ', '    actual | ']);
    expect(lines[1]?.length).toBe('    actual | '.length + 200);
    expect(lines[1]?.endsWith('…')).toBe(true);
    expect(lines[2]).toBe('    actual | run-exit=1');
    // A guest's last KVM exits before a triple fault (the block host test's kvm-trace lines) are kept.
    expect(lines[3]).toBe('    actual | kvm-trace: kvm_exit: vcpu 0 reason shutdown rip 0x1');
  });
});
