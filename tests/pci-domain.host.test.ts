// The PCI bus as a domain process: `microhv run` spawns the pci domain next to
// the console and the ioapic, so the guest finds a config access method and
// enumerates the host bridge (1b36:0008) at 00:00.0. The second case kills the
// pci domain with kill -9 every 3 s while the guest prints numbered lines and
// reads the host bridge's config space for each: supervision restarts it from
// its state region, every line arrives once, and every read sees the same IDs.
import { beforeAll, describe, expect, test } from 'vitest';
import { buildTestHost, type TestHostImage } from '../images/build.js';
import { runInTestHost } from '../testhost/testhost.js';
import { microhvRunCommand } from './support/microhv-run.js';

let image: TestHostImage;
beforeAll(() => { image = buildTestHost(); });

const run = (cmdline: string, extra: string): string => microhvRunCommand(cmdline, extra);

describe('pci domain', () => {
  test('guest_finds_a_config_access_method_and_enumerates_the_host_bridge', async () => {
    const r = await runInTestHost({
      image,
      // quiet: the kernel's boot log through the UART (a synchronous LSR read per character) took
      // 20 s and more of the run; the one line that matters here, the fatal one, is an error and still shows.
      command: run('console=ttyS0 quiet nokaslr panic=-1 microhv.scenario=pci', '')
        + `grep 'microhv-guest: pci\\|scenario pci done' /tmp/console.log; `
        + `echo fatal=$(grep -c 'No config space access function found' /tmp/console.log); `
        + `grep 'pci\\[' /tmp/err.txt | grep -v 'module Debug' | tail -4`,
      timeoutMs: 330_000,
    });
    expect(r.output).toContain('run-exit=0');
    expect(r.output).toContain('microhv-guest: scenario pci done rc=0');
    expect(r.output).toMatch(/microhv-guest: pci 0000:00:00\.0 0x1b36 0x0008 class 0x060000/);
    // Only the host bridge: the table has no endpoints yet.
    expect(r.output).toContain('microhv-guest: pci functions 1');
    expect(r.output).toContain('fatal=0');
  });

  test('config_reads_stay_correct_and_every_line_arrives_once_while_the_pci_domain_is_killed_every_3_s', async () => {
    const LINES = 40;
    const r = await runInTestHost({
      image,
      command: run(`console=ttyS0 quiet nokaslr panic=-1 microhv.scenario=count microhv.args=${LINES},0.2,pci`,
        `--fault kill:pci:3000 --until 'microhv-guest: scenario count done'`)
        + `echo pci-kills=$(grep -c 'fault: killing pci' /tmp/err.txt) pci-restores=$(grep -c 'pci generation [0-9]*: restored state commit' /tmp/err.txt); `
        + `grep 'microhv-guest: line' /tmp/console.log; grep 'is DOWN' /tmp/err.txt; grep -v 'module Debug' /tmp/err.txt | tail -6`,
      timeoutMs: 330_000,
    });
    expect(r.output).toContain('run-exit=0');
    expect(r.output).not.toContain('is DOWN');
    expect(Number(/pci-kills=(\d+)/.exec(r.output)?.[1])).toBeGreaterThanOrEqual(3);
    // Successors restored the committed module state rather than powering on again.
    expect(Number(/pci-restores=(\d+)/.exec(r.output)?.[1])).toBeGreaterThanOrEqual(1);
    const got = [...r.output.matchAll(/^microhv-guest: line (\d+) ids=(\S*) class=(\S*)$/gm)];
    expect(got.map((m) => Number(m[1]))).toEqual(Array.from({ length: LINES }, (_, i) => i + 1));
    // Config dword 0x00 (1b36:0008) and 0x08 (class 06/00/00, revision 0) on every read, never all-ones or 0.
    for (const m of got) expect([m[1], m[2], m[3]]).toEqual([m[1], '00081b36', '06000000']);
  });
});
