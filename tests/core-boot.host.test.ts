// The microhv core boots Debian's stock cloud kernel on real KVM inside the
// test host: memory, boot plan, CPUID and vCPU threads are the core's own.
// No device domain exists yet, so the test reads the guest's kernel log out
// of guest memory instead of a console.
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost } from '../testhost/testhost.js';

let image: TestHostImage;
beforeAll(() => { image = buildTestHost(); });

const bringup = (vcpus: number, until: string, cmdline?: string): string =>
  `timeout -s KILL 200 node dist/tests/support/boot-bringup.js /opt/microhv/.cache/guest 180 ${vcpus} '${until}'${cmdline ? ` '${cmdline}'` : ''}`;

describe('microhv core boots a stock kernel', () => {
  test('boots_to_init_with_one_vcpu_and_two', async () => {
    const r = await runInTestHost({ image, command: `${bringup(1, 'Run /init as init process')}; echo one-exit=$?; ${bringup(2, 'Run /init as init process')}; echo two-exit=$?`, timeoutMs: 400_000 });
    const [one = '', two = ''] = r.output.split(/one-exit=\d+/);
    expect(r.output).toContain('one-exit=0');
    expect(r.output).toContain('two-exit=0');
    expect(one).toContain('bringup: found "Run /init as init process"');
    expect(one).toMatch(/klog: Linux version 6\.\d+\.\d+/);
    expect(one).toContain('klog: smpboot: Allowing 1 CPUs');
    expect(two).toContain('bringup: found "Run /init as init process"');
    expect(two).toContain('klog: smp: Brought up 1 node, 2 CPUs');
    expect(r.output).not.toContain('bringup: failed');
  });

  test('console_and_interrupts_through_the_stub_modules_take_the_guest_to_init_output_and_power_off', async () => {
    const r = await runInTestHost({
      image,
      command: `BRINGUP_KLOG=0 BRINGUP_PLATFORM=/opt/microhv/build/driver-domains ${bringup(1, 'reboot: Power down', 'console=ttyS0 nokaslr panic=-1 microhv.scenario=hello')}; echo exit=$?`,
      timeoutMs: 300_000,
    });
    expect(r.output).toContain('exit=0');
    // Timestamped console lines come only from the 16550 model's transmit path (the kernel log in memory has no timestamps).
    expect(r.output).toMatch(/^\[\s*\d+\.\d+\] Linux version 6\.\d+/m);
    expect(r.output).toMatch(/^\[\s*\d+\.\d+\] Run \/init as init process/m);
    // Userspace writes to the tty need the UART's interrupt, delivered through the IO-APIC model.
    expect(r.output).toMatch(/^microhv-guest: scenario hello done rc=0/m);
    expect(r.output).toMatch(/ACPI: PM: Preparing to enter system sleep state S5/);
    const counters = /bringup: counters (\{.*\})/.exec(r.output)?.[1];
    const c = JSON.parse(counters ?? '{}') as Record<string, number>;
    expect(c['IOREQ_POSTED']).toBeGreaterThan(1000);
    expect(c['IOREQ_SYNC']).toBeGreaterThan(1000);
  });
});
