// Base Address Registers (PCI 3.0, 6.2.5): firmware-style placement at power-on and reset,
// sizing and moves by the guest, and what the runtime reads to keep the backends' ioreq and
// ioeventfd ranges where the guest put them.
//
// Sizing needs no extra state: a BAR's address bits below its size are hardwired to zero, so
// writing all-ones and reading back returns the size mask with the type bits (6.2.5.1). A
// 64-bit BAR keeps its upper half in the next register, which is fully writable because every
// BAR here is smaller than 4 GiB.
import { PCI_IO_WINDOW_BASE, PCI_MMIO32_BASE } from "../../common/assembly/layout";
import { counterBump } from "../../common/assembly/memory";
import {
  BAR_FLAG_DECODING, BAR_FLAG_PREFETCHABLE, BAR_FLAG_SERVED_BY_PCI, BAR_IO_ADDR_MASK, BAR_IO_MIN_LOG2,
  BAR_MEM_ADDR_MASK, BAR_MEM_MAX_LOG2, BAR_PREFETCHABLE, BAR_SPACE_IO, BAR_TYPE_64, BARS, BarKind,
  CMD_IO, CMD_MEMORY, SLOTS,
} from "./regs";
import {
  BarConfig, COUNTERS_BASE, CONFIG_BASE, C_BAR_CHANGED, barConfig, barRegAddr, deviceConfig, deviceRegs, state,
} from "./persist";

function sizeOf(b: BarConfig): u64 {
  return <u64>1 << <u64>b.sizeLog2;
}

function isMemory(kind: u8): bool {
  return kind == <u8>BarKind.Mem32 || kind == <u8>BarKind.Mem64;
}

/**
 * Where firmware would put every BAR: per window, largest first from the window's base.
 * Both bases are aligned to more than any BAR's size and every size is a power of two, so
 * each BAR lands naturally aligned, and the BARs fit whenever their sizes add up to no more
 * than the window (which cfg_bar checked). Runs at power-on and on every reset.
 */
export function placeBars(): void {
  let mem: u64 = PCI_MMIO32_BASE;
  let io: u32 = PCI_IO_WINDOW_BASE;
  for (let slot: u32 = 0; slot < SLOTS; slot++) {
    for (let bar: u32 = 0; bar < BARS; bar++) store<u32>(barRegAddr(slot, bar), 0);
  }
  for (let log2 = <i32>BAR_MEM_MAX_LOG2; log2 >= <i32>BAR_IO_MIN_LOG2; log2--) {
    for (let slot: u32 = 0; slot < SLOTS; slot++) {
      for (let bar: u32 = 0; bar < BARS; bar++) {
        const b = barConfig(CONFIG_BASE, slot, bar);
        if (<i32>b.sizeLog2 != log2) continue;
        if (b.kind == <u8>BarKind.Mem32) {
          store<u32>(barRegAddr(slot, bar), <u32>mem);
          mem += sizeOf(b);
        } else if (b.kind == <u8>BarKind.Mem64 && bar + 1 < BARS) {
          store<u32>(barRegAddr(slot, bar), <u32>mem);
          store<u32>(barRegAddr(slot, bar + 1), <u32>(mem >> 32));
          mem += sizeOf(b);
        } else if (b.kind == <u8>BarKind.Io) {
          store<u32>(barRegAddr(slot, bar), io);
          io += <u32>sizeOf(b);
        }
      }
    }
  }
}

/** The command bits firmware sets: decoding on for each space the function has BARs in. */
export function decodeBits(slot: u32): u32 {
  let bits: u32 = 0;
  for (let bar: u32 = 0; bar < BARS; bar++) {
    const kind = barConfig(CONFIG_BASE, slot, bar).kind;
    if (kind == <u8>BarKind.Io) bits |= CMD_IO;
    else if (isMemory(kind)) bits |= CMD_MEMORY;
  }
  return bits;
}

/** The register as the guest reads it: address bits and the read-only type bits. */
export function barRead(slot: u32, bar: u32): u32 {
  const b = barConfig(CONFIG_BASE, slot, bar);
  const reg = load<u32>(barRegAddr(slot, bar));
  const prefetch = (b.flags & <u8>BAR_FLAG_PREFETCHABLE) != 0 ? BAR_PREFETCHABLE : 0;
  switch (b.kind) {
    case <u8>BarKind.Mem32: return reg | prefetch;
    case <u8>BarKind.Mem64: return reg | BAR_TYPE_64 | prefetch;
    case <u8>BarKind.Mem64High: return reg;
    case <u8>BarKind.Io: return reg | BAR_SPACE_IO;
    default: return 0;
  }
}

/** A guest write of a whole BAR register; returns false if the register is not implemented. */
export function barWrite(slot: u32, bar: u32, value: u32): bool {
  const b = barConfig(CONFIG_BASE, slot, bar);
  const sizeMask = ~(<u32>sizeOf(b) - 1);
  let reg: u32;
  // GUEST-INPUT: only the address bits at and above the BAR's size are writable; the type
  // bits and the bits below the size read back as the hardware fixes them.
  switch (b.kind) {
    case <u8>BarKind.Mem32:
    case <u8>BarKind.Mem64:
      reg = value & BAR_MEM_ADDR_MASK & sizeMask;
      break;
    case <u8>BarKind.Mem64High:
      reg = value;
      break;
    case <u8>BarKind.Io:
      reg = value & BAR_IO_ADDR_MASK & sizeMask;
      break;
    default:
      return false;
  }
  const at = barRegAddr(slot, bar);
  if (load<u32>(at) != reg) {
    store<u32>(at, reg);
    state().barGeneration++;
    counterBump(COUNTERS_BASE, C_BAR_CHANGED);
  }
  return true;
}

function validBar(slot: u32, bar: u32): bool {
  return slot < SLOTS && bar < BARS && deviceConfig(CONFIG_BASE, slot).present != 0;
}

export function barKind(slot: u32, bar: u32): u32 {
  if (!validBar(slot, bar)) return <u32>BarKind.None;
  return <u32>barConfig(CONFIG_BASE, slot, bar).kind;
}

/** The bus address the BAR decodes; the whole 64-bit address for a Mem64 BAR, 0 for its upper half. */
export function barAddress(slot: u32, bar: u32): u64 {
  if (!validBar(slot, bar)) return 0;
  const low = <u64>load<u32>(barRegAddr(slot, bar));
  switch (barConfig(CONFIG_BASE, slot, bar).kind) {
    case <u8>BarKind.Mem32:
    case <u8>BarKind.Io:
      return low;
    case <u8>BarKind.Mem64:
      return bar + 1 < BARS ? low | (<u64>load<u32>(barRegAddr(slot, bar + 1)) << 32) : low;
    default:
      return 0;
  }
}

export function barSize(slot: u32, bar: u32): u64 {
  if (!validBar(slot, bar)) return 0;
  const b = barConfig(CONFIG_BASE, slot, bar);
  return isMemory(b.kind) || b.kind == <u8>BarKind.Io ? sizeOf(b) : 0;
}

/** True while the command register enables the BAR's address space (6.2.2). */
export function barDecoding(slot: u32, bar: u32): bool {
  const kind = barConfig(CONFIG_BASE, slot, bar).kind;
  const command = <u32>deviceRegs(slot).command;
  if (kind == <u8>BarKind.Io) return (command & CMD_IO) != 0;
  return isMemory(kind) && (command & CMD_MEMORY) != 0;
}

export function barFlags(slot: u32, bar: u32): u32 {
  if (!validBar(slot, bar)) return 0;
  let flags = <u32>barConfig(CONFIG_BASE, slot, bar).flags;
  if (barDecoding(slot, bar)) flags |= BAR_FLAG_DECODING;
  return flags;
}

/**
 * The memory BAR served by this module (its MSI-X table and PBA) that decodes all of
 * [addr, addr + len), as slot << 3 | bar, or -1. The lowest slot wins if a guest made
 * two of them overlap.
 */
export function findServedBar(addr: u64, len: u32): i32 {
  for (let slot: u32 = 0; slot < SLOTS; slot++) {
    if (deviceConfig(CONFIG_BASE, slot).present == 0) continue;
    for (let bar: u32 = 0; bar < BARS; bar++) {
      const b = barConfig(CONFIG_BASE, slot, bar);
      if ((b.flags & <u8>BAR_FLAG_SERVED_BY_PCI) == 0 || !barDecoding(slot, bar)) continue;
      const base = barAddress(slot, bar);
      // GUEST-INPUT: the guest placed the BAR; the access must lie wholly inside it.
      if (addr >= base && addr - base < sizeOf(b) && sizeOf(b) - (addr - base) >= <u64>len) {
        return <i32>(slot << 3 | bar);
      }
    }
  }
  return -1;
}
