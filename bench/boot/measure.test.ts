import { describe, expect, it } from 'vitest';
import { INIT_LINE, InitLineWatcher, median, summarize } from './measure.js';

describe('median', () => {
  it('takes_the_middle_of_an_odd_count', () => {
    expect(median([30, 10, 20])).toBe(20);
  });
  it('averages_the_middle_two_of_an_even_count', () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
  it('rejects_no_samples', () => {
    expect(() => median([])).toThrow(RangeError);
  });
});

describe('InitLineWatcher', () => {
  it('finds_the_line_split_across_chunks', () => {
    const w = new InitLineWatcher();
    const cut = 9;
    expect(w.feed(`[ok] boot\r\n${INIT_LINE.slice(0, cut)}`)).toBe(false);
    expect(w.feed(`${INIT_LINE.slice(cut)}\r\n`)).toBe(true);
  });
  it('ignores_a_different_guest_line', () => {
    const w = new InitLineWatcher();
    expect(w.feed('microhv-guest: scenario hello\n')).toBe(false);
  });
});

describe('summarize', () => {
  it('gives_the_ratio_of_medians_microhv_over_qemu', () => {
    const s = summarize([
      { contender: 'qemu', ms: 100 }, { contender: 'microhv', ms: 300 },
      { contender: 'qemu', ms: 120 }, { contender: 'microhv', ms: 260 },
    ]);
    expect(s.ratio).toBeCloseTo(280 / 110);
  });
  it('has_no_ratio_when_one_side_never_booted', () => {
    const s = summarize([{ contender: 'qemu', ms: 100 }, { contender: 'microhv', failed: 'timed out' }]);
    expect(s.ratio).toBeUndefined();
    expect(s.failures).toEqual(['microhv: timed out']);
  });
});
