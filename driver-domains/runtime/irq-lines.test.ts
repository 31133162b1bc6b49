import { describe, expect, test } from 'vitest';
import { IrqLines, LineReader, LINES_PAGE_BYTES } from './irq-lines.js';

const page = (): { buf: ArrayBuffer; lines: IrqLines } => { const buf = new ArrayBuffer(LINES_PAGE_BYTES); return { buf, lines: new IrqLines(buf) }; };

describe('irq lines page', () => {
  test('a_source_bit_is_stored_little_endian_at_4_times_the_gsi', () => {
    const { buf, lines } = page();
    lines.drive(4, 0, 1);
    expect(new DataView(buf).getUint32(16, true)).toBe(1);
    lines.drive(4, 0, 0);
    expect(new DataView(buf).getUint32(16, true)).toBe(0);
  });

  test('a_shared_gsi_stays_asserted_until_its_last_source_lets_go', () => {
    const { lines } = page();
    lines.drive(9, 0, 1);
    lines.drive(9, 3, 1);
    lines.drive(9, 0, 0);
    expect(lines.level(9)).toBe(1);
    lines.drive(9, 3, 0);
    expect(lines.level(9)).toBe(0);
  });

  test('rejects_a_gsi_outside_the_page', () => {
    const { buf, lines } = page();
    expect(lines.drive(24, 0, 1)).toBe(false);
    expect(lines.drive(-1, 0, 1)).toBe(false);
    expect(new Uint8Array(buf).every((b) => b === 0)).toBe(true);
  });

  test('reader_applies_every_pin_first_then_only_changes', () => {
    const { lines } = page();
    const calls: Array<[number, number]> = [];
    const reader = new LineReader(lines, (pin, level) => calls.push([pin, level]));
    lines.drive(4, 0, 1);
    expect(reader.apply()).toBe(24);
    expect(calls.filter(([, l]) => l === 1)).toEqual([[4, 1]]);
    calls.length = 0;
    lines.drive(4, 0, 0);
    lines.drive(9, 0, 1);
    expect(reader.apply()).toBe(2);
    expect(calls).toEqual([[4, 0], [9, 1]]);
    calls.length = 0;
    expect(reader.apply()).toBe(0);
    expect(calls).toEqual([]);
  });

  test('a_line_that_fell_and_rose_between_two_looks_reaches_the_reader_as_an_edge', () => {
    const { lines } = page();
    const calls: Array<[number, number]> = [];
    const reader = new LineReader(lines, (pin, level) => calls.push([pin, level]));
    lines.drive(4, 0, 1);
    reader.apply();
    reader.acknowledge();
    calls.length = 0;
    lines.drive(4, 0, 0);
    lines.drive(4, 0, 1); // the reader never sees the 0
    expect(reader.apply()).toBe(1);
    expect(calls).toEqual([[4, 0], [4, 1]]);
  });

  test('a_successor_reader_does_not_repeat_an_acknowledged_edge_but_repeats_an_unacknowledged_one', () => {
    const { lines } = page();
    const first = new LineReader(lines, () => undefined);
    lines.drive(4, 0, 1);
    first.apply();
    first.acknowledge();
    lines.drive(9, 0, 1);
    first.apply(); // applied, then the reader dies before acknowledging
    const calls: Array<[number, number]> = [];
    const successor = new LineReader(lines, (pin, level) => calls.push([pin, level]));
    successor.apply();
    expect(calls.filter(([pin]) => pin === 4)).toEqual([[4, 1]]);
    expect(calls.filter(([pin]) => pin === 9)).toEqual([[9, 0], [9, 1]]);
  });

  test('a_source_restating_the_level_it_holds_counts_no_rise', () => {
    const { lines } = page();
    lines.drive(4, 0, 1);
    lines.drive(4, 0, 1);
    lines.drive(4, 3, 1); // a second source joins a line already high
    expect(lines.riseCounts(4)).toEqual({ rises: 1, seen: 0 });
  });
});
