// The virtio-pci transport's register model: the Linux probe sequence, the status state
// machine, feature negotiation, reset while requests are in flight, ISR and MSI-X interrupts,
// and the hostile register accesses it must ignore and count.
import { describe, expect, it } from 'vitest';
import { VirtioPciCommonCfg as C } from '../../idl/generated/virtio.js';
import { ISR_CONFIG, ISR_QUEUE, NO_VECTOR, STATUS, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, bit } from './device.js';
import { COMMON_CFG, ISR_CFG, notifyOffset } from './pci.js';
import { StubDevice, transportFixture } from './testing.js';

const FEATURES = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_INDIRECT_DESC) | bit(VIRTIO_F_EVENT_IDX) | bit(1n);
const RUNNING = STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK | STATUS.DRIVER_OK;

function running(opts: { msix?: boolean; queues?: number } = {}) {
  const device = new StubDevice(FEATURES, opts.queues ?? 1);
  const f = transportFixture(device);
  const { features, queues } = f.driver.init(FEATURES, opts.queues ?? 1, { msix: opts.msix });
  return { ...f, device, features, queues };
}

describe('VirtioPciTransport: initialisation', () => {
  it('linux_probe_sequence_reaches_driver_ok_and_starts_the_device', () => {
    const { driver, device, features } = running();

    expect(driver.status()).toBe(RUNNING);
    expect(features).toBe(FEATURES);
    expect(device.runs).toHaveLength(1);
    expect(device.runs[0]?.features).toBe(FEATURES);
    expect(device.runs[0]?.queues[0]?.size).toBe(16);
    expect(device.runs[0]?.resuming).toBe(false);
  });

  it('refuses_features_ok_for_features_not_offered', () => {
    const { driver, counters } = transportFixture(new StubDevice(FEATURES));
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    driver.writeDriverFeatures(FEATURES | bit(40n));
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);

    expect(driver.status() & STATUS.FEATURES_OK).toBe(0);
    expect(counters.get('features_rejected')).toBe(1);
  });

  it('refuses_features_ok_without_version_1', () => {
    const { driver, counters } = transportFixture(new StubDevice(FEATURES));

    const r = driver.negotiate(FEATURES & ~bit(VIRTIO_F_VERSION_1));

    expect(r.ok).toBe(false);
    expect(counters.get('features_rejected')).toBe(1);
  });

  it('ignores_driver_ok_before_features_ok', () => {
    const { driver, device, counters } = transportFixture(new StubDevice(FEATURES));
    driver.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.DRIVER_OK);

    expect(driver.status()).toBe(STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    expect(device.runs).toHaveLength(0);
    expect(counters.get('status_out_of_order')).toBe(1);
  });

  it('ignores_a_status_write_that_clears_bits', () => {
    const { driver, counters } = running();
    driver.setStatus(STATUS.ACKNOWLEDGE);

    expect(driver.status()).toBe(RUNNING);
    expect(counters.get('status_cleared')).toBe(1);
  });

  it('ignores_driver_feature_writes_after_features_ok', () => {
    const { driver, transport, counters } = running();
    driver.setCommon(C.OFFSET.driverFeatureSelect, 4, 0);
    driver.setCommon(C.OFFSET.driverFeature, 4, 0);

    expect(transport.driverFeatures()).toBe(FEATURES);
    expect(counters.get('features_after_ok')).toBe(1);
  });
});

describe('VirtioPciTransport: reset', () => {
  it('reset_clears_queues_and_features_and_reads_zero', () => {
    const { driver, transport } = running();
    driver.setStatus(0);

    expect(driver.status()).toBe(0);
    expect(transport.driverFeatures()).toBe(0n);
    driver.setCommon(C.OFFSET.queueSelect, 2, 0);
    expect(driver.common(C.OFFSET.queueEnable, 2)).toBe(0n);
    expect(driver.common(C.OFFSET.queueSize, 2)).toBe(16n);
    expect(driver.common(C.OFFSET.queueDesc, 8)).toBe(0n);
  });

  it('reset_reads_nonzero_until_in_flight_requests_drain', () => {
    const { driver, device, counters } = running();
    device.holdReset = true;
    driver.setStatus(0);

    expect(driver.status()).toBe(RUNNING);
    driver.setCommon(C.OFFSET.queueSelect, 2, 0);
    expect(counters.get('write_during_reset')).toBe(1);
    device.pendingReset?.();
    expect(driver.status()).toBe(0);
  });

  it('platform_reset_waits_for_in_flight_requests_like_a_status_0_write', () => {
    const { driver, device, transport } = running();
    device.holdReset = true;
    transport.platformReset();

    expect(transport.resetting).toBe(true);
    expect(driver.status()).toBe(RUNNING);
    device.pendingReset?.();
    expect(transport.resetting).toBe(false);
    expect(driver.status()).toBe(0);
  });

  it('platform_reset_during_a_driver_reset_does_not_start_a_second_one', () => {
    const { driver, device, transport, counters } = running();
    device.holdReset = true;
    driver.setStatus(0);
    const resets = device.resets;
    transport.platformReset();

    expect(device.resets).toBe(resets);
    expect(counters.get('write_during_reset')).toBe(0);
    device.pendingReset?.();
    expect(transport.resetting).toBe(false);
  });

  it('successor_finishes_a_reset_its_predecessor_began', () => {
    const first = running();
    first.device.holdReset = true;
    first.driver.setStatus(0);
    const device = new StubDevice(FEATURES);
    const next = transportFixture(device, { state: first.state, fake: first.fake, fresh: false });

    next.transport.resume();

    expect(device.resets).toBe(1);
    expect(next.driver.status()).toBe(0);
  });

  it('successor_restarts_a_running_device_from_the_state_region', () => {
    const first = running();
    const device = new StubDevice(FEATURES);
    const next = transportFixture(device, { state: first.state, fake: first.fake, fresh: false });

    next.transport.resume();

    expect(device.runs).toHaveLength(1);
    expect(device.runs[0]?.resuming).toBe(true);
    expect(device.runs[0]?.features).toBe(FEATURES);
    expect(device.runs[0]?.queues[0]?.ranges[0]?.start).toBe(first.queues[0]?.desc);
  });
});

describe('VirtioPciTransport: interrupts', () => {
  it('isr_read_returns_and_clears_pending_bits_and_lowers_intx', () => {
    const { driver, transport, interrupts } = running();
    transport.interruptQueue(0);

    expect(interrupts.level).toBe(true);
    expect(driver.isr()).toBe(ISR_QUEUE);
    expect(interrupts.level).toBe(false);
    expect(driver.isr()).toBe(0);
  });

  it('successor_raises_intx_again_for_an_isr_its_predecessor_left_unread', () => {
    const first = running();
    first.transport.interruptQueue(0);
    const next = transportFixture(new StubDevice(FEATURES), { state: first.state, fake: first.fake, fresh: false });
    next.transport.resume();

    expect(next.interrupts.level).toBe(true);
    expect(next.driver.isr()).toBe(ISR_QUEUE);
  });

  it('queue_interrupt_uses_the_queue_msix_vector_and_leaves_isr_alone', () => {
    const { driver, transport, interrupts } = running({ msix: true });
    transport.interruptQueue(0);

    expect(interrupts.vectors).toEqual([1]);
    expect(driver.isr()).toBe(0);
  });

  it('msix_vector_past_the_table_reads_no_vector', () => {
    const { driver, counters } = running();
    driver.setCommon(C.OFFSET.queueSelect, 2, 0);
    driver.setCommon(C.OFFSET.queueMsixVector, 2, 100);

    expect(driver.common(C.OFFSET.queueMsixVector, 2)).toBe(BigInt(NO_VECTOR));
    expect(counters.get('bad_msix_vector')).toBe(1);
  });

  it('bad_queue_layout_at_enable_sets_needs_reset_and_signals_a_config_change', () => {
    const { driver, counters, interrupts } = transportFixture(new StubDevice(FEATURES));
    driver.negotiate(FEATURES);
    driver.setCommon(C.OFFSET.queueSelect, 2, 0);
    driver.setCommon(C.OFFSET.queueSize, 2, 6);
    driver.setCommon(C.OFFSET.queueEnable, 2, 1);

    expect(driver.status() & STATUS.NEEDS_RESET).toBe(STATUS.NEEDS_RESET);
    expect(counters.get('ring_layout')).toBe(1);
    expect(interrupts.level).toBe(true);
    expect(driver.isr()).toBe(ISR_CONFIG);
  });

  it('does_not_start_a_device_that_needs_reset', () => {
    const device = new StubDevice(FEATURES);
    const { driver } = transportFixture(device);
    driver.negotiate(FEATURES);
    driver.setCommon(C.OFFSET.queueSelect, 2, 0);
    driver.setCommon(C.OFFSET.queueEnable, 2, 1); // addresses still 0: overlapping parts
    driver.driverOk();

    expect(device.runs).toHaveLength(0);
  });
});

describe('VirtioPciTransport: queue registers and notifications', () => {
  it('queue_addresses_take_64_bit_writes_and_32_bit_halves', () => {
    const { driver } = transportFixture(new StubDevice(FEATURES));
    driver.setCommon(C.OFFSET.queueSelect, 2, 0);
    driver.setCommon(C.OFFSET.queueDesc, 8, 0x1_2345_6000n);
    driver.setCommon(C.OFFSET.queueDriver, 4, 0x7000);
    driver.setCommon(C.OFFSET.queueDriver + 4, 4, 2);

    expect(driver.common(C.OFFSET.queueDesc, 8)).toBe(0x1_2345_6000n);
    expect(driver.common(C.OFFSET.queueDriver, 8)).toBe(0x2_0000_7000n);
  });

  it('queue_registers_cannot_change_once_enabled', () => {
    const { driver, queues, counters } = running();
    driver.setCommon(C.OFFSET.queueSelect, 2, 0);
    driver.setCommon(C.OFFSET.queueDesc, 8, 0x100000);
    driver.setCommon(C.OFFSET.queueSize, 2, 4);

    expect(driver.common(C.OFFSET.queueDesc, 8)).toBe(BigInt(queues[0]?.desc ?? -1));
    expect(driver.common(C.OFFSET.queueSize, 2)).toBe(16n);
    expect(counters.get('queue_change_enabled')).toBe(2);
  });

  it('queue_select_past_num_queues_reads_size_zero_and_ignores_writes', () => {
    const { driver, counters } = transportFixture(new StubDevice(FEATURES));
    driver.setCommon(C.OFFSET.queueSelect, 2, 3);
    driver.setCommon(C.OFFSET.queueSize, 2, 8);

    expect(driver.common(C.OFFSET.queueSize, 2)).toBe(0n);
    expect(counters.get('bad_queue_select')).toBe(1);
  });

  it('queue_enable_zero_and_late_enables_are_counted_and_ignored', () => {
    const { driver, counters } = running();
    driver.setCommon(C.OFFSET.queueSelect, 2, 0);
    driver.setCommon(C.OFFSET.queueEnable, 2, 0);

    expect(driver.common(C.OFFSET.queueEnable, 2)).toBe(1n);
    expect(counters.get('queue_disable')).toBe(1);
  });

  it('notify_area_write_reaches_the_device_only_after_driver_ok', () => {
    const device = new StubDevice(FEATURES, 2);
    const { driver, transport } = transportFixture(device);
    transport.write(notifyOffset(1), 2, 1n);

    expect(device.notified).toEqual([]);
    driver.init(FEATURES, 2);
    transport.write(notifyOffset(1), 2, 1n);
    expect(device.notified).toEqual([1]);
  });

  it('notify_writes_that_name_no_queue_are_counted', () => {
    const { transport, counters, device } = running();
    transport.write(notifyOffset(0) + 2, 2, 0n);
    transport.write(notifyOffset(5), 2, 0n);

    expect(device.notified).toEqual([]);
    expect(counters.get('notify_bad_offset')).toBe(2);
  });
});

describe('VirtioPciTransport: hostile accesses', () => {
  it('writes_to_read_only_registers_are_counted_and_ignored', () => {
    const { driver, transport, counters } = transportFixture(new StubDevice(FEATURES));
    driver.setCommon(C.OFFSET.numQueues, 2, 9);
    transport.write(ISR_CFG.offset, 1, 1n);

    expect(driver.common(C.OFFSET.numQueues, 2)).toBe(1n);
    expect(counters.get('read_only_write')).toBe(2);
  });

  it('odd_sizes_misaligned_and_window_crossing_accesses_are_counted', () => {
    const { transport, counters } = transportFixture(new StubDevice(FEATURES));

    expect(transport.read(COMMON_CFG.offset, 3)).toBe(0n);
    expect(transport.read(COMMON_CFG.offset + 1, 2)).toBe(0n);
    transport.write(0xffc, 8, 0n);
    transport.write(COMMON_CFG.offset + C.OFFSET.deviceFeatureSelect, 2, 1n);
    expect(counters.get('bad_access')).toBe(4);
  });

  it('reads_of_any_width_see_the_common_configuration_bytes', () => {
    const { driver } = running();

    expect(driver.common(C.OFFSET.numQueues, 1)).toBe(1n);
    expect(driver.common(C.OFFSET.configMsixVector, 4)).toBe(BigInt(NO_VECTOR) | (1n << 16n));
  });
});
