// What the boot benchmark computes from its runs, kept apart from the process
// handling so that it can be checked without a guest.

/** The line the embedded guest's /init prints first (images/scripts/guest-init.sh). */
export const INIT_LINE = 'microhv-guest: init started';

export type Contender = 'qemu' | 'microhv';

/** One boot: milliseconds from spawning the contender to the init line, or why it never came. */
export type BootSample = { readonly contender: Contender; readonly ms: number } | { readonly contender: Contender; readonly failed: string };

/** The line that carries the samples out of the test host (its output is a text stream). */
export const RESULT_PREFIX = 'boot-bench-result ';

/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of no samples');
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * Watches a console stream for INIT_LINE. Output arrives in arbitrary chunks, so the line may be split
 * across them; only the tail that could still begin the line is kept.
 */
export class InitLineWatcher {
  private tail = '';

  /** True once INIT_LINE has been seen in everything fed so far. */
  seen = false;

  feed(chunk: string): boolean {
    if (this.seen) return true;
    const text = this.tail + chunk;
    if (text.includes(INIT_LINE)) this.seen = true;
    else this.tail = text.slice(-(INIT_LINE.length - 1));
    return this.seen;
  }
}

export interface Summary {
  readonly qemuMs: readonly number[];
  readonly microhvMs: readonly number[];
  readonly failures: readonly string[];
  /** microhv median / QEMU median; undefined unless both have at least one sample. */
  readonly ratio: number | undefined;
}

export function summarize(samples: readonly BootSample[]): Summary {
  const ok = (c: Contender): number[] => samples.flatMap((s) => (s.contender === c && 'ms' in s ? [s.ms] : []));
  const failures = samples.flatMap((s) => ('failed' in s ? [`${s.contender}: ${s.failed}`] : []));
  const qemuMs = ok('qemu');
  const microhvMs = ok('microhv');
  const ratio = qemuMs.length > 0 && microhvMs.length > 0 ? median(microhvMs) / median(qemuMs) : undefined;
  return { qemuMs, microhvMs, failures, ratio };
}
