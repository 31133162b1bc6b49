// The product's promise for the platform domains: while the guest prints
// numbered lines and takes timer and UART interrupts, `microhv run` kills the
// console domain and then the ioapic domain with kill -9, several times each
// (fault injection), and hangs one (SIGSTOP) for the heartbeat to find.
// Supervision restarts them; the guest is never told. Every line reaches the
// console log exactly once, in order, and the guest's interrupt counts
// (read from its own /proc/interrupts) keep rising across the restarts.
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost } from '../testhost/testhost.js';
import { microhvRunCommand } from './support/microhv-run.js';

let image: TestHostImage;
beforeAll(() => { image = buildTestHost(); });

interface Line { n: number; loc: number; uart: number }

/** The guest's numbered lines from the console log, as printed by the `count ... irq` scenario. */
function lines(output: string): Line[] {
  // The counts come in /proc/interrupts order, which puts the UART's row before the LAPIC timer's.
  return [...output.matchAll(/^microhv-guest: line (\d+) (.*)$/gm)].map((m) => ({
    n: Number(m[1]), loc: Number(/loc=(\d+)/.exec(m[2]!)?.[1] ?? NaN), uart: Number(/uart=(\d+)/.exec(m[2]!)?.[1] ?? NaN),
  }));
}

const run = (cmdline: string, extra: string): string => microhvRunCommand(cmdline, extra, 2);

describe('platform domain restarts', () => {
  test('guest_lines_arrive_once_in_order_and_interrupts_keep_counting_while_console_and_ioapic_are_killed_alternately', async () => {
    const LINES = 150;
    // Alternating kills every 4 s: the console at 4, 12, 20 s..., the ioapic at 8, 16, 24 s...
    const r = await runInTestHost({
      image,
      command: run(`console=ttyS0 quiet nokaslr panic=-1 microhv.scenario=count microhv.args=${LINES},0.2,irq`,
        `--fault kill:console:8000:4000 --fault kill:ioapic:8000:8000 --until 'microhv-guest: scenario count done'`)
        + `echo console-kills=$(grep -c 'fault: killing console' /tmp/err.txt) ioapic-kills=$(grep -c 'fault: killing ioapic' /tmp/err.txt); `
        + `grep 'microhv-guest: line' /tmp/console.log; grep -v 'module Debug' /tmp/err.txt | tail -5`,
      timeoutMs: 330_000,
    });
    expect(r.output).toContain('run-exit=0');
    expect(Number(/console-kills=(\d+)/.exec(r.output)?.[1])).toBeGreaterThanOrEqual(3);
    expect(Number(/ioapic-kills=(\d+)/.exec(r.output)?.[1])).toBeGreaterThanOrEqual(3);
    const got = lines(r.output);
    // Exactly once, in order: nothing lost, nothing doubled.
    expect(got.map((l) => l.n)).toEqual(Array.from({ length: LINES }, (_, i) => i + 1));
    // Interrupts keep coming through every restart. The LAPIC timer (in KVM) never stops: it rises over
    // any 5 lines (1 s of guest time). UART interrupts need the ioapic domain, so they pause while it
    // restarts (a few seconds under nested emulation) and must resume: they rise over any 25 lines.
    for (let i = 5; i < got.length; i++) expect(got[i]!.loc, `loc at line ${i + 1}`).toBeGreaterThan(got[i - 5]!.loc);
    for (let i = 25; i < got.length; i++) expect(got[i]!.uart, `uart at line ${i + 1}`).toBeGreaterThan(got[i - 25]!.uart);
  });

  test('a_hung_console_domain_is_found_by_its_heartbeat_killed_and_restarted_with_no_line_lost', async () => {
    const LINES = 100;
    const r = await runInTestHost({
      image,
      command: run(`console=ttyS0 quiet nokaslr panic=-1 microhv.scenario=count microhv.args=${LINES},0.2,irq`,
        `--fault hang:console:60000:12000 --until 'microhv-guest: scenario count done'`)
        + `grep 'microhv-guest: line' /tmp/console.log; grep 'missed heartbeats\\|fault:\\|generation' /tmp/err.txt | grep -v 'module Debug' | tail -8`,
      timeoutMs: 330_000,
    });
    expect(r.output).toContain('run-exit=0');
    expect(r.output).toContain('fault: hanging console');
    expect(r.output).toMatch(/console missed heartbeats for \d+ ms: killing it/);
    expect(lines(r.output).map((l) => l.n)).toEqual(Array.from({ length: LINES }, (_, i) => i + 1));
  });
});
