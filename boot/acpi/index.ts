// Lays the ACPI tables out from a base address (layout.ACPI_TABLES) and links them:
// RSDP -> XSDT -> FADT, MADT, MCFG; FADT -> DSDT, FACS.
import { BootError } from '../errors.js';
import { ACPI_TABLES_END } from '../layout.js';
import { dsdt } from './dsdt.js';
import { facs, fadt, madt, MAX_VCPUS, mcfg, rsdp, xsdt } from './tables.js';
import type { AcpiTable } from './table.js';

export type { AcpiTable } from './table.js';
export { MAX_VCPUS } from './tables.js';

export interface AcpiOptions { readonly vcpus: number; readonly base: number }
export interface AcpiTables { readonly rsdp: number; readonly tables: readonly AcpiTable[] }

const align = (v: number, a: number): number => Math.ceil(v / a) * a;

export function buildAcpiTables(o: AcpiOptions): AcpiTables {
  if (!Number.isInteger(o.vcpus) || o.vcpus < 1 || o.vcpus > MAX_VCPUS) {
    throw new BootError('BAD_VCPU_COUNT', `${o.vcpus} vCPUs: the MADT describes 1..${MAX_VCPUS} xAPIC processors`);
  }
  // Fixed order, each 64-byte aligned (the FACS must be; the RSDP needs 16 for the scan).
  // Tables that point at others are built after them, so every address is known.
  let next = o.base;
  const place = (size: number): number => { const at = next; next = align(next + size, 64); return at; };
  const rsdpAt = place(36);
  const d = dsdt(o.vcpus);
  const dAt = place(d.byteLength);
  const f = facs();
  const fAt = place(f.byteLength);
  const fadtBytes = fadt(dAt, fAt);
  const fadtAt = place(fadtBytes.byteLength);
  const m = madt(o.vcpus);
  const mAt = place(m.byteLength);
  const c = mcfg();
  const cAt = place(c.byteLength);
  const x = xsdt([fadtAt, mAt, cAt]);
  const xAt = place(x.byteLength);
  if (next > ACPI_TABLES_END) throw new Error(`ACPI tables overflow their area (end 0x${next.toString(16)})`);
  return {
    rsdp: rsdpAt,
    tables: [
      { signature: 'RSD PTR', gpa: rsdpAt, bytes: rsdp(xAt) },
      { signature: 'DSDT', gpa: dAt, bytes: d },
      { signature: 'FACS', gpa: fAt, bytes: f },
      { signature: 'FACP', gpa: fadtAt, bytes: fadtBytes },
      { signature: 'APIC', gpa: mAt, bytes: m },
      { signature: 'MCFG', gpa: cAt, bytes: c },
      { signature: 'XSDT', gpa: xAt, bytes: x },
    ],
  };
}
