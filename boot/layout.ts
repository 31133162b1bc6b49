// The guest physical memory map and every fixed platform address: the single source of truth
// that the loader, the ACPI tables and the device domains (pci, ioapic, console) all read.
import { BootError } from './errors.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

// --- Low memory (below 1 MiB) --------------------------------------------------------------
// The real-mode area is usable RAM up to the EBDA, as on a PC; the boot structures live in it.
// Linux copies boot_params and the command line and builds its own GDT and page tables early,
// so none of these need to survive past the kernel's first steps.
export const BOOT_GDT = 0x500;            // GDT (and its 16-byte TSS descriptor)
export const BOOT_TSS = 0x600;            // 104-byte TSS that TR points at; VMX insists on a usable TR
export const ZERO_PAGE = 0x7000;          // struct boot_params, 4 KiB
export const BOOT_STACK_TOP = 0x8ff0;     // the page 0x8000..0x8fff; the kernel switches stacks at once
export const PAGE_TABLES = 0x9000;        // PML4, PDPT, 4 PDs: 0x9000..0xefff (see boot/cpu.ts)
export const CMDLINE = 0x20000;           // kernel command line
export const CMDLINE_MAX = 0x10000;       // our buffer; the kernel's cmdline_size is usually smaller
export const EBDA_START = 0x9fc00;        // reserved from here to 1 MiB (EBDA, VGA hole, BIOS area)
export const ACPI_TABLES = 0xe0000;       // RSDP first (16-byte aligned), in the range Linux scans for it
export const ACPI_TABLES_END = 0x100000;
export const HIGH_MEMORY = 0x100000;      // 1 MiB: where usable RAM resumes

// --- The 32-bit hole: [PCI_HOLE_START, 4 GiB) holds no RAM ---------------------------------
export const FOUR_GIB = 4 * GiB;
export const PCI_HOLE_START = 3 * GiB;              // 0xc0000000; low RAM ends here at the latest
export const PCI_MMIO32 = { base: 0xc000_0000, size: 512 * MiB } as const; // BAR window, 0xc0000000..0xdfffffff
// One bus: every device sits on bus 0 (no bridges), so the ECAM window covers bus 0 only. A wider
// window costs boot time for nothing: Linux probes every bus up to the MCFG end bus for peer host
// bridges (arch/x86/pci/legacy.c), one trapped access per slot per bus.
export const PCI_ECAM_BUSES = 1;                    // PCI Firmware spec 3.3, 4.1.2: 1 MiB of ECAM per bus
export const PCI_ECAM = { base: 0xe000_0000, size: PCI_ECAM_BUSES * MiB } as const; // 0xe0000000..0xe00fffff
export const IOAPIC_BASE = 0xfec0_0000;             // 82093AA default; one 4 KiB page
export const IOAPIC_ID = 0;
export const IOAPIC_PINS = 24;
export const LAPIC_BASE = 0xfee0_0000;
/** KVM_SET_TSS_ADDR wants three pages and KVM_SET_IDENTITY_MAP_ADDR one, inside no memslot (Intel only). */
export const KVM_IDENTITY_MAP = 0xfffb_c000;
export const KVM_TSS = 0xfffb_d000;
/** Reserved in e820 so that Linux never places a BAR over the APICs or the KVM pages. */
export const PLATFORM_RESERVED = { base: IOAPIC_BASE, size: FOUR_GIB - IOAPIC_BASE } as const;

// --- Port I/O ------------------------------------------------------------------------------
export const PCI_CONFIG_PORTS = { base: 0xcf8, size: 8 } as const;  // CONFIG_ADDRESS, CONFIG_DATA
/** Where the pci domain places I/O BARs; the host bridge also forwards the legacy ports below 0xcf8. */
export const PCI_IO_WINDOW = { base: 0x1000, size: 0xf000 } as const;
export const COM1 = { port: 0x3f8, size: 8, irq: 4 } as const;
export const I8042 = { data: 0x60, command: 0x64, resetCommand: 0xfe } as const;
/**
 * ACPI fixed-hardware registers served by the console (platform) domain (ACPI 6.5, 4.8.1):
 * PM1a event block (status u16 + enable u16), PM1a control block (u16), PM timer (32-bit, 3.579545 MHz).
 * 0x600 is clear of the ISA ports, the UART and the PCI config ports, and below the BAR window.
 */
export const ACPI_PM = { pm1aEvent: 0x600, pm1EventLen: 4, pm1aControl: 0x604, pm1ControlLen: 2, pmTimer: 0x608, pmTimerLen: 4 } as const;
/** SLP_TYP value that the DSDT's \_S5 names; PM1a_CNT with SLP_EN and this type means power off. */
export const SLEEP_TYPE_S5 = 5;
/** The SCI: ISA IRQ 9, level-triggered, active-low, routed by a MADT interrupt source override. */
export const SCI_IRQ = 9;

/** GSIs 16..23 carry PCI INTx (level, active-low); swizzled so neighbouring slots spread out. */
export const PCI_INTX_GSI_BASE = 16;
export function pciIntxGsi(slot: number, pin: 0 | 1 | 2 | 3): number {
  return PCI_INTX_GSI_BASE + ((slot + pin) % (IOAPIC_PINS - PCI_INTX_GSI_BASE));
}

// --- RAM ------------------------------------------------------------------------------------
export const MIN_RAM = 64 * MiB;
/** Guest-physical addresses stay exact as JS numbers and within 46-bit guest-physical space. */
export const MAX_RAM = 1024 * GiB;
/** memfd regions and the 2 MiB page mappings stay aligned. */
export const RAM_ALIGN = 2 * MiB;

/** e820 types (ACPI 6.5, 15.1 Table 15.1: AddressRangeMemory, Reserved, ACPI). */
export enum E820Type { Ram = 1, Reserved = 2, Acpi = 3 }
export interface E820Entry { readonly addr: number; readonly size: number; readonly type: E820Type }
/** A stretch of guest-physical address space backed by guest RAM (one memslot each). */
export interface RamRegion { readonly gpa: number; readonly size: number }
export interface MemoryMap { readonly ramBytes: number; readonly ram: readonly RamRegion[]; readonly e820: readonly E820Entry[] }

/** RAM regions and the e820 map for a guest with `ramBytes` of RAM, sorted and non-overlapping. */
export function memoryMap(ramBytes: number): MemoryMap {
  if (!Number.isSafeInteger(ramBytes) || ramBytes < MIN_RAM || ramBytes > MAX_RAM) {
    throw new BootError('BAD_MEMORY_SIZE', `RAM size ${ramBytes} is outside ${MIN_RAM}..${MAX_RAM} bytes`);
  }
  if (ramBytes % RAM_ALIGN !== 0) throw new BootError('BAD_MEMORY_SIZE', `RAM size ${ramBytes} is not a multiple of 2 MiB`);
  const low = Math.min(ramBytes, PCI_HOLE_START);
  const high = ramBytes - low;
  const ram: RamRegion[] = [{ gpa: 0, size: low }];
  if (high > 0) ram.push({ gpa: FOUR_GIB, size: high });
  const e820: E820Entry[] = [
    { addr: 0, size: EBDA_START, type: E820Type.Ram },
    { addr: EBDA_START, size: ACPI_TABLES - EBDA_START, type: E820Type.Reserved },
    { addr: ACPI_TABLES, size: ACPI_TABLES_END - ACPI_TABLES, type: E820Type.Acpi },
    { addr: HIGH_MEMORY, size: low - HIGH_MEMORY, type: E820Type.Ram },
    // Linux only trusts MMCONFIG when the ECAM window is reserved (arch/x86/pci/mmconfig-shared.c).
    { addr: PCI_ECAM.base, size: PCI_ECAM.size, type: E820Type.Reserved },
    { addr: PLATFORM_RESERVED.base, size: PLATFORM_RESERVED.size, type: E820Type.Reserved },
  ];
  if (high > 0) e820.push({ addr: FOUR_GIB, size: high, type: E820Type.Ram });
  return { ramBytes, ram, e820 };
}

/** The usable (e820 RAM) ranges, for placing the kernel and the initrd. */
export function usableRam(map: MemoryMap): E820Entry[] {
  return map.e820.filter((e) => e.type === E820Type.Ram);
}
