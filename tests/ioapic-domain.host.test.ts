// The guest's IO-APIC as a domain process: `microhv run` spawns the ioapic
// domain next to the console, so an unmodified kernel boots without `noapic`;
// the UART's IRQ 4 and the ACPI SCI reach the IO-APIC through the lines page,
// and ACPI power-off ends the run. The second case attaches to the guest's
// console through the console domain's Unix socket and types into its shell.
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost } from '../testhost/testhost.js';
import { microhvRunCommand } from './support/microhv-run.js';

let image: TestHostImage;
beforeAll(() => { image = buildTestHost(); });

const run = (cmdline: string, extra: string): string => microhvRunCommand(cmdline, extra);

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

  test('a_client_attached_to_the_console_socket_types_a_command_into_the_guest_shell_and_reads_its_output', async () => {
    // A tiny client: waits for the shell's prompt line in the log, then types one command and echoes what comes back.
    const client = "const s = require('net').connect('/tmp/console.sock'); s.pipe(process.stdout); "
      + "s.on('connect', () => setTimeout(() => s.write('echo answer-\\$((6*7))\\n'), 500)); setTimeout(() => process.exit(0), 60000);";
    const r = await runInTestHost({
      image,
      command: 'timeout -s KILL 280 node dist/microhv/main.js run --kernel .cache/guest/vmlinuz --initrd .cache/guest/initramfs.cpio '
        + "--cmdline 'console=ttyS0 quiet nokaslr panic=-1 microhv.scenario=shell' --console-log /tmp/console.log --console-socket /tmp/console.sock "
        + "--timeout 260 --until 'answer-42' >/dev/null 2>/tmp/err.txt & run=$!; "
        + `for i in $(seq 1 900); do grep -q 'interactive shell' /tmp/console.log 2>/dev/null && break; sleep 0.2; done; sleep 1; `
        + `node -e "${client}" >/tmp/client.txt & client=$!; wait $run; echo run-exit=$?; kill $client 2>/dev/null; `
        + `grep -c 'answer-42' /tmp/client.txt | sed 's/^/client-saw=/'; grep -v 'module Debug' /tmp/err.txt | tail -5`,
      timeoutMs: 330_000,
    });
    expect(r.output).toContain('run-exit=0');
    // The client saw the answer (computed by the guest's shell: the typed text holds no "answer-42").
    expect(Number(/client-saw=(\d+)/.exec(r.output)?.[1])).toBeGreaterThanOrEqual(1);
  });
});
