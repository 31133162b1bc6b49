import { describe, expect, it } from 'vitest';
import { busiest, parseStat, processName, type ThreadTimes } from './threads.js';

describe('parseStat', () => {
  it('reads_the_name_and_cpu_ticks_even_when_the_name_has_spaces_and_parentheses', () => {
    const line = '4242 (V8 Default (x)) S 1 4242 4242 0 -1 4194560 1 0 0 0 150 25 0 0 20 0 7 0 100 0 0';
    expect(parseStat(line)).toEqual({ comm: 'V8 Default (x)', ticks: 175, sys: 25 });
  });

  it('gives_nothing_for_a_line_without_a_name', () => {
    expect(parseStat('')).toBeUndefined();
  });
});

describe('processName', () => {
  it('names_the_domains_microhv_and_qemu_from_their_command_lines', () => {
    expect(processName('node\x00/opt/microhv/dist/driver-domains/block/main.js\x00--image\x00x', 'node')).toBe('block');
    expect(processName('node\x00dist/microhv/main.js\x00run', 'node')).toBe('microhv');
    expect(processName('node\x00/opt/microhv/dist/driver-domains/runtime/main.bundle.mjs\x00--virtio-blk\x001:1', 'node')).toBe('stub-domain');
    expect(processName('node\x00dist/microhv/main.bundle.mjs\x00run', 'node')).toBe('microhv');
    expect(processName('qemu-system-x86_64\x00-m\x00512', 'qemu-system-x86')).toBe('qemu');
    expect(processName('', 'ksoftirqd/1')).toBe('ksoftirqd/1');
  });
});

describe('busiest', () => {
  it('groups_threads_by_process_and_kind_as_percent_of_one_cpu', () => {
    const t = (process: string, comm: string, ticks: number, sys: number, main = false): ThreadTimes => ({ process, comm, main, ticks, sys });
    const before = new Map([
      ['1/1', t('block', 'node', 100, 50, true)], ['1/2', t('block', 'libuv-worker', 10, 0)],
      ['9/9', t('kworker/0:1-events', 'kworker/0:1-events', 0, 0, true)], ['8/8', t('ksoftirqd/1', 'ksoftirqd/1', 0, 0, true)],
    ]);
    const after = new Map([
      ['1/1', t('block', 'node', 180, 70, true)], ['1/2', t('block', 'libuv-worker', 20, 0)], ['1/3', t('block', 'iou-wrk-1', 30, 30)],
      ['1/4', t('block', 'iou-wrk-1', 10, 10)], ['9/9', t('kworker/0:1-events', 'kworker/0:1-events', 0, 0, true)],
      ['8/8', t('ksoftirqd/1', 'ksoftirqd/1', 2, 2, true)],
    ]);

    // 2 s: 80 ticks of the main thread are 40% of one CPU, 20 of them in the kernel.
    expect(busiest(before, after, 2)).toEqual([
      'all threads 66% (kernel 31%)', 'block main 40% (kernel 10%)', 'block iou-wrk x2 20% (kernel 20%)', 'block libuv-worker 5% (kernel 0%)',
      'ksoftirqd 1% (kernel 1%)',
    ]);
  });
});
