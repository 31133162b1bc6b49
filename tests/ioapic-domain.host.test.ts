// The guest's IO-APIC as a domain process: `microhv run` spawns the ioapic
// domain next to the console, so an unmodified kernel boots without `noapic`;
// the UART's IRQ 4 and the ACPI SCI reach the IO-APIC through the lines page,
// and ACPI power-off ends the run. The second case kills the ioapic domain
// every few seconds while the guest prints interrupt-driven tty lines: every
// line still arrives exactly once, in order.
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost } from '../testhost/testhost.js';

let image: TestHostImage;
beforeAll(() => { image = buildTestHost(); });

const run = (cmdline: string, extra: string): string =>
  `timeout -s KILL 280 node dist/microhv/main.js run --kernel .cache/guest/vmlinuz --initrd .cache/guest/initramfs.cpio `
  + `--cmdline '${cmdline}' --console-log /tmp/console.log --timeout 260 ${extra} >/dev/null 2>/tmp/err.txt; echo run-exit=$?; `;

describe('ioapic domain', () => {
  test('guest_boots_with_the_io_apic_runs_hello_and_powers_off_through_acpi', async () => {
    const r = await runInTestHost({
      image,
      command: run('console=ttyS0 nokaslr panic=-1 microhv.scenario=hello', '')
        + `grep -c 'microhv-guest: scenario hello done rc=0' /tmp/console.log | sed 's/^/hello-done=/'; `
        + `grep -q 'guest requested poweroff' /tmp/err.txt && echo poweroff-seen; `
        + `grep -i 'IOAPIC\\[0\\]\\|noapic\\|APIC routing' /tmp/console.log | head -3; grep -v 'module Debug' /tmp/err.txt | tail -8`,
      timeoutMs: 330_000,
    });
    expect(r.output).toContain('run-exit=0');
    expect(r.output).toContain('hello-done=1');
    expect(r.output).toContain('poweroff-seen');
  });

  test('every_interrupt_driven_tty_line_arrives_once_in_order_while_the_ioapic_domain_is_killed_repeatedly', async () => {
    const LINES = 60;
    const r = await runInTestHost({
      image,
      command: run(`console=ttyS0 quiet nokaslr panic=-1 microhv.scenario=count microhv.args=${LINES},0.2`, '--fault kill:ioapic:4000')
        + `echo kills=$(grep -c 'fault: killing ioapic' /tmp/err.txt); `
        + `grep -o 'microhv-guest: line [0-9]*' /tmp/console.log | sed 's/.* //' | tr '\\n' ' '; echo; grep -v 'module Debug' /tmp/err.txt | tail -5`,
      timeoutMs: 330_000,
    });
    expect(r.output).toContain('run-exit=0');
    const kills = Number(/kills=(\d+)/.exec(r.output)?.[1] ?? 0);
    expect(kills).toBeGreaterThanOrEqual(2);
    const numbers = (r.output.split('\n').find((l) => /^\d+( \d+)* ?$/.test(l.trim())) ?? '').trim().split(' ').map(Number);
    expect(numbers).toEqual(Array.from({ length: LINES }, (_, i) => i + 1));
  });
});
