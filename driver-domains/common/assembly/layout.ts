// Platform constants mirrored from boot/layout.ts (the single source of truth) and
// boot/README.md. AssemblyScript cannot import the TypeScript module, so each value is
// repeated here once; the modules export them as immutable globals (LAYOUT_*), and
// driver-domains/runtime/layout.test.ts fails if any differs from boot/layout.ts.

export const IOAPIC_BASE: u64 = 0xfec0_0000;
export const IOAPIC_ID: u32 = 0;
export const IOAPIC_PINS: u32 = 24;
export const LAPIC_BASE: u64 = 0xfee0_0000;
export const PCI_INTX_GSI_BASE: u32 = 16;

export const PCI_MMIO32_BASE: u64 = 0xc000_0000;
export const PCI_MMIO32_SIZE: u64 = 0x2000_0000;
/** The ECAM window's base; the pci domain serves bus 0 only, its first 1 MiB. */
export const PCI_ECAM_BASE: u64 = 0xe000_0000;
export const PCI_CONFIG_PORT: u32 = 0xcf8;
export const PCI_CONFIG_PORTS_SIZE: u32 = 8;
export const PCI_IO_WINDOW_BASE: u32 = 0x1000;
export const PCI_IO_WINDOW_SIZE: u32 = 0xf000;

export const COM1_PORT: u32 = 0x3f8;
export const COM1_SIZE: u32 = 8;
export const COM1_IRQ: u32 = 4;
export const I8042_DATA: u32 = 0x60;
export const I8042_COMMAND: u32 = 0x64;
export const I8042_RESET_COMMAND: u32 = 0xfe;
export const PM1A_EVT: u32 = 0x600;
export const PM1_EVT_LEN: u32 = 4;
export const PM1A_CNT: u32 = 0x604;
export const PM1_CNT_LEN: u32 = 2;
export const PM_TMR: u32 = 0x608;
export const PM_TMR_LEN: u32 = 4;
export const SLEEP_TYPE_S5: u32 = 5;
/** ISA IRQ 9, identity-mapped to GSI 9 by the MADT override (level, active-low). */
export const SCI_IRQ: u32 = 9;
