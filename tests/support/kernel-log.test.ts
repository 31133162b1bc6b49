import { describe, expect, test } from 'vitest';
import { kernelLogFromMemory, printableRuns } from './kernel-log.js';

const enc = (s: string): Uint8Array => Buffer.from(s, 'latin1');

describe('kernelLogFromMemory', () => {
  test('skips_the_lone_banner_and_reads_the_ring_that_has_the_command_line', () => {
    const ram = new Uint8Array(64 * 1024);
    ram.set(enc('Linux version 6.1 (rodata copy)\0\0'), 100);
    ram.set(enc('\x01\0\0\0Linux version 6.1 (ring)\0\x02\0\0\0Command line: console=ttyS0\0\x03\0\0\0Freeing unused memory\0'), 20_000);
    const log = kernelLogFromMemory(ram, 4096);
    expect(log).toEqual(['Linux version 6.1 (ring)', 'Command line: console=ttyS0', 'Freeing unused memory']);
  });

  test('returns_nothing_before_the_kernel_has_logged', () => {
    expect(kernelLogFromMemory(new Uint8Array(4096))).toEqual([]);
  });

  test('printable_runs_drop_short_fragments', () => {
    expect(printableRuns(enc('ab\0longer text\0xyz'), 5)).toEqual(['longer text']);
  });
});
