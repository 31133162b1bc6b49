import { describe, expect, it } from 'vitest';
import { KvmError } from './index.js';
import { hardwareVirtFlag, probeKvm, type ProbeDeps, type TinyGuestResult } from './probe.js';
import { TINY_GUEST_BYTES, TINY_GUEST_PORT } from './tiny-guest.js';

const CPUINFO_SVM = 'processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu vme de pse tsc msr pae svm lm\n\n';
const CPUINFO_NONE = 'processor\t: 0\nflags\t\t: fpu vme de pse tsc msr pae hypervisor lm\n';
const GOOD_RUN: TinyGuestResult = {
  exits: [...TINY_GUEST_BYTES.map((b) => ({ reason: 'IO', port: TINY_GUEST_PORT, size: 1, data: [b] })), { reason: 'HLT' }],
  elapsedMs: 12, timedOut: false,
};

function deps(over: Partial<ProbeDeps> = {}): ProbeDeps & { guestRuns: number } {
  const d = {
    guestRuns: 0,
    exists: () => true,
    apiVersion: () => 12,
    cpuinfo: () => CPUINFO_SVM,
    runGuest: async () => { d.guestRuns++; return GOOD_RUN; },
    ...over,
  };
  return d;
}

describe('probeKvm', () => {
  it('says_usable_when_the_tiny_guest_writes_its_bytes_and_halts', async () => {
    // Act
    const r = await probeKvm({ deps: deps() });
    // Assert
    expect(r.usable).toBe(true);
    expect(r.reason).toMatch(/^svm: .*halted in 12 ms/);
  });

  it('reports_a_missing_dev_kvm', async () => {
    // Act
    const r = await probeKvm({ deps: deps({ exists: () => false }) });
    // Assert
    expect(r).toEqual({ usable: false, reason: expect.stringContaining('/dev/kvm does not exist') });
  });

  it('reports_why_dev_kvm_does_not_open', async () => {
    // Arrange
    const d = deps({ apiVersion: () => { throw new KvmError('OPEN', 'cannot open /dev/kvm: open: EACCES (13)'); } });
    // Act
    const r = await probeKvm({ deps: d });
    // Assert
    expect(r).toEqual({ usable: false, reason: 'cannot open /dev/kvm: open: EACCES (13)' });
    expect(d.guestRuns).toBe(0);
  });

  it('refuses_a_kvm_without_vmx_or_svm_before_running_a_guest', async () => {
    // Arrange
    const d = deps({ cpuinfo: () => CPUINFO_NONE });
    // Act
    const r = await probeKvm({ deps: d });
    // Assert
    expect(r.usable).toBe(false);
    expect(r.reason).toContain('neither vmx nor svm');
    expect(d.guestRuns).toBe(0);
  });

  it('refuses_when_the_guest_misses_the_deadline', async () => {
    // Arrange
    const d = deps({ runGuest: async () => ({ ...GOOD_RUN, exits: GOOD_RUN.exits.slice(0, 2).concat({ reason: 'INTR' }), timedOut: true }) });
    // Act
    const r = await probeKvm({ deps: d, deadlineMs: 5000 });
    // Assert
    expect(r.usable).toBe(false);
    expect(r.reason).toContain('did not halt within 5000 ms');
  });

  it('refuses_when_the_guest_is_slower_than_the_deadline', async () => {
    // Act
    const r = await probeKvm({ deps: deps({ runGuest: async () => ({ ...GOOD_RUN, elapsedMs: 1500 }) }) });
    // Assert
    expect(r).toMatchObject({ usable: false, reason: expect.stringContaining('1500 ms') });
  });

  it('refuses_when_the_guest_writes_wrong_bytes', async () => {
    // Arrange
    const exits = GOOD_RUN.exits.map((e) => (e.reason === 'IO' ? { ...e, data: [0x00] } : e));
    // Act
    const r = await probeKvm({ deps: deps({ runGuest: async () => ({ ...GOOD_RUN, exits }) }) });
    // Assert
    expect(r).toMatchObject({ usable: false, reason: expect.stringContaining('misbehaved') });
  });

  it('reports_a_guest_run_that_throws', async () => {
    // Act
    const r = await probeKvm({ deps: deps({ runGuest: () => Promise.reject(new KvmError('IOCTL', 'KVM_SET_SREGS: ioctl: EINVAL (22)')) }) });
    // Assert
    expect(r).toEqual({ usable: false, reason: 'tiny guest failed: KVM_SET_SREGS: ioctl: EINVAL (22)' });
  });

  it('passes_the_deadline_through_to_the_guest_run', async () => {
    // Arrange
    let seen: number | undefined;
    // Act
    await probeKvm({ deadlineMs: 30_000, deps: deps({ runGuest: async (o) => { seen = o.deadlineMs; return GOOD_RUN; } }) });
    // Assert
    expect(seen).toBe(30_000);
  });
});

describe('hardwareVirtFlag', () => {
  it('finds_svm_or_vmx_only_as_whole_flags', () => {
    // Act / Assert
    expect(hardwareVirtFlag(CPUINFO_SVM)).toBe('svm');
    expect(hardwareVirtFlag('flags\t: fpu vmx sse\n')).toBe('vmx');
    expect(hardwareVirtFlag('flags\t: fpu svm_lock vmxnope\n')).toBeNull();
    expect(hardwareVirtFlag(CPUINFO_NONE)).toBeNull();
  });
});
