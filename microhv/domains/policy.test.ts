import { describe, expect, test } from 'vitest';
import { Capability, Role } from '../../idl/generated/control.js';
import { ROLE_POLICY, type StubRole } from './policy.js';

const ROLES: StubRole[] = [Role.ROLE_CONSOLE, Role.ROLE_IOAPIC];

describe('role policy: interrupt lines', () => {
  test('console_drives_lines_as_source_bit_0', () => {
    expect(ROLE_POLICY[Role.ROLE_CONSOLE].lines).toEqual({ source: true, bit: 0 });
  });

  test('ioapic_reads_lines_and_owns_no_bit', () => {
    expect(ROLE_POLICY[Role.ROLE_IOAPIC].lines).toEqual({ source: false });
  });

  test('every_role_with_a_lines_side_holds_the_capability', () => {
    for (const role of ROLES) expect(ROLE_POLICY[role].capabilities).toContain(Capability.CAPABILITY_IRQ_LINES);
  });

  test('source_bits_are_distinct_and_fit_a_32_bit_mask', () => {
    const bits = ROLES.flatMap((r) => { const l = ROLE_POLICY[r].lines; return l.source ? [l.bit] : []; });
    expect(new Set(bits).size).toBe(bits.length);
    for (const b of bits) expect(b >= 0 && b < 32).toBe(true);
  });
});
