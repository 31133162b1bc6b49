// Interrupt delivery of the ioapic domain (DESIGN.md 3 and 6): each pin's
// route goes to microhv as a RouteIoapicPin request whenever the module's
// route generation changes (and all 24 at start, so a successor re-states
// them; microhv treats a repeat as a no-op), and each pin has an irqfd from
// EvtchnBindGsi. An MSI the module sends for a pin is one write of that
// pin's irqfd: KVM injects it through the route microhv installed. A pin
// whose new route microhv has not acknowledged yet holds its MSIs until it
// has, so no interrupt leaves with a stale vector or destination.
//
// Held MSIs live in this process only. A predecessor killed while holding one
// took it along, so a new instance, once microhv has acknowledged a pin's
// first route, sends one MSI on that pin if its line is asserted and its route
// unmasked: the interrupt a line still asks for is delivered at least once (a
// spurious one is possible, and handlers tolerate it), never lost.
import * as sys from '../../microhv/sys/index.js';
import type { RouteIoapicPin, TriggerMode } from '../../idl/generated/control.js';
import { IOAPIC_PINS } from '../../boot/layout.js';
import { RouteFlag, type IoapicExports } from './abi.js';
import { pinRoute, sameRoute, wiring, type PinRoute } from './ioapic-routes.js';

export interface DeliveryChannel {
  /** EvtchnBindGsi: the eventfd that injects GSI `gsi` (an irqfd). */
  bindGsi(gsi: number, trigger: TriggerMode): Promise<number>;
  /** RouteIoapicPin, resolved on microhv's Ack. */
  routePin(route: Omit<RouteIoapicPin, 'guestId'>): Promise<void>;
  /** The pin's line level now (the lines page), for the first-route kick; none: no line sources. */
  lineLevel?(pin: number): 0 | 1;
  warn(text: string): void;
}

export interface DeliveryCounters { delivered: number; held: number; unmatched: number; unrepresentable: number; undeliverable: number; route_errors: number; routes_sent: number; restart_kicks: number }

export class IoapicDelivery {
  readonly counters: DeliveryCounters = { delivered: 0, held: 0, unmatched: 0, unrepresentable: 0, undeliverable: 0, route_errors: 0, routes_sent: 0, restart_kicks: 0 };
  /** Pins whose first route this instance has had acknowledged. */
  private readonly settled: boolean[] = new Array<boolean>(IOAPIC_PINS).fill(false);
  private readonly irqfds: Array<number | undefined> = [];
  private readonly sent: Array<PinRoute['request'] | undefined> = [];
  private readonly inflight: number[] = new Array<number>(IOAPIC_PINS).fill(0);
  private readonly held: number[] = new Array<number>(IOAPIC_PINS).fill(0);
  private generation: number | undefined;
  private readonly warned = new Set<string>();

  constructor(private readonly ex: IoapicExports, private readonly ch: DeliveryChannel) {}

  /** Binds every pin's irqfd. False when microhv refused (an older core): MSIs are then counted, not sent. */
  async bind(): Promise<boolean> {
    try {
      for (let pin = 0; pin < IOAPIC_PINS; pin++) this.irqfds[pin] = await this.ch.bindGsi(pin, wiring(pin).trigger);
      return true;
    } catch (e) {
      this.warnOnce('bind', `interrupt delivery unavailable: EvtchnBindGsi failed (${e instanceof Error ? e.message : String(e)})`);
      return false;
    }
  }

  /** Sends the routes that changed since the last call (all of them the first time). */
  sync(): void {
    const gen = this.ex.route_generation();
    if (gen === this.generation) return;
    this.generation = gen;
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const r = this.routeOf(pin);
      const prev = this.sent[pin];
      if (prev !== undefined && sameRoute(prev, r.request)) continue;
      if (r.unrepresentable !== undefined) {
        this.counters.unrepresentable++;
        this.warnOnce(r.unrepresentable, `pin ${pin}: a ${r.unrepresentable} entry has no RouteIoapicPin form; routed masked`);
      }
      this.sent[pin] = r.request;
      this.inflight[pin] = (this.inflight[pin] ?? 0) + 1;
      this.counters.routes_sent++;
      this.ch.routePin(r.request).then(
        () => this.acked(pin),
        (e: unknown) => {
          this.counters.route_errors++;
          this.warnOnce(`route-${pin}`, `pin ${pin}: RouteIoapicPin failed: ${e instanceof Error ? e.message : String(e)}`);
          // Forget it, so the next change re-sends this pin.
          this.sent[pin] = undefined;
          this.acked(pin);
        },
      );
    }
  }

  /** The module's msi import: one MSI for whichever pin routes to (addr, data) now. */
  msi(addr: bigint, data: number): void {
    const pin = this.pinFor(addr, data);
    if (pin === undefined) {
      this.counters.unmatched++;
      this.warnOnce('unmatched', `MSI ${addr.toString(16)}/${data.toString(16)} matches no unmasked pin; dropped`);
      return;
    }
    const sent = this.sent[pin];
    if ((this.inflight[pin] ?? 0) > 0 || sent === undefined || !sameRoute(sent, this.routeOf(pin).request)) {
      // The route that produced this MSI is not installed yet: hold it until microhv acknowledges.
      this.held[pin] = (this.held[pin] ?? 0) + 1;
      this.counters.held++;
      return;
    }
    this.fire(pin);
  }

  private routeOf(pin: number): PinRoute {
    return pinRoute(pin, this.ex.route_addr(pin), this.ex.route_data(pin), this.ex.route_flags(pin));
  }

  private pinFor(addr: bigint, data: number): number | undefined {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      if ((this.ex.route_flags(pin) & RouteFlag.Masked) !== 0) continue;
      if (this.ex.route_addr(pin) === addr && this.ex.route_data(pin) === data) return pin;
    }
    return undefined;
  }

  private acked(pin: number): void {
    this.inflight[pin] = Math.max(0, (this.inflight[pin] ?? 0) - 1);
    if (this.inflight[pin] !== 0) return;
    let n = this.held[pin] ?? 0;
    this.held[pin] = 0;
    if (!this.settled[pin]) {
      this.settled[pin] = true;
      // What a killed predecessor may have been holding (see the file comment).
      const sent = this.sent[pin];
      if (n === 0 && sent !== undefined && !sent.masked && this.ch.lineLevel?.(pin) === 1) {
        this.counters.restart_kicks++;
        n = 1;
      }
    }
    // Edge MSIs held meanwhile coalesce into one, as an edge the LAPIC has not accepted yet would.
    if (n > 0) this.fire(pin);
  }

  private fire(pin: number): void {
    const fd = this.irqfds[pin];
    const sent = this.sent[pin];
    if (fd === undefined || sent === undefined || sent.masked) {
      this.counters.undeliverable++;
      this.warnOnce('undeliverable', `pin ${pin}: MSI not delivered (${fd === undefined ? 'no irqfd' : 'no installed route'})`);
      return;
    }
    sys.eventfdWrite(fd, 1n);
    this.counters.delivered++;
  }

  private warnOnce(key: string, text: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.ch.warn(text);
  }
}
