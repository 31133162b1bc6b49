import { describe, expect, it } from 'vitest';
import { formatTable, parseFigures, parseStalls, parseVerify, summarize } from './measure.js';

const FIOBENCH = [
  'microhv-guest: scenario fiobench',
  'microhv-guest: bench randread4k iops=1634\r',
  'microhv-guest: bench seqread1m mbps=1085.3',
  'microhv-guest: bench seqwrite1m mbps=781.4',
].join('\n');

describe('parseFigures', () => {
  it('reads_all_three_figures_with_carriage_returns', () => {
    expect(parseFigures(FIOBENCH)).toEqual({ randread4k: 1634, seqread1m: 1085.3, seqwrite1m: 781.4 });
  });
  it('gives_nothing_when_one_job_failed', () => {
    expect(parseFigures(FIOBENCH.replace(/.*seqwrite1m.*/, 'microhv-guest: bench seqwrite1m failed: EIO'))).toBeUndefined();
  });
});

describe('parseStalls', () => {
  it('lists_each_stall_in_order', () => {
    const text = 'microhv-guest: stall at_ms=2391 ms=508\nmicrohv-guest: fio completions=9 stalls=2\nmicrohv-guest: stall at_ms=4400 ms=130\n';
    expect(parseStalls(text)).toEqual([{ atMs: 2391, ms: 508 }, { atMs: 4400, ms: 130 }]);
  });
});

describe('parseVerify', () => {
  it('reads_errors_verify_and_kernel_io_errors', () => {
    const text = 'microhv-guest: fio errors=1 verify=failed read_iops=9\nmicrohv-guest: klog io_errors=3\n';
    expect(parseVerify(text)).toEqual({ errors: 1, verify: 'failed', klogIoErrors: 3 });
  });
  it('gives_nothing_without_the_kernel_count', () => {
    expect(parseVerify('microhv-guest: fio errors=0 verify=ok\n')).toBeUndefined();
  });
});

describe('summarize', () => {
  it('gives_the_ratio_of_medians_microhv_over_qemu_per_metric', () => {
    const f = (r: number, s: number, w: number) => ({ randread4k: r, seqread1m: s, seqwrite1m: w });
    const { rows } = summarize([
      { contender: 'qemu', figures: f(1000, 100, 50) }, { contender: 'microhv', figures: f(500, 100, 100) },
      { contender: 'qemu', figures: f(3000, 300, 50) }, { contender: 'microhv', figures: f(1500, 300, 100) },
    ]);
    expect(rows.map((r) => r.ratio)).toEqual([0.5, 1, 2]);
  });
  it('has_no_ratio_and_lists_the_failure_when_microhv_gave_no_figures', () => {
    const { rows, failures } = summarize([
      { contender: 'qemu', figures: { randread4k: 1000, seqread1m: 100, seqwrite1m: 50 } },
      { contender: 'microhv', failed: "exited (1): Unknown option '--disk'" },
    ]);
    expect(rows.every((r) => r.ratio === undefined && r.microhv === undefined)).toBe(true);
    expect(failures).toEqual(["microhv: exited (1): Unknown option '--disk'"]);
    expect(formatTable(rows)[1]).toMatch(/^randread4k\s+1000 IOPS\s+n\/a\s+n\/a$/);
  });
});
