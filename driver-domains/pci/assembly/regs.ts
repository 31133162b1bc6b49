// PCI register definitions: the type 0 configuration header (PCI Local Bus Specification 3.0,
// chapter 6), the configuration mechanisms (3.2.2.3.2 for CONFIG_ADDRESS/CONFIG_DATA; PCI
// Express Base 4.0, 7.2.2 for ECAM), and MSI-X (PCI 3.0, 6.8.2). The enums at the end are
// the module's ABI values, mirrored in driver-domains/runtime/abi.ts.

// --- Type 0 header, dword offsets (PCI 3.0, 6.1 Figure 6-1) -----------------------------
/** Vendor ID (bits 15:0), Device ID (31:16). */
export const CFG_ID: u32 = 0x00;
/** Command (15:0), Status (31:16). */
export const CFG_COMMAND: u32 = 0x04;
/** Revision ID (7:0), Class Code (31:8). */
export const CFG_CLASS_REV: u32 = 0x08;
/** Cache Line Size (7:0), Latency Timer (15:8), Header Type (23:16), BIST (31:24). */
export const CFG_MISC: u32 = 0x0c;
export const CFG_BAR0: u32 = 0x10;
export const CFG_BAR_END: u32 = 0x28;
/** Subsystem Vendor ID (15:0), Subsystem ID (31:16). */
export const CFG_SUBSYSTEM: u32 = 0x2c;
export const CFG_CAP_PTR: u32 = 0x34;
/** Interrupt Line (7:0), Interrupt Pin (15:8), Min_Gnt, Max_Lat. */
export const CFG_INTERRUPT: u32 = 0x3c;
/** The PCI-compatible part; above it lies PCIe extended space (PCIe 4.0, 7.2.2). */
export const CFG_LEGACY_SIZE: u32 = 0x100;
export const CFG_SIZE: u32 = 0x1000;

// --- Command and Status (PCI 3.0, 6.2.2 and 6.2.3) ------------------------------------------
export const CMD_IO: u32 = 1 << 0;
export const CMD_MEMORY: u32 = 1 << 1;
export const CMD_BUS_MASTER: u32 = 1 << 2;
export const CMD_INTX_DISABLE: u32 = 1 << 10;
/** Interrupt Status: the function's INTx is requested, whatever Interrupt Disable says. */
export const STS_INTERRUPT: u32 = 1 << 3;
export const STS_CAP_LIST: u32 = 1 << 4;

// --- Base Address Registers (PCI 3.0, 6.2.5.1) ------------------------------------------------
export const BARS: u32 = 6;
export const BAR_SPACE_IO: u32 = 1;
/** Memory type field, bits 2:1 = 10b: a 64-bit BAR that takes the next register too. */
export const BAR_TYPE_64: u32 = 2 << 1;
export const BAR_PREFETCHABLE: u32 = 1 << 3;
export const BAR_MEM_ADDR_MASK: u32 = 0xffff_fff0;
/**
 * This host bridge decodes 16-bit port addresses, so I/O BARs hardwire bits 31:16 to 0,
 * which 6.2.5.1 allows for devices that live in the first 64 KiB of I/O space.
 */
export const BAR_IO_ADDR_MASK: u32 = 0x0000_fffc;
/** Smallest and largest BAR sizes accepted, as log2: 16 bytes (6.2.5.1) .. the whole window. */
export const BAR_MEM_MIN_LOG2: u32 = 4;
export const BAR_MEM_MAX_LOG2: u32 = 29;
/** I/O BARs are 4 to 256 bytes (6.2.5.1: "no more than 256 bytes" per I/O BAR). */
export const BAR_IO_MIN_LOG2: u32 = 2;
export const BAR_IO_MAX_LOG2: u32 = 8;

// --- Capabilities (PCI 3.0, 6.7 and Appendix H) -----------------------------------------------
export const CAP_ID_VENDOR: u32 = 0x09;
export const CAP_ID_MSIX: u32 = 0x11;
/** Fixed places: MSI-X first, then the vendor-specific capabilities, dword aligned. */
export const MSIX_CAP: u32 = 0x40;
export const MSIX_CAP_SIZE: u32 = 12;
export const VENDOR_CAPS: u32 = 0x4c;
export const VENDOR_CAPS_LIMIT: u32 = CFG_LEGACY_SIZE;
/** Vendor-specific capability: ID, next pointer, then its length byte (Appendix H, 09h). */
export const VENDOR_CAP_MIN_LEN: u32 = 3;

// --- MSI-X (PCI 3.0, 6.8.2) -------------------------------------------------------------------
/** Message Control: Table Size (N - 1) in bits 10:0, Function Mask 14, MSI-X Enable 15. */
export const MSIX_CTRL_TABLE_SIZE: u32 = 0x7ff;
export const MSIX_CTRL_FUNCTION_MASK: u32 = 1 << 14;
export const MSIX_CTRL_ENABLE: u32 = 1 << 15;
export const MSIX_CTRL_WRITABLE: u32 = MSIX_CTRL_FUNCTION_MASK | MSIX_CTRL_ENABLE;
/** Table Offset/Table BIR and PBA Offset/PBA BIR: BIR in bits 2:0, a QWORD-aligned offset above. */
export const MSIX_BIR_MASK: u32 = 7;
export const MSIX_MAX_VECTORS: u32 = 2048;
/** Table entry (6.8.2.6 to 6.8.2.9): address low, address high, data, vector control. */
export const MSIX_ENTRY_SIZE: u32 = 16;
export const MSIX_ENTRY_ADDR_LO: u32 = 0;
export const MSIX_ENTRY_ADDR_HI: u32 = 4;
export const MSIX_ENTRY_DATA: u32 = 8;
export const MSIX_ENTRY_CONTROL: u32 = 12;
/** Message Address bits 1:0 are zero: messages are DWORD aligned (6.8.2.6). */
export const MSIX_ADDR_LO_MASK: u32 = 0xffff_fffc;
/** Vector Control bit 0; the other bits are reserved (the PCIe steering tag is not modelled). */
export const MSIX_VECTOR_MASKED: u32 = 1;

// --- CONFIG_ADDRESS (PCI 3.0, 3.2.2.3.2) -----------------------------------------------------
export const CONFIG_ADDRESS_PORT: u32 = 0xcf8;
export const CONFIG_DATA_PORT: u32 = 0xcfc;
export const CONFIG_ENABLE: u32 = 0x8000_0000;
/** Bits 30:24 are reserved and 1:0 read 0; everything else reads back as written. */
export const CONFIG_ADDRESS_WRITABLE: u32 = 0x80ff_fffc;

// --- ECAM (PCIe 4.0, 7.2.2; PCI Firmware 3.3, 4.1.2) -------------------------------------------
/** One bus: 32 devices x 8 functions x 4 KiB. */
export const ECAM_BUS_SIZE: u64 = 0x10_0000;

// --- This platform's functions -----------------------------------------------------------------
export const SLOTS: u32 = 32;
export const HOST_BRIDGE_SLOT: u32 = 0;
/** 1b36:0008, the ID assigned to the generic PCIe host bridge of virtual platforms. */
export const HOST_BRIDGE_ID: u32 = 0x0008_1b36;
/** Class 06h/00h/00h (host bridge), revision 0. */
export const HOST_BRIDGE_CLASS_REV: u32 = 0x0600_0000;
/** Vendor ID FFFFh is what an absent function reads as; no device may claim it. */
export const VENDOR_ABSENT: u32 = 0xffff;
/** Interrupt Pin: 0 none, 1..4 INTA#..INTD# (6.2.4). */
export const PIN_MAX: u32 = 4;

// --- ABI values (driver-domains/runtime/abi.ts) ------------------------------------------------
/** A BAR's kind; Mem64High is the upper register of the Mem64 BAR below it. */
export const enum BarKind { None = 0, Mem32 = 1, Mem64 = 2, Io = 3, Mem64High = 4 }
/** cfg_bar flags (Prefetchable, ServedByPci) and bar_flags (also Decoding). */
export const BAR_FLAG_PREFETCHABLE: u32 = 1;
export const BAR_FLAG_SERVED_BY_PCI: u32 = 2;
export const BAR_FLAG_DECODING: u32 = 4;
export const BAR_CONFIG_FLAGS: u32 = BAR_FLAG_PREFETCHABLE | BAR_FLAG_SERVED_BY_PCI;

/** What each cfg_* call returns. */
export const enum ConfigStatus {
  Ok = 0, BadSlot = 1, NoDevice = 2, AlreadyPresent = 3, BadIds = 4, BadPin = 5, BadBar = 6,
  WindowFull = 7, BadMsix = 8, VectorsFull = 9, BadCap = 10, CapSpaceFull = 11, CapsNotContiguous = 12,
}

/** msix_pending's answer. */
export const enum MsixSignal { Held = 0, Deliver = 1, Ignored = 2 }

/** msix_flags bits. */
export const MSIX_FLAG_EFFECTIVE: u32 = 1;
export const MSIX_FLAG_PENDING: u32 = 2;
export const MSIX_FLAG_FIRE: u32 = 4;
export const MSIX_FLAG_MASKED: u32 = 8;
