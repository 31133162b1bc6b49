// Reading a process's threads from procfs: names with spaces and parentheses, user plus system ticks,
// shares of a CPU between two readings, and a process that is gone.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { describeThreads, parseStat, readThreads } from './threads.js';

describe('QEMU thread readings', () => {
  test('a_stat_line_gives_the_name_with_spaces_and_parentheses_the_state_and_user_plus_system_ticks', () => {
    const r = parseStat(812, '812 (CPU 0/TCG) R 800 800 1 0 -1 4194560 10 0 0 0 2505 130 0 0 20 0 9 0 300 0 0', 'futex_wait_queue\n');
    expect(r).toEqual({ tid: 812, name: 'CPU 0/TCG', state: 'R', ticks: 2635, wchan: 'futex_wait_queue' });
    expect(parseStat(9, '9 (a) b) S 1 1 1 0 -1 0 0 0 0 0 7 8 0', '0')).toEqual({ tid: 9, name: 'a) b', state: 'S', ticks: 15, wchan: '' });
    expect(parseStat(9, '', '')).toBeUndefined();
    expect(parseStat(9, '9 (x) S 1 2', '')).toBeUndefined();
  });

  test('lines_give_each_threads_share_of_a_cpu_between_two_readings_busiest_first_and_skip_new_or_gone_threads', () => {
    const t = (tid: number, name: string, state: string, ticks: number, wchan = ''): Parameters<typeof describeThreads>[0][number] => ({ tid, name, state, ticks, wchan });
    const before = [t(1, 'qemu-system-x86', 'S', 500), t(2, 'CPU 0/TCG', 'R', 1000), t(3, 'CPU 1/TCG', 'S', 900), t(4, 'gone', 'S', 0)];
    const after = [t(1, 'qemu-system-x86', 'S', 505, 'do_sys_poll'), t(2, 'CPU 0/TCG', 'R', 1100), t(3, 'CPU 1/TCG', 'S', 900, 'futex_wait_queue'), t(5, 'new', 'R', 3)];
    expect(describeThreads(before, after, 1000)).toEqual(['CPU 0/TCG R 100%', 'qemu-system-x86 S 5% do_sys_poll', 'CPU 1/TCG S 0% futex_wait_queue']);
  });

  test('a_procfs_tree_reads_as_its_threads_and_a_process_that_is_gone_as_none', () => {
    const proc = mkdtempSync(join(tmpdir(), 'microhv-proc-'));
    try {
      const thread = (tid: number, stat: string, wchan: string | undefined): void => {
        const d = join(proc, '700', 'task', String(tid));
        mkdirSync(d, { recursive: true });
        writeFileSync(join(d, 'stat'), stat);
        if (wchan !== undefined) writeFileSync(join(d, 'wchan'), wchan);
      };
      thread(700, '700 (qemu-system-x86) S 1 700 1 0 -1 4194560 10 0 0 0 40 12 0 0 20 0 9 0 300 0 0\n', 'do_sys_poll');
      thread(702, '702 (CPU 0/TCG) R 1 700 1 0 -1 4194560 10 0 0 0 2505 130 0 0 20 0 9 0 300 0 0\n', '0');
      // A thread that ended between the listing and the read: no stat, no line.
      mkdirSync(join(proc, '700', 'task', '703'), { recursive: true });
      const threads = readThreads(700, proc).sort((a, b) => a.tid - b.tid);
      expect(threads).toEqual([
        { tid: 700, name: 'qemu-system-x86', state: 'S', ticks: 52, wchan: 'do_sys_poll' },
        { tid: 702, name: 'CPU 0/TCG', state: 'R', ticks: 2635, wchan: '' },
      ]);
      expect(readThreads(701, proc)).toEqual([]);
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });
});
