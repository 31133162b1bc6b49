// The microhv core boots Debian's stock cloud kernel on real KVM inside the
// test host: memory, boot plan, CPUID and vCPU threads are the core's own.
// No device domain exists yet, so the test reads the guest's kernel log out
// of guest memory instead of a console.
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost } from '../testhost/testhost.js';

let image: TestHostImage;
beforeAll(() => { image = buildTestHost(); });

const bringup = (vcpus: number, until: string): string =>
  `timeout -s KILL 150 node dist/tests/support/boot-bringup.js /opt/microhv/.cache/guest 120 ${vcpus} '${until}'`;

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

  test('kernel_console_reaches_the_console_stub_module_through_the_ioreq_channel', async () => {
    const r = await runInTestHost({
      image,
      command: `BRINGUP_KLOG=0 BRINGUP_CONSOLE=/opt/microhv/build/driver-domains/console.wasm ${bringup(1, 'Run /init as init process')}; echo exit=$?`,
      timeoutMs: 300_000,
    });
    expect(r.output).toContain('exit=0');
    // Timestamped console lines come only from the 16550 model's transmit path (the kernel log in memory has no timestamps).
    expect(r.output).toMatch(/^\[\s*\d+\.\d+\] Linux version 6\.\d+/m);
    expect(r.output).toMatch(/^\[\s*\d+\.\d+\] Run \/init as init process/m);
    const counters = /bringup: counters (\{.*\})/.exec(r.output)?.[1];
    const c = JSON.parse(counters ?? '{}') as Record<string, number>;
    expect(c['IOREQ_POSTED']).toBeGreaterThan(1000);
    expect(c['IOREQ_SYNC']).toBeGreaterThan(1000);
  });
});
