import { describe, expect, test } from 'vitest';
import { byteSum } from '../bytes.js';
import { BootError } from '../errors.js';
import { ACPI_TABLES, ACPI_TABLES_END, SCI_IRQ } from '../layout.js';
import { buildAcpiTables, type AcpiTable } from './index.js';
import { Polarity, SOURCE_OVERRIDES, Trigger, intiFlags } from './tables.js';

const built = buildAcpiTables({ vcpus: 4, base: ACPI_TABLES });
const get = (sig: string): AcpiTable => {
  const t = built.tables.find((x) => x.signature === sig);
  if (!t) throw new Error(`no ${sig}`);
  return t;
};
const view = (t: AcpiTable): Buffer => Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);

describe('ACPI tables', () => {
  test('every_standard_table_sums_to_zero_and_states_its_own_length', () => {
    for (const t of built.tables.filter((x) => !['RSD PTR', 'FACS'].includes(x.signature))) {
      expect(byteSum(t.bytes), t.signature).toBe(0);
      expect(view(t).readUInt32LE(4), t.signature).toBe(t.bytes.byteLength);
      expect(view(t).toString('latin1', 0, 4)).toBe(t.signature);
    }
  });

  test('rsdp_checksums_cover_the_first_20_bytes_and_all_36', () => {
    const r = get('RSD PTR');
    expect(view(r).toString('latin1', 0, 8)).toBe('RSD PTR ');
    expect(byteSum(r.bytes.subarray(0, 20))).toBe(0);
    expect(byteSum(r.bytes)).toBe(0);
    expect(r.bytes[15]).toBe(2); // revision 2: XSDT present
  });

  test('rsdp_is_where_linux_scans_and_points_at_the_xsdt', () => {
    expect(built.rsdp % 16).toBe(0);
    expect(built.rsdp).toBeGreaterThanOrEqual(0xe0000);
    expect(built.rsdp + 36).toBeLessThanOrEqual(0x100000);
    expect(view(get('RSD PTR')).readBigUInt64LE(24)).toBe(BigInt(get('XSDT').gpa));
  });

  test('xsdt_points_at_each_table_and_the_fadt_at_the_dsdt_and_facs', () => {
    const x = view(get('XSDT'));
    const entries = Array.from({ length: (x.length - 36) / 8 }, (_, i) => Number(x.readBigUInt64LE(36 + 8 * i)));
    expect(entries.sort()).toEqual([get('FACP').gpa, get('APIC').gpa, get('MCFG').gpa].sort());
    const f = view(get('FACP'));
    expect(f.readUInt32LE(36)).toBe(get('FACS').gpa);
    expect(f.readUInt32LE(40)).toBe(get('DSDT').gpa);
    expect(Number(f.readBigUInt64LE(140))).toBe(get('DSDT').gpa);
    expect(get('FACS').gpa % 64).toBe(0);
  });

  test('tables_fit_their_area_without_overlapping', () => {
    const sorted = [...built.tables].sort((a, b) => a.gpa - b.gpa);
    sorted.forEach((t, i) => {
      const next = sorted[i + 1];
      expect(t.gpa + t.bytes.byteLength).toBeLessThanOrEqual(next ? next.gpa : ACPI_TABLES_END);
    });
  });

  test('madt_lists_one_enabled_lapic_per_vcpu_with_ascending_apic_ids', () => {
    const m = view(get('APIC'));
    const lapics: number[] = [];
    for (let off = 44; off < m.length; off += m[off + 1] ?? 1) {
      if (m[off] === 0) {
        expect(m.readUInt32LE(off + 4) & 1).toBe(1);
        lapics.push(m[off + 3] ?? -1);
      }
    }
    expect(lapics).toEqual([0, 1, 2, 3]);
  });

  test('accepts_255_vcpus_within_the_acpi_area', () => {
    const big = buildAcpiTables({ vcpus: 255, base: ACPI_TABLES });
    const last = [...big.tables].sort((a, b) => b.gpa - a.gpa)[0];
    expect((last?.gpa ?? Infinity) + (last?.bytes.byteLength ?? 0)).toBeLessThanOrEqual(ACPI_TABLES_END);
  });

  test.each([0, 256, 1.5])('rejects_%s_vcpus', (vcpus) => {
    expect(() => buildAcpiTables({ vcpus, base: ACPI_TABLES })).toThrow(BootError);
  });
});

describe('interrupt source overrides', () => {
  test('encode_polarity_in_bits_1_0_and_trigger_in_bits_3_2', () => {
    // ACPI 6.5 Table 5.26: active-low = 11b, level = 11b; active-high = 01b, edge = 01b.
    expect(intiFlags(Polarity.ActiveLow, Trigger.Level)).toBe(0b1111);
    expect(intiFlags(Polarity.ActiveHigh, Trigger.Edge)).toBe(0b0101);
    expect(intiFlags(Polarity.ActiveLow, Trigger.Edge)).toBe(0b0111);
  });

  test('sci_is_level_active_low_and_irq0_goes_to_gsi2', () => {
    expect(SOURCE_OVERRIDES).toContainEqual({ irq: SCI_IRQ, gsi: SCI_IRQ, polarity: Polarity.ActiveLow, trigger: Trigger.Level });
    expect(SOURCE_OVERRIDES.find((o) => o.irq === 0)?.gsi).toBe(2);
  });

  test('madt_carries_the_encoded_flags_of_each_override', () => {
    const m = view(get('APIC'));
    const found: Record<number, number> = {};
    for (let off = 44; off < m.length; off += m[off + 1] ?? 1) if (m[off] === 2) found[m[off + 3] ?? -1] = m.readUInt16LE(off + 8);
    expect(found).toEqual({ 0: 0b0101, [SCI_IRQ]: 0b1111 });
  });
});
