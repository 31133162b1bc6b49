// Interrupt delivery: GSI routes and irqfds, as microhv's semantic requests
// (DESIGN.md 6). A domain says "route pin P as vector V, edge or level, to
// APIC ID A"; the core alone turns that into MSI address/data bits, so no raw
// redirection-table or ACPI encoding ever passes through. Routes for the 24
// IO-APIC pins are also how KVM's split irqchip learns which vectors are
// level-triggered and need KVM_EXIT_IOAPIC_EOI.
import * as sys from '../sys/index.js';
import type { GsiRoute, Vm } from '../kvm/index.js';
import { IOAPIC_PINS, LAPIC_BASE } from '../../boot/layout.js';

export type Trigger = 'edge' | 'level';
export type Delivery = 'fixed' | 'lowest-priority' | 'nmi';
export interface PinRoute { readonly vector: number; readonly trigger: Trigger; readonly delivery: Delivery; readonly destApicId: number; readonly masked: boolean }

export class IrqError extends Error {
  constructor(readonly code: 'BAD_ARGUMENT', message: string) {
    super(message);
    this.name = 'IrqError';
  }
}

// Intel SDM vol. 3, 11.11.1 (message address) and 11.11.2 (message data).
const DELIVERY_BITS: Record<Delivery, number> = { 'fixed': 0b000, 'lowest-priority': 0b001, 'nmi': 0b100 };
const DATA_LEVEL_ASSERT = 1 << 14;
const DATA_TRIGGER_LEVEL = 1 << 15;

/** The MSI a pin route becomes (physical destination mode). */
export function msiForPin(r: PinRoute): { addressLo: number; addressHi: number; data: number } {
  if (!Number.isInteger(r.vector) || r.vector < 16 || r.vector > 255) throw new IrqError('BAD_ARGUMENT', `vector ${r.vector} outside 16..255`);
  if (!Number.isInteger(r.destApicId) || r.destApicId < 0 || r.destApicId > 255) throw new IrqError('BAD_ARGUMENT', `APIC id ${r.destApicId} outside 0..255`);
  const level = r.trigger === 'level';
  return {
    addressLo: (LAPIC_BASE | (r.destApicId << 12)) >>> 0,
    addressHi: 0,
    data: r.vector | (DELIVERY_BITS[r.delivery] << 8) | (level ? DATA_TRIGGER_LEVEL | DATA_LEVEL_ASSERT : 0),
  };
}

/** First GSI of the MSI routes PCI functions' vectors get; 0..23 are the IO-APIC's pins. */
export const FIRST_MSI_GSI = IOAPIC_PINS;
/** MSI routes the core hands out (KVM allows 4096 routes in all). */
export const MAX_MSI_GSIS = 2048;

export class IrqRouting {
  private readonly routes = new Map<number, GsiRoute>();
  private readonly irqfds = new Map<number, number>();
  /** MSI GSIs with an irqfd attached, and its eventfd. */
  private readonly attached = new Map<number, number>();
  private nextMsiGsi = FIRST_MSI_GSI;

  constructor(private readonly vm: Vm) {}

  /** Routes (or, masked, unroutes) IO-APIC pin `pin`. */
  routePin(pin: number, r: PinRoute): void {
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PINS) throw new IrqError('BAD_ARGUMENT', `pin ${pin} outside 0..${IOAPIC_PINS - 1}`);
    if (r.masked) this.routes.delete(pin);
    else this.routes.set(pin, { kind: 'msi', gsi: pin, ...msiForPin(r) });
    this.vm.setGsiRouting([...this.routes.values()]);
  }

  /** An eventfd that injects GSI `gsi` when written (an irqfd). The same one for every caller of a GSI. */
  irqfd(gsi: number): number {
    if (!Number.isInteger(gsi) || gsi < 0 || gsi >= IOAPIC_PINS) throw new IrqError('BAD_ARGUMENT', `GSI ${gsi} outside 0..${IOAPIC_PINS - 1}`);
    let fd = this.irqfds.get(gsi);
    if (fd === undefined) {
      fd = sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK);
      this.vm.irqfd({ fd, gsi });
      this.irqfds.set(gsi, fd);
    }
    return fd;
  }

  /** A fresh GSI for an MSI route (a PCI function's vector); it keeps it for the guest's life. */
  allocateMsiGsi(): number {
    if (this.nextMsiGsi >= FIRST_MSI_GSI + MAX_MSI_GSIS) throw new IrqError('BAD_ARGUMENT', `more than ${MAX_MSI_GSIS} MSI vectors`);
    return this.nextMsiGsi++;
  }

  /**
   * MSI route `gsi` with the guest's address and data, and `fd` attached to it as its irqfd; or,
   * with `route` undefined, the irqfd detached and the route gone (signals then wait in the
   * eventfd's counter; KVM injects at the next attach if it is not zero). Idempotent.
   */
  setMsi(gsi: number, fd: number, route: { address: bigint; data: number } | undefined): void {
    if (!Number.isInteger(gsi) || gsi < FIRST_MSI_GSI || gsi >= this.nextMsiGsi) throw new IrqError('BAD_ARGUMENT', `GSI ${gsi} is not an allocated MSI GSI`);
    if (route === undefined) {
      if (this.attached.get(gsi) === fd) {
        this.vm.irqfd({ fd, gsi, deassign: true });
        this.attached.delete(gsi);
      }
      if (this.routes.delete(gsi)) this.vm.setGsiRouting([...this.routes.values()]);
      return;
    }
    // Intel SDM vol. 3, 11.11.1: an x86 MSI address is 0xFEExxxxx; nothing else may be programmed.
    if (route.address >> 20n !== 0xfeen || !Number.isInteger(route.data) || route.data < 0 || route.data > 0xffff) {
      throw new IrqError('BAD_ARGUMENT', `MSI address 0x${route.address.toString(16)} / data 0x${route.data.toString(16)} is not an x86 interrupt message`);
    }
    this.routes.set(gsi, { kind: 'msi', gsi, addressLo: Number(route.address & 0xffff_ffffn), addressHi: 0, data: route.data });
    this.vm.setGsiRouting([...this.routes.values()]);
    if (this.attached.get(gsi) !== fd) {
      this.vm.irqfd({ fd, gsi });
      this.attached.set(gsi, fd);
    }
  }
}
