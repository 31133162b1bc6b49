import { describe, expect, it } from 'vitest';
import { SplitQueue, VIRTQ_AVAIL_F_NO_INTERRUPT, checkLayout } from './queue.js';
import { DriverQueue, FakeGuestMemory } from './testing.js';

const noBar = { read: () => 0n, write: () => undefined };

function setup(eventIdx: boolean) {
  const fake = new FakeGuestMemory();
  const dq = new DriverQueue(fake, 0, 8, { eventIdx, indirect: false }, noBar);
  const cfg = { size: 8, desc: dq.desc, driver: dq.avail, device: dq.used };
  const q = new SplitQueue(fake.memory, cfg, { eventIdx, indirect: false }, 8, []);
  return { fake, dq, q, cfg };
}

describe('checkLayout', () => {
  const fake = new FakeGuestMemory();
  const ok = { size: 8, desc: 0x10000, driver: 0x11000, device: 0x12000 };

  it('accepts_aligned_disjoint_parts_in_ram', () => {
    expect(checkLayout(fake.memory, ok, 256)).toBeUndefined();
  });

  it('rejects_a_queue_size_that_is_not_a_power_of_two_or_too_large', () => {
    expect(checkLayout(fake.memory, { ...ok, size: 6 }, 256)).toBe('ring_layout');
    expect(checkLayout(fake.memory, { ...ok, size: 0 }, 256)).toBe('ring_layout');
    expect(checkLayout(fake.memory, { ...ok, size: 512 }, 256)).toBe('ring_layout');
  });

  it('rejects_misaligned_parts', () => {
    expect(checkLayout(fake.memory, { ...ok, desc: 0x10008 }, 256)).toBe('ring_layout');
    expect(checkLayout(fake.memory, { ...ok, driver: 0x11001 }, 256)).toBe('ring_layout');
    expect(checkLayout(fake.memory, { ...ok, device: 0x12002 }, 256)).toBe('ring_layout');
  });

  it('rejects_parts_outside_ram', () => {
    expect(checkLayout(fake.memory, { ...ok, device: (4 << 20) - 16 }, 256)).toBe('ring_layout');
    expect(checkLayout(fake.memory, { ...ok, desc: 2 ** 60 }, 256)).toBe('ring_layout');
  });

  it('rejects_overlapping_parts', () => {
    expect(checkLayout(fake.memory, { ...ok, driver: 0x10040 }, 256)).toBe('ring_layout');
    expect(checkLayout(fake.memory, { ...ok, device: 0x11010 }, 256)).toBe('ring_layout');
  });
});

describe('SplitQueue', () => {
  it('reads_heads_the_driver_made_available_in_order', () => {
    const { dq, q } = setup(false);
    dq.pushHead(3);
    dq.pushHead(5);

    expect(q.availIdx()).toBe(2);
    expect([q.headAt(0), q.headAt(1)]).toEqual([3, 5]);
  });

  it('publishes_used_elements_only_when_the_index_is_stored', () => {
    const { dq, q } = setup(false);
    dq.pushHead(3);
    q.writeUsed(0, 3, 513);

    expect(dq.takeUsed()).toEqual([]);
    q.publish(0, 1);
    expect(dq.takeUsed()).toEqual([{ id: 3, len: 513 }]);
  });

  it('skips_the_interrupt_when_the_driver_set_no_interrupt', () => {
    const { dq, q } = setup(false);
    dq.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
    q.writeUsed(0, 0, 1);

    expect(q.publish(0, 1)).toBe(false);
  });

  it('interrupts_with_event_idx_only_when_used_event_is_crossed', () => {
    const { dq, q } = setup(true);
    dq.setUsedEvent(2);
    q.writeUsed(0, 0, 1);
    q.writeUsed(1, 1, 1);

    expect(q.publish(0, 2)).toBe(false); // used_event 2 not in [0, 2)
    q.writeUsed(2, 2, 1);
    expect(q.publish(2, 3)).toBe(true); // 2 in [2, 3)
  });

  it('interrupts_with_event_idx_across_the_16_bit_wrap', () => {
    const { dq, q } = setup(true);
    dq.setUsedEvent(0xffff);

    expect(q.publish(0xfffe, 0x10001)).toBe(true);
  });

  it('arms_avail_event_at_the_next_position_and_rereads_the_index', () => {
    const { dq, q } = setup(true);
    dq.pushHead(1);

    expect(q.armNotify(1)).toBe(1);
    expect(dq.availEvent()).toBe(1);
  });
});
