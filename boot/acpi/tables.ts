// The fixed-layout ACPI tables: RSDP, XSDT, FADT, FACS, MADT and MCFG (ACPI 6.5 chapter 5;
// MCFG: PCI Firmware Specification 3.3, 4.1.2).
import { Bytes, byteSum } from '../bytes.js';
import {
  ACPI_PM, I8042, IOAPIC_BASE, IOAPIC_ID, LAPIC_BASE, PCI_ECAM, PCI_ECAM_BUSES, SCI_IRQ,
} from '../layout.js';
import { AccessSize, AddressSpace, OEM_ID, sdt, writeGas } from './table.js';

/** RSDP, ACPI 2.0+ form (ACPI 6.5, 5.2.5.3, Table 5.3). No RSDT: every consumer we target reads the XSDT. */
export function rsdp(xsdtAddress: number): Uint8Array {
  const b = new Bytes(36);
  b.ascii(0, 'RSD PTR ').ascii(9, OEM_ID).u8at(15, 2).u32(16, 0).u32(20, 36).u64(24, xsdtAddress);
  b.u8at(8, (256 - byteSum(b.u8.subarray(0, 20))) & 0xff); // checksum of the ACPI 1.0 part
  b.u8at(32, (256 - byteSum(b.u8)) & 0xff);                 // extended checksum of all 36 bytes
  return b.u8;
}

/** XSDT (ACPI 6.5, 5.2.8): 64-bit pointers to every table except the DSDT and FACS, which the FADT names. */
export function xsdt(entries: readonly number[]): Uint8Array {
  const b = new Bytes(8 * entries.length);
  entries.forEach((a, i) => b.u64(8 * i, a));
  return sdt('XSDT', 1, b.u8);
}

/** FACS (ACPI 6.5, 5.2.10, Table 5.14): required without HW_REDUCED_ACPI; holds the global lock. No checksum. */
export const FACS_SIZE = 64;
export function facs(): Uint8Array {
  const b = new Bytes(FACS_SIZE);
  b.ascii(0, 'FACS').u32(4, FACS_SIZE).u8at(32, 2); // version 2
  return b.u8;
}

// FADT Fixed Feature Flags (ACPI 6.5, 5.2.9, Table 5.10).
export const FADT_FLAGS = {
  WBINVD: 1 << 0, PROC_C1: 1 << 2, SLP_BUTTON: 1 << 5, FIX_RTC: 1 << 6, TMR_VAL_EXT: 1 << 8,
  RESET_REG_SUP: 1 << 10, FORCE_APIC_PHYSICAL_DESTINATION_MODE: 1 << 19, HW_REDUCED_ACPI: 1 << 20,
} as const;
// IA-PC Boot Architecture Flags (ACPI 6.5, 5.2.9.3, Table 5.11).
export const IAPC_BOOT_ARCH = { LEGACY_DEVICES: 1 << 0, I8042: 1 << 1, VGA_NOT_PRESENT: 1 << 2, CMOS_RTC_NOT_PRESENT: 1 << 5 } as const;
export const FADT_SIZE = 276;

/**
 * FADT revision 6.5 (ACPI 6.5, 5.2.9, Table 5.9). A full (not hardware-reduced) ACPI platform:
 * PM1a event and control blocks and a 32-bit PM timer at fixed ports, an SCI, a fixed-feature
 * power button, no sleep button, no RTC, reset through the i8042 (port 0x64, value 0xfe).
 * SMI_CMD is 0: the platform is always in ACPI mode, so the console domain reports SCI_EN set.
 */
export function fadt(dsdtAddress: number, facsAddress: number): Uint8Array {
  const b = new Bytes(FADT_SIZE - 36);
  const at = (off: number): number => off - 36; // offsets below are the spec's, from the table start
  b.u32(at(36), facsAddress).u32(at(40), dsdtAddress);
  b.u16(at(46), SCI_IRQ);
  b.u32(at(56), ACPI_PM.pm1aEvent).u32(at(64), ACPI_PM.pm1aControl).u32(at(76), ACPI_PM.pmTimer);
  b.u8at(at(88), ACPI_PM.pm1EventLen).u8at(at(89), ACPI_PM.pm1ControlLen).u8at(at(91), ACPI_PM.pmTimerLen);
  // Latencies above 100 and 1000 us say C2 and C3 are not supported.
  b.u16(at(96), 101).u16(at(98), 1001);
  // No I8042 bit: the platform's 8042 is only a reset port (the FADT reset register below), not a
  // keyboard controller. With the bit set, Linux probes it and polls its status thousands of times
  // (tens of seconds of exits) before giving up.
  b.u16(at(109), IAPC_BOOT_ARCH.LEGACY_DEVICES | IAPC_BOOT_ARCH.VGA_NOT_PRESENT | IAPC_BOOT_ARCH.CMOS_RTC_NOT_PRESENT);
  // FORCE_APIC_PHYSICAL_DESTINATION_MODE: RouteIoapicPin names one physical APIC id, and the
  // ioapic domain routes a logical-mode redirection entry masked; with this bit Linux programs
  // its IO-APIC in physical mode (apic_physflat), so every entry it writes is deliverable.
  b.u32(at(112), FADT_FLAGS.WBINVD | FADT_FLAGS.PROC_C1 | FADT_FLAGS.SLP_BUTTON | FADT_FLAGS.FIX_RTC | FADT_FLAGS.TMR_VAL_EXT | FADT_FLAGS.RESET_REG_SUP
    | FADT_FLAGS.FORCE_APIC_PHYSICAL_DESTINATION_MODE);
  writeGas(b, at(116), { space: AddressSpace.SystemIo, bitWidth: 8, access: AccessSize.Byte, address: I8042.command });
  b.u8at(at(128), I8042.resetCommand);
  b.u8at(at(131), 5); // FADT minor version: 6.5
  b.u64(at(132), 0);  // X_FIRMWARE_CTRL must be 0 when FIRMWARE_CTRL is set
  b.u64(at(140), dsdtAddress);
  // The same blocks as generic addresses; widths match the legacy lengths, as ACPICA checks.
  const io = (off: number, address: number, bytes: number, access: AccessSize): void =>
    writeGas(b, at(off), { space: AddressSpace.SystemIo, bitWidth: 8 * bytes, access, address });
  io(148, ACPI_PM.pm1aEvent, ACPI_PM.pm1EventLen, AccessSize.Word);   // X_PM1a_EVT_BLK: status, enable
  io(172, ACPI_PM.pm1aControl, ACPI_PM.pm1ControlLen, AccessSize.Word); // X_PM1a_CNT_BLK
  io(208, ACPI_PM.pmTimer, ACPI_PM.pmTimerLen, AccessSize.Dword);       // X_PM_TMR_BLK
  return sdt('FACP', 6, b.u8);
}

/** MPS INTI flags, polarity (ACPI 6.5, 5.2.12.5, Table 5.26, bits 1:0). */
export enum Polarity { Conforms = 0, ActiveHigh = 1, ActiveLow = 3 }
/** MPS INTI flags, trigger mode (Table 5.26, bits 3:2). */
export enum Trigger { Conforms = 0, Edge = 1, Level = 3 }
export function intiFlags(polarity: Polarity, trigger: Trigger): number {
  return polarity | (trigger << 2);
}
export interface SourceOverride { readonly irq: number; readonly gsi: number; readonly polarity: Polarity; readonly trigger: Trigger }
/** ISA IRQ 0 (the PIT) is wired to IO-APIC pin 2; the SCI is level-triggered, active-low (ACPI 6.5, 5.2.12.5). */
export const SOURCE_OVERRIDES: readonly SourceOverride[] = [
  { irq: 0, gsi: 2, polarity: Polarity.ActiveHigh, trigger: Trigger.Edge },
  { irq: SCI_IRQ, gsi: SCI_IRQ, polarity: Polarity.ActiveLow, trigger: Trigger.Level },
];

/** MADT entry types (ACPI 6.5, 5.2.12, Table 5.21). */
enum MadtEntry { LocalApic = 0, IoApic = 1, SourceOverride = 2, LocalApicNmi = 4 }
const LAPIC_ENABLED = 1;
const ALL_PROCESSORS = 0xff;
/** Highest xAPIC id is 0xfe (0xff is broadcast); beyond that needs x2APIC entries. */
export const MAX_VCPUS = 255;

/**
 * MADT (ACPI 6.5, 5.2.12): one enabled Processor Local APIC per vCPU (UID = APIC id = index), the
 * IO-APIC with GSI base 0, the interrupt source overrides, and LINT1 as NMI on every processor.
 * Flags bit 0 (PCAT_COMPAT) is clear: the split irqchip has no 8259 pair.
 */
export function madt(vcpus: number): Uint8Array {
  const parts: number[][] = [];
  const u32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  for (let i = 0; i < vcpus; i++) parts.push([MadtEntry.LocalApic, 8, i, i, ...u32(LAPIC_ENABLED)]);
  parts.push([MadtEntry.IoApic, 12, IOAPIC_ID, 0, ...u32(IOAPIC_BASE), ...u32(0)]);
  for (const o of SOURCE_OVERRIDES) {
    const f = intiFlags(o.polarity, o.trigger);
    parts.push([MadtEntry.SourceOverride, 10, 0 /* ISA bus */, o.irq, ...u32(o.gsi), f & 0xff, f >> 8]);
  }
  const nmi = intiFlags(Polarity.Conforms, Trigger.Conforms);
  parts.push([MadtEntry.LocalApicNmi, 6, ALL_PROCESSORS, nmi & 0xff, nmi >> 8, 1 /* LINT1 */]);
  const body = new Bytes(8 + parts.reduce((n, p) => n + p.length, 0));
  body.u32(0, LAPIC_BASE).u32(4, 0); // local APIC address; flags: no PCAT_COMPAT
  let off = 8;
  for (const p of parts) { body.set(off, new Uint8Array(p)); off += p.length; }
  return sdt('APIC', 5, body.u8);
}

/** MCFG (PCI Firmware Specification 3.3, 4.1.2): one ECAM allocation, segment 0, every bus. */
export function mcfg(): Uint8Array {
  const b = new Bytes(8 + 16); // 8 reserved bytes, then one allocation structure
  b.u64(8, PCI_ECAM.base).u16(16, 0).u8at(18, 0).u8at(19, PCI_ECAM_BUSES - 1);
  return sdt('MCFG', 1, b.u8);
}
