// BARs: firmware placement, sizing the way Linux's __pci_read_base does it, moves, and the
// exports the runtime follows to keep backend ranges where the guest put them.
import { beforeEach, describe, expect, it } from 'vitest';
import { PCI_IO_WINDOW, PCI_MMIO32 } from '../../boot/layout.js';
import { PciBarFlag, PciBarKind, PciCounter } from '../runtime/abi.js';
import { CMD, LEGACY, REG, VIRTIO, createPci, createPciWith, ecamRead, ecamWrite, type Pci } from './testing.js';

let h: Pci;
beforeEach(async () => {
  h = await createPci();
});

const barReg = (bar: number): number => REG.bar0 + 4 * bar;

/** Writes all-ones, reads the size mask, restores the original: one register of the sizing dance. */
function size(slot: number, bar: number): number {
  const original = ecamRead(h, slot, barReg(bar));
  ecamWrite(h, slot, barReg(bar), 0xffff_ffff);
  const mask = ecamRead(h, slot, barReg(bar));
  ecamWrite(h, slot, barReg(bar), original);
  return mask;
}

describe('firmware placement', () => {
  it('places_memory_bars_largest_first_from_the_window_base_naturally_aligned', () => {
    const legacy = Number(h.exports.bar_addr(LEGACY.slot, LEGACY.memBar));
    const backend = Number(h.exports.bar_addr(VIRTIO.slot, VIRTIO.backendBar));
    const msix = Number(h.exports.bar_addr(VIRTIO.slot, VIRTIO.msixBar));

    expect([legacy, backend, msix]).toEqual([PCI_MMIO32.base, PCI_MMIO32.base + 0x10_0000, PCI_MMIO32.base + 0x10_4000]);
    for (const [addr, log2] of [[legacy, LEGACY.memBarLog2], [backend, VIRTIO.backendBarLog2], [msix, VIRTIO.msixBarLog2]] as const) {
      expect(addr % 2 ** log2).toBe(0);
    }
  });

  it('places_io_bars_in_the_io_window', () => {
    expect(Number(h.exports.bar_addr(LEGACY.slot, LEGACY.ioBar))).toBe(PCI_IO_WINDOW.base);
    expect(ecamRead(h, LEGACY.slot, barReg(LEGACY.ioBar))).toBe(PCI_IO_WINDOW.base | 1);
  });

  it('registers_show_the_placed_address_with_their_type_bits', () => {
    expect(ecamRead(h, VIRTIO.slot, barReg(VIRTIO.msixBar))).toBe(PCI_MMIO32.base + 0x10_4000);
    expect(ecamRead(h, VIRTIO.slot, barReg(VIRTIO.backendBar))).toBe(PCI_MMIO32.base + 0x10_0000 + 0b1100);
    expect(ecamRead(h, VIRTIO.slot, barReg(VIRTIO.backendBar + 1))).toBe(0);
    expect(ecamRead(h, VIRTIO.slot, barReg(0))).toBe(0);
  });

  it('placement_fills_the_whole_window_when_the_sizes_add_up_to_it', async () => {
    const full = await createWithMem32Bars([[1, 0, 28], [1, 1, 27], [2, 0, 27]]);

    expect([full.exports.bar_addr(1, 0), full.exports.bar_addr(1, 1), full.exports.bar_addr(2, 0)])
      .toEqual([0xc000_0000n, 0xd000_0000n, 0xd800_0000n]);
  });
});

/** A module whose table holds only Mem32 BARs: [slot, bar, log2] each. */
function createWithMem32Bars(bars: readonly (readonly [number, number, number])[]): Promise<Pci> {
  return createPciWith((e) => {
    for (const [slot, bar, log2] of bars) {
      e.cfg_device(slot, 0x0001_1af4, 0, 0, 0);
      expect(e.cfg_bar(slot, bar, PciBarKind.Mem32, log2, 0)).toBe(0);
    }
  });
}

describe('sizing', () => {
  it('mem32_bar_reads_its_size_mask_after_all_ones', () => {
    expect(size(LEGACY.slot, LEGACY.memBar)).toBe((~(2 ** LEGACY.memBarLog2 - 1)) >>> 0);
  });

  it('mem64_bar_reads_the_size_mask_with_type_and_prefetch_bits_and_an_all_ones_upper_half', () => {
    const low = size(VIRTIO.slot, VIRTIO.backendBar);
    const high = size(VIRTIO.slot, VIRTIO.backendBar + 1);

    expect(low).toBe(((~(2 ** VIRTIO.backendBarLog2 - 1)) | 0b1100) >>> 0);
    expect(high).toBe(0xffff_ffff);
  });

  it('io_bar_reads_a_16_bit_size_mask_with_the_io_bit', () => {
    expect(size(LEGACY.slot, LEGACY.ioBar)).toBe((0xffff & ~(2 ** LEGACY.ioBarLog2 - 1)) | 1);
  });

  it('non_prefetchable_memory_bar_has_bit_3_clear', () => {
    expect(size(VIRTIO.slot, VIRTIO.msixBar) & 0xf).toBe(0);
  });

  it('unimplemented_bar_reads_zero_after_all_ones', () => {
    expect(size(VIRTIO.slot, 0)).toBe(0);
  });

  it('sizing_restores_the_address', () => {
    const before = h.exports.bar_addr(VIRTIO.slot, VIRTIO.backendBar);

    size(VIRTIO.slot, VIRTIO.backendBar);
    size(VIRTIO.slot, VIRTIO.backendBar + 1);

    expect(h.exports.bar_addr(VIRTIO.slot, VIRTIO.backendBar)).toBe(before);
  });
});

describe('moves and what the runtime sees', () => {
  it('moving_a_bar_records_the_address_and_bumps_the_generation', () => {
    const generation = h.exports.bar_generation();

    ecamWrite(h, LEGACY.slot, barReg(LEGACY.memBar), 0xd000_0000);

    expect(h.exports.bar_addr(LEGACY.slot, LEGACY.memBar)).toBe(0xd000_0000n);
    expect(h.exports.bar_generation()).not.toBe(generation);
    expect(h.counter(PciCounter.BarChanged)).toBe(1n);
  });

  it('rewriting_the_same_address_leaves_the_generation_alone', () => {
    const generation = h.exports.bar_generation();

    ecamWrite(h, LEGACY.slot, barReg(LEGACY.memBar), ecamRead(h, LEGACY.slot, barReg(LEGACY.memBar)));

    expect(h.exports.bar_generation()).toBe(generation);
  });

  it('a_mem64_bar_moves_above_4_gib_through_its_upper_register', () => {
    ecamWrite(h, VIRTIO.slot, barReg(VIRTIO.backendBar + 1), 0x10);
    ecamWrite(h, VIRTIO.slot, barReg(VIRTIO.backendBar), 0x8000_0000);

    expect(h.exports.bar_addr(VIRTIO.slot, VIRTIO.backendBar)).toBe(0x10_8000_0000n);
  });

  it('address_bits_below_the_size_are_dropped', () => {
    ecamWrite(h, LEGACY.slot, barReg(LEGACY.ioBar), 0x2345);

    expect(h.exports.bar_addr(LEGACY.slot, LEGACY.ioBar)).toBe(0x2340n);
  });

  it('a_byte_write_to_a_bar_changes_only_that_byte_of_the_address', () => {
    ecamWrite(h, LEGACY.slot, barReg(LEGACY.memBar) + 3, 0xd1, 1);

    expect(h.exports.bar_addr(LEGACY.slot, LEGACY.memBar)).toBe(0xd100_0000n);
  });

  it('decoding_follows_the_command_register_and_bumps_the_generation', () => {
    const generation = h.exports.bar_generation();
    const decodingBefore = h.exports.bar_flags(LEGACY.slot, LEGACY.memBar) & PciBarFlag.Decoding;

    ecamWrite(h, LEGACY.slot, REG.command, CMD.io, 2);

    expect(decodingBefore).toBe(PciBarFlag.Decoding);
    expect(h.exports.bar_flags(LEGACY.slot, LEGACY.memBar) & PciBarFlag.Decoding).toBe(0);
    expect(h.exports.bar_flags(LEGACY.slot, LEGACY.ioBar) & PciBarFlag.Decoding).toBe(PciBarFlag.Decoding);
    expect(h.exports.bar_generation()).not.toBe(generation);
  });

  it('bar_exports_describe_kind_size_and_owner', () => {
    expect([
      h.exports.bar_kind(VIRTIO.slot, VIRTIO.msixBar), h.exports.bar_kind(VIRTIO.slot, VIRTIO.backendBar),
      h.exports.bar_kind(VIRTIO.slot, VIRTIO.backendBar + 1), h.exports.bar_kind(LEGACY.slot, LEGACY.ioBar),
      h.exports.bar_kind(VIRTIO.slot, 0),
    ]).toEqual([PciBarKind.Mem32, PciBarKind.Mem64, PciBarKind.Mem64High, PciBarKind.Io, PciBarKind.None]);
    expect(h.exports.bar_size(VIRTIO.slot, VIRTIO.backendBar)).toBe(BigInt(2 ** VIRTIO.backendBarLog2));
    expect(h.exports.bar_size(VIRTIO.slot, VIRTIO.backendBar + 1)).toBe(0n);
    expect(h.exports.bar_flags(VIRTIO.slot, VIRTIO.msixBar)).toBe(PciBarFlag.ServedByPci | PciBarFlag.Decoding);
    expect(h.exports.bar_flags(VIRTIO.slot, VIRTIO.backendBar)).toBe(PciBarFlag.Prefetchable | PciBarFlag.Decoding);
  });

  it('bar_exports_for_missing_slots_and_bars_read_zero', () => {
    expect([h.exports.bar_kind(7, 0), h.exports.bar_flags(32, 0), h.exports.bar_kind(VIRTIO.slot, 6)]).toEqual([0, 0, 0]);
    expect([h.exports.bar_addr(0xffff_ffff, 0), h.exports.bar_size(VIRTIO.slot, 0xffff_ffff)]).toEqual([0n, 0n]);
  });

  it('reset_puts_every_bar_back_where_firmware_placed_it_and_turns_decoding_back_on', () => {
    const placed = h.exports.bar_addr(LEGACY.slot, LEGACY.memBar);
    ecamWrite(h, LEGACY.slot, barReg(LEGACY.memBar), 0xd000_0000);
    ecamWrite(h, LEGACY.slot, REG.command, 0, 2);
    const generation = h.exports.bar_generation();

    h.exports.reset();

    expect(h.exports.bar_addr(LEGACY.slot, LEGACY.memBar)).toBe(placed);
    expect(ecamRead(h, LEGACY.slot, REG.command, 2)).toBe(CMD.io | CMD.memory);
    expect(h.exports.bar_generation()).not.toBe(generation);
  });
});
