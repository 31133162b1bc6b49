import { describe, expect, test } from 'vitest';
import * as sys from '../../microhv/sys/index.js';
import { RouteFlag, type IoapicExports } from './abi.js';
import { IoapicDelivery, type DeliveryChannel } from './ioapic-delivery.js';

const MSI = 0xfee0_0000n;

/** The route exports of a module whose pin 4 routes to vector 0x24 (unmasked) once `unmask()` runs. */
function fakeIoapic(): { ex: IoapicExports; unmask(vector: number): void } {
  let generation = 1;
  let vector = 0;
  let masked = true;
  const ex = {
    route_generation: () => generation,
    route_addr: () => MSI,
    route_data: (pin: number) => (pin === 4 ? vector : 0),
    route_flags: (pin: number) => (pin === 4 && !masked ? RouteFlag.Deliverable : RouteFlag.Masked),
  } as unknown as IoapicExports;
  return { ex, unmask: (v) => { vector = v; masked = false; generation++; } };
}

/** A microhv that answers every request when `ack()` is called. */
function fakeChannel(irqfd: number): DeliveryChannel & { acks: Array<() => void>; routes: number[] } {
  const acks: Array<() => void> = [];
  const routes: number[] = [];
  return {
    acks, routes,
    bindGsi: () => Promise.resolve(irqfd),
    routePin: (r) => { routes.push(r.pin); return new Promise<void>((resolve) => acks.push(resolve)); },
    warn: () => undefined,
  };
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));
const count = (fd: number): bigint => { try { return sys.eventfdRead(fd); } catch { return 0n; } };

describe('IoapicDelivery', () => {
  test('states_every_pin_at_start_then_only_the_pins_that_change', async () => {
    const fd = sys.eventfd(0, sys.consts.EFD_NONBLOCK | sys.consts.EFD_CLOEXEC);
    const io = fakeIoapic();
    const ch = fakeChannel(fd);
    const d = new IoapicDelivery(io.ex, ch);
    await d.bind();
    d.sync();
    expect(ch.routes.length).toBe(24);
    d.sync(); // same generation: nothing
    io.unmask(0x24);
    d.sync();
    expect(ch.routes.slice(24)).toEqual([4]);
    sys.close(fd);
  });

  test('an_msi_waits_for_microhv_to_acknowledge_its_route_then_fires_the_irqfd', async () => {
    const fd = sys.eventfd(0, sys.consts.EFD_NONBLOCK | sys.consts.EFD_CLOEXEC);
    const io = fakeIoapic();
    const ch = fakeChannel(fd);
    const d = new IoapicDelivery(io.ex, ch);
    await d.bind();
    d.sync();
    for (const a of ch.acks.splice(0)) a();
    await flush();
    io.unmask(0x24);
    // The module delivers in the same guest write that unmasked the pin, before the route is sent.
    d.msi(MSI, 0x24);
    d.sync();
    expect(count(fd)).toBe(0n);
    expect(d.counters.held).toBe(1);
    for (const a of ch.acks.splice(0)) a();
    await flush();
    expect(count(fd)).toBe(1n);
    // With the route installed, the next MSI goes out at once.
    d.msi(MSI, 0x24);
    expect(count(fd)).toBe(1n);
    sys.close(fd);
  });

  test('an_msi_that_matches_no_unmasked_pin_is_counted_and_dropped', async () => {
    const fd = sys.eventfd(0, sys.consts.EFD_NONBLOCK | sys.consts.EFD_CLOEXEC);
    const d = new IoapicDelivery(fakeIoapic().ex, fakeChannel(fd));
    await d.bind();
    d.msi(MSI, 0x99);
    expect(d.counters.unmatched).toBe(1);
    expect(count(fd)).toBe(0n);
    sys.close(fd);
  });

  test('a_new_instance_sends_one_msi_on_an_asserted_unmasked_pin_once_its_first_route_is_acknowledged', async () => {
    // Arrange: pin 4 unmasked with its line high (a predecessor may have died holding its MSI); pin 5 low.
    const fd = sys.eventfd(0, sys.consts.EFD_NONBLOCK | sys.consts.EFD_CLOEXEC);
    const io = fakeIoapic();
    io.unmask(0x24);
    const ch = { ...fakeChannel(fd), lineLevel: (pin: number): 0 | 1 => (pin === 4 ? 1 : 0) };
    const d = new IoapicDelivery(io.ex, ch);
    await d.bind();
    d.sync();
    expect(count(fd)).toBe(0n);
    // Act
    for (const a of ch.acks.splice(0)) a();
    await flush();
    // Assert: exactly one, and only at the first acknowledgement.
    expect(count(fd)).toBe(1n);
    expect(d.counters.restart_kicks).toBe(1);
    io.unmask(0x25);
    d.sync();
    for (const a of ch.acks.splice(0)) a();
    await flush();
    expect(count(fd)).toBe(0n);
    sys.close(fd);
  });
});
