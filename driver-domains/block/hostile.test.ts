// Hostile guests against the whole block domain (transport, queue, parser, device): every case
// gets a request status or NEEDS_RESET, and its counter. None may throw out of the domain.
import { describe, expect, it } from 'vitest';
import { VirtioBlkReqHeader } from '../../idl/generated/virtio.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../virtio/chain.js';
import { STATUS, bit } from '../virtio/device.js';
import type { Buffer } from '../virtio/testing.js';
import { SIZE_MAX, VIRTIO_BLK_F } from './config.js';
import { VIRTIO_BLK_S, VIRTIO_BLK_T } from './request.js';
import { ALL_FEATURES, BlockGuest, type BlockGuestOptions, MemoryBackend } from './testing.js';

const IOERR = VIRTIO_BLK_S.IOERR;
const UNSUPP = VIRTIO_BLK_S.UNSUPP;

/** A guest with helpers to lay out a request's header, data and status by hand. */
function guest(opts: BlockGuestOptions = {}) {
  const g = new BlockGuest<MemoryBackend>(opts).init();
  const header = (type: number, sector = 0n): number => {
    const gpa = g.fake.alloc(VirtioBlkReqHeader.SIZE, 16);
    const h = g.fake.at(gpa, VirtioBlkReqHeader.SIZE);
    VirtioBlkReqHeader.write(h.mem, h.at, { type, ioprio: 0, sector });
    return gpa;
  };
  const status = (): number => {
    const gpa = g.fake.alloc(1, 1);
    g.fake.write(gpa, Uint8Array.of(0xff));
    return gpa;
  };
  const needsReset = (): boolean => (g.driver.status() & STATUS.NEEDS_RESET) !== 0;
  return { g, header, status, needsReset };
}

const R = (gpa: number, len: number): Buffer => ({ gpa, len, writable: false });
const W = (gpa: number, len: number): Buffer => ({ gpa, len, writable: true });

describe('hostile chains: the device goes to NEEDS_RESET', () => {
  it('a_chain_that_loops', async () => {
    const { g, header, needsReset } = guest();
    const dq = g.queue(0);
    dq.writeDesc(0, { addr: header(VIRTIO_BLK_T.IN), len: 16, flags: VIRTQ_DESC_F_NEXT, next: 1 });
    dq.writeDesc(1, { addr: g.fake.alloc(512), len: 512, flags: VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, next: 0 });
    dq.pushHead(0);
    dq.kick();
    await g.settle();

    expect(needsReset()).toBe(true);
    expect(g.domain.counters.get('chain_too_long')).toBe(1);
  });

  it('a_next_index_past_the_queue', async () => {
    const { g, header, needsReset } = guest();
    g.queue(0).writeDesc(0, { addr: header(VIRTIO_BLK_T.IN), len: 16, flags: VIRTQ_DESC_F_NEXT, next: 4000 });
    g.queue(0).pushHead(0);
    g.queue(0).kick();
    await g.settle();

    expect(needsReset()).toBe(true);
    expect(g.domain.counters.get('next_out_of_range')).toBe(1);
  });

  it('an_available_index_that_jumps_past_the_queue_size', async () => {
    const { g, needsReset } = guest();
    g.queue(0).setAvailIdx(300);
    g.queue(0).forceKick();
    await g.settle();

    expect(needsReset()).toBe(true);
    expect(g.domain.counters.get('avail_idx_jump')).toBe(1);
    expect(g.domain.device.inFlight).toBe(0);
  });

  it('an_available_ring_entry_past_the_queue', async () => {
    const { g, needsReset } = guest();
    g.queue(0).pushHead(999);
    g.queue(0).kick();
    await g.settle();

    expect(needsReset()).toBe(true);
    expect(g.domain.counters.get('head_out_of_range')).toBe(1);
  });

  it('a_head_made_available_twice_while_in_flight', async () => {
    const { g, needsReset } = guest();
    g.backend.hold = true;
    const r = g.read(0, 1);
    g.queue(0).pushHead(r.head);
    g.queue(0).kick();

    expect(needsReset()).toBe(true);
    expect(g.domain.counters.get('head_in_flight')).toBe(1);
    g.backend.release();
    await g.settle();
    expect(r.completions).toBe(1);
  });

  it('indirect_tables_nested_with_next_of_bad_length_or_outside_ram', async () => {
    const cases: [string, (g: BlockGuest, table: number) => void][] = [
      ['indirect_nested', (g, t) => g.fake.writeDesc(t, 0, { addr: t, len: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 })],
      ['indirect_with_next', (g, t) => g.queue(0).writeDesc(0, { addr: t, len: 32, flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, next: 1 })],
      ['indirect_bad_length', (g, t) => g.queue(0).writeDesc(0, { addr: t, len: 40, flags: VIRTQ_DESC_F_INDIRECT, next: 0 })],
      ['indirect_outside_ram', (g) => g.queue(0).writeDesc(0, { addr: 1n << 40n, len: 32, flags: VIRTQ_DESC_F_INDIRECT, next: 0 })],
    ];
    for (const [fault, corrupt] of cases) {
      const { g, needsReset } = guest();
      const table = g.fake.alloc(64, 16);
      g.queue(0).writeDesc(0, { addr: table, len: 32, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
      corrupt(g, table);
      g.queue(0).pushHead(0);
      g.queue(0).kick();
      await g.settle();

      expect(needsReset(), fault).toBe(true);
      expect(g.domain.counters.get(fault), fault).toBe(1);
    }
  });

  it('indirect_descriptors_when_the_driver_did_not_negotiate_them', async () => {
    const { g, needsReset } = guest({ wanted: ALL_FEATURES & ~bit(28n) });
    g.queue(0).writeDesc(0, { addr: g.fake.alloc(32, 16), len: 32, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    g.queue(0).pushHead(0);
    g.queue(0).kick();
    await g.settle();

    expect(needsReset()).toBe(true);
    expect(g.domain.counters.get('indirect_not_negotiated')).toBe(1);
  });

  it('a_chain_that_ends_in_a_readable_buffer_has_no_status_byte', async () => {
    const { g, header, needsReset } = guest();
    g.raw([R(header(VIRTIO_BLK_T.FLUSH), 16)], 0);
    await g.settle();

    expect(needsReset()).toBe(true);
    expect(g.domain.counters.get('no_status')).toBe(1);
  });

  it('a_status_byte_outside_guest_ram', async () => {
    const { g, header, needsReset } = guest();
    g.raw([R(header(VIRTIO_BLK_T.FLUSH), 16), W(64 << 20, 1)], 64 << 20);
    await g.settle();

    expect(needsReset()).toBe(true);
    expect(g.domain.counters.get('no_status')).toBe(1);
  });

  it('ignores_the_queue_after_needs_reset_until_the_driver_resets', async () => {
    const { g, needsReset } = guest();
    g.queue(0).setAvailIdx(300);
    g.queue(0).forceKick();
    await g.settle();
    expect(needsReset()).toBe(true);

    g.driver.setStatus(0);
    g.init();
    const r = g.read(0, 1);
    await g.settle();
    expect(g.status(r)).toBe(VIRTIO_BLK_S.OK);
  });
});

describe('hostile buffers: the request fails with a status', () => {
  async function one(g: BlockGuest, buffers: Buffer[], statusGpa: number, opts: { indirect?: boolean } = {}): Promise<number> {
    const r = g.raw(buffers, statusGpa, opts);
    await g.settle();
    expect(r.completions).toBe(1);
    expect(g.driver.status() & STATUS.NEEDS_RESET).toBe(0);
    return g.status(r);
  }

  it('a_data_buffer_outside_guest_ram', async () => {
    const { g, header, status } = guest();
    const s = status();

    expect(await one(g, [R(header(VIRTIO_BLK_T.IN), 16), W(32 << 20, 512), W(s, 1)], s)).toBe(IOERR);
    expect(g.domain.counters.get('buffer_outside_ram')).toBe(1);
  });

  it('a_data_buffer_that_runs_off_the_end_of_guest_ram', async () => {
    const { g, header, status } = guest();
    const s = status();

    expect(await one(g, [R(header(VIRTIO_BLK_T.IN), 16), W((16 << 20) - 256, 512), W(s, 1)], s)).toBe(IOERR);
    expect(g.domain.counters.get('buffer_outside_ram')).toBe(1);
  });

  it('a_data_buffer_overlapping_the_used_ring', async () => {
    const { g, header, status } = guest();
    const s = status();

    expect(await one(g, [R(header(VIRTIO_BLK_T.IN), 16), W(g.queue(0).used, 512), W(s, 1)], s)).toBe(IOERR);
    expect(g.domain.counters.get('buffer_overlaps_ring')).toBe(1);
  });

  it('a_zero_length_buffer', async () => {
    const { g, header, status } = guest();
    const s = status();

    expect(await one(g, [R(header(VIRTIO_BLK_T.IN), 16), W(g.fake.alloc(512), 0), W(s, 1)], s)).toBe(IOERR);
    expect(g.domain.counters.get('buffer_zero_length')).toBe(1);
  });

  it('a_data_buffer_longer_than_size_max', async () => {
    const { g, header, status } = guest();
    const s = status();

    expect(await one(g, [R(header(VIRTIO_BLK_T.IN), 16), W(g.fake.alloc(2 * SIZE_MAX), 2 * SIZE_MAX), W(s, 1)], s)).toBe(IOERR);
    expect(g.domain.counters.get('oversize_segment')).toBe(1);
  });

  it('more_data_than_seg_max_times_size_max', async () => {
    const { g, header, status } = guest({ options: { queueSize: 8 } });
    const s = status();
    // Six direct descriptors, then an indirect table of eight: 12 data buffers of size_max.
    const data = Array.from({ length: 12 }, () => W(g.fake.alloc(SIZE_MAX, 4096), SIZE_MAX));
    const table = g.fake.alloc(16 * 8, 16);
    [...data.slice(5), W(s, 1)].forEach((b, i, all) => g.fake.writeDesc(table, i, { addr: b.gpa, len: b.len, flags: VIRTQ_DESC_F_WRITE | (i < all.length - 1 ? VIRTQ_DESC_F_NEXT : 0), next: i + 1 }));
    const direct: Buffer[] = [R(header(VIRTIO_BLK_T.IN), 16), ...data.slice(0, 5)];
    const dq = g.queue(0);
    direct.forEach((b, i) => dq.writeDesc(i, { addr: b.gpa, len: b.len, flags: (b.writable ? VIRTQ_DESC_F_WRITE : 0) | VIRTQ_DESC_F_NEXT, next: i + 1 }));
    dq.writeDesc(6, { addr: table, len: 16 * 8, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    dq.pushHead(0);
    dq.kick();
    await g.settle();

    expect(g.fake.read(s, 1)[0]).toBe(IOERR);
    expect(g.domain.counters.get('oversize_request')).toBe(1);
  });

  it('buffers_in_the_wrong_direction', async () => {
    const { g, header, status } = guest();
    const s1 = status();
    const s2 = status();
    const s3 = status();

    expect(await one(g, [R(header(VIRTIO_BLK_T.IN), 16), R(g.fake.alloc(512), 512), W(s1, 1)], s1)).toBe(IOERR);
    expect(await one(g, [R(header(VIRTIO_BLK_T.OUT), 16), W(g.fake.alloc(512), 512), W(s2, 1)], s2)).toBe(IOERR);
    expect(g.domain.counters.get('wrong_direction')).toBe(2);
    expect(await one(g, [R(header(VIRTIO_BLK_T.IN), 16), W(g.fake.alloc(512), 512), R(g.fake.alloc(16), 16), W(s3, 1)], s3)).toBe(IOERR);
    expect(g.domain.counters.get('readable_after_writable')).toBe(1);
  });

  it('a_header_shorter_than_16_bytes', async () => {
    const { g, header, status } = guest();
    const s = status();

    expect(await one(g, [R(header(VIRTIO_BLK_T.IN), 8), W(s, 1)], s)).toBe(IOERR);
    expect(g.domain.counters.get('short_header')).toBe(1);
  });

  it('data_that_is_not_whole_sectors_and_a_get_id_of_the_wrong_size', async () => {
    const { g, header, status } = guest();
    const s1 = status();
    const s2 = status();

    expect(await one(g, [R(header(VIRTIO_BLK_T.IN), 16), W(g.fake.alloc(100), 100), W(s1, 1)], s1)).toBe(IOERR);
    expect(await one(g, [R(header(VIRTIO_BLK_T.GET_ID), 16), W(g.fake.alloc(8), 8), W(s2, 1)], s2)).toBe(IOERR);
    expect(g.domain.counters.get('bad_length')).toBe(2);
  });

  it('sectors_past_the_capacity', async () => {
    const { g, header, status } = guest({ sectors: 64 });
    const s1 = status();
    const s2 = status();

    expect(await one(g, [R(header(VIRTIO_BLK_T.IN, 63n), 16), W(g.fake.alloc(1024), 1024), W(s1, 1)], s1)).toBe(IOERR);
    expect(await one(g, [R(header(VIRTIO_BLK_T.IN, 1n << 62n), 16), W(g.fake.alloc(512), 512), W(s2, 1)], s2)).toBe(IOERR);
    expect(g.domain.counters.get('out_of_range')).toBe(2);
  });

  it('request_types_not_offered_get_unsupp', async () => {
    const { g, header, status } = guest();
    const s1 = status();
    const s2 = status();

    expect(await one(g, [R(header(VIRTIO_BLK_T.GET_LIFETIME), 16), W(g.fake.alloc(8), 8), W(s1, 1)], s1)).toBe(UNSUPP);
    expect(await one(g, [R(header(0xdead), 16), W(s2, 1)], s2)).toBe(UNSUPP);
    expect(g.domain.counters.get('unsupported_type')).toBe(2);
  });

  it('discard_without_negotiation_gets_unsupp', async () => {
    const g = new BlockGuest({ wanted: ALL_FEATURES & ~bit(VIRTIO_BLK_F.DISCARD) }).init();
    const r = g.ranges(VIRTIO_BLK_T.DISCARD, [{ sector: 0, count: 1 }]);
    await g.settle();

    expect(g.status(r)).toBe(UNSUPP);
  });

  it('range_flags_unmap_on_discard_and_unknown_bits_get_unsupp', async () => {
    const g = new BlockGuest().init();
    const d = g.ranges(VIRTIO_BLK_T.DISCARD, [{ sector: 0, count: 1, flags: 1 }]);
    const z = g.ranges(VIRTIO_BLK_T.WRITE_ZEROES, [{ sector: 0, count: 1, flags: 2 }]);
    await g.settle();

    expect([g.status(d), g.status(z)]).toEqual([UNSUPP, UNSUPP]);
    expect(g.domain.counters.get('bad_flags')).toBe(2);
  });

  it('more_ranges_than_max_seg_and_ranges_past_the_capacity', async () => {
    const g = new BlockGuest({ sectors: 64 }).init();
    const many = g.ranges(VIRTIO_BLK_T.DISCARD, Array.from({ length: 33 }, (_, i) => ({ sector: i, count: 1 })));
    const past = g.ranges(VIRTIO_BLK_T.WRITE_ZEROES, [{ sector: 60, count: 8 }]);
    await g.settle();

    expect([g.status(many), g.status(past)]).toEqual([IOERR, IOERR]);
    expect(g.domain.counters.get('too_many_segments')).toBe(1);
    expect(g.domain.counters.get('out_of_range')).toBe(1);
  });

  it('writes_no_guest_memory_but_the_status_byte_and_the_used_ring', async () => {
    const { g, header, status } = guest();
    const s = status();
    // A read whose data buffer runs off the end of RAM: nothing of it may be written.
    const r = g.raw([R(header(VIRTIO_BLK_T.IN), 16), W((16 << 20) - 256, 512), W(s, 1)], s, { kick: false });
    const before = g.fake.read(0, 16 << 20);
    g.queue(0).kick();
    await g.domain.device.idle();
    const after = g.fake.read(0, 16 << 20);
    g.collect();
    const used = g.queue(0).used;
    const usedEnd = used + 4 + 8 * g.queue(0).size + 2;
    const changed: number[] = [];
    for (let i = 0; i < after.length; i++) if (after[i] !== before[i] && i !== s && (i < used || i >= usedEnd)) changed.push(i);

    expect(r.completions).toBe(1);
    expect(changed).toEqual([]);
    expect(g.status(r)).toBe(IOERR);
  });
});
