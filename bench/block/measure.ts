// What the block benchmark reads from the guest's console and computes from it,
// kept apart from the process handling so that it can be checked without a guest.
import { median } from '../boot/measure.js';

export type Contender = 'qemu' | 'microhv';

/** The three figures of the guest's `fiobench` scenario (images/scripts/guest-init.sh). Higher is better. */
export const METRICS = ['randread4k', 'seqread1m', 'seqwrite1m'] as const;
export type Metric = (typeof METRICS)[number];
export const UNIT: Record<Metric, string> = { randread4k: 'IOPS', seqread1m: 'MiB/s', seqwrite1m: 'MiB/s' };
const KEY: Record<Metric, string> = { randread4k: 'iops', seqread1m: 'mbps', seqwrite1m: 'mbps' };

/** One fiobench run: the figures it printed, or why it gave none. */
export type BenchSample =
  | { readonly contender: Contender; readonly figures: Readonly<Record<Metric, number>> }
  | { readonly contender: Contender; readonly failed: string };

/** A stall the guest saw: no I/O completed for `ms` after `atMs` (from the start of fio's run). */
export interface Stall { readonly atMs: number; readonly ms: number }

/** The blackout run: fioverify under microhv with the block domain killed periodically. */
export type BlackoutSample =
  | { readonly kills: number; readonly stalls: readonly Stall[]; readonly verify: string; readonly errors: number; readonly klogIoErrors: number }
  | { readonly failed: string };

/** The line that carries the samples out of the test host (its output is a text stream). */
export const RESULT_PREFIX = 'block-bench-result ';

/** The fiobench figures in a console log, or undefined unless all three are there. */
export function parseFigures(text: string): Record<Metric, number> | undefined {
  const out: Partial<Record<Metric, number>> = {};
  for (const m of METRICS) {
    const hit = new RegExp(`^microhv-guest: bench ${m} ${KEY[m]}=([0-9.]+)\\s*$`, 'm').exec(text);
    if (hit) out[m] = Number(hit[1]);
  }
  return METRICS.every((m) => out[m] !== undefined && Number.isFinite(out[m])) ? (out as Record<Metric, number>) : undefined;
}

/** Every `stall at_ms=T ms=D` line of the guest's fioverify scenario, in order. */
export function parseStalls(text: string): Stall[] {
  return [...text.matchAll(/^microhv-guest: stall at_ms=(\d+) ms=(\d+)\s*$/gm)].map((m) => ({ atMs: Number(m[1]), ms: Number(m[2]) }));
}

/** The fioverify summary: errors and verify result, and the kernel's count of I/O errors; undefined if absent. */
export function parseVerify(text: string): { errors: number; verify: string; klogIoErrors: number } | undefined {
  const fio = /^microhv-guest: fio errors=(\d+) verify=(\w+)/m.exec(text);
  const klog = /^microhv-guest: klog io_errors=(\d+)/m.exec(text);
  if (!fio || !klog) return undefined;
  return { errors: Number(fio[1]), verify: fio[2]!, klogIoErrors: Number(klog[1]) };
}

export interface Row {
  readonly metric: Metric;
  readonly qemu: number | undefined;
  readonly microhv: number | undefined;
  /** microhv median / QEMU median (higher is better; the target is at least 1.0). */
  readonly ratio: number | undefined;
}

/** Median of each metric per contender, and their ratio where both have one. */
export function summarize(samples: readonly BenchSample[]): { rows: Row[]; failures: string[] } {
  const of = (c: Contender, m: Metric): number | undefined => {
    const xs = samples.flatMap((s) => (s.contender === c && 'figures' in s ? [s.figures[m]] : []));
    return xs.length ? median(xs) : undefined;
  };
  const rows = METRICS.map((metric): Row => {
    const qemu = of('qemu', metric);
    const microhv = of('microhv', metric);
    return { metric, qemu, microhv, ratio: qemu !== undefined && microhv !== undefined && qemu > 0 ? microhv / qemu : undefined };
  });
  const failures = samples.flatMap((s) => ('failed' in s ? [`${s.contender}: ${s.failed}`] : []));
  return { rows, failures };
}

/** The table the front end prints: one line per metric, QEMU, microhv and the ratio. */
export function formatTable(rows: readonly Row[]): string[] {
  const num = (x: number | undefined, m: Metric): string => (x === undefined ? 'n/a' : `${x.toFixed(m === 'randread4k' ? 0 : 1)} ${UNIT[m]}`);
  const pad = (s: string, n: number): string => s.padEnd(n);
  const lines = [`${pad('metric', 12)}${pad('QEMU/KVM', 16)}${pad('microhv', 16)}ratio microhv/QEMU (target >= 1.0)`];
  for (const r of rows) lines.push(`${pad(r.metric, 12)}${pad(num(r.qemu, r.metric), 16)}${pad(num(r.microhv, r.metric), 16)}${r.ratio === undefined ? 'n/a' : `${r.ratio.toFixed(2)}x`}`);
  return lines;
}
