// The ACPI tables disassemble cleanly with the reference tool (iasl -d, Debian acpica-tools),
// and the disassembly shows the values Linux relies on. A process test: it runs iasl.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildAcpiTables, type AcpiTable } from '../../boot/acpi/index.js';
import { ACPI_TABLES, PCI_ECAM } from '../../boot/layout.js';

const VCPUS = 3;
let dir: string;
let tables: readonly AcpiTable[];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'microhv-acpi-'));
  tables = buildAcpiTables({ vcpus: VCPUS, base: ACPI_TABLES }).tables;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `iasl -d` on one table; returns its exit status, its output and the .dsl it wrote. */
function disassemble(signature: string): { status: number; output: string; dsl: string } {
  const t = tables.find((x) => x.signature === signature);
  if (!t) throw new Error(`no ${signature} table`);
  const file = join(dir, `${signature.replace(/\W/g, '')}.dat`);
  writeFileSync(file, t.bytes);
  let status = 0;
  let output: string;
  try {
    output = execFileSync('iasl', ['-d', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string; code?: string };
    if (err.code === 'ENOENT') throw new Error('iasl is not installed (Debian package acpica-tools; `make setup` installs it)', { cause: e });
    status = err.status ?? -1;
    output = `${err.stdout ?? ''}${err.stderr ?? ''}`;
  }
  return { status, output, dsl: readFileSync(file.replace(/\.dat$/, '.dsl'), 'utf8') };
}

describe('iasl -d', () => {
  // Every table with the standard header. The RSDP has none, and Debian's iasl (20200925) refuses
  // to read one from a binary file; boot/acpi/acpi.test.ts checks its checksums and pointer.
  test.each(['XSDT', 'FACP', 'FACS', 'DSDT', 'APIC', 'MCFG'])('disassembles_%s_without_errors', (sig) => {
    const r = disassemble(sig);
    expect(r.status, r.output).toBe(0);
    expect(r.output).not.toMatch(/Error/i);
    expect(r.dsl).not.toMatch(/Error|Invalid|Warning/i);
  });

  test('madt_has_one_enabled_lapic_per_vcpu_and_the_ioapic', () => {
    const { dsl } = disassemble('APIC');
    expect(dsl.match(/Subtable Type : 00 \[Processor Local APIC\]/g)).toHaveLength(VCPUS);
    expect(dsl.match(/Processor Enabled : 1/g)).toHaveLength(VCPUS);
    expect(dsl).toMatch(/Subtable Type : 01 \[I\/O APIC\][\s\S]*?Address : FEC00000[\s\S]*?Interrupt : 00000000/);
    expect(dsl).toMatch(/Local Apic Address : FEE00000/);
  });

  test('madt_overrides_irq0_to_gsi2_edge_and_the_sci_level_active_low', () => {
    const { dsl } = disassemble('APIC');
    const overrides = dsl.split('Subtable Type : 02 [Interrupt Source Override]').slice(1);
    expect(overrides).toHaveLength(2);
    const irq0 = overrides.find((o) => /Source : 00\b/.test(o)) ?? '';
    expect(irq0).toMatch(/Interrupt : 00000002/);
    expect(irq0).toMatch(/Trigger Mode : 1/);
    const sci = overrides.find((o) => /Source : 09\b/.test(o)) ?? '';
    expect(sci).toMatch(/Interrupt : 00000009/);
    expect(sci).toMatch(/Polarity : 3/);
    expect(sci).toMatch(/Trigger Mode : 3/);
  });

  test('mcfg_names_the_ecam_base_and_bus_0_only', () => {
    const { dsl } = disassemble('MCFG');
    expect(dsl).toMatch(new RegExp(`Base Address : 00000000${PCI_ECAM.base.toString(16).toUpperCase()}`));
    expect(dsl).toMatch(/Start Bus Number : 00/);
    expect(dsl).toMatch(/End Bus Number : 00/);
  });

  test('fadt_has_the_sci_pm_blocks_and_is_not_hardware_reduced', () => {
    const { dsl } = disassemble('FACP');
    expect(dsl).toMatch(/SCI Interrupt : 0009/);
    expect(dsl).toMatch(/PM1A Event Block Address : 00000600/);
    expect(dsl).toMatch(/PM1A Control Block Address : 00000604/);
    expect(dsl).toMatch(/PM Timer Block Address : 00000608/);
    expect(dsl).toMatch(/Hardware Reduced \(V5\) : 0/);
    // The i8042 is a reset port only; announcing a keyboard controller makes Linux probe it for tens of seconds.
    expect(dsl).toMatch(/8042 Present on ports 60\/64 \(V2\) : 0/);
  });

  test('fadt_forces_physical_apic_destination_mode', () => {
    const { dsl } = disassemble('FACP');
    // RouteIoapicPin names a physical APIC id only, so the guest must not program logical mode.
    expect(dsl).toMatch(/Use APIC Physical Destination Mode \(V4\) : 1/);
  });

  test('dsdt_declares_s5_the_pci_host_bridge_com1_and_each_cpu', () => {
    const { dsl } = disassemble('DSDT');
    expect(dsl).toMatch(/Name \(_S5, Package \(0x04\)/);
    expect(dsl).toMatch(/EisaId \("PNP0A08"\)/);
    expect(dsl).toMatch(/EisaId \("PNP0501"\)/);
    expect(dsl).toMatch(/IO \(Decode16,\s*0x03F8,\s*\/\/ Range Minimum\s*0x03F8,/);
    expect(dsl).toMatch(/IRQNoFlags \(\)\s*\{4\}/);
    expect(dsl).toMatch(/0xC0000000,\s*\/\/ Range Minimum/);
    expect(dsl.match(/"ACPI0007"/g)).toHaveLength(VCPUS);
    expect(dsl).toMatch(/EisaId \("PNP0C02"\)[\s\S]*?Memory32Fixed \(ReadWrite,\s*0xE0000000,\s*\/\/ Address Base\s*0x00100000,/);
  });
});

describe('acpiexec', () => {
  /** Loads the tables into ACPICA's own interpreter and runs `commands` in batch mode. */
  function acpiexec(commands: string): string {
    const files = ['DSDT', 'FACP', 'APIC', 'MCFG'].map((sig) => {
      const t = tables.find((x) => x.signature === sig);
      if (!t) throw new Error(`no ${sig} table`);
      const f = join(dir, `${sig}.exec.dat`);
      writeFileSync(f, t.bytes);
      return f;
    });
    try {
      return execFileSync('acpiexec', ['-b', commands, ...files], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') throw new Error('acpiexec is not installed (Debian package acpica-tools)', { cause: e });
      throw e;
    }
  }

  test('namespace_loads_and_s5_evaluates_to_the_layout_sleep_type', () => {
    const out = acpiexec('evaluate \\_S5');
    expect(out).not.toMatch(/ACPI (Error|Exception|Warning)/);
    expect(out).toMatch(/Evaluation of \\_S5 returned[\s\S]*?Contains 4 Elements:\s*\[Integer\] = 0000000000000005\s*\[Integer\] = 0000000000000005/);
  });

  test('pci_routing_table_has_four_pins_for_each_of_32_slots', () => {
    const out = acpiexec('evaluate \\_SB.PCI0._PRT');
    expect(out).toMatch(/Evaluation of \\_SB.PCI0._PRT returned[\s\S]*?\[Package\] Contains 128 Elements:/);
  });
});
