// Which test-host endings are the emulated machine's own fault (run once more) and which are
// real failures of the command or of the test host's kernel (reported as they are).
import { describe, expect, test } from 'vitest';
import { LOCKUP_S, TestHostError, heartbeatLines, longestLockup, testHostFault, type TestHostErrorCode } from './testhost.js';

function ended(code: TestHostErrorCode, qemuExit: number | null, klog: string): TestHostError {
  const e = new TestHostError(code, 'test host ended', klog);
  e.qemuExit = qemuExit;
  return e;
}

describe('testHostFault', () => {
  test('a_qemu_exit_0_with_no_status_and_a_quiet_kernel_log_is_a_reset_mid_command', () => {
    expect(testHostFault(ended('NO_EXIT_STATUS', 0, '[ 15.1] kvm [128]: vcpu0, guest rIP: 0x0 Unhandled WRMSR(0xc0010007) = 0xffff'))).toMatch(/reset itself mid-command/);
  });

  test('a_kernel_panic_or_oops_before_the_end_of_a_command_is_not', () => {
    expect(testHostFault(ended('NO_EXIT_STATUS', 0, 'Kernel panic - not syncing: Attempted to kill init!'))).toBeUndefined();
    expect(testHostFault(ended('NO_EXIT_STATUS', 0, 'BUG: kernel NULL pointer dereference'))).toBeUndefined();
  });

  test('a_boot_that_hung_or_reset_is_one_whatever_the_kernel_logged', () => {
    expect(testHostFault(ended('BOOT_TIMEOUT', null, ''))).toMatch(/hung while booting/);
    expect(testHostFault(ended('BOOT_TIMEOUT', null, 'watchdog: BUG: soft lockup - CPU#1 stuck for 44s!'))).toMatch(/hung while booting/);
    expect(testHostFault(ended('QEMU_FAILED', 0, ''))).toMatch(/reset itself while booting/);
  });

  test('a_cpu_locked_up_for_minutes_is_one_and_the_longest_report_is_what_counts', () => {
    expect(testHostFault(ended('LOCKUP', null, 'watchdog: BUG: soft lockup - CPU#1 stuck for 78s! [node:2151]'))).toMatch(/locked up/);
    const log = '[ 268.65] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [node:2151]\n[ 296.65] watchdog: BUG: soft lockup - CPU#1 stuck for 52s! [node:2151]\n';
    expect(longestLockup(log)).toBe(52);
    expect(longestLockup(log)).toBeLessThan(LOCKUP_S);
    expect(longestLockup(`${log}[ 324.65] watchdog: BUG: soft lockup - CPU#0 stuck for 78s! [qemu-system-x86:99]`)).toBe(78);
    expect(longestLockup('[ 15.1] kvm [128]: vcpu0, guest rIP: 0x0 Unhandled WRMSR(0xc0010007) = 0xffff')).toBe(0);
  });

  test('a_machine_whose_heartbeat_stopped_is_one_and_only_beat_lines_count_as_beats', () => {
    expect(testHostFault(ended('FROZEN', null, ''))).toMatch(/froze/);
    expect(heartbeatLines('beat 12.50 load 1.93 3/120 R 812(node) \r\nbeat 17.51 load 2.01 1/119 D 830(node)@io_schedule \r\nbea')).toEqual([
      'beat 12.50 load 1.93 3/120 R 812(node) ', 'beat 17.51 load 2.01 1/119 D 830(node)@io_schedule ']);
    expect(heartbeatLines('\n\r\nsomething beat 1\n')).toEqual([]);
  });

  test('a_qemu_that_failed_or_was_killed_and_a_timeout_are_not', () => {
    expect(testHostFault(ended('NO_EXIT_STATUS', 1, ''))).toBeUndefined();
    expect(testHostFault(ended('NO_EXIT_STATUS', null, ''))).toBeUndefined();
    expect(testHostFault(ended('QEMU_FAILED', 1, 'qemu: could not open kernel'))).toBeUndefined();
    expect(testHostFault(ended('QEMU_FAILED', null, ''))).toBeUndefined();
    expect(testHostFault(ended('TIMEOUT', 0, ''))).toBeUndefined();
    expect(testHostFault(ended('MISSING_TOOL', null, ''))).toBeUndefined();
    expect(testHostFault(new Error('other'))).toBeUndefined();
  });
});
