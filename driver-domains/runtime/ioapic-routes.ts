// From the ioapic module's routes (route_addr/route_data/route_flags: the MSI
// each pin would send now, Intel SDM vol. 3, 11.11) to microhv's semantic
// RouteIoapicPin request (DESIGN.md 6: pin, vector, edge or level, delivery
// mode, physical destination; enums, never raw bits). microhv composes the
// KVM MSI route from it again; the module keeps remote IRR and polarity.
import { DeliveryMode, Polarity, TriggerMode, type RouteIoapicPin } from '../../idl/generated/control.js';
import { IOAPIC_PINS, PCI_INTX_GSI_BASE, SCI_IRQ } from '../../boot/layout.js';
import { RouteFlag } from './abi.js';

// Intel SDM vol. 3, 11.11.1 Message Address Register Format and 11.11.2 Message Data Register Format.
const ADDR_DEST_SHIFT = 12n;
const ADDR_DM_LOGICAL = 1n << 2n;
const DATA_VECTOR = 0xff;
const DATA_DELIVERY_SHIFT = 8;

/** Why a pin's route went to microhv masked although the guest unmasked it. */
export type Unrepresentable = 'logical-destination' | 'delivery-mode' | 'vector';

export interface PinRoute {
  readonly request: Omit<RouteIoapicPin, 'guestId'>;
  /** Set when the guest's entry cannot be expressed as a RouteIoapicPin and was sent masked. */
  readonly unrepresentable?: Unrepresentable;
}

/**
 * How this platform wires each pin (boot/layout.ts: the SCI and PCI INTx lines are active-low and
 * level, ISA lines active-high and edge). RouteIoapicPin carries it for microhv's records; the
 * module applies the polarity the guest programmed.
 */
export function wiring(pin: number): { polarity: Polarity; trigger: TriggerMode } {
  const pciOrSci = pin === SCI_IRQ || pin >= PCI_INTX_GSI_BASE;
  return pciOrSci
    ? { polarity: Polarity.POLARITY_ACTIVE_LOW, trigger: TriggerMode.TRIGGER_MODE_LEVEL }
    : { polarity: Polarity.POLARITY_ACTIVE_HIGH, trigger: TriggerMode.TRIGGER_MODE_EDGE };
}

function deliveryMode(bits: number): DeliveryMode | undefined {
  switch (bits) {
    case 0b000: return DeliveryMode.DELIVERY_MODE_FIXED;
    case 0b001: return DeliveryMode.DELIVERY_MODE_LOWEST_PRIORITY;
    case 0b100: return DeliveryMode.DELIVERY_MODE_NMI;
    default: return undefined; // SMI, INIT, ExtINT and the reserved modes have no semantic route
  }
}

/** The RouteIoapicPin for `pin`, given what the module reports for it. */
export function pinRoute(pin: number, addr: bigint, data: number, flags: number): PinRoute {
  if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PINS) throw new RangeError(`pin ${pin}`);
  const trigger = (flags & RouteFlag.Level) !== 0 ? TriggerMode.TRIGGER_MODE_LEVEL : TriggerMode.TRIGGER_MODE_EDGE;
  const vector = data & DATA_VECTOR;
  const delivery = deliveryMode((data >>> DATA_DELIVERY_SHIFT) & 0b111);
  const base = {
    pin, vector, trigger, polarity: wiring(pin).polarity,
    delivery: delivery ?? DeliveryMode.DELIVERY_MODE_FIXED, destApicId: Number((addr >> ADDR_DEST_SHIFT) & 0xffn),
  };
  const masked = (flags & RouteFlag.Masked) !== 0;
  // GUEST-INPUT: the redirection entry is the guest's; what microhv cannot route exactly is sent masked.
  let unrepresentable: Unrepresentable | undefined;
  if ((addr & ADDR_DM_LOGICAL) !== 0n) unrepresentable = 'logical-destination';
  else if (delivery === undefined) unrepresentable = 'delivery-mode';
  else if (vector < 16 || (flags & RouteFlag.Deliverable) === 0) unrepresentable = 'vector';
  if (!masked && unrepresentable === undefined) return { request: { ...base, masked: false } };
  // A masked route is removed at microhv and its other fields are unused; the vector is kept in
  // the IDL's 16..255 so the request stays valid (a power-on entry has vector 0).
  const request = { ...base, vector: Math.max(vector, 16), masked: true };
  return masked ? { request } : { request, unrepresentable };
}

/** Equality of two requests, to send only the pins that changed. */
export function sameRoute(a: PinRoute['request'], b: PinRoute['request']): boolean {
  return a.pin === b.pin && a.vector === b.vector && a.trigger === b.trigger && a.polarity === b.polarity
    && a.delivery === b.delivery && a.destApicId === b.destApicId && a.masked === b.masked;
}
