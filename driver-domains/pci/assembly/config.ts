// Configuration space of one present function (PCI 3.0, 6.1): the type 0 header and the
// capability list, synthesised from the device table and the guest-writable registers.
// Both access paths (CONFIG_ADDRESS/CONFIG_DATA and ECAM, index.ts) end here with an offset
// in 0..0xfff and a 1, 2 or 4-byte access that stays inside one dword.
//
// No function has a PCI Express capability, so software sizes config space at 256 bytes
// (conventional functions behind a PCIe root, as on many virtual platforms); the extended
// space 0x100..0xfff reads 0, which is also the "no extended capability" header at 0x100
// (PCIe 4.0, 7.6.1).
import { counterBump } from "../../common/assembly/memory";
import { barRead, barWrite, decodeBits } from "./bars";
import { updateLines } from "./intx";
import { busMasterChanged, controlRead, controlWrite } from "./msix";
import {
  CAP_ID_MSIX, CFG_BAR0, CFG_BAR_END, CFG_CAP_PTR, CFG_CLASS_REV, CFG_COMMAND, CFG_ID, CFG_INTERRUPT,
  CFG_LEGACY_SIZE, CFG_MISC, CFG_SUBSYSTEM, CMD_BUS_MASTER, CMD_INTX_DISABLE, CMD_IO, CMD_MEMORY, MSIX_CAP,
  MSIX_CAP_SIZE, STS_CAP_LIST, STS_INTERRUPT, VENDOR_CAPS,
} from "./regs";
import {
  COUNTERS_BASE, CONFIG_BASE, C_READ_ONLY_WRITE, DeviceConfig, capPool, deviceConfig, deviceRegs, state,
} from "./persist";

function hasCapabilities(d: DeviceConfig): bool {
  return d.msixVectors != 0 || d.capLen != 0;
}

/** Capabilities Pointer (6.7): MSI-X at 0x40 when present, then the vendor capabilities. */
function firstCapability(d: DeviceConfig): u32 {
  if (d.msixVectors != 0) return MSIX_CAP;
  return d.capLen != 0 ? VENDOR_CAPS : 0;
}

function statusRead(slot: u32): u32 {
  // The error bits (8, 11..15) never set: nothing here can see a parity error or an abort, so
  // their write-one-to-clear has nothing to clear.
  let status: u32 = 0;
  if (deviceRegs(slot).intxAsserted != 0) status |= STS_INTERRUPT;
  if (hasCapabilities(deviceConfig(CONFIG_BASE, slot))) status |= STS_CAP_LIST;
  return status;
}

/** MSI-X capability dwords (6.8.2.1): header and Message Control, Table and PBA Offset/BIR. */
function msixCapRead(slot: u32, d: DeviceConfig, rel: u32): u32 {
  if (rel == 0) {
    const next = d.capLen != 0 ? VENDOR_CAPS : 0;
    return CAP_ID_MSIX | (next << 8) | (controlRead(slot) << 16);
  }
  if (rel == 4) return d.tableOffset | <u32>d.tableBar;
  return d.pbaOffset | <u32>d.pbaBar;
}

/** The dword at `reg` (dword aligned, below 0x1000). */
export function readDword(slot: u32, reg: u32): u32 {
  const d = deviceConfig(CONFIG_BASE, slot);
  const r = deviceRegs(slot);
  // GUEST-INPUT: `reg` is the guest's; every dword below 0x1000 names a register or reads 0.
  if (reg >= CFG_LEGACY_SIZE) return 0;
  if (reg >= CFG_BAR0 && reg < CFG_BAR_END) return barRead(slot, (reg - CFG_BAR0) >> 2);
  switch (reg) {
    case CFG_ID: return d.ids;
    case CFG_COMMAND: return <u32>r.command | (statusRead(slot) << 16);
    case CFG_CLASS_REV: return d.classRev;
    // Latency Timer 0 (read-only for PCIe), Header Type 0 (single function), BIST 0.
    case CFG_MISC: return <u32>r.cacheLineSize;
    case CFG_SUBSYSTEM: return d.subsystem;
    case CFG_CAP_PTR: return firstCapability(d);
    case CFG_INTERRUPT: return <u32>r.interruptLine | (<u32>d.pin << 8);
    default: break;
  }
  if (d.msixVectors != 0 && reg >= MSIX_CAP && reg < MSIX_CAP + MSIX_CAP_SIZE) return msixCapRead(slot, d, reg - MSIX_CAP);
  // The vendor capabilities were stored dword padded, so a dword inside them is whole.
  if (reg >= VENDOR_CAPS && reg < VENDOR_CAPS + <u32>d.capLen) {
    return load<u32>(capPool(CONFIG_BASE) + <usize>d.capPool + <usize>(reg - VENDOR_CAPS));
  }
  // Cardbus CIS, the Expansion ROM BAR (none: sizing it reads 0) and unused space.
  return 0;
}

function commandWrite(slot: u32, value: u32): void {
  const r = deviceRegs(slot);
  // GUEST-INPUT: I/O and Memory Space only for the spaces the function has BARs in, Bus
  // Master and Interrupt Disable always; the rest of the register is hardwired to 0.
  const writable = CMD_BUS_MASTER | CMD_INTX_DISABLE | decodeBits(slot);
  const old = <u32>r.command;
  const next = value & writable;
  if (next == old) return;
  r.command = <u16>next;
  const changed = old ^ next;
  if ((changed & (CMD_IO | CMD_MEMORY)) != 0) state().barGeneration++;
  if ((changed & CMD_BUS_MASTER) != 0) busMasterChanged(slot);
  if ((changed & CMD_INTX_DISABLE) != 0) updateLines();
}

/** Bytes of `value` selected by `lanes` (a byte mask as bits), the rest from `old`. */
function merge(old: u32, value: u32, lanes: u32): u32 {
  return (old & ~lanes) | (value & lanes);
}

/**
 * A write of the lanes `lanes` of the dword at `reg`. Writes that reach no writable field
 * are counted (ReadOnlyWrite); they are normal (sizing the missing ROM BAR, setting the
 * latency timer), so they are not logged.
 */
export function writeDword(slot: u32, reg: u32, value: u32, lanes: u32): void {
  const d = deviceConfig(CONFIG_BASE, slot);
  const r = deviceRegs(slot);
  let wrote = false;
  // GUEST-INPUT: `reg`, `value` and `lanes` are the guest's; only the writable fields of the
  // register `reg` names take the selected bytes, everything else keeps its value.
  if (reg >= CFG_BAR0 && reg < CFG_BAR_END) {
    const bar = (reg - CFG_BAR0) >> 2;
    wrote = barWrite(slot, bar, merge(barRead(slot, bar), value, lanes));
  } else if (reg == CFG_COMMAND) {
    if ((lanes & 0xffff) != 0) commandWrite(slot, merge(<u32>r.command, value, lanes) & 0xffff);
    // Status writes clear error bits that never set (statusRead); accepted, no effect.
    wrote = true;
  } else if (reg == CFG_MISC && (lanes & 0xff) != 0) {
    r.cacheLineSize = <u8>value;
    wrote = true;
  } else if (reg == CFG_INTERRUPT && (lanes & 0xff) != 0) {
    // Interrupt Line is scratch for software (6.2.4); the wiring is fixed by _PRT.
    r.interruptLine = <u8>value;
    wrote = true;
  } else if (reg == MSIX_CAP && d.msixVectors != 0 && (lanes >>> 16) != 0) {
    const control = merge(readDword(slot, reg), value, lanes) >>> 16;
    if (controlWrite(slot, control)) updateLines();
    wrote = true;
  }
  if (!wrote) counterBump(COUNTERS_BASE, C_READ_ONLY_WRITE);
}

/** A read of `size` bytes at `reg`; the access stays inside one dword. */
export function configRead(slot: u32, reg: u32, size: u32): u32 {
  const v = readDword(slot, reg & ~(<u32>3)) >>> ((reg & 3) << 3);
  return size >= 4 ? v : v & ((<u32>1 << (size << 3)) - 1);
}

export function configWrite(slot: u32, reg: u32, size: u32, value: u32): void {
  const shift = (reg & 3) << 3;
  const lanes = (size >= 4 ? <u32>0xffff_ffff : (<u32>1 << (size << 3)) - 1) << shift;
  writeDword(slot, reg & ~(<u32>3), value << shift, lanes);
}
