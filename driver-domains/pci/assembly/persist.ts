// The pci domain's state: everything it needs to resume lives here, at fixed addresses in STATE
// (../../common/assembly/memory.ts), and the runtime persists [STATE_BASE, STATE_BASE + STATE_SIZE).
//
// Config space is never stored raw: 32 functions x 4 KiB would not fit in the 8 KiB window.
// Only what the model keeps is stored (IDs, BAR layouts and addresses, command register,
// interrupt line, MSI-X control, table and pending bits, the vendor capability bytes), and
// every other byte is synthesised on read (config.ts).
//
//   STATE_BASE   PciState                          32 bytes
//                counters                          COUNTER_COUNT x u64
//   CONFIG_BASE  the device table (the configuration, fixed after init):
//                  ConfigHeader                    8 bytes
//                  DeviceConfig x SLOTS            with BarConfig x 6 each
//                  the vendor capability pool      CAP_POOL_SIZE bytes
//   REGS_BASE    DeviceRegs x SLOTS                the guest-writable registers
//   VECTORS_BASE MSI-X table entries x MAX_VECTORS the vector pool, shared by all devices
//   PENDING_BASE pending bit per pool vector       (the PBA)
//   FIRE_BASE    fire-once bit per pool vector     (unmasked with its pending bit set)
//
// The device table section has the same layout in PCI_STAGING (where cfg_* build it before
// init) and in STATE, so init() is one copy; the functions below take the section's base.
import { PCI_STAGING_SIZE, STATE_BASE } from "../../common/assembly/memory";
import { BARS, SLOTS } from "./regs";

/** Bumped whenever this layout changes; a state image of another layout is refused. */
export const LAYOUT_REVISION: u32 = 1;

@unmanaged export class PciState {
  magic: u32;
  layout: u32;
  /** CONFIG_ADDRESS (port 0xcf8) as last written, reserved bits cleared. */
  configAddress: u32;
  /** Bumped when any BAR's address or decoding changes, and on reset. */
  barGeneration: u32;
  /** Bumped when any vector's address, data or effectiveness changes, and on reset. */
  msixGeneration: u32;
  /** Bit i: the level last sent with set_pin for GSI PCI_INTX_GSI_BASE + i. */
  intxLines: u32;
  _reserved0: u32;
  _reserved1: u32;
}

/** Counter ids (driver-domains/runtime/abi.ts PciCounter mirrors them). */
export const C_INVALID_ACCESS: u32 = 0;
export const C_ABSENT_FUNCTION: u32 = 1;
export const C_READ_ONLY_WRITE: u32 = 2;
export const C_BAR_CHANGED: u32 = 3;
export const C_MSIX_HELD: u32 = 4;
export const C_MSIX_FIRED: u32 = 5;
export const C_BAD_HOST_CALL: u32 = 6;
export const C_INTX_CHANGED: u32 = 7;
export const COUNTER_COUNT: u32 = 8;

@unmanaged export class ConfigHeader {
  /** Pool vectors handed out by cfg_msix, in order. */
  vectorsUsed: u16;
  /** Capability pool bytes handed out by cfg_cap, in order. */
  capPoolUsed: u16;
  _reserved: u32;
}

/** One function's description, as the runtime gave it (zero: no device in this slot). */
@unmanaged export class DeviceConfig {
  present: u8;
  /** Interrupt Pin register: 0 none, 1..4 INTA#..INTD#. */
  pin: u8;
  /** Bytes of vendor capabilities at VENDOR_CAPS, dword padded. */
  capLen: u8;
  _reserved: u8;
  /** Config dword 0x00: Device ID << 16 | Vendor ID. */
  ids: u32;
  /** Config dword 0x2c: Subsystem ID << 16 | Subsystem Vendor ID. */
  subsystem: u32;
  /** Config dword 0x08: Class Code << 8 | Revision ID. */
  classRev: u32;
  /** MSI-X table size N (0: no MSI-X capability). */
  msixVectors: u16;
  /** The first of this function's N vectors in the pool. */
  vectorBase: u16;
  tableBar: u8;
  pbaBar: u8;
  /** Where this function's capability bytes start in the pool. */
  capPool: u16;
  tableOffset: u32;
  pbaOffset: u32;
}

@unmanaged export class BarConfig {
  kind: u8;      // BarKind
  sizeLog2: u8;
  flags: u8;     // BAR_FLAG_PREFETCHABLE | BAR_FLAG_SERVED_BY_PCI
  _reserved: u8;
}

/** The registers the guest writes. */
@unmanaged export class DeviceRegs {
  command: u16;
  interruptLine: u8;
  cacheLineSize: u8;
  /** MSI-X Message Control bits 15:14 (enable, function mask). */
  msixControl: u16;
  /** The backend's INTx request (intx_set); it survives reset, like any line input. */
  intxAsserted: u8;
  _reserved: u8;
  // BARS u32 address registers follow (BAR_REGS); a Mem64 BAR keeps its high half in the next.
}

export const SLOT_COUNT: usize = <usize>SLOTS;
export const BAR_CONFIG_SIZE: usize = offsetof<BarConfig>();
export const DEVICE_CONFIG_SIZE: usize = offsetof<DeviceConfig>() + BAR_CONFIG_SIZE * <usize>BARS;
export const CONFIG_HEADER_SIZE: usize = offsetof<ConfigHeader>();
export const DEVICE_REGS_SIZE: usize = offsetof<DeviceRegs>() + 4 * <usize>BARS;

/** Vendor capability bytes of all functions together; sized to fill PCI_STAGING exactly. */
export const CAP_POOL_SIZE: u32 = 1528;
/** MSI-X vectors of all functions together. */
export const MAX_VECTORS: u32 = 224;

// Plain constant expressions (no calls), so the compiler folds them and no global is
// initialised at start-up.
export const COUNTERS_BASE: usize = STATE_BASE + offsetof<PciState>();
export const CONFIG_BASE: usize = COUNTERS_BASE + (<usize>COUNTER_COUNT << 3);
export const DEVICES_OFFSET: usize = CONFIG_HEADER_SIZE;
export const CAP_POOL_OFFSET: usize = DEVICES_OFFSET + DEVICE_CONFIG_SIZE * SLOT_COUNT;
export const CONFIG_SIZE: u32 = <u32>(CAP_POOL_OFFSET + <usize>CAP_POOL_SIZE);
export const REGS_BASE: usize = (CONFIG_BASE + <usize>CONFIG_SIZE + 7) & ~(<usize>7);
export const VECTORS_BASE: usize = REGS_BASE + DEVICE_REGS_SIZE * SLOT_COUNT;
export const PENDING_BASE: usize = VECTORS_BASE + 16 * <usize>MAX_VECTORS;
export const FIRE_BASE: usize = PENDING_BASE + (<usize>MAX_VECTORS >> 3);
export const STATE_END: usize = FIRE_BASE + (<usize>MAX_VECTORS >> 3);
export const STATE_SIZE: u32 = <u32>(STATE_END - STATE_BASE);
/** Checked by driver-domains/pci tests: the device table must fit the staging area. */
export const CONFIG_FITS_STAGING: bool = CONFIG_SIZE <= PCI_STAGING_SIZE;

// @ts-ignore: decorator
@inline export function state(): PciState {
  return changetype<PciState>(STATE_BASE);
}

// @ts-ignore: decorator
@inline export function configHeader(section: usize): ConfigHeader {
  return changetype<ConfigHeader>(section);
}

/** `slot` must be below SLOTS. */
// @ts-ignore: decorator
@inline export function deviceConfig(section: usize, slot: u32): DeviceConfig {
  return changetype<DeviceConfig>(section + DEVICES_OFFSET + DEVICE_CONFIG_SIZE * <usize>slot);
}

/** `slot` below SLOTS, `bar` below BARS. */
// @ts-ignore: decorator
@inline export function barConfig(section: usize, slot: u32, bar: u32): BarConfig {
  return changetype<BarConfig>(section + DEVICES_OFFSET + DEVICE_CONFIG_SIZE * <usize>slot
    + offsetof<DeviceConfig>() + BAR_CONFIG_SIZE * <usize>bar);
}

// @ts-ignore: decorator
@inline export function capPool(section: usize): usize {
  return section + CAP_POOL_OFFSET;
}

/** `slot` must be below SLOTS. */
// @ts-ignore: decorator
@inline export function deviceRegs(slot: u32): DeviceRegs {
  return changetype<DeviceRegs>(REGS_BASE + DEVICE_REGS_SIZE * <usize>slot);
}

/** Address of BAR register `bar` (below BARS) of `slot`. */
// @ts-ignore: decorator
@inline export function barRegAddr(slot: u32, bar: u32): usize {
  return REGS_BASE + DEVICE_REGS_SIZE * <usize>slot + offsetof<DeviceRegs>() + (<usize>bar << 2);
}

/** Address of pool vector `index` (below MAX_VECTORS): its 16-byte MSI-X table entry. */
// @ts-ignore: decorator
@inline export function vectorAddr(index: u32): usize {
  return VECTORS_BASE + (<usize>index << 4);
}

// Bit arrays over the vector pool; `index` must be below MAX_VECTORS.
export function bitGet(base: usize, index: u32): bool {
  return ((<u32>load<u8>(base + (<usize>index >> 3)) >> (index & 7)) & 1) != 0;
}

export function bitSet(base: usize, index: u32, on: bool): void {
  const at = base + (<usize>index >> 3);
  const bit = <u32>1 << (index & 7);
  const old = <u32>load<u8>(at);
  store<u8>(at, <u8>(on ? old | bit : old & ~bit));
}
