// The device table: what the runtime says is plugged into bus 0, staged by the cfg_* exports in
// PCI_STAGING before init(), which copies it into STATE (persist.ts). Each call checks its
// arguments against what the model can present and returns a ConfigStatus; a refused call
// changes nothing. These values come from the runtime, not the guest, and never change
// after init.
import { PCI_CAP_IN_BASE, PCI_STAGING_BASE } from "../../common/assembly/memory";
import { PCI_IO_WINDOW_SIZE, PCI_MMIO32_SIZE } from "../../common/assembly/layout";
import {
  BAR_CONFIG_FLAGS, BAR_FLAG_SERVED_BY_PCI, BAR_IO_MAX_LOG2, BAR_IO_MIN_LOG2,
  BAR_MEM_MAX_LOG2, BAR_MEM_MIN_LOG2, BARS, BarKind, CAP_ID_VENDOR, ConfigStatus, HOST_BRIDGE_CLASS_REV,
  HOST_BRIDGE_ID, HOST_BRIDGE_SLOT, MSIX_BIR_MASK, MSIX_ENTRY_SIZE, MSIX_MAX_VECTORS, PIN_MAX, SLOTS,
  VENDOR_ABSENT, VENDOR_CAPS, VENDOR_CAPS_LIMIT, VENDOR_CAP_MIN_LEN,
} from "./regs";
import {
  CAP_POOL_SIZE, CONFIG_BASE, CONFIG_SIZE, DeviceConfig, MAX_VECTORS, barConfig, capPool, configHeader, deviceConfig,
} from "./persist";

const STAGING: usize = PCI_STAGING_BASE;

function isMemory(kind: u8): bool {
  return kind == <u8>BarKind.Mem32 || kind == <u8>BarKind.Mem64;
}

/** Total bytes of the BARs of one space in a device table section. */
export function windowUsed(section: usize, io: bool): u64 {
  let used: u64 = 0;
  for (let slot: u32 = 0; slot < SLOTS; slot++) {
    for (let bar: u32 = 0; bar < BARS; bar++) {
      const b = barConfig(section, slot, bar);
      const counts = io ? b.kind == <u8>BarKind.Io : isMemory(b.kind);
      if (counts) used += <u64>1 << <u64>b.sizeLog2;
    }
  }
  return used;
}

export function cfgDevice(slot: u32, ids: u32, subsystem: u32, classRev: u32, pin: u32): ConfigStatus {
  if (slot == HOST_BRIDGE_SLOT || slot >= SLOTS) return ConfigStatus.BadSlot;
  const d = deviceConfig(STAGING, slot);
  if (d.present != 0) return ConfigStatus.AlreadyPresent;
  if ((ids & 0xffff) == VENDOR_ABSENT) return ConfigStatus.BadIds;
  if (pin > PIN_MAX) return ConfigStatus.BadPin;
  d.present = 1;
  d.pin = <u8>pin;
  d.ids = ids;
  d.subsystem = subsystem;
  d.classRev = classRev;
  return ConfigStatus.Ok;
}

export function cfgBar(slot: u32, bar: u32, kind: u32, sizeLog2: u32, flags: u32): ConfigStatus {
  if (slot == HOST_BRIDGE_SLOT || slot >= SLOTS) return ConfigStatus.BadSlot;
  if (deviceConfig(STAGING, slot).present == 0) return ConfigStatus.NoDevice;
  if (bar >= BARS || barConfig(STAGING, slot, bar).kind != <u8>BarKind.None) return ConfigStatus.BadBar;
  if ((flags & ~BAR_CONFIG_FLAGS) != 0) return ConfigStatus.BadBar;
  let io = false;
  switch (kind) {
    case <u32>BarKind.Mem32:
      if (sizeLog2 < BAR_MEM_MIN_LOG2 || sizeLog2 > BAR_MEM_MAX_LOG2) return ConfigStatus.BadBar;
      break;
    case <u32>BarKind.Mem64:
      if (sizeLog2 < BAR_MEM_MIN_LOG2 || sizeLog2 > BAR_MEM_MAX_LOG2) return ConfigStatus.BadBar;
      // The upper half takes the next register, which must exist and be free.
      if (bar + 1 >= BARS || barConfig(STAGING, slot, bar + 1).kind != <u8>BarKind.None) return ConfigStatus.BadBar;
      break;
    case <u32>BarKind.Io:
      if (sizeLog2 < BAR_IO_MIN_LOG2 || sizeLog2 > BAR_IO_MAX_LOG2) return ConfigStatus.BadBar;
      // Prefetching means nothing for ports, and the MSI-X structures live in memory space (6.8.2.4).
      if (flags != 0) return ConfigStatus.BadBar;
      io = true;
      break;
    default:
      return ConfigStatus.BadBar;
  }
  // Placement packs the BARs of a window largest first from its naturally aligned base, so
  // the BARs fit exactly when their sizes add up to no more than the window (bars.ts).
  const limit: u64 = io ? <u64>PCI_IO_WINDOW_SIZE : PCI_MMIO32_SIZE;
  if (windowUsed(STAGING, io) + (<u64>1 << <u64>sizeLog2) > limit) return ConfigStatus.WindowFull;
  const b = barConfig(STAGING, slot, bar);
  b.kind = <u8>kind;
  b.sizeLog2 = <u8>sizeLog2;
  b.flags = <u8>flags;
  if (kind == <u32>BarKind.Mem64) {
    const high = barConfig(STAGING, slot, bar + 1);
    high.kind = <u8>BarKind.Mem64High;
    high.sizeLog2 = <u8>sizeLog2;
    high.flags = <u8>flags;
  }
  return ConfigStatus.Ok;
}

/** True if [offset, offset + len) lies in `bar` of `slot`, a memory BAR this module serves. */
function inServedBar(slot: u32, bar: u32, offset: u32, len: u64): bool {
  if (bar >= BARS) return false;
  const b = barConfig(STAGING, slot, bar);
  if (!isMemory(b.kind) || (b.flags & <u8>BAR_FLAG_SERVED_BY_PCI) == 0) return false;
  return <u64>offset + len <= (<u64>1 << <u64>b.sizeLog2);
}

export function cfgMsix(slot: u32, vectors: u32, tableBar: u32, tableOffset: u32, pbaBar: u32, pbaOffset: u32): ConfigStatus {
  if (slot == HOST_BRIDGE_SLOT || slot >= SLOTS) return ConfigStatus.BadSlot;
  const d = deviceConfig(STAGING, slot);
  if (d.present == 0) return ConfigStatus.NoDevice;
  if (d.msixVectors != 0 || vectors == 0 || vectors > MSIX_MAX_VECTORS) return ConfigStatus.BadMsix;
  // The offsets share their dword with the BIR, so they are QWORD aligned (6.8.2.4, 6.8.2.5).
  if ((tableOffset & MSIX_BIR_MASK) != 0 || (pbaOffset & MSIX_BIR_MASK) != 0) return ConfigStatus.BadMsix;
  const tableLen = <u64>vectors * <u64>MSIX_ENTRY_SIZE;
  const pbaLen = (<u64>(vectors + 63) >> 6) << 3;
  if (!inServedBar(slot, tableBar, tableOffset, tableLen) || !inServedBar(slot, pbaBar, pbaOffset, pbaLen)) {
    return ConfigStatus.BadMsix;
  }
  if (tableBar == pbaBar && <u64>tableOffset < <u64>pbaOffset + pbaLen && <u64>pbaOffset < <u64>tableOffset + tableLen) {
    return ConfigStatus.BadMsix;
  }
  const h = configHeader(STAGING);
  if (<u32>h.vectorsUsed + vectors > MAX_VECTORS) return ConfigStatus.VectorsFull;
  d.msixVectors = <u16>vectors;
  d.vectorBase = h.vectorsUsed;
  d.tableBar = <u8>tableBar;
  d.tableOffset = tableOffset;
  d.pbaBar = <u8>pbaBar;
  d.pbaOffset = pbaOffset;
  h.vectorsUsed += <u16>vectors;
  return ConfigStatus.Ok;
}

/**
 * Appends the vendor-specific capability in PCI_CAP_IN[0, len) to `slot`'s list. Its next
 * pointer (byte 1) is ignored and filled in here; the other bytes are presented read-only.
 */
export function cfgCap(slot: u32, len: u32): ConfigStatus {
  if (slot == HOST_BRIDGE_SLOT || slot >= SLOTS) return ConfigStatus.BadSlot;
  const d = deviceConfig(STAGING, slot);
  if (d.present == 0) return ConfigStatus.NoDevice;
  // Appendix H, 09h: ID, next pointer, then a length byte that counts the whole capability.
  if (len < VENDOR_CAP_MIN_LEN || len > VENDOR_CAPS_LIMIT - VENDOR_CAPS
      || <u32>load<u8>(PCI_CAP_IN_BASE) != CAP_ID_VENDOR || <u32>load<u8>(PCI_CAP_IN_BASE + 2) != len) {
    return ConfigStatus.BadCap;
  }
  const padded = (len + 3) & ~(<u32>3);
  if (VENDOR_CAPS + <u32>d.capLen + padded > VENDOR_CAPS_LIMIT) return ConfigStatus.CapSpaceFull;
  const h = configHeader(STAGING);
  if (<u32>h.capPoolUsed + padded > CAP_POOL_SIZE) return ConfigStatus.CapSpaceFull;
  // A function's capabilities are one run of the pool, so they must be added together.
  if (d.capLen != 0 && <u32>d.capPool + <u32>d.capLen != <u32>h.capPoolUsed) return ConfigStatus.CapsNotContiguous;
  if (d.capLen == 0) d.capPool = h.capPoolUsed;
  const pool = capPool(STAGING);
  const at = pool + <usize>h.capPoolUsed;
  memory.copy(at, PCI_CAP_IN_BASE, len);
  memory.fill(at + <usize>len, 0, padded - len);
  store<u8>(at + 1, 0);
  if (d.capLen != 0) {
    // Link the previous last capability to this one; the chain lies inside this function's run.
    let cap: u32 = 0;
    for (let hops = 0; hops < 64; hops++) {
      const next = <u32>load<u8>(pool + <usize>d.capPool + <usize>cap + 1);
      if (next == 0) break;
      cap = next - VENDOR_CAPS;
    }
    store<u8>(pool + <usize>d.capPool + <usize>cap + 1, <u8>(VENDOR_CAPS + <u32>d.capLen));
  }
  d.capLen += <u8>padded;
  h.capPoolUsed += <u16>padded;
  return ConfigStatus.Ok;
}

/** The host bridge, 00:00.0, which the device table never names: no BARs, no pin, no capabilities. */
export function stageHostBridge(section: usize): void {
  const d = deviceConfig(section, HOST_BRIDGE_SLOT);
  memory.fill(changetype<usize>(d), 0, <u32>offsetof<DeviceConfig>());
  d.present = 1;
  d.ids = HOST_BRIDGE_ID;
  d.classRev = HOST_BRIDGE_CLASS_REV;
  for (let bar: u32 = 0; bar < BARS; bar++) store<u32>(changetype<usize>(barConfig(section, HOST_BRIDGE_SLOT, bar)), 0);
}

/** Copies the staged table into STATE (init only). */
export function adoptStagedTable(): void {
  memory.copy(CONFIG_BASE, STAGING, CONFIG_SIZE);
  stageHostBridge(CONFIG_BASE);
}

/**
 * True if the device table in STATE is one cfg_* could have built. A restored window passes
 * this before it is used, so that no index derived from it can reach outside the state.
 */
export function tableConsistent(): bool {
  const h = configHeader(CONFIG_BASE);
  if (<u32>h.vectorsUsed > MAX_VECTORS || <u32>h.capPoolUsed > CAP_POOL_SIZE) return false;
  for (let slot: u32 = 0; slot < SLOTS; slot++) {
    const d = deviceConfig(CONFIG_BASE, slot);
    if (d.present > 1 || <u32>d.pin > PIN_MAX) return false;
    if (<u32>d.vectorBase + <u32>d.msixVectors > <u32>h.vectorsUsed) return false;
    if (d.msixVectors != 0 && (<u32>d.tableBar >= BARS || <u32>d.pbaBar >= BARS)) return false;
    if (<u32>d.capPool + <u32>d.capLen > <u32>h.capPoolUsed || VENDOR_CAPS + <u32>d.capLen > VENDOR_CAPS_LIMIT) return false;
    for (let bar: u32 = 0; bar < BARS; bar++) {
      const b = barConfig(CONFIG_BASE, slot, bar);
      if (b.kind > <u8>BarKind.Mem64High || <u32>b.sizeLog2 > BAR_MEM_MAX_LOG2) return false;
      if ((<u32>b.flags & ~BAR_CONFIG_FLAGS) != 0) return false;
    }
  }
  return deviceConfig(CONFIG_BASE, HOST_BRIDGE_SLOT).present == 1;
}
