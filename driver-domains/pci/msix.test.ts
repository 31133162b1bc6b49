// MSI-X: the table and PBA in the BAR this module serves, the vector state the runtime turns
// into routes, and a masked vector's signal held in the PBA and fired once on unmask.
import { beforeEach, describe, expect, it } from 'vitest';
import { IoDir, IoSpace, PciCounter, PciMsixFlag, PciMsixSignal } from '../runtime/abi.js';
import {
  CMD, MSIX_CAP, MSIX_CTRL, REG, VIRTIO, createPci, ecamRead, ecamWrite, enableMsix, msixControl, msixPba, msixTable,
  programVector, type Pci,
} from './testing.js';

const MSI_ADDR = 0xfee0_1000;

let h: Pci;
beforeEach(async () => {
  h = await createPci();
});

const fire = (vector: number): number => (VIRTIO.slot << 16) | vector;
const flags = (vector: number): number => h.exports.msix_flags(VIRTIO.slot, vector);
const effective = (vector: number): boolean => (flags(vector) & PciMsixFlag.Effective) !== 0;

describe('table', () => {
  it('entries_power_on_masked_with_zero_address_and_data', () => {
    for (let v = 0; v < VIRTIO.vectors; v++) {
      expect([0, 4, 8, 12].map((o) => h.mmioRead(msixTable(h) + 16 * v + o) >>> 0)).toEqual([0, 0, 0, 1]);
    }
  });

  it('programmed_entry_reads_back_and_is_exported_as_address_and_data', () => {
    programVector(h, 2, MSI_ADDR, 0x4041, true);

    expect([h.mmioRead(msixTable(h) + 32), h.mmioRead(msixTable(h) + 40)]).toEqual([MSI_ADDR, 0x4041]);
    expect(h.exports.msix_addr(VIRTIO.slot, 2)).toBe(BigInt(MSI_ADDR));
    expect(h.exports.msix_data(VIRTIO.slot, 2)).toBe(0x4041);
  });

  it('address_bits_1_0_and_reserved_vector_control_bits_read_zero', () => {
    h.mmioWrite(msixTable(h), MSI_ADDR | 3);
    h.mmioWrite(msixTable(h) + 12, 0xffff_ffff);

    expect(h.mmioRead(msixTable(h)) >>> 0).toBe(MSI_ADDR);
    expect(h.mmioRead(msixTable(h) + 12) >>> 0).toBe(1);
  });

  it('qword_accesses_write_and_read_two_dwords', () => {
    h.ioreq(IoSpace.Mmio, msixTable(h) + 16, 8, IoDir.Write, (0x1n << 32n) | BigInt(MSI_ADDR));
    h.ioreq(IoSpace.Mmio, msixTable(h) + 24, 8, IoDir.Write, (1n << 32n) | 0x55n);

    expect(h.exports.msix_addr(VIRTIO.slot, 1)).toBe((0x1n << 32n) | BigInt(MSI_ADDR));
    expect(h.ioreq(IoSpace.Mmio, msixTable(h) + 24, 8, IoDir.Read)).toBe((1n << 32n) | 0x55n);
    expect(h.exports.msix_data(VIRTIO.slot, 1)).toBe(0x55);
  });

  it('writes_that_change_an_entry_bump_the_generation_and_repeats_do_not', () => {
    const g0 = h.exports.msix_generation();
    h.mmioWrite(msixTable(h) + 8, 0x30);
    const g1 = h.exports.msix_generation();
    h.mmioWrite(msixTable(h) + 8, 0x30);

    expect(g1).not.toBe(g0);
    expect(h.exports.msix_generation()).toBe(g1);
  });

  it('table_follows_its_bar_when_the_guest_moves_it', () => {
    ecamWrite(h, VIRTIO.slot, REG.bar0 + 4 * VIRTIO.msixBar, 0xd000_0000);

    h.mmioWrite(0xd000_0000 + 8, 0x77);

    expect(h.exports.msix_data(VIRTIO.slot, 0)).toBe(0x77);
  });

  it('table_is_not_decoded_while_memory_space_is_off', () => {
    ecamWrite(h, VIRTIO.slot, REG.command, 0, 2);

    const value = h.mmioRead(msixTable(h) + 12);

    expect(value >>> 0).toBe(0xffff_ffff);
    expect(h.counter(PciCounter.InvalidAccess)).toBe(1n);
  });

  it('message_control_keeps_table_size_read_only', () => {
    msixControl(h, 0xffff);

    expect(ecamRead(h, VIRTIO.slot, MSIX_CAP + 2, 2)).toBe(MSIX_CTRL.enable | MSIX_CTRL.functionMask | (VIRTIO.vectors - 1));
  });
});

describe('effective vectors', () => {
  it('a_vector_is_effective_only_with_msix_on_function_and_vector_unmasked_and_bus_master_set', () => {
    programVector(h, 0, MSI_ADDR, 0x41, false);
    const before = effective(0);
    enableMsix(h);
    const on = effective(0);
    msixControl(h, MSIX_CTRL.enable | MSIX_CTRL.functionMask);
    const functionMasked = effective(0);
    msixControl(h, MSIX_CTRL.enable);
    ecamWrite(h, VIRTIO.slot, REG.command, CMD.memory, 2);
    const noBusMaster = effective(0);

    expect([before, on, functionMasked, noBusMaster]).toEqual([false, true, false, false]);
  });

  it('every_change_of_effectiveness_bumps_the_generation', () => {
    programVector(h, 0, MSI_ADDR, 0x41, false);
    const generations = [h.exports.msix_generation()];
    ecamWrite(h, VIRTIO.slot, REG.command, CMD.memory | CMD.busMaster, 2);
    generations.push(h.exports.msix_generation());
    msixControl(h, MSIX_CTRL.enable);
    generations.push(h.exports.msix_generation());
    h.mmioWrite(msixTable(h) + 12, 1);
    generations.push(h.exports.msix_generation());

    expect(new Set(generations).size).toBe(4);
  });

  it('vector_mask_shows_in_the_flags', () => {
    programVector(h, 1, MSI_ADDR, 0x41, true);

    expect(flags(1) & PciMsixFlag.Masked).toBe(PciMsixFlag.Masked);
  });
});

describe('masked vectors and the pending bit', () => {
  beforeEach(() => {
    for (let v = 0; v < VIRTIO.vectors; v++) programVector(h, v, MSI_ADDR, 0x40 + v, v === 2);
    enableMsix(h);
  });

  it('a_signal_on_a_masked_vector_is_held_in_the_pba', () => {
    const signal = h.exports.msix_pending(VIRTIO.slot, 2);

    expect(signal).toBe(PciMsixSignal.Held);
    expect(h.mmioRead(msixPba(h))).toBe(1 << 2);
    expect(flags(2) & PciMsixFlag.Pending).toBe(PciMsixFlag.Pending);
    expect(h.exports.msix_fire_take()).toBe(0);
  });

  it('repeated_signals_while_masked_set_one_bit', () => {
    h.exports.msix_pending(VIRTIO.slot, 2);
    h.exports.msix_pending(VIRTIO.slot, 2);

    expect(h.counter(PciCounter.MsixHeld)).toBe(1n);
  });

  it('unmasking_clears_the_pending_bit_and_fires_once', () => {
    h.exports.msix_pending(VIRTIO.slot, 2);

    h.mmioWrite(msixTable(h) + 32 + 12, 0);

    expect(h.mmioRead(msixPba(h))).toBe(0);
    expect(h.exports.msix_fire_take()).toBe(fire(2));
    expect(h.exports.msix_fire_take()).toBe(0);
    expect(h.counter(PciCounter.MsixFired)).toBe(1n);
  });

  it('unmasking_without_a_pending_signal_fires_nothing', () => {
    h.mmioWrite(msixTable(h) + 32 + 12, 0);

    expect(h.exports.msix_fire_take()).toBe(0);
  });

  it('masking_again_before_the_fire_is_taken_puts_it_back_in_the_pba', () => {
    h.exports.msix_pending(VIRTIO.slot, 2);
    h.mmioWrite(msixTable(h) + 32 + 12, 0);

    h.mmioWrite(msixTable(h) + 32 + 12, 1);

    expect(h.exports.msix_fire_take()).toBe(0);
    expect(h.mmioRead(msixPba(h))).toBe(1 << 2);
    h.mmioWrite(msixTable(h) + 32 + 12, 0);
    expect(h.exports.msix_fire_take()).toBe(fire(2));
  });

  it('many_mask_unmask_cycles_deliver_each_held_signal_exactly_once', () => {
    let fired = 0;
    for (let i = 0; i < 10; i++) {
      h.exports.msix_pending(VIRTIO.slot, 2);
      h.mmioWrite(msixTable(h) + 32 + 12, 0);
      h.mmioWrite(msixTable(h) + 32 + 12, 1);
      h.mmioWrite(msixTable(h) + 32 + 12, 0);
      while (h.exports.msix_fire_take() !== 0) fired++;
      h.mmioWrite(msixTable(h) + 32 + 12, 1);
    }

    expect(fired).toBe(10);
  });

  it('function_mask_holds_every_vector_and_its_release_fires_the_held_ones_once_each', () => {
    msixControl(h, MSIX_CTRL.enable | MSIX_CTRL.functionMask);
    const signals = [0, 1, 3].map((v) => h.exports.msix_pending(VIRTIO.slot, v));

    msixControl(h, MSIX_CTRL.enable);
    const fired = [h.exports.msix_fire_take(), h.exports.msix_fire_take(), h.exports.msix_fire_take(), h.exports.msix_fire_take()];

    expect(signals).toEqual([PciMsixSignal.Held, PciMsixSignal.Held, PciMsixSignal.Held]);
    expect(fired).toEqual([fire(0), fire(1), fire(3), 0]);
  });

  it('a_vector_still_masked_after_the_function_unmask_keeps_its_pending_bit', () => {
    msixControl(h, MSIX_CTRL.enable | MSIX_CTRL.functionMask);
    h.exports.msix_pending(VIRTIO.slot, 2);

    msixControl(h, MSIX_CTRL.enable);

    expect(h.exports.msix_fire_take()).toBe(0);
    expect(h.mmioRead(msixPba(h))).toBe(1 << 2);
  });

  it('a_signal_on_an_effective_vector_is_delivered_not_held', () => {
    expect(h.exports.msix_pending(VIRTIO.slot, 0)).toBe(PciMsixSignal.Deliver);
    expect(h.mmioRead(msixPba(h))).toBe(0);
  });

  it('a_signal_with_msix_disabled_is_ignored', () => {
    msixControl(h, 0);

    expect(h.exports.msix_pending(VIRTIO.slot, 2)).toBe(PciMsixSignal.Ignored);
    expect(h.mmioRead(msixPba(h))).toBe(0);
  });

  it('a_signal_for_a_missing_vector_is_ignored_and_counted', () => {
    const answers = [h.exports.msix_pending(VIRTIO.slot, VIRTIO.vectors), h.exports.msix_pending(0, 0), h.exports.msix_pending(99, 0)];

    expect(answers).toEqual([PciMsixSignal.Ignored, PciMsixSignal.Ignored, PciMsixSignal.Ignored]);
    expect(h.counter(PciCounter.BadHostCall)).toBe(3n);
  });

  it('clearing_bus_master_holds_signals_and_setting_it_again_fires_them', () => {
    ecamWrite(h, VIRTIO.slot, REG.command, CMD.memory, 2);
    const held = h.exports.msix_pending(VIRTIO.slot, 0);

    ecamWrite(h, VIRTIO.slot, REG.command, CMD.memory | CMD.busMaster, 2);

    expect(held).toBe(PciMsixSignal.Held);
    expect(h.exports.msix_fire_take()).toBe(fire(0));
  });

  it('the_pba_is_read_only', () => {
    h.exports.msix_pending(VIRTIO.slot, 2);

    h.mmioWrite(msixPba(h), 0);

    expect(h.mmioRead(msixPba(h))).toBe(1 << 2);
    expect(h.counter(PciCounter.ReadOnlyWrite)).toBe(1n);
  });

  it('reset_masks_every_vector_and_forgets_pending_and_fire', () => {
    h.exports.msix_pending(VIRTIO.slot, 2);
    msixControl(h, MSIX_CTRL.enable | MSIX_CTRL.functionMask);
    h.exports.msix_pending(VIRTIO.slot, 1);
    msixControl(h, MSIX_CTRL.enable);

    h.exports.reset();

    expect(h.exports.msix_fire_take()).toBe(0);
    expect(h.mmioRead(msixPba(h))).toBe(0);
    expect([0, 1, 2, 3].map(flags)).toEqual([PciMsixFlag.Masked, PciMsixFlag.Masked, PciMsixFlag.Masked, PciMsixFlag.Masked]);
    expect(ecamRead(h, VIRTIO.slot, MSIX_CAP + 2, 2)).toBe(VIRTIO.vectors - 1);
  });
});
