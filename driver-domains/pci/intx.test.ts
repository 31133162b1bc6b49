// INTx: each function's pin drives the GSI the DSDT's _PRT names, gated by Interrupt Disable and
// by MSI-X, shared wires are ORed, and Interrupt Status shows the request.
import { describe, expect, it } from 'vitest';
import { pciIntxGsi } from '../../boot/layout.js';
import { PciCounter } from '../runtime/abi.js';
import {
  CMD, LEGACY, MSIX_CTRL, REG, STATUS, VIRTIO, createPci, createPciWith, ecamRead, ecamWrite, msixControl, stageTable,
} from './testing.js';

/** Slot 11's INTA# lands on the same GSI as the virtio function's (slot 3, INTA#): 16 + 11 % 8. */
const SHARING_SLOT = 11;

describe('routing', () => {
  it('every_slot_and_pin_maps_to_the_gsi_of_the_dsdt_prt', async () => {
    const pinOf = (slot: number): number => 1 + (slot % 4);
    const h = await createPciWith((e) => {
      for (let slot = 1; slot < 32; slot++) e.cfg_device(slot, 0x0001_1af4, 0, 0, pinOf(slot));
    });

    for (let slot = 1; slot < 32; slot++) {
      const pin = (pinOf(slot) - 1) as 0 | 1 | 2 | 3;
      expect(h.exports.intx_gsi(slot), `slot ${slot}`).toBe(pciIntxGsi(slot, pin));
    }
  });

  it('functions_without_a_pin_and_empty_slots_have_no_gsi', async () => {
    const h = await createPciWith((e) => {
      e.cfg_device(4, 0x0001_1af4, 0, 0, 0);
    });

    expect([h.exports.intx_gsi(0), h.exports.intx_gsi(4), h.exports.intx_gsi(9), h.exports.intx_gsi(32)]).toEqual([0, 0, 0, 0]);
  });
});

describe('assert and deassert', () => {
  it('assert_drives_the_gsi_and_sets_interrupt_status', async () => {
    const h = await createPci();

    h.exports.intx_set(LEGACY.slot, 1);

    expect(h.pins()).toEqual([{ kind: 'pin', gsi: pciIntxGsi(LEGACY.slot, 1), level: 1 }]);
    expect(ecamRead(h, LEGACY.slot, REG.status, 2) & STATUS.interrupt).toBe(STATUS.interrupt);
  });

  it('deassert_releases_the_gsi_and_clears_interrupt_status', async () => {
    const h = await createPci();
    h.exports.intx_set(LEGACY.slot, 1);
    h.clearEvents();

    h.exports.intx_set(LEGACY.slot, 0);

    expect(h.pins()).toEqual([{ kind: 'pin', gsi: pciIntxGsi(LEGACY.slot, 1), level: 0 }]);
    expect(ecamRead(h, LEGACY.slot, REG.status, 2) & STATUS.interrupt).toBe(0);
  });

  it('repeating_a_level_sends_nothing', async () => {
    const h = await createPci();

    h.exports.intx_set(LEGACY.slot, 1);
    h.exports.intx_set(LEGACY.slot, 1);

    expect(h.pins()).toHaveLength(1);
    expect(h.counter(PciCounter.IntxChanged)).toBe(1n);
  });

  it('interrupt_disable_keeps_the_line_low_but_status_still_shows_the_request', async () => {
    const h = await createPci();
    ecamWrite(h, LEGACY.slot, REG.command, CMD.io | CMD.memory | CMD.intxDisable, 2);

    h.exports.intx_set(LEGACY.slot, 1);

    expect(h.pins()).toEqual([]);
    expect(ecamRead(h, LEGACY.slot, REG.status, 2) & STATUS.interrupt).toBe(STATUS.interrupt);
  });

  it('clearing_interrupt_disable_while_requested_asserts_the_line', async () => {
    const h = await createPci();
    ecamWrite(h, LEGACY.slot, REG.command, CMD.io | CMD.memory | CMD.intxDisable, 2);
    h.exports.intx_set(LEGACY.slot, 1);

    ecamWrite(h, LEGACY.slot, REG.command, CMD.io | CMD.memory, 2);

    expect(h.pins()).toEqual([{ kind: 'pin', gsi: pciIntxGsi(LEGACY.slot, 1), level: 1 }]);
  });

  it('enabling_msix_takes_the_pin_away_and_disabling_it_gives_it_back', async () => {
    const h = await createPci();
    const gsi = pciIntxGsi(VIRTIO.slot, 0);
    h.exports.intx_set(VIRTIO.slot, 1);

    msixControl(h, MSIX_CTRL.enable);
    msixControl(h, 0);

    expect(h.pins()).toEqual([{ kind: 'pin', gsi, level: 1 }, { kind: 'pin', gsi, level: 0 }, { kind: 'pin', gsi, level: 1 }]);
  });

  it('intx_set_on_a_function_without_a_pin_is_counted_and_ignored', async () => {
    const h = await createPci();

    h.exports.intx_set(0, 1);
    h.exports.intx_set(7, 1);
    h.exports.intx_set(0xffff_ffff, 1);

    expect(h.pins()).toEqual([]);
    expect(h.counter(PciCounter.BadHostCall)).toBe(3n);
  });

  it('reset_keeps_the_backends_request_and_drops_interrupt_disable_so_the_line_comes_back', async () => {
    const h = await createPci();
    h.exports.intx_set(LEGACY.slot, 1);
    ecamWrite(h, LEGACY.slot, REG.command, CMD.intxDisable, 2);
    h.clearEvents();

    h.exports.reset();

    expect(h.pins()).toEqual([{ kind: 'pin', gsi: pciIntxGsi(LEGACY.slot, 1), level: 1 }]);
  });
});

describe('shared lines', () => {
  const withSharingSlot = () => createPciWith((e) => {
    stageTable(e);
    e.cfg_device(SHARING_SLOT, 0x0002_1af4, 0, 0, 1);
  });

  it('two_functions_on_one_gsi_are_one_wire_that_stays_up_until_both_release', async () => {
    const h = await withSharingSlot();
    const gsi = pciIntxGsi(VIRTIO.slot, 0);

    h.exports.intx_set(VIRTIO.slot, 1);
    h.exports.intx_set(SHARING_SLOT, 1);
    h.exports.intx_set(VIRTIO.slot, 0);
    const whileOneHolds = h.pins().length;
    h.exports.intx_set(SHARING_SLOT, 0);

    expect(h.exports.intx_gsi(SHARING_SLOT)).toBe(gsi);
    expect(whileOneHolds).toBe(1);
    expect(h.pins()).toEqual([{ kind: 'pin', gsi, level: 1 }, { kind: 'pin', gsi, level: 0 }]);
  });
});
