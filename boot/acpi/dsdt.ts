// The DSDT (ACPI 6.5, 5.2.11.1): \_S5 for power-off, the PCI host bridge, the motherboard
// resources, COM1 and one processor device per vCPU. AML is encoded by boot/acpi/aml.ts.
import {
  ACPI_PM, COM1, PCI_CONFIG_PORTS, PCI_ECAM, PCI_ECAM_BUSES, PCI_MMIO32, SLEEP_TYPE_S5, pciIntxGsi,
} from '../layout.js';
import {
  AddressSpaceType, device, dwordAddressSpace, eisaId, integer, ioPort, irqNoFlags, memory32Fixed, name, pkg, resourceTemplate, scope,
  string, wordAddressSpace, type Aml,
} from './aml.js';
import { sdt } from './table.js';

/** Revision 2: integers are 64 bits wide (ACPI 6.5, 5.2.11.1). */
const DSDT_REVISION = 2;
const PCI_SLOTS = 32;

/** The host bridge's resources: bus range, the config ports, and the I/O and memory it forwards. */
function pciCrs(): number[] {
  const cfgEnd = PCI_CONFIG_PORTS.base + PCI_CONFIG_PORTS.size;
  // The bridge forwards every port except its own 0xcf8..0xcff (so the legacy UART and the ACPI PM
  // ports sit below it); the pci domain places I/O BARs in layout.PCI_IO_WINDOW, the upper part.
  return resourceTemplate([
    wordAddressSpace(AddressSpaceType.BusNumber, 0, PCI_ECAM_BUSES),
    ioPort(PCI_CONFIG_PORTS.base, PCI_CONFIG_PORTS.size),
    wordAddressSpace(AddressSpaceType.Io, 0, PCI_CONFIG_PORTS.base),
    wordAddressSpace(AddressSpaceType.Io, cfgEnd, 0x10000 - cfgEnd),
    dwordAddressSpace(AddressSpaceType.Memory, PCI_MMIO32.base, PCI_MMIO32.size),
  ]);
}

/**
 * _PRT (ACPI 6.5, 6.2.13): INTA..INTD of every slot on bus 0 to a GSI, in the GSI form (Source 0).
 * The mapping is layout.pciIntxGsi, which the pci domain uses too.
 */
function pciPrt(): number[] {
  const entries: Aml[] = [];
  for (let slot = 0; slot < PCI_SLOTS; slot++) {
    for (const pin of [0, 1, 2, 3] as const) {
      entries.push(pkg([integer(slot * 0x10000 + 0xffff), integer(pin), integer(0), integer(pciIntxGsi(slot, pin))]));
    }
  }
  return pkg(entries);
}

export function dsdt(vcpus: number): Uint8Array {
  const cpus = Array.from({ length: vcpus }, (_, i) =>
    device(`C${i.toString(16).toUpperCase().padStart(3, '0')}`, [...name('_HID', string('ACPI0007')), ...name('_UID', integer(i))]));
  const body = [
    // \_S5: SLP_TYPa, SLP_TYPb, reserved, reserved (ACPI 6.5, 7.4.2).
    ...name('_S5', pkg([integer(SLEEP_TYPE_S5), integer(SLEEP_TYPE_S5), integer(0), integer(0)])),
    ...scope('\\_SB', [
      ...device('PCI0', [
        ...name('_HID', eisaId('PNP0A08')), // PCI Express root bridge (has ECAM, see MCFG)
        ...name('_CID', eisaId('PNP0A03')), // and a PCI root bridge, for OSes that only know that
        ...name('_SEG', integer(0)),
        ...name('_BBN', integer(0)),
        ...name('_UID', integer(0)),
        ...name('_CRS', pciCrs()),
        ...name('_PRT', pciPrt()),
      ]),
      // Motherboard resources (PNP0C02): Linux checks that the MCFG's ECAM window is claimed here
      // (arch/x86/pci/mmconfig-shared.c), and reserves the PM ports so nothing else is placed there.
      ...device('MRES', [
        ...name('_HID', eisaId('PNP0C02')),
        ...name('_UID', integer(0)),
        ...name('_CRS', resourceTemplate([
          memory32Fixed(PCI_ECAM.base, PCI_ECAM.size),
          ioPort(ACPI_PM.pm1aEvent, ACPI_PM.pm1EventLen),
          ioPort(ACPI_PM.pm1aControl, ACPI_PM.pm1ControlLen),
          ioPort(ACPI_PM.pmTimer, ACPI_PM.pmTimerLen),
        ])),
      ]),
      ...device('COM1', [
        ...name('_HID', eisaId('PNP0501')), // 16550A-compatible UART
        ...name('_UID', integer(1)),
        ...name('_CRS', resourceTemplate([ioPort(COM1.port, COM1.size), irqNoFlags(COM1.irq)])),
      ]),
      ...cpus.flat(),
    ]),
  ];
  return sdt('DSDT', DSDT_REVISION, new Uint8Array(body));
}
