// Which test-host endings count as the emulated machine resetting itself (run once more) and
// which are real failures of the command or of the test host's kernel (reported as they are).
import { describe, expect, test } from 'vitest';
import { TestHostError, spontaneousReset } from './testhost.js';

function ended(code: 'NO_EXIT_STATUS' | 'TIMEOUT', qemuExit: number | null, klog: string): TestHostError {
  const e = new TestHostError(code, 'test host ended', klog);
  e.qemuExit = qemuExit;
  return e;
}

describe('spontaneousReset', () => {
  test('a_qemu_exit_0_with_no_status_and_a_quiet_kernel_log_is_a_reset', () => {
    expect(spontaneousReset(ended('NO_EXIT_STATUS', 0, '[ 15.1] kvm [128]: vcpu0, guest rIP: 0x0 Unhandled WRMSR(0xc0010007) = 0xffff'))).toBe(true);
  });

  test('a_kernel_panic_or_oops_before_the_end_is_not', () => {
    expect(spontaneousReset(ended('NO_EXIT_STATUS', 0, 'Kernel panic - not syncing: Attempted to kill init!'))).toBe(false);
    expect(spontaneousReset(ended('NO_EXIT_STATUS', 0, 'BUG: kernel NULL pointer dereference'))).toBe(false);
  });

  test('a_qemu_that_failed_or_was_killed_and_a_timeout_are_not', () => {
    expect(spontaneousReset(ended('NO_EXIT_STATUS', 1, ''))).toBe(false);
    expect(spontaneousReset(ended('NO_EXIT_STATUS', null, ''))).toBe(false);
    expect(spontaneousReset(ended('TIMEOUT', 0, ''))).toBe(false);
    expect(spontaneousReset(new Error('other'))).toBe(false);
  });
});
