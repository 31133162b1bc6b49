// Config space of the pci stub domain through both access paths, read as Linux's enumeration
// reads it: identity, header fields, the command and status registers, the capability list.
import { beforeEach, describe, expect, it } from 'vitest';
import { LogLevel, PciCounter } from '../runtime/abi.js';
import {
  CMD, CONFIG_ADDRESS, CONFIG_DATA, LEGACY, REG, STATUS, VIRTIO, VIRTIO_CAPS, capabilityList, cf8Read, cf8Write,
  configAddress, createPci, createPciWith, ecamRead, ecamWrite, type Pci,
} from './testing.js';

let h: Pci;
beforeEach(async () => {
  h = await createPci();
});

describe('identity', () => {
  it('host_bridge_at_00_00_0_has_the_generic_host_bridge_ids_and_class', () => {
    expect(cf8Read(h, 0, REG.id)).toBe(0x0008_1b36);
    expect(cf8Read(h, 0, REG.classRev) >>> 8).toBe(0x060000);
    expect(cf8Read(h, 0, REG.misc + 2, 1)).toBe(0); // header type 0, single function
  });

  it('endpoint_reports_the_ids_class_revision_and_subsystem_of_its_table_entry', () => {
    expect(cf8Read(h, VIRTIO.slot, REG.id)).toBe(VIRTIO.ids >>> 0);
    expect(cf8Read(h, VIRTIO.slot, REG.classRev)).toBe(VIRTIO.classRev >>> 0);
    expect(cf8Read(h, VIRTIO.slot, REG.subsystem)).toBe(VIRTIO.subsystem >>> 0);
    expect(cf8Read(h, VIRTIO.slot, REG.interruptPin, 1)).toBe(VIRTIO.pin);
  });

  it('cf8_and_ecam_read_the_same_bytes_of_every_present_function_for_every_size', () => {
    const seen: number[] = [];
    for (const slot of [0, VIRTIO.slot, LEGACY.slot]) {
      for (let reg = 0; reg < 0x100; reg++) {
        for (const size of [1, 2, 4] as const) {
          if ((reg & 3) + size > 4) continue;
          const viaPorts = cf8Read(h, slot, reg, size);
          const viaEcam = ecamRead(h, slot, reg, size);
          expect(viaEcam, `slot ${slot} reg 0x${reg.toString(16)} size ${size}`).toBe(viaPorts);
          seen.push(viaPorts);
        }
      }
    }
    expect(seen.some((v) => v !== 0)).toBe(true);
  });

  it('sub_dword_reads_are_the_matching_bytes_of_the_dword', () => {
    const dword = ecamRead(h, VIRTIO.slot, REG.id);

    expect(ecamRead(h, VIRTIO.slot, 0, 2)).toBe(dword & 0xffff);
    expect(ecamRead(h, VIRTIO.slot, 2, 2)).toBe(dword >>> 16);
    expect(ecamRead(h, VIRTIO.slot, 3, 1)).toBe(dword >>> 24);
    h.pioWrite(CONFIG_ADDRESS, configAddress(0, VIRTIO.slot, 0, REG.id), 4);
    expect(h.pioRead(CONFIG_DATA + 1, 1)).toBe((dword >>> 8) & 0xff);
    expect(h.pioRead(CONFIG_DATA + 2, 2)).toBe(dword >>> 16);
  });

  it('extended_config_space_reads_zero_so_no_extended_capability_is_listed', () => {
    expect(ecamRead(h, VIRTIO.slot, 0x100)).toBe(0);
    expect(ecamRead(h, VIRTIO.slot, 0xffc)).toBe(0);
  });

  it('rom_bar_is_not_implemented_and_sizes_as_zero', () => {
    ecamWrite(h, VIRTIO.slot, REG.rom, 0xfffff800);

    expect(ecamRead(h, VIRTIO.slot, REG.rom)).toBe(0);
  });
});

describe('absent functions', () => {
  it('empty_slots_read_all_ones_through_both_paths_and_are_counted', () => {
    expect(cf8Read(h, 7, REG.id)).toBe(0xffff_ffff);
    expect(ecamRead(h, 31, REG.id, 2)).toBe(0xffff);
    expect(h.counter(PciCounter.AbsentFunction)).toBe(2n);
  });

  it('functions_other_than_zero_of_a_present_slot_are_absent', () => {
    expect(ecamRead(h, VIRTIO.slot, REG.id, 4, 1)).toBe(0xffff_ffff);
    expect(cf8Read(h, VIRTIO.slot, REG.id, 4, 0, 7)).toBe(0xffff_ffff);
  });

  it('other_buses_through_cf8_read_all_ones_and_ignore_writes', () => {
    cf8Write(h, VIRTIO.slot, REG.command, 0, 2, 1);

    expect(cf8Read(h, VIRTIO.slot, REG.id, 4, 1)).toBe(0xffff_ffff);
    expect(cf8Read(h, 0, REG.id, 4, 255)).toBe(0xffff_ffff);
    expect(cf8Read(h, VIRTIO.slot, REG.command, 2) & CMD.memory).toBe(CMD.memory);
    expect(h.counter(PciCounter.AbsentFunction)).toBe(3n);
  });

  it('ecam_beyond_bus_0_is_not_config_space', () => {
    const value = h.mmioRead(0xe010_0000);

    expect(value >>> 0).toBe(0xffff_ffff);
    expect(h.counter(PciCounter.InvalidAccess)).toBe(1n);
  });
});

describe('config address register', () => {
  it('reads_back_with_reserved_bits_and_low_two_bits_clear', () => {
    h.pioWrite(CONFIG_ADDRESS, 0xffff_ffff, 4);

    expect(h.pioRead(CONFIG_ADDRESS, 4) >>> 0).toBe(0x80ff_fffc);
  });

  it('byte_accesses_to_0xcf8_pass_through_and_leave_it_unchanged', () => {
    h.pioWrite(CONFIG_ADDRESS, configAddress(0, 3, 0, 0x10), 4);

    h.pioWrite(CONFIG_ADDRESS + 3, 0x01, 1);
    const byteRead = h.pioRead(CONFIG_ADDRESS, 1);

    expect(byteRead).toBe(0xff);
    expect(h.pioRead(CONFIG_ADDRESS, 4) >>> 0).toBe(configAddress(0, 3, 0, 0x10));
  });

  it('the_mechanism_probes_byte_write_to_0xcfb_is_counted_but_logged_at_debug_level_only', () => {
    h.pioWrite(CONFIG_ADDRESS + 3, 0x01, 1);

    expect(h.counter(PciCounter.InvalidAccess)).toBe(1n);
    expect(h.effects().filter((e) => e.kind === 'log').map((e) => e.kind === 'log' && e.level)).toEqual([LogLevel.Debug]);
  });

  it('config_data_with_the_enable_bit_clear_reads_all_ones', () => {
    h.pioWrite(CONFIG_ADDRESS, 0x0000_0000, 4);

    expect(h.pioRead(CONFIG_DATA, 4) >>> 0).toBe(0xffff_ffff);
    expect(h.counter(PciCounter.InvalidAccess)).toBe(1n);
  });
});

describe('command and status', () => {
  it('firmware_leaves_decoding_on_for_the_spaces_a_function_has_bars_in', () => {
    expect(ecamRead(h, VIRTIO.slot, REG.command, 2)).toBe(CMD.memory);
    expect(ecamRead(h, LEGACY.slot, REG.command, 2)).toBe(CMD.memory | CMD.io);
    expect(ecamRead(h, 0, REG.command, 2)).toBe(0);
  });

  it('io_memory_bus_master_and_intx_disable_are_writable_and_the_rest_hardwired', () => {
    ecamWrite(h, LEGACY.slot, REG.command, 0xffff, 2);

    expect(ecamRead(h, LEGACY.slot, REG.command, 2)).toBe(CMD.io | CMD.memory | CMD.busMaster | CMD.intxDisable);
  });

  it('io_space_enable_is_hardwired_off_without_an_io_bar', () => {
    ecamWrite(h, VIRTIO.slot, REG.command, CMD.io | CMD.memory, 2);

    expect(ecamRead(h, VIRTIO.slot, REG.command, 2)).toBe(CMD.memory);
  });

  it('status_reports_the_capability_list_only_where_there_is_one', () => {
    expect(ecamRead(h, VIRTIO.slot, REG.status, 2) & STATUS.capList).toBe(STATUS.capList);
    expect(ecamRead(h, LEGACY.slot, REG.status, 2) & STATUS.capList).toBe(0);
    expect(ecamRead(h, 0, REG.status, 2)).toBe(0);
  });

  it('writing_status_ones_changes_neither_status_nor_command', () => {
    ecamWrite(h, VIRTIO.slot, REG.command, 0xffff_0000 | CMD.memory);

    expect(ecamRead(h, VIRTIO.slot, REG.command)).toBe((STATUS.capList << 16 | CMD.memory) >>> 0);
  });

  it('writes_to_identity_registers_are_ignored_and_counted', () => {
    ecamWrite(h, VIRTIO.slot, REG.id, 0);
    ecamWrite(h, VIRTIO.slot, REG.classRev, 0);

    expect(ecamRead(h, VIRTIO.slot, REG.id)).toBe(VIRTIO.ids >>> 0);
    expect(h.counter(PciCounter.ReadOnlyWrite)).toBe(2n);
  });

  it('interrupt_line_and_cache_line_size_are_scratch_registers', () => {
    cf8Write(h, VIRTIO.slot, REG.interruptLine, 0x5a, 1);
    cf8Write(h, VIRTIO.slot, REG.misc, 0x10, 1);

    expect(cf8Read(h, VIRTIO.slot, REG.interruptLine, 1)).toBe(0x5a);
    expect(cf8Read(h, VIRTIO.slot, REG.misc)).toBe(0x10);
  });

  it('firmware_writes_the_routed_gsi_into_interrupt_line', () => {
    expect(cf8Read(h, VIRTIO.slot, REG.interruptLine, 1)).toBe(h.exports.intx_gsi(VIRTIO.slot));
  });
});

describe('capability list', () => {
  it('starts_with_msix_then_the_vendor_capabilities_in_order_and_ends', () => {
    const caps = capabilityList(h, VIRTIO.slot);

    expect(caps.map((c) => c.id)).toEqual([0x11, 0x09, 0x09, 0x09, 0x09]);
    expect(caps[0]?.at).toBe(0x40);
    expect(caps.every((c) => c.at % 4 === 0 && c.at >= 0x40 && c.at < 0x100)).toBe(true);
  });

  it('vendor_capabilities_read_back_their_bytes_with_the_next_pointer_filled_in', () => {
    const caps = capabilityList(h, VIRTIO.slot).slice(1);

    caps.forEach((cap, i) => {
      const expected = VIRTIO_CAPS[i] ?? new Uint8Array();
      const bytes = Array.from({ length: expected.length }, (_, j) => ecamRead(h, VIRTIO.slot, cap.at + j, 1));
      expect(bytes[1]).toBe(caps[i + 1]?.at ?? 0);
      expect([bytes[0], ...bytes.slice(2)]).toEqual([expected[0], ...Array.from(expected.slice(2))]);
    });
  });

  it('vendor_capabilities_are_read_only', () => {
    const cap = capabilityList(h, VIRTIO.slot)[1]?.at ?? 0;
    const before = ecamRead(h, VIRTIO.slot, cap + 4);

    ecamWrite(h, VIRTIO.slot, cap + 4, 0xdead_beef);

    expect(ecamRead(h, VIRTIO.slot, cap + 4)).toBe(before);
    expect(h.counter(PciCounter.ReadOnlyWrite)).toBe(1n);
  });

  it('msix_capability_reports_table_size_and_the_table_and_pba_locations', () => {
    const header = ecamRead(h, VIRTIO.slot, 0x40);

    expect(header >>> 16).toBe(VIRTIO.vectors - 1);
    expect(ecamRead(h, VIRTIO.slot, 0x44)).toBe(VIRTIO.tableOffset | VIRTIO.msixBar);
    expect(ecamRead(h, VIRTIO.slot, 0x48)).toBe(VIRTIO.pbaOffset | VIRTIO.msixBar);
  });

  it('a_function_with_only_vendor_capabilities_points_at_the_first_of_them', async () => {
    const only = await createPciWith((e) => {
      e.cfg_device(2, 0x1234_5678, 0, 0xff0000, 0);
      new Uint8Array(e.memory.buffer).set([0x09, 0, 4, 0x42], e.cfg_cap_buf());
      e.cfg_cap(2, 4);
    });

    expect(capabilityList(only, 2)).toEqual([{ id: 0x09, at: 0x4c }]);
    expect(ecamRead(only, 2, 0x4c)).toBe(0x4204_0009);
  });

  it('a_function_without_capabilities_has_a_zero_pointer', () => {
    expect(ecamRead(h, LEGACY.slot, REG.capPtr, 1)).toBe(0);
  });
});
