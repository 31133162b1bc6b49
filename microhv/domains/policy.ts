// What each domain role may do (DESIGN.md 3: privilege is per domain, granted
// by microhv, never self-declared): its capabilities, and the exact port and
// MMIO ranges it may serve. A console domain cannot claim the IO-APIC.
import { Capability, Role } from '../../idl/generated/control.js';
import { ACPI_PM, COM1, I8042, IOAPIC_BASE, PCI_CONFIG_PORTS, PCI_ECAM } from '../../boot/layout.js';
import type { Space } from '../ioreq/ranges.js';

export interface AllowedRange { readonly space: Space; readonly first: number; readonly last: number; readonly buffered: boolean }
export interface RolePolicy {
  readonly capabilities: readonly Capability[];
  /** Every range the role serves; microhv claims them for the domain before the guest starts. */
  readonly ranges: readonly AllowedRange[];
  /** Its side of the legacy interrupt lines page (control.proto GetIrqLines): a source owns one mask bit. */
  readonly lines: { readonly source: true; readonly bit: number } | { readonly source: false };
}

export type StubRole = typeof Role.ROLE_CONSOLE | typeof Role.ROLE_IOAPIC | typeof Role.ROLE_PCI;
/** Roles that serve a PCI function's BAR (a backend): no fixed range; the pci domain places the BAR. */
export type BackendRole = typeof Role.ROLE_BLOCK;
export type DomainRole = StubRole | BackendRole;

export const ROLE_POLICY: Record<DomainRole, RolePolicy> = {
  [Role.ROLE_CONSOLE]: {
    // The platform devices (ACPI PM1 control, i8042 reset) live here, so power events come from it.
    capabilities: [Capability.CAPABILITY_STATE_REGION, Capability.CAPABILITY_IOREQ_SERVER, Capability.CAPABILITY_PLATFORM_EVENT, Capability.CAPABILITY_IRQ_LINES],
    // The UART's IRQ 4 and the SCI: bit 0 of their GSIs' masks. Later sources (PCI INTx) take the next bits.
    lines: { source: true, bit: 0 },
    ranges: [
      // THR writes are posted (the buffered ring), so guest output costs no round trip.
      { space: 'pio', first: COM1.port, last: COM1.port + COM1.size - 1, buffered: true },
      { space: 'pio', first: I8042.data, last: I8042.data, buffered: false },
      { space: 'pio', first: I8042.command, last: I8042.command, buffered: false },
      { space: 'pio', first: ACPI_PM.pm1aEvent, last: ACPI_PM.pmTimer + ACPI_PM.pmTimerLen - 1, buffered: false },
    ],
  },
  [Role.ROLE_IOAPIC]: {
    capabilities: [Capability.CAPABILITY_STATE_REGION, Capability.CAPABILITY_IOREQ_SERVER, Capability.CAPABILITY_IOAPIC_ROUTE, Capability.CAPABILITY_IRQFD, Capability.CAPABILITY_IRQ_LINES],
    // The IO-APIC's pins read the merged levels; it never writes the page.
    lines: { source: false },
    ranges: [{ space: 'mmio', first: IOAPIC_BASE, last: IOAPIC_BASE + 0xfff, buffered: false }],
  },
  [Role.ROLE_PCI]: {
    // It owns config space: it says where BARs are (MapBar) and where MSI-X vectors go (SetMsiRoute).
    capabilities: [Capability.CAPABILITY_STATE_REGION, Capability.CAPABILITY_IOREQ_SERVER, Capability.CAPABILITY_IRQ_LINES,
      Capability.CAPABILITY_PCI_BARS, Capability.CAPABILITY_MSI_ROUTE],
    // INTx of the bus-0 functions (GSIs 16..23): the next source bit after the console's.
    lines: { source: true, bit: 1 },
    // Every config access is a read or a read-modify-write whose answer the guest waits for
    // (BAR sizing reads back what it wrote), so none is posted.
    ranges: [
      // CONFIG_ADDRESS is one 32-bit register (PCI 3.0, 3.2.2.3.2); byte accesses to 0xcfb reach it too.
      { space: 'pio', first: PCI_CONFIG_PORTS.base, last: PCI_CONFIG_PORTS.base + 3, buffered: false },
      { space: 'pio', first: PCI_CONFIG_PORTS.base + 4, last: PCI_CONFIG_PORTS.base + PCI_CONFIG_PORTS.size - 1, buffered: false },
      // Bus 0 of ECAM, the only bus the MCFG describes.
      { space: 'mmio', first: PCI_ECAM.base, last: PCI_ECAM.base + PCI_ECAM.size - 1, buffered: false },
    ],
  },
  [Role.ROLE_BLOCK]: {
    // Its guest's memory (DMA), its BAR's ioreqs at BAR offsets, its doorbells, and the eventfds of
    // its MSI-X vectors; never a route: the pci domain decides where a vector goes.
    capabilities: [Capability.CAPABILITY_STATE_REGION, Capability.CAPABILITY_MAP_GUEST_MEMORY, Capability.CAPABILITY_IOREQ_SERVER,
      Capability.CAPABILITY_IOEVENTFD, Capability.CAPABILITY_IRQFD],
    lines: { source: false },
    ranges: [],
  },
};

/** The allowed range that a request names exactly, if any. */
export function allowedRange(role: DomainRole, space: Space, start: number, length: number): AllowedRange | undefined {
  return ROLE_POLICY[role].ranges.find((r) => r.space === space && r.first === start && r.last === start + length - 1);
}
