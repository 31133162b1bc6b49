// The block process's state region: the applied log's place and size, and its records.
import { describe, expect, it } from 'vitest';
import { IoreqApplied } from '../../idl/generated/ioreq.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import { blockStateBytes } from './index.js';
import { APPLIED_LOG_BYTES, APPLIED_VCPUS, BLOCK_REGION_BASE, RegionAppliedLog, regionBytes } from './region.js';

describe('block state region', () => {
  it('puts_the_device_after_the_applied_log_on_a_page_of_its_own', () => {
    expect(APPLIED_LOG_BYTES).toBe(APPLIED_VCPUS * IoreqApplied.SIZE);
    expect(BLOCK_REGION_BASE % 4096).toBe(0);
    expect(BLOCK_REGION_BASE).toBeGreaterThanOrEqual(APPLIED_LOG_BYTES);
    expect(regionBytes({ numQueues: 2, queueSize: 128 })).toBe(BLOCK_REGION_BASE + blockStateBytes({ numQueues: 2, queueSize: 128 }));
  });

  it('applied_log_reads_back_what_it_recorded_per_vcpu_and_zero_when_blank', () => {
    const m = new SharedBytes(new ArrayBuffer(APPLIED_LOG_BYTES));
    const log = new RegionAppliedLog(m, 4);
    log.record(2, 7n, 0xabn);

    expect(log.last(2)).toEqual({ seq: 7n, data: 0xabn });
    expect(log.last(1)).toEqual({ seq: 0n, data: 0n });
    // A successor over the same bytes sees the same record.
    expect(new RegionAppliedLog(m, 4).last(2)).toEqual({ seq: 7n, data: 0xabn });
    expect(IoreqApplied.read(m, 2 * IoreqApplied.SIZE)).toEqual({ seq: 7n, data: 0xabn });
  });

  it('refuses_more_vcpus_than_the_log_has_room_for_and_vcpus_outside_it', () => {
    const m = new SharedBytes(new ArrayBuffer(APPLIED_LOG_BYTES));
    expect(() => new RegionAppliedLog(m, APPLIED_VCPUS + 1)).toThrow(RangeError);
    expect(() => new RegionAppliedLog(new SharedBytes(new ArrayBuffer(16)), 1)).toThrow(RangeError);
    expect(() => new RegionAppliedLog(m, 2).record(2, 1n, 0n)).toThrow(RangeError);
  });
});
