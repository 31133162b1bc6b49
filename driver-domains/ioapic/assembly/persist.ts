// The ioapic domain's state: everything it needs to resume lives here, at fixed addresses
// in STATE (../../common/assembly/memory.ts). The runtime persists [STATE_BASE,
// STATE_BASE + STATE_SIZE) and a restarted instance continues from it; remote IRR in
// particular must survive (DESIGN.md 6), or a level line shared by several devices hangs.
import { STATE_BASE } from "../../common/assembly/memory";
import { IOAPIC_PINS } from "../../common/assembly/layout";

/** Bumped whenever this layout changes; a state image of another layout is refused. */
export const LAYOUT_REVISION: u32 = 1;

@unmanaged export class IoapicState {
  magic: u32;
  layout: u32;
  /** IOREGSEL, bits 7:0. */
  ioregsel: u32;
  /** IOAPICID bits 27:24. */
  id: u32;
  /** Bumped on every redirection-entry write and on reset, so the runtime knows to re-read routes. */
  routeGeneration: u32;
}

/** One redirection entry, held decoded (regs.ts enums stored as u8). */
@unmanaged export class Entry {
  vector: u8;
  delivery: u8;   // DeliveryMode
  destMode: u8;   // DestMode
  polarity: u8;   // Polarity
  trigger: u8;    // Trigger as programmed
  masked: u8;
  remoteIrr: u8;
  dest: u8;
  /** The source's logical line level from set_irq (1 = requesting); survives reset. */
  asserted: u8;
}

export const ENTRY_SIZE: usize = offsetof<Entry>();
// Written as plain constant expressions (no calls) so that the compiler folds them and
// no global is initialised at start-up.
export const ENTRIES_BASE: usize = (STATE_BASE + offsetof<IoapicState>() + 7) & ~(<usize>7);
export const COUNTERS_BASE: usize = (ENTRIES_BASE + ENTRY_SIZE * <usize>IOAPIC_PINS + 7) & ~(<usize>7);

/** Counter ids (driver-domains/runtime/abi.ts IoapicCounter mirrors them). */
export const C_INVALID_ACCESS: u32 = 0;
export const C_MSI_SENT: u32 = 1;
export const C_DROPPED_DELIVERY: u32 = 2;
export const C_BAD_PIN: u32 = 3;
export const COUNTER_COUNT: u32 = 4;

export const STATE_END: usize = COUNTERS_BASE + (<usize>COUNTER_COUNT << 3);
export const STATE_SIZE: u32 = <u32>(STATE_END - STATE_BASE);

// @ts-ignore: decorator
@inline export function state(): IoapicState {
  return changetype<IoapicState>(STATE_BASE);
}

/** `pin` must be below IOAPIC_PINS. */
// @ts-ignore: decorator
@inline export function entry(pin: u32): Entry {
  return changetype<Entry>(ENTRIES_BASE + ENTRY_SIZE * <usize>pin);
}
