// The 82093AA model: redirection table, line inputs, delivery as MSIs, remote IRR and EOI.
//
// Line inputs. set_irq(pin, level) carries the source's *logical* level (1 = requesting
// service), as KVM's irq lines and the ABI's set_pin do. The model knows how each pin is
// wired on this platform (boot/layout.ts: the SCI on GSI 9 and PCI INTx on GSIs 16..23
// are active-low wires, the rest active-high), derives the electrical pin level, and
// applies the polarity the guest programmed, like the chip. A guest that programs the
// polarity the MADT and _PRT describe therefore sees "active" exactly when the source
// requests; one that programs the opposite polarity sees an idle line as active.
//
// Edge entries deliver on a rising edge of the polarity-adjusted input while unmasked. An
// edge on a masked pin is dropped, not held pending (datasheet 3.2.4, bit 16), and writing
// a redirection entry never synthesises an edge. Level entries (Fixed or Lowest Priority
// only) deliver while the input is active, unmasked and remote IRR clear, and set remote
// IRR; EOI clears it and delivers again if the input is still active. Deliveries are
// synchronous MSIs, so delivery status always reads idle.
import { msi } from "../../common/assembly/host";
import { IOAPIC_ID, IOAPIC_PINS, PCI_INTX_GSI_BASE, SCI_IRQ } from "../../common/assembly/layout";
import { counterBump } from "../../common/assembly/memory";
import { LogLevel, logAccess, logEvent, logWorthy } from "../../common/assembly/log";
import {
  COUNTERS_BASE, C_BAD_PIN, C_DROPPED_DELIVERY, C_INVALID_ACCESS, C_MSI_SENT, Entry, entry, state,
} from "./persist";
import {
  DeliveryMode, DestMode, Polarity, Trigger, ID_MASK, ID_SHIFT, IND_ARB, IND_ID, IND_REDIR_FIRST,
  IND_REDIR_LAST, IND_VERSION, MAX_REDIR_SHIFT, RTE_DEST_SHIFT, RTE_MASK_BIT, RTE_REMOTE_IRR_BIT,
  RTE_VECTOR_MASK, RTE_DELIVERY_SHIFT, RTE_DESTMODE_BIT, RTE_POLARITY_BIT, RTE_TRIGGER_BIT, VERSION,
  canDeliver, deliveryModeBits, deliveryModeFromBits, destModeBit, destModeFromBit, effectiveTrigger,
  msiAddress, msiData, polarityBit, polarityFromBit, triggerBit, triggerFromBit,
} from "./regs";

/** Counts a rejected access and logs it at 1, 2, 4, 8, ... occurrences. */
export function invalidAccess(what: string, where: u64, size: u32): void {
  const n = counterBump(COUNTERS_BASE, C_INVALID_ACCESS);
  if (logWorthy(n)) logAccess(LogLevel.Warn, what, where, size, n);
}

/** How the platform wires each pin (boot/layout.ts, MADT overrides and _PRT). */
function wiredActiveLow(pin: u32): bool {
  return pin == SCI_IRQ || pin >= PCI_INTX_GSI_BASE;
}

/** The input as the redirection logic sees it, after wiring and programmed polarity. */
function inputActive(pin: u32, e: Entry): bool {
  const electricalHigh = (e.asserted != 0) != wiredActiveLow(pin);
  switch (<Polarity>e.polarity) {
    case Polarity.ActiveLow: return !electricalHigh;
    default: return electricalHigh;
  }
}

function entryTrigger(e: Entry): Trigger {
  return effectiveTrigger(<DeliveryMode>e.delivery, <Trigger>e.trigger);
}

/** Route flags (driver-domains/runtime/abi.ts RouteFlag). */
export const ROUTE_MASKED: u32 = 1;
export const ROUTE_LEVEL: u32 = 2;
export const ROUTE_DELIVERABLE: u32 = 4;

/**
 * The MSI a pin would send now, for microhv's GSI routes: KVM learns from level-triggered
 * MSI routes which vectors need an EOI exit (KVM_EXIT_IOAPIC_EOI), and an unmasked route
 * can also be bound to an irqfd. Pins out of range read 0.
 */
export function routeAddress(pin: u32): u64 {
  if (pin >= IOAPIC_PINS) return 0;
  const e = entry(pin);
  return msiAddress(<u32>e.dest, <DestMode>e.destMode, <DeliveryMode>e.delivery);
}

export function routeData(pin: u32): u32 {
  if (pin >= IOAPIC_PINS) return 0;
  const e = entry(pin);
  return msiData(<u32>e.vector, <DeliveryMode>e.delivery, entryTrigger(e));
}

export function routeFlags(pin: u32): u32 {
  if (pin >= IOAPIC_PINS) return 0;
  const e = entry(pin);
  let flags: u32 = 0;
  if (e.masked != 0) flags |= ROUTE_MASKED;
  if (entryTrigger(e) == Trigger.Level) flags |= ROUTE_LEVEL;
  if (canDeliver(<DeliveryMode>e.delivery, <u32>e.vector)) flags |= ROUTE_DELIVERABLE;
  return flags;
}

/** Sends the entry's interrupt; sets remote IRR for a level entry. */
function deliver(pin: u32, e: Entry): void {
  const mode = <DeliveryMode>e.delivery;
  const vector = <u32>e.vector;
  if (!canDeliver(mode, vector)) {
    // GUEST-INPUT: ExtINT, a reserved delivery mode or a reserved vector cannot be sent.
    const n = counterBump(COUNTERS_BASE, C_DROPPED_DELIVERY);
    if (logWorthy(n)) logEvent(LogLevel.Warn, "ioapic: undeliverable entry for pin", <u64>pin, n);
    return;
  }
  const trigger = entryTrigger(e);
  msi(msiAddress(<u32>e.dest, <DestMode>e.destMode, mode), msiData(vector, mode, trigger));
  counterBump(COUNTERS_BASE, C_MSI_SENT);
  if (trigger == Trigger.Level) e.remoteIrr = 1;
}

/** Delivers a level entry whose input is active, if nothing blocks it. */
function serviceLevel(pin: u32, e: Entry): void {
  if (entryTrigger(e) != Trigger.Level) return;
  if (e.masked != 0 || e.remoteIrr != 0) return;
  if (inputActive(pin, e)) deliver(pin, e);
}

export function setIrq(pin: u32, level: u32): void {
  if (pin >= IOAPIC_PINS) {
    // A runtime or sender bug, not guest input; counted so that it shows.
    const n = counterBump(COUNTERS_BASE, C_BAD_PIN);
    if (logWorthy(n)) logEvent(LogLevel.Error, "ioapic: set_irq on missing pin", <u64>pin, n);
    return;
  }
  const e = entry(pin);
  const asserted: u8 = level != 0 ? 1 : 0;
  // Idempotent: repeating the current level is not an edge and changes nothing.
  if (e.asserted == asserted) return;
  const wasActive = inputActive(pin, e);
  e.asserted = asserted;
  const isActive = inputActive(pin, e);
  if (e.masked != 0) return;
  if (entryTrigger(e) == Trigger.Edge) {
    if (!wasActive && isActive) deliver(pin, e);
  } else if (isActive) {
    serviceLevel(pin, e);
  }
}

/** EOI for `vector` (KVM_EXIT_IOAPIC_EOI or the EOI register). */
export function eoi(vector: u32): void {
  for (let pin: u32 = 0; pin < IOAPIC_PINS; pin++) {
    const e = entry(pin);
    if (e.remoteIrr == 0 || <u32>e.vector != vector) continue;
    if (entryTrigger(e) != Trigger.Level) continue;
    e.remoteIrr = 0;
    serviceLevel(pin, e);
  }
}

function entryLow(e: Entry): u32 {
  let v = <u32>e.vector
    | (deliveryModeBits(<DeliveryMode>e.delivery) << RTE_DELIVERY_SHIFT)
    | destModeBit(<DestMode>e.destMode)
    | polarityBit(<Polarity>e.polarity)
    | triggerBit(<Trigger>e.trigger);
  if (e.remoteIrr != 0) v |= RTE_REMOTE_IRR_BIT;
  if (e.masked != 0) v |= RTE_MASK_BIT;
  return v;
}

function writeEntryLow(pin: u32, e: Entry, v: u32): void {
  // GUEST-INPUT: every field is decoded into its enum; delivery status and remote IRR
  // are read-only and bits 31:17 are reserved, so those bits of `v` are ignored.
  e.vector = <u8>(v & RTE_VECTOR_MASK);
  e.delivery = <u8>deliveryModeFromBits(v >> RTE_DELIVERY_SHIFT);
  e.destMode = <u8>destModeFromBit((v & RTE_DESTMODE_BIT) != 0);
  e.polarity = <u8>polarityFromBit((v & RTE_POLARITY_BIT) != 0);
  e.trigger = <u8>triggerFromBit((v & RTE_TRIGGER_BIT) != 0);
  e.masked = (v & RTE_MASK_BIT) != 0 ? 1 : 0;
  // Remote IRR means nothing for an edge entry (datasheet 3.2.4, bit 14); dropping it
  // on a switch to edge is also how software clears it on a chip without EOI register.
  if (entryTrigger(e) == Trigger.Edge) e.remoteIrr = 0;
  // Unmasking, or switching to level, while the input is active delivers now.
  serviceLevel(pin, e);
}

/** The register IOREGSEL selects, read through IOWIN. */
export function readIndirect(sel: u32): u32 {
  if (sel == IND_ID) return (state().id & ID_MASK) << ID_SHIFT;
  if (sel == IND_VERSION) return VERSION | ((IOAPIC_PINS - 1) << MAX_REDIR_SHIFT);
  // The arbitration ID is loaded from the APIC ID (datasheet 3.2.3).
  if (sel == IND_ARB) return (state().id & ID_MASK) << ID_SHIFT;
  // GUEST-INPUT: IOREGSEL is any byte; only 0x10..0x3f name redirection dwords.
  if (sel >= IND_REDIR_FIRST && sel <= IND_REDIR_LAST) {
    const pin = (sel - IND_REDIR_FIRST) >> 1;
    const e = entry(pin);
    return (sel & 1) == 0 ? entryLow(e) : (<u32>e.dest << RTE_DEST_SHIFT);
  }
  invalidAccess("ioapic: read of missing register", <u64>sel, 4);
  return 0;
}

export function writeIndirect(sel: u32, v: u32): void {
  if (sel == IND_ID) {
    state().id = (v >> ID_SHIFT) & ID_MASK;
    return;
  }
  // GUEST-INPUT: same selector check as for reads.
  if (sel >= IND_REDIR_FIRST && sel <= IND_REDIR_LAST) {
    const pin = (sel - IND_REDIR_FIRST) >> 1;
    const e = entry(pin);
    state().routeGeneration++;
    if ((sel & 1) == 0) writeEntryLow(pin, e, v);
    // Bits 55:32 are reserved; only the destination byte is kept.
    else e.dest = <u8>(v >> RTE_DEST_SHIFT);
    return;
  }
  // Version and arbitration are read-only; anything else names no register.
  invalidAccess("ioapic: write to read-only or missing register", <u64>sel, 4);
}

/** Register state after a platform reset (datasheet 3.2: entries reset masked). */
export function resetDevice(): void {
  const s = state();
  s.ioregsel = 0;
  s.id = IOAPIC_ID & ID_MASK;
  s.routeGeneration++;
  for (let pin: u32 = 0; pin < IOAPIC_PINS; pin++) {
    const e = entry(pin);
    e.vector = 0;
    e.delivery = <u8>DeliveryMode.Fixed;
    e.destMode = <u8>DestMode.Physical;
    e.polarity = <u8>Polarity.ActiveHigh;
    e.trigger = <u8>Trigger.Edge;
    e.masked = 1;
    e.remoteIrr = 0;
    e.dest = 0;
    // e.asserted stays: the line belongs to its source, which keeps driving it.
  }
}
