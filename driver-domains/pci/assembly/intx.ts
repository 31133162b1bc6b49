// INTx (PCI 3.0, 6.2.4 and 2.2.6): each function's pin is wired to an IO-APIC input exactly as
// the DSDT's _PRT says, by boot/layout.ts pciIntxGsi(slot, pin) with pin 0..3 for INTA#..INTD#:
// GSI = 16 + (slot + pin) % 8. Functions that share a GSI share the wire, so the level sent
// with set_pin is the OR of their requests, and it changes only when that OR does.
//
// A function drives its pin while its backend requests (intx_set), Interrupt Disable is clear
// (6.2.2, bit 10) and MSI-X is off (6.8.2.3: with MSI-X enabled the function must not use
// INTx#). Interrupt Status (6.2.3, bit 3) shows the request whatever gates it.
import { set_pin } from "../../common/assembly/host";
import { IOAPIC_PINS, PCI_INTX_GSI_BASE } from "../../common/assembly/layout";
import { counterBump } from "../../common/assembly/memory";
import { CMD_INTX_DISABLE, SLOTS } from "./regs";
import { COUNTERS_BASE, CONFIG_BASE, C_INTX_CHANGED, deviceConfig, deviceRegs, state } from "./persist";
import { msixEnabled } from "./msix";
import { badHostCall } from "./errors";

const INTX_GSIS: u32 = IOAPIC_PINS - PCI_INTX_GSI_BASE;

/** The GSI of `slot`'s pin, or 0 if it has none (GSI 0 is never a PCI line). */
export function intxGsi(slot: u32): u32 {
  if (slot >= SLOTS) return 0;
  const d = deviceConfig(CONFIG_BASE, slot);
  if (d.present == 0 || d.pin == 0) return 0;
  return PCI_INTX_GSI_BASE + (slot + <u32>d.pin - 1) % INTX_GSIS;
}

function drives(slot: u32): bool {
  const r = deviceRegs(slot);
  return r.intxAsserted != 0 && (<u32>r.command & CMD_INTX_DISABLE) == 0 && !msixEnabled(slot);
}

/** Recomputes every PCI line and sends the ones whose level changed. */
export function updateLines(): void {
  let lines: u32 = 0;
  for (let slot: u32 = 0; slot < SLOTS; slot++) {
    const gsi = intxGsi(slot);
    if (gsi != 0 && drives(slot)) lines |= <u32>1 << (gsi - PCI_INTX_GSI_BASE);
  }
  const s = state();
  const changed = s.intxLines ^ lines;
  // Recorded before the calls out, so that the state is final whatever the host does.
  s.intxLines = lines;
  for (let i: u32 = 0; i < INTX_GSIS; i++) {
    if ((changed & (<u32>1 << i)) == 0) continue;
    counterBump(COUNTERS_BASE, C_INTX_CHANGED);
    set_pin(PCI_INTX_GSI_BASE + i, (lines >> i) & 1);
  }
}

/** The backend's request on `slot`'s pin; idempotent. */
export function intxSet(slot: u32, level: u32): void {
  if (intxGsi(slot) == 0) {
    badHostCall("pci: intx_set on a slot without an interrupt pin", <u64>slot);
    return;
  }
  deviceRegs(slot).intxAsserted = level != 0 ? 1 : 0;
  updateLines();
}
