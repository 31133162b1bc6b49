import { describe, expect, test } from 'vitest';
import { DeliveryMode, Polarity, TriggerMode } from '../../idl/generated/control.js';
import { RouteFlag } from './abi.js';
import { pinRoute } from './ioapic-routes.js';

const MSI = 0xfee0_0000n;
const dest = (id: number): bigint => MSI | (BigInt(id) << 12n);

describe('pinRoute', () => {
  test('a_physical_fixed_level_entry_becomes_its_semantic_route', () => {
    const r = pinRoute(4, dest(1), 0x24 | (1 << 15) | (1 << 14), RouteFlag.Level | RouteFlag.Deliverable);
    expect(r).toEqual({ request: {
      pin: 4, vector: 0x24, trigger: TriggerMode.TRIGGER_MODE_LEVEL, polarity: Polarity.POLARITY_ACTIVE_HIGH,
      delivery: DeliveryMode.DELIVERY_MODE_FIXED, destApicId: 1, masked: false,
    } });
  });

  test('lowest_priority_and_nmi_keep_their_delivery_mode', () => {
    expect(pinRoute(1, dest(0), 0x31 | (0b001 << 8), RouteFlag.Deliverable).request.delivery).toBe(DeliveryMode.DELIVERY_MODE_LOWEST_PRIORITY);
    expect(pinRoute(1, dest(0), 0x02 | (0b100 << 8), RouteFlag.Deliverable).request.delivery).toBe(DeliveryMode.DELIVERY_MODE_NMI);
  });

  test('sci_and_pci_pins_are_wired_active_low', () => {
    expect(pinRoute(9, dest(0), 0x30, RouteFlag.Deliverable).request.polarity).toBe(Polarity.POLARITY_ACTIVE_LOW);
    expect(pinRoute(16, dest(0), 0x30, RouteFlag.Deliverable).request.polarity).toBe(Polarity.POLARITY_ACTIVE_LOW);
    expect(pinRoute(3, dest(0), 0x30, RouteFlag.Deliverable).request.polarity).toBe(Polarity.POLARITY_ACTIVE_HIGH);
  });

  test('a_masked_power_on_entry_is_sent_masked_with_a_valid_vector', () => {
    expect(pinRoute(0, MSI, 0, RouteFlag.Masked).request).toMatchObject({ masked: true, vector: 16 });
    expect(pinRoute(0, MSI, 0, RouteFlag.Masked).unrepresentable).toBeUndefined();
  });

  test('a_logical_destination_is_sent_masked_and_reported', () => {
    const r = pinRoute(5, MSI | (1n << 12n) | (1n << 2n), 0x31, RouteFlag.Deliverable);
    expect(r.request.masked).toBe(true);
    expect(r.unrepresentable).toBe('logical-destination');
  });

  test('extint_and_undeliverable_vectors_are_sent_masked_and_reported', () => {
    expect(pinRoute(2, dest(0), 0x30 | (0b111 << 8), 0).unrepresentable).toBe('delivery-mode');
    expect(pinRoute(2, dest(0), 0x05, 0).unrepresentable).toBe('vector');
  });

  test('refuses_a_pin_outside_the_chip', () => {
    expect(() => pinRoute(24, MSI, 0x30, 0)).toThrow(RangeError);
  });
});
