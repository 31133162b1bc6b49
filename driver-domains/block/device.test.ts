// The virtio-blk device through its BAR, driven by the fake guest: requests of every type,
// many in flight, completion order, flush durability, writethrough, queue depth, multiqueue,
// and reset while requests are in flight.
import { describe, expect, it } from 'vitest';
import { VirtioBlkConfig } from '../../idl/generated/virtio.js';
import { STATUS, bit } from '../virtio/device.js';
import { ID_BYTES, SECTOR, VIRTIO_BLK_F } from './config.js';
import { VIRTIO_BLK_S, VIRTIO_BLK_T } from './request.js';
import { ALL_FEATURES, BlockGuest, MemoryBackend, pattern } from './testing.js';

const OK = VIRTIO_BLK_S.OK;

describe('BlockDevice: requests', () => {
  it('reads_back_what_was_written', async () => {
    const g = new BlockGuest().init();
    const w = g.write(8, pattern(8, 4, 1));
    await g.settle();
    const r = g.read(8, 4);
    await g.settle();

    expect([g.status(w), g.status(r)]).toEqual([OK, OK]);
    expect(g.data(r)).toEqual(pattern(8, 4, 1));
    expect(r.usedLen).toBe(4 * SECTOR + 1);
  });

  it('serves_requests_in_indirect_tables', async () => {
    const g = new BlockGuest().init();
    g.write(0, pattern(0, 2, 3), { indirect: true });
    const r = g.read(0, 2, { indirect: true });
    await g.settle();

    expect(g.data(r)).toEqual(pattern(0, 2, 3));
  });

  it('get_id_returns_the_serial_nul_padded', async () => {
    const g = new BlockGuest({ options: { serial: 'disk-7' } }).init();
    const r = g.getId();
    await g.settle();

    expect(g.status(r)).toBe(OK);
    const want = new Uint8Array(ID_BYTES);
    want.set(new TextEncoder().encode('disk-7'));
    expect(g.data(r)).toEqual(want);
  });

  it('discard_and_write_zeroes_clear_their_ranges', async () => {
    const g = new BlockGuest().init();
    g.write(0, pattern(0, 16, 1));
    await g.settle();
    const d = g.ranges(VIRTIO_BLK_T.DISCARD, [{ sector: 0, count: 4 }]);
    const z = g.ranges(VIRTIO_BLK_T.WRITE_ZEROES, [{ sector: 8, count: 4, flags: 1 }, { sector: 12, count: 2 }]);
    await g.settle();

    expect([g.status(d), g.status(z)]).toEqual([OK, OK]);
    expect(g.backend.disk.subarray(0, 4 * SECTOR).every((b) => b === 0)).toBe(true);
    expect(g.backend.disk.subarray(8 * SECTOR, 14 * SECTOR).every((b) => b === 0)).toBe(true);
    expect(g.backend.disk.subarray(4 * SECTOR, 8 * SECTOR)).toEqual(pattern(0, 16, 1).subarray(4 * SECTOR, 8 * SECTOR));
  });

  it('counts_write_zeroes_that_fell_back_to_writing_zeroes', async () => {
    const g = new BlockGuest().init();
    g.backend.spaceOutcome = 'zeroes_written';
    g.ranges(VIRTIO_BLK_T.WRITE_ZEROES, [{ sector: 0, count: 1 }]);
    await g.settle();

    expect(g.domain.events.get('zeroes_written')).toBe(1);
  });

  it('fails_a_request_whose_io_fails_with_ioerr_and_counts_it', async () => {
    const g = new BlockGuest().init();
    g.backend.failing.add('read');
    const r = g.read(0, 1);
    await g.settle();

    expect(g.status(r)).toBe(VIRTIO_BLK_S.IOERR);
    expect(g.domain.events.get('io_error')).toBe(1);
  });
});

describe('BlockDevice: concurrency and durability', () => {
  it('keeps_many_requests_in_flight_at_once', () => {
    const g = new BlockGuest().init();
    g.backend.hold = true;
    for (let i = 0; i < 32; i++) g.read(i, 1);

    expect(g.backend.held.length).toBe(32);
    expect(g.domain.device.inFlight).toBe(32);
  });

  it('completes_requests_in_the_order_the_backend_finishes_them', async () => {
    const g = new BlockGuest().init();
    for (let i = 0; i < 8; i++) g.write(i * 4, pattern(i * 4, 4, 2));
    await g.settle();
    g.backend.hold = true;
    const reads = Array.from({ length: 8 }, (_, i) => g.read(i * 4, 4));
    g.backend.release([7, 6, 5, 4, 3, 2, 1, 0]);
    const done = await g.settle();

    expect(done.map((r) => r.head)).toEqual([...reads].reverse().map((r) => r.head));
    reads.forEach((r, i) => expect(g.data(r)).toEqual(pattern(i * 4, 4, 2)));
  });

  it('stops_taking_requests_at_the_queue_depth_and_resumes_as_they_complete', async () => {
    const g = new BlockGuest({ options: { queueDepth: 4 } }).init();
    g.backend.hold = true;
    for (let i = 0; i < 10; i++) g.read(i, 1);

    expect(g.backend.held.length).toBe(4);
    g.backend.hold = false;
    g.backend.release();
    const done = await g.settle();
    expect(done.length).toBe(10);
  });

  it('flush_makes_every_write_completed_before_it_durable', async () => {
    const g = new BlockGuest().init();
    g.write(0, pattern(0, 8, 5));
    await g.settle();

    expect(g.backend.durable.subarray(0, 8 * SECTOR)).not.toEqual(pattern(0, 8, 5));
    const f = g.flush();
    await g.settle();
    expect(g.status(f)).toBe(OK);
    expect(g.backend.durable.subarray(0, 8 * SECTOR)).toEqual(pattern(0, 8, 5));
  });

  it('writethrough_mode_makes_each_write_durable_before_it_completes', async () => {
    const g = new BlockGuest().init();
    g.driver.bar.write(0x2000 + VirtioBlkConfig.OFFSET.writeback, 1, 0n);
    g.write(0, pattern(0, 1, 6));
    await g.settle();

    expect(g.driver.config(VirtioBlkConfig.OFFSET.writeback, 1)).toBe(0n);
    expect(g.backend.durable.subarray(0, SECTOR)).toEqual(pattern(0, 1, 6));
  });

  it('without_flush_negotiated_writes_are_durable_at_completion', async () => {
    const g = new BlockGuest({ wanted: ALL_FEATURES & ~bit(VIRTIO_BLK_F.FLUSH) & ~bit(VIRTIO_BLK_F.CONFIG_WCE) }).init();
    g.write(0, pattern(0, 1, 7));
    await g.settle();

    expect(g.backend.durable.subarray(0, SECTOR)).toEqual(pattern(0, 1, 7));
  });

  it('serves_every_queue_of_a_multiqueue_device', async () => {
    const g = new BlockGuest({ options: { numQueues: 4 }, queues: 4, msix: true }).init();
    const reqs = [0, 1, 2, 3].map((q) => g.write(q * 8, pattern(q * 8, 1, q), { q }));
    await g.settle();

    expect(reqs.map((r) => g.status(r))).toEqual([OK, OK, OK, OK]);
    expect([1, 2, 3, 4].map((v) => g.interrupts.count(v) > 0)).toEqual([true, true, true, true]);
  });

  it('suppresses_interrupts_until_used_event_is_crossed', async () => {
    const g = new BlockGuest({ msix: true }).init();
    g.queue(0).setUsedEvent(3);
    for (let i = 0; i < 3; i++) g.read(i, 1);
    await g.domain.device.idle();

    expect(g.interrupts.count(1)).toBe(0);
    g.read(3, 1);
    await g.domain.device.idle();
    expect(g.interrupts.count(1)).toBe(1);
  });
});

describe('BlockDevice: configuration and reset', () => {
  it('reports_capacity_block_size_and_limits_in_its_configuration', () => {
    const g = new BlockGuest({ sectors: 4096, options: { blockSize: 4096 } }).init();

    expect(g.driver.config(VirtioBlkConfig.OFFSET.capacity, 8)).toBe(4096n);
    expect(g.driver.config(VirtioBlkConfig.OFFSET.blkSize, 4)).toBe(4096n);
    expect(g.driver.config(VirtioBlkConfig.OFFSET.segMax, 4)).toBe(254n);
    expect(g.driver.config(VirtioBlkConfig.OFFSET.writeback, 1)).toBe(1n);
  });

  it('read_only_disk_offers_ro_and_fails_writes_without_touching_data', async () => {
    const backend = new MemoryBackend(1 << 20);
    backend.disk.fill(0x5a);
    const g = new BlockGuest({ backend, options: { readOnly: true } }).init();
    const w = g.write(0, pattern(0, 1, 1));
    await g.settle();

    expect(g.features & bit(VIRTIO_BLK_F.RO)).not.toBe(0n);
    expect(g.features & bit(VIRTIO_BLK_F.DISCARD)).toBe(0n);
    expect(g.status(w)).toBe(VIRTIO_BLK_S.IOERR);
    expect(g.domain.counters.get('read_only')).toBe(1);
    expect(backend.disk.every((b) => b === 0x5a)).toBe(true);
  });

  it('reset_waits_for_in_flight_io_and_drops_its_completions', async () => {
    const g = new BlockGuest().init();
    g.backend.hold = true;
    const r = g.read(0, 1);
    g.driver.setStatus(0);

    expect(g.driver.status()).not.toBe(0);
    g.backend.release();
    await g.domain.device.idle();
    expect(g.driver.status()).toBe(0);
    expect(g.queue(0).usedIdx()).toBe(0);
    expect(g.status(r)).toBe(0xff);
  });

  it('works_again_after_a_reset', async () => {
    const g = new BlockGuest().init();
    g.write(0, pattern(0, 1, 1));
    await g.settle();
    g.driver.setStatus(0);
    g.init();
    const r = g.read(0, 1);
    await g.settle();

    expect(g.driver.status() & STATUS.DRIVER_OK).toBe(STATUS.DRIVER_OK);
    expect(g.data(r)).toEqual(pattern(0, 1, 1));
  });
});
