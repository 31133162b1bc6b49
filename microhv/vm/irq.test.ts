import { describe, expect, test } from 'vitest';
import { msiForPin } from './irq.js';

describe('msiForPin', () => {
  test('edge_fixed_route_to_apic_3_has_no_trigger_bits', () => {
    const m = msiForPin({ vector: 0x31, trigger: 'edge', delivery: 'fixed', destApicId: 3, masked: false });
    expect(m.addressLo).toBe(0xfee0_3000);
    expect(m.data).toBe(0x31);
  });

  test('level_route_sets_trigger_and_assert_so_kvm_reports_its_eoi', () => {
    const m = msiForPin({ vector: 0x41, trigger: 'level', delivery: 'lowest-priority', destApicId: 0, masked: false });
    expect(m.data).toBe(0x41 | (1 << 8) | (1 << 14) | (1 << 15));
  });

  test('rejects_vectors_below_16_and_apic_ids_above_255', () => {
    expect(() => msiForPin({ vector: 15, trigger: 'edge', delivery: 'fixed', destApicId: 0, masked: false })).toThrow(/vector 15/);
    expect(() => msiForPin({ vector: 32, trigger: 'edge', delivery: 'fixed', destApicId: 256, masked: false })).toThrow(/APIC id 256/);
  });
});
