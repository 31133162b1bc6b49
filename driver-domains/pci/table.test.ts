// The device table the runtime stages with cfg_* before init(): what it accepts, what it
// refuses (a refused call changes nothing), and that init() adopts exactly what was accepted.
import { describe, expect, it } from 'vitest';
import { PCI_IO_WINDOW } from '../../boot/layout.js';
import { PciBarFlag, PciBarKind, PciConfigStatus as S, type PciExports } from '../runtime/abi.js';
import { StubHarness } from '../runtime/testing.js';
import { REG, VIRTIO, capabilityList, createPciWith, ecamRead, stageCap, virtioCap } from './testing.js';

/** An uninitialised instance: only the cfg_* exports have been called on it. */
async function staging(): Promise<PciExports> {
  return (await StubHarness.create('pci', { init: false })).exports;
}

describe('cfg_device', () => {
  it('refuses_the_host_bridge_slot_slots_past_31_a_second_entry_vendor_ffff_and_pins_past_intd', async () => {
    const e = await staging();

    expect([
      e.cfg_device(0, 0x0001_1af4, 0, 0, 0),
      e.cfg_device(32, 0x0001_1af4, 0, 0, 0),
      e.cfg_device(1, 0x0001_1af4, 0, 0, 0),
      e.cfg_device(1, 0x0001_1af4, 0, 0, 0),
      e.cfg_device(2, 0x0001_ffff, 0, 0, 0),
      e.cfg_device(2, 0x0001_1af4, 0, 0, 5),
    ]).toEqual([S.BadSlot, S.BadSlot, S.Ok, S.AlreadyPresent, S.BadIds, S.BadPin]);
  });
});

describe('cfg_bar', () => {
  it('refuses_bars_of_missing_devices_bad_indices_kinds_sizes_and_flags', async () => {
    const e = await staging();
    e.cfg_device(1, 0x0001_1af4, 0, 0, 0);

    expect([
      e.cfg_bar(2, 0, PciBarKind.Mem32, 12, 0),
      e.cfg_bar(1, 6, PciBarKind.Mem32, 12, 0),
      e.cfg_bar(1, 0, PciBarKind.None, 12, 0),
      e.cfg_bar(1, 0, PciBarKind.Mem64High, 12, 0),
      e.cfg_bar(1, 0, PciBarKind.Mem32, 3, 0),
      e.cfg_bar(1, 0, PciBarKind.Mem32, 30, 0),
      e.cfg_bar(1, 0, PciBarKind.Io, 9, 0),
      e.cfg_bar(1, 0, PciBarKind.Io, 4, PciBarFlag.Prefetchable),
      e.cfg_bar(1, 0, PciBarKind.Io, 4, PciBarFlag.ServedByPci),
      e.cfg_bar(1, 0, PciBarKind.Mem32, 12, PciBarFlag.Decoding),
      e.cfg_bar(1, 5, PciBarKind.Mem64, 12, 0),
    ]).toEqual([S.NoDevice, S.BadBar, S.BadBar, S.BadBar, S.BadBar, S.BadBar, S.BadBar, S.BadBar, S.BadBar, S.BadBar, S.BadBar]);
  });

  it('a_mem64_bar_takes_the_next_register_which_must_be_free', async () => {
    const e = await staging();
    e.cfg_device(1, 0x0001_1af4, 0, 0, 0);

    const first = e.cfg_bar(1, 2, PciBarKind.Mem64, 12, 0);
    const upperHalf = e.cfg_bar(1, 3, PciBarKind.Mem32, 12, 0);
    const overlapping = e.cfg_bar(1, 1, PciBarKind.Mem64, 12, 0);

    expect([first, upperHalf, overlapping]).toEqual([S.Ok, S.BadBar, S.BadBar]);
  });

  it('refuses_a_bar_that_would_overflow_its_window', async () => {
    const e = await staging();
    e.cfg_device(1, 0x0001_1af4, 0, 0, 0);
    e.cfg_device(2, 0x0001_1af4, 0, 0, 0);

    const results = [e.cfg_bar(1, 0, PciBarKind.Mem32, 29, 0), e.cfg_bar(2, 0, PciBarKind.Mem32, 4, 0), e.cfg_bar(2, 1, PciBarKind.Io, 8, 0)];

    expect(results).toEqual([S.Ok, S.WindowFull, S.Ok]);
  });

  it('the_largest_possible_io_table_fits_the_io_window_without_overlap', async () => {
    const results: number[] = [];
    const h = await createPciWith((e) => {
      for (let slot = 1; slot < 32; slot++) {
        e.cfg_device(slot, 0x0001_1af4, 0, 0, 0);
        for (let bar = 0; bar < 6; bar++) results.push(e.cfg_bar(slot, bar, PciBarKind.Io, 8, 0));
      }
    });
    const ports = new Set<number>();
    for (let slot = 1; slot < 32; slot++) {
      for (let bar = 0; bar < 6; bar++) ports.add(Number(h.exports.bar_addr(slot, bar)));
    }

    // 186 BARs of 256 ports (0xba00) cannot overflow the 0xf000-port window.
    expect(results.every((r) => r === S.Ok)).toBe(true);
    expect(ports.size).toBe(31 * 6);
    expect(Math.min(...ports)).toBe(PCI_IO_WINDOW.base);
    expect(Math.max(...ports) + 256).toBeLessThanOrEqual(PCI_IO_WINDOW.base + PCI_IO_WINDOW.size);
  });
});

describe('cfg_msix', () => {
  async function withBars(): Promise<PciExports> {
    const e = await staging();
    e.cfg_device(1, 0x0001_1af4, 0, 0, 0);
    e.cfg_bar(1, 0, PciBarKind.Mem32, 12, PciBarFlag.ServedByPci);
    e.cfg_bar(1, 1, PciBarKind.Mem32, 12, 0);
    e.cfg_bar(1, 2, PciBarKind.Io, 4, 0);
    return e;
  }

  it('refuses_structures_outside_a_served_memory_bar_misaligned_or_overlapping', async () => {
    const e = await withBars();

    expect([
      e.cfg_msix(1, 0, 0, 0, 0, 0x800),
      e.cfg_msix(1, 2049, 0, 0, 0, 0x800),
      e.cfg_msix(1, 4, 1, 0, 0, 0x800),
      e.cfg_msix(1, 4, 2, 0, 0, 0x800),
      e.cfg_msix(1, 4, 3, 0, 0, 0x800),
      e.cfg_msix(1, 4, 0, 4, 0, 0x800),
      e.cfg_msix(1, 4, 0, 0, 0, 0x804),
      e.cfg_msix(1, 4, 0, 0xff8, 0, 0x800),
      e.cfg_msix(1, 4, 0, 0, 0, 0x10),
      e.cfg_msix(1, 4, 0, 0, 0, 0x1000),
      e.cfg_msix(2, 4, 0, 0, 0, 0x800),
    ]).toEqual([S.BadMsix, S.BadMsix, S.BadMsix, S.BadMsix, S.BadMsix, S.BadMsix, S.BadMsix, S.BadMsix, S.BadMsix, S.BadMsix, S.NoDevice]);
  });

  it('accepts_one_capability_per_function', async () => {
    const e = await withBars();

    expect([e.cfg_msix(1, 4, 0, 0, 0, 0x800), e.cfg_msix(1, 4, 0, 0, 0, 0x800)]).toEqual([S.Ok, S.BadMsix]);
  });

  it('refuses_vectors_beyond_the_shared_pool', async () => {
    const e = await staging();
    const results: number[] = [];
    for (let slot = 1; slot <= 4; slot++) {
      e.cfg_device(slot, 0x0001_1af4, 0, 0, 0);
      e.cfg_bar(slot, 0, PciBarKind.Mem32, 12, PciBarFlag.ServedByPci);
      results.push(e.cfg_msix(slot, 64, 0, 0, 0, 0x800));
    }

    // The pool holds 224 vectors: three functions of 64 fit, a fourth does not.
    expect(results).toEqual([S.Ok, S.Ok, S.Ok, S.VectorsFull]);
  });
});

describe('cfg_cap', () => {
  it('refuses_other_capability_ids_and_a_length_byte_that_disagrees', async () => {
    const e = await staging();
    e.cfg_device(1, 0x0001_1af4, 0, 0, 0);
    const notVendor = virtioCap(1, 0, 0, 0x38);
    notVendor[0] = 0x05;
    const badLength = virtioCap(1, 0, 0, 0x38);
    badLength[2] = 12;

    expect([stageCap(e, 1, notVendor), stageCap(e, 1, badLength), stageCap(e, 1, new Uint8Array([0x09, 0])), stageCap(e, 2, virtioCap(1, 0, 0, 1))])
      .toEqual([S.BadCap, S.BadCap, S.BadCap, S.NoDevice]);
  });

  it('refuses_capabilities_past_the_end_of_config_space', async () => {
    const e = await staging();
    e.cfg_device(1, 0x0001_1af4, 0, 0, 0);
    const results: number[] = [];
    for (let i = 0; i < 13; i++) results.push(stageCap(e, 1, virtioCap(1, 0, 0, 0x38)));

    // 0x4c..0xff holds eleven 16-byte capabilities.
    expect(results.filter((r) => r === S.Ok)).toHaveLength(11);
    expect(results.slice(11)).toEqual([S.CapSpaceFull, S.CapSpaceFull]);
  });

  it('refuses_a_capability_for_a_function_whose_run_of_the_pool_was_followed_by_another', async () => {
    const e = await staging();
    e.cfg_device(1, 0x0001_1af4, 0, 0, 0);
    e.cfg_device(2, 0x0001_1af4, 0, 0, 0);

    const results = [stageCap(e, 1, virtioCap(1, 0, 0, 1)), stageCap(e, 2, virtioCap(1, 0, 0, 1)), stageCap(e, 1, virtioCap(2, 0, 0, 1))];

    expect(results).toEqual([S.Ok, S.Ok, S.CapsNotContiguous]);
  });

  it('pads_an_odd_length_capability_to_a_dword_and_links_the_next_after_it', async () => {
    const h = await createPciWith((e) => {
      e.cfg_device(1, 0x0001_1af4, 0, 0, 0);
      stageCap(e, 1, new Uint8Array([0x09, 0, 5, 0xaa, 0xbb]));
      stageCap(e, 1, new Uint8Array([0x09, 0, 3]));
    });

    expect(capabilityList(h, 1)).toEqual([{ id: 0x09, at: 0x4c }, { id: 0x09, at: 0x54 }]);
    expect(ecamRead(h, 1, 0x50)).toBe(0xbb);
  });
});

describe('init', () => {
  it('adopts_what_was_accepted_and_nothing_that_was_refused', async () => {
    const h = await createPciWith((e) => {
      e.cfg_device(VIRTIO.slot, VIRTIO.ids, 0, 0, 0);
      e.cfg_bar(VIRTIO.slot, 0, PciBarKind.Mem32, 12, 0);
      e.cfg_bar(VIRTIO.slot, 1, PciBarKind.Mem32, 31, 0);
    });

    expect(ecamRead(h, VIRTIO.slot, REG.id)).toBe(VIRTIO.ids >>> 0);
    expect(h.exports.bar_kind(VIRTIO.slot, 0)).toBe(PciBarKind.Mem32);
    expect(h.exports.bar_kind(VIRTIO.slot, 1)).toBe(PciBarKind.None);
  });

  it('without_a_table_only_the_host_bridge_is_present', async () => {
    const h = await createPciWith(() => undefined);
    const present = Array.from({ length: 32 }, (_, slot) => ecamRead(h, slot, REG.id) !== 0xffff_ffff);

    expect(present.map((p, slot) => (p ? slot : -1)).filter((s) => s >= 0)).toEqual([0]);
  });
});
