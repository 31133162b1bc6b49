// pci stub domain: the exports of the module ABI (driver-domains/runtime/ABI.md, "pci also
// exports"). Wiring and access decoding only: the device table is table.ts, config space
// config.ts, BARs bars.ts, MSI-X msix.ts, INTx intx.ts, the state persist.ts.
//
// Every read this module cannot serve answers all-ones of the access size, not 0: that is
// what an x86 root complex returns for a config or memory request nobody completes (PCI 3.0,
// 3.2.2.3.2 and 6.1: an absent function reads FFFFh as its Vendor ID), and what the core
// answers for unclaimed addresses. Malformed calls (a size or direction no instruction
// produces) answer 0, as in every stub domain.
import { answer } from "../../common/assembly/host";
import { Dir, Space, sizeMask, sizeValid } from "../../common/assembly/ioreq";
import * as layout from "../../common/assembly/layout";
import {
  ABI_VERSION, PCI_CAP_IN_BASE, PCI_STAGING_BASE, PCI_STAGING_SIZE, STATE_BASE, STATE_MAGIC_PCI as STATE_MAGIC, counterGet,
} from "../../common/assembly/memory";
import {
  barAddress, barFlags, barKind, barSize, decodeBits, findServedBar, placeBars,
} from "./bars";
import { configRead, configWrite } from "./config";
import { absentFunction, invalidAccess, passedThrough } from "./errors";
import { intxGsi, intxSet, updateLines } from "./intx";
import {
  MsixRegion, msixReset, region, regionRead, regionWrite, signalWhileHeld, takeFire, vectorAddress,
  vectorCount, vectorData, vectorFlags,
} from "./msix";
import {
  CONFIG_BASE, CONFIG_FITS_STAGING, COUNTERS_BASE, COUNTER_COUNT, LAYOUT_REVISION, STATE_SIZE, deviceConfig,
  deviceRegs, state,
} from "./persist";
import {
  CONFIG_ADDRESS_PORT, CONFIG_ADDRESS_WRITABLE, CONFIG_DATA_PORT, CONFIG_ENABLE, ECAM_BUS_SIZE, SLOTS,
} from "./regs";
import { adoptStagedTable, cfgBar, cfgCap, cfgDevice, cfgMsix, tableConsistent } from "./table";

// Platform constants, exported so that a test can compare them with boot/layout.ts.
export const LAYOUT_PCI_ECAM_BASE: u64 = layout.PCI_ECAM_BASE;
export const LAYOUT_PCI_MMIO32_BASE: u64 = layout.PCI_MMIO32_BASE;
export const LAYOUT_PCI_MMIO32_SIZE: u64 = layout.PCI_MMIO32_SIZE;
export const LAYOUT_PCI_CONFIG_PORT: u32 = layout.PCI_CONFIG_PORT;
export const LAYOUT_PCI_CONFIG_PORTS_SIZE: u32 = layout.PCI_CONFIG_PORTS_SIZE;
export const LAYOUT_PCI_IO_WINDOW_BASE: u32 = layout.PCI_IO_WINDOW_BASE;
export const LAYOUT_PCI_IO_WINDOW_SIZE: u32 = layout.PCI_IO_WINDOW_SIZE;
export const LAYOUT_PCI_INTX_GSI_BASE: u32 = layout.PCI_INTX_GSI_BASE;
export const LAYOUT_IOAPIC_PINS: u32 = layout.IOAPIC_PINS;
/** The staging area, exported so that a test can compare it with abi.ts MEMORY_MAP. */
export const MEMORY_PCI_STAGING_BASE: u32 = <u32>PCI_STAGING_BASE;
export const MEMORY_PCI_STAGING_SIZE: u32 = PCI_STAGING_SIZE;
/** 1 when the device table fits PCI_STAGING (checked by a test; the layout is fixed at compile time). */
export const STAGING_FITS: u32 = CONFIG_FITS_STAGING ? 1 : 0;

export function abi_version(): u32 { return ABI_VERSION; }
export function state_base(): usize { return STATE_BASE; }
export function state_size(): u32 { return STATE_SIZE; }

/** 1 if STATE holds an image of this module's layout with a device table cfg_* could have built. */
export function state_valid(): u32 {
  return state().magic == STATE_MAGIC && state().layout == LAYOUT_REVISION && tableConsistent() ? 1 : 0;
}

// --- The device table (before init) ----------------------------------------------------------
export function cfg_device(slot: u32, ids: u32, subsystem: u32, class_rev: u32, pin: u32): u32 {
  return <u32>cfgDevice(slot, ids, subsystem, class_rev, pin);
}
export function cfg_bar(slot: u32, bar: u32, kind: u32, size_log2: u32, flags: u32): u32 {
  return <u32>cfgBar(slot, bar, kind, size_log2, flags);
}
export function cfg_msix(slot: u32, vectors: u32, table_bar: u32, table_offset: u32, pba_bar: u32, pba_offset: u32): u32 {
  return <u32>cfgMsix(slot, vectors, table_bar, table_offset, pba_bar, pba_offset);
}
export function cfg_cap_buf(): usize { return PCI_CAP_IN_BASE; }
export function cfg_cap(slot: u32, len: u32): u32 { return <u32>cfgCap(slot, len); }

/**
 * Registers after a platform reset: what firmware leaves at boot. Reset re-applies the
 * power-on BAR placement and decoding, as PC firmware re-places BARs after every reset;
 * MSI-X is off with every vector masked and nothing pending. The backends' INTx requests
 * stay: the lines belong to them, and they drop them when they reset themselves.
 */
function resetDevice(): void {
  const s = state();
  s.configAddress = 0;
  placeBars();
  for (let slot: u32 = 0; slot < SLOTS; slot++) {
    const r = deviceRegs(slot);
    r.command = <u16>decodeBits(slot);
    r.cacheLineSize = 0;
    r.msixControl = 0;
    // Firmware writes the routed IRQ here (6.2.4); software that follows _PRT ignores it.
    r.interruptLine = <u8>intxGsi(slot);
  }
  msixReset();
  s.barGeneration++;
  updateLines();
}

/** Power-on: every byte of STATE is rewritten, the device table from PCI_STAGING. Not called on restart. */
export function init(): void {
  memory.fill(STATE_BASE, 0, STATE_SIZE);
  state().magic = STATE_MAGIC;
  state().layout = LAYOUT_REVISION;
  adoptStagedTable();
  resetDevice();
}

export function reset(): void {
  resetDevice();
}

export function counter(id: u32): u64 { return counterGet(COUNTERS_BASE, COUNTER_COUNT, id); }
export function counter_count(): u32 { return COUNTER_COUNT; }

// --- What the runtime reads and drives --------------------------------------------------------
export function dev_command(slot: u32): u32 {
  return slot < SLOTS && deviceConfig(CONFIG_BASE, slot).present != 0 ? <u32>deviceRegs(slot).command : 0;
}
export function bar_generation(): u32 { return state().barGeneration; }
export function bar_kind(slot: u32, bar: u32): u32 { return barKind(slot, bar); }
export function bar_flags(slot: u32, bar: u32): u32 { return barFlags(slot, bar); }
export function bar_addr(slot: u32, bar: u32): u64 { return barAddress(slot, bar); }
export function bar_size(slot: u32, bar: u32): u64 { return barSize(slot, bar); }
export function msix_generation(): u32 { return state().msixGeneration; }
export function msix_vectors(slot: u32): u32 { return vectorCount(slot); }
export function msix_addr(slot: u32, vector: u32): u64 { return vectorAddress(slot, vector); }
export function msix_data(slot: u32, vector: u32): u32 { return vectorData(slot, vector); }
export function msix_flags(slot: u32, vector: u32): u32 { return vectorFlags(slot, vector); }
export function msix_pending(slot: u32, vector: u32): u32 { return <u32>signalWhileHeld(slot, vector); }
export function msix_fire_take(): u32 { return takeFire(); }
export function intx_set(slot: u32, level: u32): void { intxSet(slot, level); }
export function intx_gsi(slot: u32): u32 { return intxGsi(slot); }

// --- Guest accesses ---------------------------------------------------------------------------
const ALL_ONES: u64 = 0xffff_ffff_ffff_ffff;

/** One config access on bus `bus`; `reg` + `size` stays inside one dword. */
function configAccess(bus: u32, slot: u32, fn: u32, reg: u32, size: u32, read: bool, value: u64): u64 {
  // GUEST-INPUT: bus 0 holds single-function devices only; anything else is absent.
  if (bus != 0 || fn != 0 || slot >= SLOTS || deviceConfig(CONFIG_BASE, slot).present == 0) {
    absentFunction(bus << 8 | slot << 3 | fn);
    return ALL_ONES;
  }
  if (read) return <u64>configRead(slot, reg, size);
  configWrite(slot, reg, size, <u32>value);
  return 0;
}

function pioAccess(port: u64, size: u32, read: bool, value: u64): u64 {
  // GUEST-INPUT: CONFIG_ADDRESS is claimed for dword accesses only; byte and word accesses to
  // 0xcf8..0xcfb pass through to nothing (3.2.2.3.2), which Linux's mechanism probe relies on.
  if (port == <u64>CONFIG_ADDRESS_PORT && size == 4) {
    if (read) return <u64>state().configAddress;
    state().configAddress = <u32>value & CONFIG_ADDRESS_WRITABLE;
    return 0;
  }
  // GUEST-INPUT: CONFIG_DATA takes 1, 2 or 4 bytes at 0xcfc..0xcff without leaving the dword.
  if (port >= <u64>CONFIG_DATA_PORT && port - <u64>CONFIG_DATA_PORT + <u64>size <= 4) {
    const address = state().configAddress;
    if ((address & CONFIG_ENABLE) == 0) {
      invalidAccess("pci: CONFIG_DATA access with CONFIG_ADDRESS disabled", port, size);
      return ALL_ONES;
    }
    const reg = (address & 0xfc) + <u32>(port - <u64>CONFIG_DATA_PORT);
    return configAccess((address >> 16) & 0xff, (address >> 11) & 0x1f, (address >> 8) & 7, reg, size, read, value);
  }
  if (port >= <u64>CONFIG_ADDRESS_PORT && port - <u64>CONFIG_ADDRESS_PORT + <u64>size <= 4) {
    passedThrough("pci: byte or word access to CONFIG_ADDRESS at", port, size);
  } else {
    invalidAccess("pci: access outside the config ports at", port, size);
  }
  return ALL_ONES;
}

function mmioAccess(addr: u64, size: u32, read: bool, value: u64): u64 {
  if (addr >= layout.PCI_ECAM_BASE && addr - layout.PCI_ECAM_BASE < ECAM_BUS_SIZE) {
    const offset = <u32>(addr - layout.PCI_ECAM_BASE);
    const reg = offset & 0xfff;
    // GUEST-INPUT: ECAM takes 1, 2 or 4-byte accesses inside one dword; a root complex need
    // not support accesses that cross a dword (PCIe 4.0, 7.2.2), so 8-byte ones are refused.
    if (size > 4 || (reg & 3) + size > 4) {
      invalidAccess("pci: ECAM access crossing a dword at", addr, size);
      return ALL_ONES;
    }
    return configAccess(0, offset >> 15, (offset >> 12) & 7, reg, size, read, value);
  }
  // GUEST-INPUT: anything else must fall in a BAR this module serves (the MSI-X structures).
  const hit = findServedBar(addr, size);
  if (hit >= 0) {
    const slot = <u32>hit >> 3;
    const bar = <u32>hit & 7;
    const offset = addr - barAddress(slot, bar);
    const which = region(slot, bar, offset, size);
    if (which != MsixRegion.None) {
      if (read) return regionRead(slot, which, offset, size);
      regionWrite(slot, which, offset, size, value);
      return 0;
    }
  }
  invalidAccess("pci: MMIO access outside ECAM and the MSI-X structures at", addr, size);
  return ALL_ONES;
}

export function ioreq(seq: u64, space: u32, addr: u64, size: u32, dir: u32, data: u64): void {
  let result: u64 = 0;
  // GUEST-INPUT: space, size and direction come from the trapped instruction via the runtime;
  // every path answers exactly once.
  if (!sizeValid(size) || dir > <u32>Dir.Write || space > <u32>Space.Mmio) {
    invalidAccess("pci: malformed access at", addr, size);
  } else {
    const read = dir == <u32>Dir.Read;
    const value = data & sizeMask(size);
    if (space == <u32>Space.Pio) result = pioAccess(addr, size, read, value);
    else result = mmioAccess(addr, size, read, value);
    result &= sizeMask(size);
  }
  answer(seq, dir == <u32>Dir.Read ? result : 0);
}
