import { describe, expect, test } from 'vitest';
import { Capability, Role } from '../../idl/generated/control.js';
import { PCI_ECAM } from '../../boot/layout.js';
import { RangeTable } from '../ioreq/ranges.js';
import { ROLE_POLICY, allowedRange, type StubRole } from './policy.js';

const ROLES: StubRole[] = [Role.ROLE_CONSOLE, Role.ROLE_IOAPIC, Role.ROLE_PCI];

describe('role policy: interrupt lines', () => {
  test('console_drives_lines_as_source_bit_0', () => {
    expect(ROLE_POLICY[Role.ROLE_CONSOLE].lines).toEqual({ source: true, bit: 0 });
  });

  test('ioapic_reads_lines_and_owns_no_bit', () => {
    expect(ROLE_POLICY[Role.ROLE_IOAPIC].lines).toEqual({ source: false });
  });

  test('pci_drives_intx_lines_as_source_bit_1', () => {
    expect(ROLE_POLICY[Role.ROLE_PCI].lines).toEqual({ source: true, bit: 1 });
  });

  test('every_role_with_a_lines_side_holds_the_capability', () => {
    for (const role of ROLES) expect(ROLE_POLICY[role].capabilities).toContain(Capability.CAPABILITY_IRQ_LINES);
  });

  test('source_bits_are_distinct_and_fit_a_32_bit_mask', () => {
    const bits = ROLES.flatMap((r) => { const l = ROLE_POLICY[r].lines; return l.source ? [l.bit] : []; });
    expect(new Set(bits).size).toBe(bits.length);
    for (const b of bits) expect(b >= 0 && b < 32).toBe(true);
  });
});

describe('role policy: ranges', () => {
  test('the_ranges_of_all_roles_fit_one_range_table_without_overlap', () => {
    const table = new RangeTable();
    const all = ROLES.flatMap((role) => ROLE_POLICY[role].ranges);
    all.forEach((r, endpoint) => table.add({ ...r, endpoint }));
    expect(table.list()).toHaveLength(all.length);
  });

  test('pci_serves_config_address_and_config_data_as_separate_unbuffered_ranges', () => {
    expect(allowedRange(Role.ROLE_PCI, 'pio', 0xcf8, 4)).toEqual({ space: 'pio', first: 0xcf8, last: 0xcfb, buffered: false });
    expect(allowedRange(Role.ROLE_PCI, 'pio', 0xcfc, 4)).toEqual({ space: 'pio', first: 0xcfc, last: 0xcff, buffered: false });
    expect(allowedRange(Role.ROLE_PCI, 'pio', 0xcf8, 8)).toBeUndefined();
  });

  test('pci_serves_bus_0_of_ecam_only', () => {
    expect(allowedRange(Role.ROLE_PCI, 'mmio', 0xe000_0000, 0x10_0000)).toEqual({ space: 'mmio', first: 0xe000_0000, last: 0xe00f_ffff, buffered: false });
    expect(PCI_ECAM.size).toBe(0x10_0000);
  });

  test('only_the_pci_role_may_claim_the_config_ports', () => {
    expect(allowedRange(Role.ROLE_CONSOLE, 'pio', 0xcf8, 4)).toBeUndefined();
    expect(allowedRange(Role.ROLE_IOAPIC, 'pio', 0xcf8, 4)).toBeUndefined();
  });
});

describe('role policy: PCI', () => {
  test('only_the_pci_domain_places_bars_and_routes_msi_vectors', () => {
    for (const role of [...ROLES, Role.ROLE_BLOCK] as const) {
      const caps = ROLE_POLICY[role].capabilities;
      const pci = role === Role.ROLE_PCI;
      expect(caps.includes(Capability.CAPABILITY_PCI_BARS)).toBe(pci);
      expect(caps.includes(Capability.CAPABILITY_MSI_ROUTE)).toBe(pci);
    }
  });

  test('the_block_backend_gets_guest_memory_doorbells_and_irqfds_but_no_fixed_range_or_lines', () => {
    const block = ROLE_POLICY[Role.ROLE_BLOCK];
    expect(block.capabilities).toEqual(expect.arrayContaining([Capability.CAPABILITY_MAP_GUEST_MEMORY, Capability.CAPABILITY_IOEVENTFD, Capability.CAPABILITY_IRQFD]));
    expect(block.capabilities).not.toContain(Capability.CAPABILITY_IRQ_LINES);
    expect(block.ranges).toEqual([]);
    for (const role of ROLES) expect(ROLE_POLICY[role].capabilities).not.toContain(Capability.CAPABILITY_MAP_GUEST_MEMORY);
  });
});

