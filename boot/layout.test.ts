import { describe, expect, test } from 'vitest';
import { BootError } from './errors.js';
import {
  ACPI_PM, ACPI_TABLES, COM1, E820Type, EBDA_START, FOUR_GIB, GiB, HIGH_MEMORY, IOAPIC_BASE, LAPIC_BASE, MiB,
  PCI_CONFIG_PORTS, PCI_ECAM, PCI_HOLE_START, PCI_IO_WINDOW, PCI_MMIO32, PLATFORM_RESERVED, KVM_TSS, pciIntxGsi, memoryMap,
  type E820Entry,
} from './layout.js';

const code = (f: () => unknown): string | undefined => {
  try { f(); return undefined; } catch (e) { return e instanceof BootError ? e.code : `not a BootError: ${String(e)}`; }
};
const overlaps = (a: { base: number; size: number }, b: { base: number; size: number }): boolean =>
  a.base < b.base + b.size && b.base < a.base + a.size;

describe('memoryMap', () => {
  test.each([0, 32 * MiB, 64 * MiB + 4096, 2 * 1024 * GiB, Number.NaN, 1.5 * GiB + 0.5])('rejects_ram_size_%s', (bytes) => {
    expect(code(() => memoryMap(bytes))).toBe('BAD_MEMORY_SIZE');
  });

  test('keeps_small_ram_in_one_region_below_the_hole', () => {
    const m = memoryMap(512 * MiB);
    expect(m.ram).toEqual([{ gpa: 0, size: 512 * MiB }]);
  });

  test('splits_large_ram_around_the_pci_hole', () => {
    const m = memoryMap(8 * GiB);
    expect(m.ram).toEqual([{ gpa: 0, size: PCI_HOLE_START }, { gpa: FOUR_GIB, size: 8 * GiB - PCI_HOLE_START }]);
  });

  test.each([64 * MiB, 3 * GiB, 3 * GiB + 2 * MiB, 16 * GiB])('e820_is_sorted_disjoint_and_its_ram_lies_in_ram_regions_for_%s', (bytes) => {
    const m = memoryMap(bytes);
    const sorted = [...m.e820].sort((a, b) => a.addr - b.addr);
    expect(m.e820).toEqual(sorted);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1] as E820Entry;
      expect((sorted[i] as E820Entry).addr).toBeGreaterThanOrEqual(prev.addr + prev.size);
    }
    const usable = m.e820.filter((e) => e.type === E820Type.Ram);
    for (const e of usable) expect(m.ram.some((r) => e.addr >= r.gpa && e.addr + e.size <= r.gpa + r.size)).toBe(true);
    // All RAM is usable except the low 640K..1M hole the e820 reserves.
    const usableBytes = usable.reduce((n, e) => n + e.size, 0);
    expect(usableBytes).toBe(bytes - (HIGH_MEMORY - EBDA_START));
  });

  test('reserves_the_bios_area_ecam_and_apics_and_types_the_acpi_area', () => {
    const m = memoryMap(8 * GiB);
    const typeAt = (addr: number): E820Type | undefined => m.e820.find((e) => addr >= e.addr && addr < e.addr + e.size)?.type;
    expect(typeAt(EBDA_START)).toBe(E820Type.Reserved);
    expect(typeAt(ACPI_TABLES)).toBe(E820Type.Acpi);
    expect(typeAt(PCI_ECAM.base)).toBe(E820Type.Reserved);
    expect(typeAt(PCI_ECAM.base + PCI_ECAM.size - 1)).toBe(E820Type.Reserved);
    expect(typeAt(IOAPIC_BASE)).toBe(E820Type.Reserved);
    expect(typeAt(LAPIC_BASE)).toBe(E820Type.Reserved);
    expect(typeAt(PCI_MMIO32.base)).toBeUndefined(); // BAR space stays free for the OS to assign
  });
});

describe('fixed addresses', () => {
  test('mmio_window_ecam_and_platform_pages_are_disjoint_and_inside_the_hole', () => {
    const ranges = [PCI_MMIO32, PCI_ECAM, PLATFORM_RESERVED];
    for (const r of ranges) {
      expect(r.base).toBeGreaterThanOrEqual(PCI_HOLE_START);
      expect(r.base + r.size).toBeLessThanOrEqual(FOUR_GIB);
    }
    expect(overlaps(PCI_MMIO32, PCI_ECAM) || overlaps(PCI_ECAM, PLATFORM_RESERVED) || overlaps(PCI_MMIO32, PLATFORM_RESERVED)).toBe(false);
    expect(KVM_TSS + 3 * 4096).toBeLessThanOrEqual(FOUR_GIB);
    expect(PCI_ECAM.base % PCI_ECAM.size).toBe(0); // ECAM base is aligned to its size
  });

  test('port_ranges_do_not_collide', () => {
    const ports = [
      { base: ACPI_PM.pm1aEvent, size: ACPI_PM.pm1EventLen }, { base: ACPI_PM.pm1aControl, size: ACPI_PM.pm1ControlLen },
      { base: ACPI_PM.pmTimer, size: ACPI_PM.pmTimerLen }, { base: COM1.port, size: COM1.size }, PCI_CONFIG_PORTS, PCI_IO_WINDOW,
    ];
    ports.forEach((a, i) => ports.slice(i + 1).forEach((b) => expect(overlaps(a, b), `${a.base} vs ${b.base}`).toBe(false)));
  });

  test('pci_intx_lands_on_gsis_16_to_23', () => {
    for (let slot = 0; slot < 32; slot++) {
      for (const pin of [0, 1, 2, 3] as const) {
        expect(pciIntxGsi(slot, pin)).toBeGreaterThanOrEqual(16);
        expect(pciIntxGsi(slot, pin)).toBeLessThanOrEqual(23);
      }
    }
    expect(pciIntxGsi(1, 0)).not.toBe(pciIntxGsi(2, 0)); // neighbouring slots do not share INTA
  });
});
