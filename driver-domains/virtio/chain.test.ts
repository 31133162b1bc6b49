// The chain decoder against well-formed chains and against every hostile shape it must refuse.
import { describe, expect, it } from 'vitest';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, type Chain } from './chain.js';
import type { GpaRange } from './memory.js';
import { SplitQueue, queueRanges } from './queue.js';
import { DriverQueue, FakeGuestMemory } from './testing.js';

const NEXT = VIRTQ_DESC_F_NEXT;
const WRITE = VIRTQ_DESC_F_WRITE;
const INDIRECT = VIRTQ_DESC_F_INDIRECT;
const noBar = { read: () => 0n, write: () => undefined };

function setup(opts: { size?: number; indirect?: boolean; maxIndirect?: number } = {}) {
  const fake = new FakeGuestMemory([{ gpa: 0, size: 1 << 20 }, { gpa: 1 << 20, size: 1 << 20 }, { gpa: 4 << 20, size: 1 << 20 }]);
  const size = opts.size ?? 8;
  const dq = new DriverQueue(fake, 0, size, { eventIdx: false, indirect: opts.indirect ?? true }, noBar);
  const forbidden: GpaRange[] = [];
  const q = new SplitQueue(fake.memory, { size, desc: dq.desc, driver: dq.avail, device: dq.used }, { eventIdx: false, indirect: opts.indirect ?? true }, opts.maxIndirect ?? 16, forbidden);
  forbidden.push(...q.ranges);
  const data = fake.alloc(0x4000, 4096);
  return { fake, dq, q, data };
}

function chain(r: Chain | string): Chain {
  if (typeof r === 'string') throw new Error(`fault ${r}`);
  return r;
}

describe('walkChain: well-formed chains', () => {
  it('returns_readable_then_writable_segments_in_order', () => {
    const { dq, q, data } = setup();
    const head = dq.add([{ gpa: data, len: 16, writable: false }, { gpa: data + 512, len: 512, writable: true }, { gpa: data + 1024, len: 1, writable: true }]);

    const c = chain(q.walk(head));

    expect(c.segments.map((s) => [s.len, s.writable])).toEqual([[16, false], [512, true], [1, true]]);
    expect(c.readableBytes).toBe(16);
    expect(c.writableBytes).toBe(513);
    expect(c.fault).toBeUndefined();
  });

  it('follows_an_indirect_table', () => {
    const { dq, q, data } = setup();
    const head = dq.add([{ gpa: data, len: 16, writable: false }, { gpa: data + 16, len: 1, writable: true }], true);

    const c = chain(q.walk(head));

    expect(c.segments.map((s) => s.gpa)).toEqual([data, data + 16]);
  });

  it('follows_direct_descriptors_that_end_in_an_indirect_one', () => {
    const { fake, dq, q, data } = setup();
    const table = fake.alloc(32, 16);
    dq.writeDesc(0, { addr: data, len: 16, flags: NEXT, next: 1 });
    dq.writeDesc(1, { addr: table, len: 32, flags: INDIRECT, next: 0 });
    // Indirect entries: a writable buffer, then the status byte.
    fake.writeDesc(table, 0, { addr: data + 512, len: 512, flags: WRITE | NEXT, next: 1 });
    fake.writeDesc(table, 1, { addr: data + 1024, len: 1, flags: WRITE, next: 0 });

    const c = chain(q.walk(0));

    expect(c.segments.map((s) => [s.gpa, s.len, s.writable])).toEqual([[data, 16, false], [data + 512, 512, true], [data + 1024, 1, true]]);
  });

  it('splits_a_buffer_across_touching_regions_into_two_views', () => {
    const { dq, q } = setup();
    const head = dq.add([{ gpa: (1 << 20) - 8, len: 16, writable: false }]);

    const c = chain(q.walk(head));

    expect(c.segments[0]?.views.map((v) => v.byteLength)).toEqual([8, 8]);
  });
});

describe('walkChain: hostile chains (queue faults)', () => {
  it('rejects_a_head_past_the_queue', () => {
    const { q } = setup();

    expect(q.walk(8)).toBe('head_out_of_range');
  });

  it('rejects_a_next_index_out_of_range', () => {
    const { dq, q, data } = setup();
    dq.writeDesc(0, { addr: data, len: 16, flags: NEXT, next: 9 });

    expect(q.walk(0)).toBe('next_out_of_range');
  });

  it('rejects_a_chain_that_loops', () => {
    const { dq, q, data } = setup();
    dq.writeDesc(0, { addr: data, len: 16, flags: NEXT, next: 1 });
    dq.writeDesc(1, { addr: data, len: 16, flags: NEXT, next: 0 });

    expect(q.walk(0)).toBe('chain_too_long');
  });

  it('rejects_a_self_loop_after_at_most_queue_size_descriptors', () => {
    const { dq, q, data } = setup({ size: 256 });
    dq.writeDesc(5, { addr: data, len: 16, flags: NEXT, next: 5 });

    expect(q.walk(5)).toBe('chain_too_long');
  });

  it('rejects_indirect_when_not_negotiated', () => {
    const { dq, q, data } = setup({ indirect: false });
    dq.writeDesc(0, { addr: data, len: 32, flags: INDIRECT, next: 0 });

    expect(q.walk(0)).toBe('indirect_not_negotiated');
  });

  it('rejects_a_nested_indirect_table', () => {
    const { fake, dq, q } = setup();
    const table = fake.alloc(16, 16);
    fake.writeDesc(table, 0, { addr: table, len: 16, flags: INDIRECT, next: 0 });
    dq.writeDesc(0, { addr: table, len: 16, flags: INDIRECT, next: 0 });

    expect(q.walk(0)).toBe('indirect_nested');
  });

  it('rejects_indirect_together_with_next', () => {
    const { dq, q, data } = setup();
    dq.writeDesc(0, { addr: data, len: 32, flags: INDIRECT | NEXT, next: 1 });

    expect(q.walk(0)).toBe('indirect_with_next');
  });

  it('rejects_indirect_tables_of_bad_length', () => {
    const { dq, q, data } = setup({ maxIndirect: 4 });
    for (const len of [0, 24, 16 * 5]) {
      dq.writeDesc(0, { addr: data, len, flags: INDIRECT, next: 0 });

      expect(q.walk(0)).toBe('indirect_bad_length');
    }
  });

  it('rejects_an_indirect_table_outside_guest_ram', () => {
    const { dq, q } = setup();
    dq.writeDesc(0, { addr: 3 << 20, len: 32, flags: INDIRECT, next: 0 });
    dq.writeDesc(1, { addr: 0xffff_ffff_ffff_fff0n, len: 32, flags: INDIRECT, next: 0 });

    expect(q.walk(0)).toBe('indirect_outside_ram');
    expect(q.walk(1)).toBe('indirect_outside_ram');
  });

  it('rejects_a_loop_inside_an_indirect_table', () => {
    const { fake, dq, q, data } = setup();
    const table = fake.alloc(32, 16);
    fake.writeDesc(table, 0, { addr: data, len: 16, flags: NEXT, next: 1 });
    fake.writeDesc(table, 1, { addr: data, len: 16, flags: NEXT, next: 0 });
    dq.writeDesc(0, { addr: table, len: 32, flags: INDIRECT, next: 0 });

    expect(q.walk(0)).toBe('chain_too_long');
  });
});

describe('walkChain: hostile buffers (segment faults)', () => {
  it('marks_a_buffer_outside_guest_ram_and_keeps_walking', () => {
    const { dq, q, data } = setup();
    const head = dq.add([{ gpa: 3 << 20, len: 16, writable: false }, { gpa: data, len: 1, writable: true }]);

    const c = chain(q.walk(head));

    expect(c.fault).toBe('buffer_outside_ram');
    expect(c.segments[0]?.views).toEqual([]);
    expect(c.segments[1]?.fault).toBeUndefined();
  });

  it('marks_a_buffer_that_runs_off_the_end_of_ram_or_has_a_huge_address', () => {
    const { dq, q } = setup();
    dq.writeDesc(0, { addr: (5 << 20) - 8, len: 16, flags: 0, next: 0 });
    dq.writeDesc(1, { addr: 0xffff_ffff_ffff_f000n, len: 0x2000, flags: 0, next: 0 });

    expect(chain(q.walk(0)).fault).toBe('buffer_outside_ram');
    expect(chain(q.walk(1)).fault).toBe('buffer_outside_ram');
  });

  it('marks_a_zero_length_buffer', () => {
    const { dq, q, data } = setup();
    const head = dq.add([{ gpa: data, len: 0, writable: false }]);

    expect(chain(q.walk(head)).fault).toBe('buffer_zero_length');
  });

  it('marks_a_buffer_overlapping_the_used_ring', () => {
    const { dq, q, data } = setup();
    const used = queueRanges({ size: 8, desc: dq.desc, driver: dq.avail, device: dq.used }).used;
    const head = dq.add([{ gpa: data, len: 16, writable: false }, { gpa: used.start + 4, len: 8, writable: true }]);

    expect(chain(q.walk(head)).fault).toBe('buffer_overlaps_ring');
  });

  it('marks_a_chain_whose_buffers_add_up_past_the_32_bit_used_length', () => {
    const fake = new FakeGuestMemory([{ gpa: 0, size: 1 << 20 }, { gpa: 16 << 20, size: 16 << 20 }]);
    const dq = new DriverQueue(fake, 0, 256, { eventIdx: false, indirect: false }, noBar);
    const q = new SplitQueue(fake.memory, { size: 256, desc: dq.desc, driver: dq.avail, device: dq.used }, { eventIdx: false, indirect: false }, 256, []);
    for (let i = 0; i < 256; i++) dq.writeDesc(i, { addr: 16 << 20, len: 16 << 20, flags: i < 255 ? NEXT | WRITE : WRITE, next: i + 1 });

    const c = chain(q.walk(0));

    expect(c.writableBytes).toBe(2 ** 32);
    expect(c.fault).toBe('length_overflow');
  });

  it('marks_a_readable_buffer_after_a_writable_one', () => {
    const { dq, q, data } = setup();
    const head = dq.add([{ gpa: data, len: 16, writable: true }, { gpa: data + 16, len: 16, writable: false }]);

    expect(chain(q.walk(head)).fault).toBe('readable_after_writable');
  });
});
