// The product's promise for the console domain: `microhv run` kills it with
// kill -9 every few seconds (fault injection) while the guest prints numbered
// lines; supervision restarts it, and every line reaches the console log
// exactly once, in order. The guest is never told: no line is lost or doubled.
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost } from '../testhost/testhost.js';

let image: TestHostImage;
beforeAll(() => { image = buildTestHost(); });

const LINES = 100;

describe('console domain restart', () => {
  test('every_guest_line_reaches_the_console_exactly_once_while_the_console_domain_is_killed_repeatedly', async () => {
    const cmdline = `console=ttyS0 quiet nokaslr noapic panic=-1 microhv.scenario=kmsg microhv.args=${LINES},0.2`;
    const r = await runInTestHost({
      image,
      command: `timeout -s KILL 280 node dist/microhv/main.js run --kernel .cache/guest/vmlinuz --initrd .cache/guest/initramfs.cpio `
        + `--cmdline '${cmdline}' --console-log /tmp/console.log --timeout 260 --fault kill:console:4000 --until 'microhv-guest: line ${LINES}' `
        + `>/dev/null 2>/tmp/err.txt; echo run-exit=$?; echo kills=$(grep -c 'fault: killing console' /tmp/err.txt); `
        + `grep -o 'microhv-guest: line [0-9]*' /tmp/console.log | sed 's/.* //' | tr '\\n' ' '; echo; grep -v 'module Debug' /tmp/err.txt | tail -5`,
      timeoutMs: 330_000,
    });
    expect(r.output).toContain('run-exit=0');
    const kills = Number(/kills=(\d+)/.exec(r.output)?.[1] ?? 0);
    expect(kills).toBeGreaterThanOrEqual(5);
    const numbers = (r.output.split('\n').find((l) => /^\d+( \d+)* ?$/.test(l.trim())) ?? '').trim().split(' ').map(Number);
    expect(numbers).toEqual(Array.from({ length: LINES }, (_, i) => i + 1));
  });
});
