// What a process's threads are doing, from /proc: each thread's name, scheduler state, wait channel
// and share of a CPU between two readings. The runner takes it of QEMU before it kills a test host
// that froze or timed out: vCPU threads that spin run guest code, vCPU threads that all sleep on a
// futex wait for each other or for QEMU's global lock, a main thread in a write waits on an output.
import { readFileSync, readdirSync } from 'node:fs';

export interface ThreadReading {
  readonly tid: number;
  readonly name: string;
  readonly state: string;
  /** User plus system time, in clock ticks. */
  readonly ticks: number;
  readonly wchan: string;
}

/** One thread's line of /proc/PID/task/TID/stat, or undefined when it is not one. */
export function parseStat(tid: number, stat: string, wchan: string): ThreadReading | undefined {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const f = stat.slice(close + 2).split(' ');
  // After the name: state (field 3), ..., utime (14) and stime (15).
  const utime = Number(f[11]);
  const stime = Number(f[12]);
  if (!f[0] || !Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return { tid, name: stat.slice(open + 1, close), state: f[0], ticks: utime + stime, wchan: wchan.trim() === '0' ? '' : wchan.trim() };
}

/** The threads of `pid` as they are now (none when it is gone), from `proc` (procfs). */
export function readThreads(pid: number, proc = '/proc'): ThreadReading[] {
  let tids: string[];
  try { tids = readdirSync(`${proc}/${pid}/task`); } catch { return []; }
  const out: ThreadReading[] = [];
  for (const t of tids) {
    const read = (f: string): string => { try { return readFileSync(`${proc}/${pid}/task/${t}/${f}`, 'utf8'); } catch { return ''; } };
    const r = parseStat(Number(t), read('stat'), read('wchan'));
    if (r) out.push(r);
  }
  return out;
}

/**
 * One line per thread seen in both readings, `ms` apart (ticks of `hz` per second):
 * `NAME STATE CPU% [WCHAN]`, busiest first.
 */
export function describeThreads(before: ReadonlyArray<ThreadReading>, after: ReadonlyArray<ThreadReading>, ms: number, hz = 100): string[] {
  const was = new Map(before.map((t) => [t.tid, t]));
  return after.filter((t) => was.has(t.tid))
    .map((t) => ({ t, pct: Math.round(((t.ticks - was.get(t.tid)!.ticks) / hz) * 100_000 / ms) }))
    .sort((a, b) => b.pct - a.pct || a.t.tid - b.t.tid)
    .map(({ t, pct }) => `${t.name} ${t.state} ${pct}%${t.wchan ? ` ${t.wchan}` : ''}`);
}
