// MSI-X (PCI 3.0, 6.8.2; PCIe 4.0, 6.1.4): the capability's Message Control, the table and the
// Pending Bit Array in a memory BAR this module serves, and the vector state the runtime
// turns into KVM MSI routes with irqfds.
//
// A vector is *effective* while MSI-X is enabled, the function is not masked, the vector is not
// masked and Bus Master Enable is set (PCIe 4.0, 7.5.1.1.3: without it the function may not
// issue memory writes, and an MSI is one). Only effective vectors get a route with the
// backend's irqfd; the data path then never passes through this module.
//
// Masking without loss or duplication. Two bits per vector, both in the state window:
// - pending (the PBA bit): the backend signalled while the vector was not effective;
// - fire: the vector became effective with its pending bit set, and the runtime still has
//   to send that one interrupt (msix_fire_take).
// settle() keeps "pending => not effective" and "fire => effective": on every change that
// can make a vector effective, pending turns into fire; on every change that takes it away,
// an untaken fire turns back into pending. So a signal raised while masked is delivered
// exactly once, after the unmask, however often the guest toggles the masks in between.
import { counterBump } from "../../common/assembly/memory";
import {
  CMD_BUS_MASTER, MSIX_ADDR_LO_MASK, MSIX_CTRL_ENABLE, MSIX_CTRL_FUNCTION_MASK, MSIX_CTRL_WRITABLE,
  MSIX_ENTRY_ADDR_HI, MSIX_ENTRY_ADDR_LO, MSIX_ENTRY_CONTROL, MSIX_ENTRY_DATA, MSIX_ENTRY_SIZE, MSIX_FLAG_EFFECTIVE, MSIX_FLAG_FIRE,
  MSIX_FLAG_MASKED, MSIX_FLAG_PENDING, MSIX_VECTOR_MASKED, MsixSignal, SLOTS,
} from "./regs";
import {
  COUNTERS_BASE, CONFIG_BASE, C_MSIX_FIRED, C_MSIX_HELD, C_READ_ONLY_WRITE, FIRE_BASE, MAX_VECTORS,
  PENDING_BASE, bitGet, bitSet, deviceConfig, deviceRegs, state, vectorAddr,
} from "./persist";
import { badHostCall } from "./errors";

/** Which MSI-X structure an access falls in. */
export const enum MsixRegion { None = 0, Table = 1, Pba = 2 }

function poolIndex(slot: u32, vector: u32): u32 {
  return <u32>deviceConfig(CONFIG_BASE, slot).vectorBase + vector;
}

function vectorMasked(index: u32): bool {
  return (load<u32>(vectorAddr(index) + MSIX_ENTRY_CONTROL) & MSIX_VECTOR_MASKED) != 0;
}

/** MSI-X on, function unmasked, bus mastering allowed: the conditions shared by all vectors. */
function functionLive(slot: u32): bool {
  const r = deviceRegs(slot);
  const control = <u32>r.msixControl;
  return (control & MSIX_CTRL_ENABLE) != 0 && (control & MSIX_CTRL_FUNCTION_MASK) == 0
    && (<u32>r.command & CMD_BUS_MASTER) != 0;
}

/** `vector` below the function's table size. */
function effective(slot: u32, vector: u32): bool {
  return functionLive(slot) && !vectorMasked(poolIndex(slot, vector));
}

/** Restores the two invariants for one vector (see the top of this file). */
function settleVector(slot: u32, vector: u32): void {
  const index = poolIndex(slot, vector);
  if (index >= MAX_VECTORS) return;
  if (effective(slot, vector)) {
    if (bitGet(PENDING_BASE, index)) {
      bitSet(PENDING_BASE, index, false);
      bitSet(FIRE_BASE, index, true);
    }
  } else if (bitGet(FIRE_BASE, index)) {
    bitSet(FIRE_BASE, index, false);
    bitSet(PENDING_BASE, index, true);
  }
}

/** After a change that affects every vector of the function (control, command). */
export function settle(slot: u32): void {
  const n = <u32>deviceConfig(CONFIG_BASE, slot).msixVectors;
  for (let v: u32 = 0; v < n; v++) settleVector(slot, v);
}

export function controlRead(slot: u32): u32 {
  const n = <u32>deviceConfig(CONFIG_BASE, slot).msixVectors;
  return (n - 1) | <u32>deviceRegs(slot).msixControl;
}

/** A guest write of Message Control; returns true if MSI-X Enable changed (INTx follows it). */
export function controlWrite(slot: u32, value: u32): bool {
  const r = deviceRegs(slot);
  // GUEST-INPUT: only Function Mask and MSI-X Enable are writable; Table Size is read-only.
  const next = value & MSIX_CTRL_WRITABLE;
  const old = <u32>r.msixControl;
  if (next == old) return false;
  r.msixControl = <u16>next;
  state().msixGeneration++;
  settle(slot);
  return ((old ^ next) & MSIX_CTRL_ENABLE) != 0;
}

/** Bus Master Enable changed: every vector's effectiveness may have. */
export function busMasterChanged(slot: u32): void {
  if (deviceConfig(CONFIG_BASE, slot).msixVectors == 0) return;
  state().msixGeneration++;
  settle(slot);
}

export function msixEnabled(slot: u32): bool {
  return (<u32>deviceRegs(slot).msixControl & MSIX_CTRL_ENABLE) != 0;
}

/**
 * Where [offset, offset + size) of `bar` falls. Table and PBA take aligned DWORD and QWORD
 * accesses only (6.8.2: "software must use aligned full DWORD or aligned full QWORD
 * transactions"); anything else is None.
 */
export function region(slot: u32, bar: u32, offset: u64, size: u32): MsixRegion {
  const d = deviceConfig(CONFIG_BASE, slot);
  const n = <u64>d.msixVectors;
  // GUEST-INPUT: size and alignment are the guest's.
  if (n == 0 || (size != 4 && size != 8) || (offset & <u64>(size - 1)) != 0) return MsixRegion.None;
  if (bar == <u32>d.tableBar && offset >= <u64>d.tableOffset && offset - <u64>d.tableOffset < n * <u64>MSIX_ENTRY_SIZE) {
    return MsixRegion.Table;
  }
  const pbaLen = ((n + 63) >> 6) << 3;
  if (bar == <u32>d.pbaBar && offset >= <u64>d.pbaOffset && offset - <u64>d.pbaOffset < pbaLen) return MsixRegion.Pba;
  return MsixRegion.None;
}

/** A table dword; `rel` is a dword offset inside the table (region() said Table). */
function tableDword(slot: u32, rel: u32): u32 {
  return load<u32>(vectorAddr(poolIndex(slot, rel >> 4)) + <usize>(rel & 15));
}

function writeTableDword(slot: u32, rel: u32, value: u32): void {
  const vector = rel >> 4;
  const field = rel & 15;
  const at = vectorAddr(poolIndex(slot, vector)) + <usize>field;
  // GUEST-INPUT: address bits 1:0 read 0 (6.8.2.6) and only the mask bit of Vector Control
  // exists (6.8.2.9); everything else the guest writes is a value it may choose freely.
  let v = value;
  if (field == MSIX_ENTRY_ADDR_LO) v &= MSIX_ADDR_LO_MASK;
  else if (field == MSIX_ENTRY_CONTROL) v &= MSIX_VECTOR_MASKED;
  if (load<u32>(at) == v) return;
  store<u32>(at, v);
  // Address and data are the route; the mask bit decides whether the route is live.
  state().msixGeneration++;
  if (field == MSIX_ENTRY_CONTROL) settleVector(slot, vector);
}

/** The Pending Bits of vectors [first, first + 32). */
function pbaDword(slot: u32, first: u32): u32 {
  const n = <u32>deviceConfig(CONFIG_BASE, slot).msixVectors;
  let bits: u32 = 0;
  for (let i: u32 = 0; i < 32 && first + i < n; i++) {
    if (bitGet(PENDING_BASE, poolIndex(slot, first + i))) bits |= <u32>1 << i;
  }
  return bits;
}

/** A read that region() accepted; a QWORD is two DWORDs, low first. */
export function regionRead(slot: u32, which: MsixRegion, offset: u64, size: u32): u64 {
  const d = deviceConfig(CONFIG_BASE, slot);
  if (which == MsixRegion.Table) {
    const rel = <u32>(offset - <u64>d.tableOffset);
    let v = <u64>tableDword(slot, rel);
    if (size == 8) v |= <u64>tableDword(slot, rel + 4) << 32;
    return v;
  }
  const rel = <u32>(offset - <u64>d.pbaOffset);
  let v = <u64>pbaDword(slot, rel << 3);
  if (size == 8) v |= <u64>pbaDword(slot, (rel + 4) << 3) << 32;
  return v;
}

/** A write that region() accepted. The PBA is read-only (6.8.2.10): such writes are counted. */
export function regionWrite(slot: u32, which: MsixRegion, offset: u64, size: u32, value: u64): void {
  // GUEST-INPUT: a write to the PBA changes nothing; only table entries are writable.
  if (which != MsixRegion.Table) {
    counterBump(COUNTERS_BASE, C_READ_ONLY_WRITE);
    return;
  }
  const rel = <u32>(offset - <u64>deviceConfig(CONFIG_BASE, slot).tableOffset);
  writeTableDword(slot, rel, <u32>value);
  if (size == 8) writeTableDword(slot, rel + 4, <u32>(value >> 32));
}

/** Vectors at reset: masked (6.8.2.9), address and data zero, nothing pending or to fire. */
export function msixReset(): void {
  for (let i: u32 = 0; i < MAX_VECTORS; i++) {
    const at = vectorAddr(i);
    store<u32>(at + MSIX_ENTRY_ADDR_LO, 0);
    store<u32>(at + MSIX_ENTRY_ADDR_HI, 0);
    store<u32>(at + MSIX_ENTRY_DATA, 0);
    store<u32>(at + MSIX_ENTRY_CONTROL, MSIX_VECTOR_MASKED);
  }
  memory.fill(PENDING_BASE, 0, MAX_VECTORS >> 3);
  memory.fill(FIRE_BASE, 0, MAX_VECTORS >> 3);
  state().msixGeneration++;
}

// --- The runtime's side ------------------------------------------------------------------

function validVector(slot: u32, vector: u32): bool {
  return slot < SLOTS && vector < <u32>deviceConfig(CONFIG_BASE, slot).msixVectors;
}

export function vectorCount(slot: u32): u32 {
  return slot < SLOTS ? <u32>deviceConfig(CONFIG_BASE, slot).msixVectors : 0;
}

export function vectorAddress(slot: u32, vector: u32): u64 {
  if (!validVector(slot, vector)) return 0;
  const at = vectorAddr(poolIndex(slot, vector));
  return <u64>load<u32>(at + MSIX_ENTRY_ADDR_LO) | (<u64>load<u32>(at + MSIX_ENTRY_ADDR_HI) << 32);
}

export function vectorData(slot: u32, vector: u32): u32 {
  if (!validVector(slot, vector)) return 0;
  return load<u32>(vectorAddr(poolIndex(slot, vector)) + MSIX_ENTRY_DATA);
}

export function vectorFlags(slot: u32, vector: u32): u32 {
  if (!validVector(slot, vector)) return 0;
  const index = poolIndex(slot, vector);
  let flags: u32 = 0;
  if (effective(slot, vector)) flags |= MSIX_FLAG_EFFECTIVE;
  if (bitGet(PENDING_BASE, index)) flags |= MSIX_FLAG_PENDING;
  if (bitGet(FIRE_BASE, index)) flags |= MSIX_FLAG_FIRE;
  if (vectorMasked(index)) flags |= MSIX_FLAG_MASKED;
  return flags;
}

/**
 * The backend signalled `vector` while the runtime held its eventfd away from KVM. Idempotent:
 * a second signal before the unmask sets the same bit, as on hardware (6.8.2.10).
 */
export function signalWhileHeld(slot: u32, vector: u32): MsixSignal {
  if (!validVector(slot, vector)) {
    badHostCall("pci: msix_pending for a missing vector of slot", <u64>slot);
    return MsixSignal.Ignored;
  }
  // With MSI-X disabled the function signals through INTx, not through vectors.
  if (!msixEnabled(slot)) return MsixSignal.Ignored;
  if (effective(slot, vector)) return MsixSignal.Deliver;
  const index = poolIndex(slot, vector);
  if (!bitGet(PENDING_BASE, index)) {
    bitSet(PENDING_BASE, index, true);
    counterBump(COUNTERS_BASE, C_MSIX_HELD);
  }
  return MsixSignal.Held;
}

/**
 * Takes the lowest vector that must fire once: slot << 16 | vector, or 0 for none (slot 0,
 * the host bridge, has no vectors, so 0 is never a vector).
 */
export function takeFire(): u32 {
  for (let slot: u32 = 1; slot < SLOTS; slot++) {
    const n = <u32>deviceConfig(CONFIG_BASE, slot).msixVectors;
    for (let v: u32 = 0; v < n; v++) {
      const index = poolIndex(slot, v);
      if (index < MAX_VECTORS && bitGet(FIRE_BASE, index)) {
        bitSet(FIRE_BASE, index, false);
        counterBump(COUNTERS_BASE, C_MSIX_FIRED);
        return slot << 16 | v;
      }
    }
  }
  return 0;
}
