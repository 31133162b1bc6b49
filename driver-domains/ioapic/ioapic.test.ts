// Behaviour of the ioapic stub domain through its ABI, driven as Linux drives an 82093AA.
import { beforeEach, describe, expect, it } from 'vitest';
import { IOAPIC_BASE, PCI_INTX_GSI_BASE } from '../../boot/layout.js';
import { IoapicCounter, RouteFlag } from '../runtime/abi.js';
import { StubHarness } from '../runtime/testing.js';

const IOREGSEL = IOAPIC_BASE;
const IOWIN = IOAPIC_BASE + 0x10;
const EOI_REG = IOAPIC_BASE + 0x40;

// Redirection-entry bits (82093AA datasheet 3.2.4), spelled out independently of the model.
const MASKED = 1 << 16;
const LEVEL = 1 << 15;
const REMOTE_IRR = 1 << 14;
const ACTIVE_LOW = 1 << 13;
const LOGICAL = 1 << 11;
const LOWEST_PRIORITY = 1 << 8;
const EXTINT = 7 << 8;

type Ioapic = StubHarness<'ioapic'>;

function readReg(h: Ioapic, sel: number): number {
  h.mmioWrite(IOREGSEL, sel);
  return h.mmioRead(IOWIN) >>> 0;
}

function writeReg(h: Ioapic, sel: number, value: number): void {
  h.mmioWrite(IOREGSEL, sel);
  h.mmioWrite(IOWIN, value >>> 0);
}

/** Linux's order (ioapic_write_entry): high dword first, then the low one. */
function writeEntry(h: Ioapic, pin: number, low: number, dest = 0): void {
  writeReg(h, 0x11 + 2 * pin, dest << 24);
  writeReg(h, 0x10 + 2 * pin, low);
}

function readEntry(h: Ioapic, pin: number): { low: number; high: number } {
  return { low: readReg(h, 0x10 + 2 * pin), high: readReg(h, 0x11 + 2 * pin) };
}

let h: Ioapic;
beforeEach(async () => {
  h = await StubHarness.create('ioapic');
});

describe('register interface', () => {
  it('version_register_reports_0x20_with_24_entries', () => {
    const version = readReg(h, 0x01);

    expect(version & 0xff).toBe(0x20);
    expect((version >>> 16) & 0xff).toBe(23);
  });

  it('redirection_entries_power_on_masked', () => {
    for (let pin = 0; pin < 24; pin++) expect(readEntry(h, pin).low).toBe(MASKED);
  });

  it('entry_written_low_and_high_reads_back_without_read_only_bits', () => {
    writeEntry(h, 3, 0x31 | LEVEL | ACTIVE_LOW | LOGICAL | LOWEST_PRIORITY | MASKED | REMOTE_IRR | (1 << 12) | 0xfffe0000, 0x5a);

    const entry = readEntry(h, 3);

    expect(entry.low >>> 0).toBe((0x31 | LEVEL | ACTIVE_LOW | LOGICAL | LOWEST_PRIORITY | MASKED) >>> 0);
    expect(entry.high >>> 0).toBe(0x5a000000);
  });

  it('id_write_keeps_four_bits_and_arbitration_follows_it', () => {
    writeReg(h, 0x00, 0xfb000000);

    expect(readReg(h, 0x00) >>> 0).toBe(0x0b000000);
    expect(readReg(h, 0x02) >>> 0).toBe(0x0b000000);
  });

  it('ioregsel_reads_back_its_low_byte', () => {
    h.mmioWrite(IOREGSEL, 0x1234);

    expect(h.mmioRead(IOREGSEL)).toBe(0x34);
  });

  it('version_write_is_ignored_and_counted', () => {
    writeReg(h, 0x01, 0);

    expect(readReg(h, 0x01) & 0xff).toBe(0x20);
    expect(h.counter(IoapicCounter.InvalidAccess)).toBe(1n);
  });

  it('reset_masks_entries_and_clears_remote_irr', () => {
    writeEntry(h, 5, 0x40 | LEVEL);
    h.exports.set_irq(5, 1);

    h.exports.reset();

    expect(readEntry(h, 5).low).toBe(MASKED);
  });
});

describe('as Linux programs it', () => {
  it('linux_boot_sequence_programs_com1_edge_and_sci_level_and_delivers_both', () => {
    // setup_IO_APIC: read the version for the entry count, mask every entry, then program
    // ISA IRQ 4 (edge, active-high) and the SCI (level, active-low, from the MADT override).
    const entries = ((readReg(h, 0x01) >>> 16) & 0xff) + 1;
    for (let pin = 0; pin < entries; pin++) writeReg(h, 0x10 + 2 * pin, MASKED);
    writeEntry(h, 4, 0x24, 0);
    writeEntry(h, 9, 0x29 | LEVEL | ACTIVE_LOW, 0);

    h.exports.set_irq(4, 1);
    h.exports.set_irq(9, 1);

    expect(entries).toBe(24);
    expect(h.msis()).toEqual([
      { kind: 'msi', addr: 0xfee00000n, data: 0x24 },
      { kind: 'msi', addr: 0xfee00000n, data: 0x29 | 0xc000 },
    ]);
  });
});

describe('edge-triggered pins', () => {
  it('edge_delivers_one_msi_on_rising_edge', () => {
    writeEntry(h, 4, 0x24, 1);

    h.exports.set_irq(4, 1);

    expect(h.msis()).toEqual([{ kind: 'msi', addr: 0xfee01000n, data: 0x24 }]);
  });

  it('edge_does_not_deliver_on_falling_edge_or_repeated_level', () => {
    writeEntry(h, 4, 0x24);
    h.exports.set_irq(4, 1);
    h.clearEvents();

    h.exports.set_irq(4, 1);
    h.exports.set_irq(4, 0);

    expect(h.msis()).toEqual([]);
  });

  it('masked_edge_is_dropped_and_not_delivered_on_unmask', () => {
    writeEntry(h, 4, 0x24 | MASKED);
    h.exports.set_irq(4, 1);
    h.exports.set_irq(4, 0);

    writeEntry(h, 4, 0x24);

    expect(h.msis()).toEqual([]);
  });

  it('edge_after_unmask_delivers', () => {
    writeEntry(h, 4, 0x24 | MASKED);
    writeEntry(h, 4, 0x24);

    h.exports.set_irq(4, 1);

    expect(h.msis()).toHaveLength(1);
  });

  it('edge_entry_never_shows_remote_irr', () => {
    writeEntry(h, 2, 0x30);

    h.exports.set_irq(2, 1);

    expect(readEntry(h, 2).low & REMOTE_IRR).toBe(0);
  });
});

describe('level-triggered pins', () => {
  const pin = PCI_INTX_GSI_BASE; // wired active-low, as the _PRT tells the guest
  const low = 0x41 | LEVEL | ACTIVE_LOW;

  it('level_delivers_and_sets_remote_irr', () => {
    writeEntry(h, pin, low);

    h.exports.set_irq(pin, 1);

    expect(h.msis()).toEqual([{ kind: 'msi', addr: 0xfee00000n, data: 0x41 | 0x8000 | 0x4000 }]);
    expect(readEntry(h, pin).low & REMOTE_IRR).toBe(REMOTE_IRR);
  });

  it('level_does_not_redeliver_while_remote_irr_set', () => {
    writeEntry(h, pin, low);
    h.exports.set_irq(pin, 1);
    h.exports.set_irq(pin, 0);

    h.exports.set_irq(pin, 1);

    expect(h.msis()).toHaveLength(1);
  });

  it('level_interrupt_redelivers_after_eoi_while_asserted', () => {
    writeEntry(h, pin, low);
    h.exports.set_irq(pin, 1);
    h.clearEvents();

    h.exports.eoi(0x41);

    expect(h.msis()).toHaveLength(1);
    expect(readEntry(h, pin).low & REMOTE_IRR).toBe(REMOTE_IRR);
  });

  it('eoi_after_deassert_clears_remote_irr_without_redelivery', () => {
    writeEntry(h, pin, low);
    h.exports.set_irq(pin, 1);
    h.exports.set_irq(pin, 0);
    h.clearEvents();

    h.exports.eoi(0x41);

    expect(h.msis()).toEqual([]);
    expect(readEntry(h, pin).low & REMOTE_IRR).toBe(0);
  });

  it('eoi_register_write_redelivers_while_asserted', () => {
    writeEntry(h, pin, low);
    h.exports.set_irq(pin, 1);
    h.clearEvents();

    h.mmioWrite(EOI_REG, 0x41);

    expect(h.msis()).toHaveLength(1);
  });

  it('eoi_register_write_clears_remote_irr_so_a_new_assertion_delivers', () => {
    writeEntry(h, pin, low);
    h.exports.set_irq(pin, 1);
    h.exports.set_irq(pin, 0);

    h.mmioWrite(EOI_REG, 0x41);
    h.clearEvents();
    h.exports.set_irq(pin, 1);

    expect(h.msis()).toHaveLength(1);
  });

  it('eoi_for_another_vector_leaves_remote_irr_set', () => {
    writeEntry(h, pin, low);
    h.exports.set_irq(pin, 1);
    h.clearEvents();

    h.exports.eoi(0x42);

    expect(h.msis()).toEqual([]);
    expect(readEntry(h, pin).low & REMOTE_IRR).toBe(REMOTE_IRR);
  });

  it('unmasking_level_entry_with_asserted_line_delivers', () => {
    writeEntry(h, pin, low | MASKED);
    h.exports.set_irq(pin, 1);
    expect(h.msis()).toEqual([]);

    writeEntry(h, pin, low);

    expect(h.msis()).toHaveLength(1);
  });

  it('masked_level_line_is_not_delivered', () => {
    writeEntry(h, pin, low | MASKED);

    h.exports.set_irq(pin, 1);

    expect(h.msis()).toEqual([]);
    expect(readEntry(h, pin).low & REMOTE_IRR).toBe(0);
  });

  it('switching_entry_to_edge_clears_remote_irr', () => {
    writeEntry(h, pin, low);
    h.exports.set_irq(pin, 1);

    writeEntry(h, pin, 0x41 | ACTIVE_LOW | MASKED);

    expect(readEntry(h, pin).low & REMOTE_IRR).toBe(0);
  });

  it('set_irq_is_idempotent_for_a_level_line', () => {
    writeEntry(h, pin, low);
    h.exports.set_irq(pin, 1);
    h.exports.eoi(0x41);
    h.clearEvents();

    h.exports.set_irq(pin, 1);
    h.exports.set_irq(pin, 1);

    expect(h.msis()).toEqual([]);
  });

  it('nmi_delivery_mode_is_edge_even_when_programmed_level', () => {
    writeEntry(h, 7, LEVEL | (4 << 8));

    h.exports.set_irq(7, 1);

    expect(h.msis()).toEqual([{ kind: 'msi', addr: 0xfee00000n, data: 0x400 }]);
    expect(readEntry(h, 7).low & REMOTE_IRR).toBe(0);
  });
});

describe('polarity', () => {
  it('active_high_programming_on_active_low_wire_sees_idle_line_as_active', () => {
    // PCI INTx is wired active-low; a guest that ignores the _PRT gets a storm, as on hardware.
    writeEntry(h, PCI_INTX_GSI_BASE + 1, 0x50 | LEVEL);

    expect(h.msis()).toHaveLength(1);
  });

  it('matching_polarity_keeps_idle_line_quiet', () => {
    writeEntry(h, PCI_INTX_GSI_BASE + 1, 0x50 | LEVEL | ACTIVE_LOW);

    expect(h.msis()).toEqual([]);
  });

  it('active_low_programming_on_isa_edge_pin_delivers_on_source_deassert', () => {
    writeEntry(h, 4, 0x24 | ACTIVE_LOW);
    h.exports.set_irq(4, 1);

    h.exports.set_irq(4, 0);

    expect(h.msis()).toHaveLength(1);
  });
});

describe('MSI encoding', () => {
  it('physical_destination_goes_to_address_bits_19_12', () => {
    writeEntry(h, 1, 0x31, 0xab);

    h.exports.set_irq(1, 1);

    expect(h.msis()[0]?.addr).toBe(0xfeeab000n);
  });

  it('logical_destination_sets_destination_mode_bit', () => {
    writeEntry(h, 1, 0x31 | LOGICAL, 0x0f);

    h.exports.set_irq(1, 1);

    expect(h.msis()[0]).toEqual({ kind: 'msi', addr: 0xfee0f004n, data: 0x31 });
  });

  it('lowest_priority_keeps_delivery_mode_and_sets_redirection_hint', () => {
    writeEntry(h, 1, 0x31 | LOWEST_PRIORITY | LOGICAL, 0x03);

    h.exports.set_irq(1, 1);

    expect(h.msis()[0]).toEqual({ kind: 'msi', addr: 0xfee0300cn, data: 0x131 });
  });

  it('extint_entry_is_dropped_and_counted', () => {
    writeEntry(h, 0, 0x20 | EXTINT);

    h.exports.set_irq(0, 1);

    expect(h.msis()).toEqual([]);
    expect(h.counter(IoapicCounter.DroppedDelivery)).toBe(1n);
  });

  it('reserved_vector_is_dropped_and_counted', () => {
    writeEntry(h, 0, 0x0f);

    h.exports.set_irq(0, 1);

    expect(h.msis()).toEqual([]);
    expect(h.counter(IoapicCounter.DroppedDelivery)).toBe(1n);
  });

  it('every_sent_msi_is_counted', () => {
    writeEntry(h, 1, 0x31);
    h.exports.set_irq(1, 1);
    h.exports.set_irq(1, 0);
    h.exports.set_irq(1, 1);

    expect(h.counter(IoapicCounter.MsiSent)).toBe(2n);
  });
});

describe('routes for microhv', () => {
  it('route_of_a_level_pin_matches_the_msi_it_delivers', () => {
    writeEntry(h, 17, 0x51 | LEVEL | ACTIVE_LOW | LOGICAL, 0x02);

    h.exports.set_irq(17, 1);

    expect(h.msis()[0]).toEqual({ kind: 'msi', addr: h.exports.route_addr(17), data: h.exports.route_data(17) });
    expect(h.exports.route_flags(17)).toBe(RouteFlag.Level | RouteFlag.Deliverable);
  });

  it('route_flags_report_masked_and_undeliverable_entries', () => {
    writeEntry(h, 0, 0x20 | EXTINT | MASKED);

    expect(h.exports.route_flags(0)).toBe(RouteFlag.Masked);
  });

  it('route_generation_changes_on_entry_writes_only', () => {
    const before = h.exports.route_generation();
    readEntry(h, 3);
    writeReg(h, 0x00, 0);
    const afterReads = h.exports.route_generation();

    writeEntry(h, 3, 0x33);

    expect(afterReads).toBe(before);
    expect(h.exports.route_generation()).not.toBe(before);
  });

  it('route_of_a_missing_pin_reads_zero', () => {
    expect([h.exports.route_addr(24), h.exports.route_data(24), h.exports.route_flags(24)]).toEqual([0n, 0, 0]);
  });
});
