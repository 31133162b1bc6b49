// Where the test host's CPU goes while a fio job runs: every thread's user and system time from
// /proc/PID/task/TID/stat, taken at the start and the end of a job, grouped by process and thread
// name (a domain's main thread apart from its pool threads, the vCPU threads, the kernel's
// io_uring workers and softirq threads). Used by inside.ts when BLOCK_BENCH_THREADS is set.
import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks per second of /proc's times (USER_HZ, 100 on x86-64 Linux). */
const USER_HZ = 100;

export interface ThreadTimes {
  /** What the thread belongs to: `block`, `microhv`, a domain, `qemu`, `fio`, or its process's name. */
  readonly process: string;
  readonly comm: string;
  readonly main: boolean;
  /** utime + stime, and stime alone (time in the kernel), in ticks. */
  readonly ticks: number;
  readonly sys: number;
}

/** One /proc/PID/task/TID/stat line: the name (which may hold spaces and parentheses), utime + stime and stime. */
export function parseStat(line: string): { comm: string; ticks: number; sys: number } | undefined {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  // After the name: state (field 3) ... utime (14) and stime (15), so the 12th and 13th from here.
  const rest = line.slice(close + 2).split(' ');
  const sys = Number(rest[12]);
  const ticks = Number(rest[11]) + sys;
  return Number.isFinite(ticks) ? { comm: line.slice(open + 1, close), ticks, sys } : undefined;
}

/** A short name for a process from its command line. */
export function processName(cmdline: string, comm: string): string {
  const args = cmdline.split('\0');
  // The entry's module or its bundle (microhv/worker-path.ts).
  const script = (args.find((a) => a.endsWith('.js') || a.endsWith('.mjs')) ?? '').replace(/\.bundle\.mjs$/, '.js');
  if (script.endsWith('block/main.js')) return 'block';
  if (script.endsWith('microhv/main.js')) return 'microhv';
  if (script.endsWith('runtime/main.js')) return 'stub-domain';
  if (comm.startsWith('qemu-system')) return 'qemu';
  return comm;
}

const read = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined; // gone since the listing
  }
};

/** Every thread of every process now, by "pid/tid". */
export function snapshot(): Map<string, ThreadTimes> {
  const out = new Map<string, ThreadTimes>();
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    const comm = read(`/proc/${pid}/comm`)?.trim() ?? '';
    const process = processName(read(`/proc/${pid}/cmdline`) ?? '', comm);
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      const s = parseStat(read(`/proc/${pid}/task/${tid}/stat`) ?? '');
      if (s !== undefined) out.set(`${pid}/${tid}`, { process, comm: s.comm, main: pid === tid, ticks: s.ticks, sys: s.sys });
    }
  }
  return out;
}

/**
 * Threads' CPU between two snapshots, grouped by process and name (`block main`, `block node x20`,
 * `kworker`), busiest first, as % of one CPU, with the part spent in the kernel.
 */
export function busiest(before: Map<string, ThreadTimes>, after: Map<string, ThreadTimes>, seconds: number, top = 12): string[] {
  const groups = new Map<string, { ticks: number; sys: number; threads: number }>();
  for (const [key, t] of after) {
    const ticks = t.ticks - (before.get(key)?.ticks ?? 0);
    if (ticks <= 0) continue;
    // Thread names carry a CPU or an instance (kworker/1:2-events, ksoftirqd/0, iou-wrk-1234): one group per kind.
    const kind = t.comm.replace(/\/.*$/, '').replace(/-\d+$/, '');
    // A process known by name has its main thread apart; a kernel thread is its own process.
    const name = t.process === t.comm ? kind : `${t.process} ${t.main ? 'main' : kind}`;
    const g = groups.get(name) ?? { ticks: 0, sys: 0, threads: 0 };
    g.ticks += ticks;
    g.sys += t.sys - (before.get(key)?.sys ?? 0);
    g.threads++;
    groups.set(name, g);
  }
  const pct = (ticks: number): string => ((100 * ticks) / USER_HZ / seconds).toFixed(0);
  const total = [...groups.values()].reduce((a, g) => a + g.ticks, 0);
  const sys = [...groups.values()].reduce((a, g) => a + g.sys, 0);
  return [
    `all threads ${pct(total)}% (kernel ${pct(sys)}%)`,
    ...[...groups.entries()].sort((a, b) => b[1].ticks - a[1].ticks).slice(0, top)
      .map(([name, g]) => `${name}${g.threads > 1 ? ` x${g.threads}` : ''} ${pct(g.ticks)}% (kernel ${pct(g.sys)}%)`),
  ];
}
