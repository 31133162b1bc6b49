import { describe, expect, it } from 'vitest';
import { VirtioError } from './errors.js';
import { GuestMemory } from './memory.js';

function mem(layout: { gpa: number; size: number; hostAlign?: number }[]): GuestMemory {
  return new GuestMemory(layout.map((l) => ({ gpa: l.gpa, bytes: new Uint8Array(l.size), hostAlign: l.hostAlign })));
}

describe('GuestMemory', () => {
  it('gives_a_region_of_exactly_4_gib_a_ring_index_view_over_all_of_it', () => {
    // The high RAM region is exactly 4 GiB for a 7 GiB guest. The buffer is allocated lazily.
    const m = new GuestMemory([{ gpa: 2 ** 32, bytes: new Uint8Array(new SharedArrayBuffer(2 ** 32)) }]);
    const r = m.regions[0]!;

    expect(r.u16.length).toBe(2 ** 31);
    Atomics.store(r.u16, 2 ** 31 - 1, 0xbeef);
    expect(r.bytes[2 ** 32 - 1]).toBe(0xbe);
  });

  it('locates_a_range_inside_one_region', () => {
    const m = mem([{ gpa: 0x1000, size: 0x1000 }, { gpa: 0x10000, size: 0x1000 }]);

    expect(m.locate(0x10010, 16)?.gpa).toBe(0x10000);
    expect(m.locate(0x1ff0, 16)?.gpa).toBe(0x1000);
  });

  it('does_not_locate_a_range_that_runs_past_its_region', () => {
    const m = mem([{ gpa: 0x1000, size: 0x1000 }]);

    expect(m.locate(0x1ff0, 17)).toBeUndefined();
    expect(m.locate(0, 16)).toBeUndefined();
  });

  it('splits_views_across_regions_that_touch', () => {
    const m = mem([{ gpa: 0, size: 0x1000 }, { gpa: 0x1000, size: 0x1000 }]);
    const out: Uint8Array[] = [];

    expect(m.views(0xff0, 0x20, out)).toBe(true);
    expect(out.map((v) => v.byteLength)).toEqual([0x10, 0x10]);
  });

  it('refuses_views_over_a_hole_and_appends_nothing', () => {
    const m = mem([{ gpa: 0, size: 0x1000 }, { gpa: 0x2000, size: 0x1000 }]);
    const out: Uint8Array[] = [new Uint8Array(1)];

    expect(m.views(0xff0, 0x20, out)).toBe(false);
    expect(out.length).toBe(1);
  });

  it('refuses_views_of_zero_length_or_past_the_address_limit', () => {
    const m = mem([{ gpa: 0, size: 0x1000 }]);

    expect(m.views(0x10, 0, [])).toBe(false);
    expect(m.views(2 ** 53, 1, [])).toBe(false);
    expect(m.views(-1, 1, [])).toBe(false);
  });

  it('rejects_overlapping_regions', () => {
    expect(() => mem([{ gpa: 0, size: 0x2000 }, { gpa: 0x1000, size: 0x1000 }])).toThrow(VirtioError);
  });

  it('reports_host_alignment_only_for_regions_known_to_be_aligned', () => {
    const m = mem([{ gpa: 0, size: 0x4000, hostAlign: 4096 }, { gpa: 0x10000, size: 0x4000 }]);

    expect(m.hostAligned(0x1000, 4096)).toBe(true);
    expect(m.hostAligned(0x1200, 4096)).toBe(false);
    expect(m.hostAligned(0x1200, 512)).toBe(true);
    expect(m.hostAligned(0x11000, 512)).toBe(false);
  });
});
