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
  test('boots_to_init_with_no_device_domains', async () => {
    const r = await runInTestHost({ image, command: `${bringup(1, 'Run /init as init process')}; echo one-exit=$?`, timeoutMs: 300_000 });
    expect(r.output).toContain('one-exit=0');
    expect(r.output).toContain('bringup: found "Run /init as init process"');
    expect(r.output).toMatch(/klog: Linux version 6\.\d+\.\d+/);
    expect(r.output).toContain('klog: smpboot: Allowing 1 CPUs');
    expect(r.output).not.toContain('bringup: failed');
  });

  test('microhv_run_brings_both_vcpus_of_a_two_vcpu_guest_online', async () => {
    const r = await runInTestHost({
      image,
      command: 'timeout -s KILL 200 node dist/microhv/main.js run --kernel .cache/guest/vmlinuz --initrd .cache/guest/initramfs.cpio --vcpus 2 '
        + "--cmdline 'console=ttyS0 quiet panic=-1 microhv.scenario=hello' --console-log /tmp/console.log --timeout 180 >/dev/null 2>&1; "
        + 'echo run-exit=$?; cat /tmp/console.log',
      timeoutMs: 300_000,
    });
    expect(r.output).toContain('run-exit=0');
    expect(r.output).toContain('microhv-guest: cpus online 0-1 count 2');
    expect(r.output).toContain('microhv-guest: scenario hello done rc=0');
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
