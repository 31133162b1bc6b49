import { describe, expect, test } from 'vitest';
import { RangeTable } from './ranges.js';

describe('RangeTable', () => {
  test('finds_the_range_that_covers_an_address', () => {
    const t = new RangeTable();
    t.add({ space: 'pio', first: 0x3f8, last: 0x3ff, endpoint: 1, buffered: true });
    t.add({ space: 'mmio', first: 0xfec0_0000, last: 0xfec0_0fff, endpoint: 2, buffered: false });
    expect(t.lookup('pio', 0x3fd)).toMatchObject({ endpoint: 1, buffered: true });
    expect(t.lookup('mmio', 0xfec0_0010)).toMatchObject({ endpoint: 2, buffered: false });
    expect(t.lookup('pio', 0x400)).toBeUndefined();
    expect(t.lookup('mmio', 0x3f8)).toBeUndefined();
  });

  test('rejects_an_overlapping_range', () => {
    const t = new RangeTable();
    t.add({ space: 'pio', first: 0x60, last: 0x64, endpoint: 1, buffered: false });
    expect(() => t.add({ space: 'pio', first: 0x64, last: 0x64, endpoint: 2, buffered: false })).toThrow(/overlaps endpoint 1/);
    expect(() => t.add({ space: 'mmio', first: 0x64, last: 0x64, endpoint: 2, buffered: false })).not.toThrow();
  });

  test('rejects_ports_beyond_64k_and_reversed_ranges', () => {
    const t = new RangeTable();
    expect(() => t.add({ space: 'pio', first: 0xfff0, last: 0x10000, endpoint: 1, buffered: false })).toThrow(/bad pio range/);
    expect(() => t.add({ space: 'mmio', first: 10, last: 9, endpoint: 1, buffered: false })).toThrow(/bad mmio range/);
  });

  test('removing_an_endpoint_keeps_the_others', () => {
    const t = new RangeTable();
    t.add({ space: 'pio', first: 1, last: 1, endpoint: 1, buffered: false });
    t.add({ space: 'pio', first: 2, last: 2, endpoint: 2, buffered: false });
    t.add({ space: 'pio', first: 3, last: 3, endpoint: 1, buffered: false });
    t.removeEndpoint(1);
    expect(t.list().map((r) => r.first)).toEqual([2]);
  });

  test('a_second_view_over_the_same_buffer_sees_the_entries', () => {
    const t = new RangeTable();
    t.add({ space: 'mmio', first: 2 ** 40, last: 2 ** 40 + 0xfff, endpoint: 7, buffered: false });
    const view = new RangeTable(t.buffer);
    expect(view.lookup('mmio', 2 ** 40 + 5)?.endpoint).toBe(7);
  });

  test('a_moved_bar_leaves_its_old_range_and_keeps_its_relative_flag', () => {
    const t = new RangeTable();
    t.add({ space: 'mmio', first: 0xc000_0000, last: 0xc000_3fff, endpoint: 3, buffered: false, relative: true });
    t.add({ space: 'mmio', first: 0xc000_4000, last: 0xc000_4fff, endpoint: 2, buffered: false });
    t.remove('mmio', 0xc000_0000);
    expect(t.lookup('mmio', 0xc000_0010)).toBeUndefined();
    t.add({ space: 'mmio', first: 0xc001_0000, last: 0xc001_3fff, endpoint: 3, buffered: false, relative: true });
    expect(t.lookup('mmio', 0xc001_0004)).toMatchObject({ endpoint: 3, relative: true, first: 0xc001_0000 });
    expect(t.lookup('mmio', 0xc000_4004)).toMatchObject({ endpoint: 2, relative: false });
    t.remove('pio', 0xc000_4000); // another space: nothing removed
    expect(t.list()).toHaveLength(2);
  });
});
