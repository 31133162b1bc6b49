// The AssemblyScript modules repeat platform constants from boot/layout.ts and the memory
// map from abi.ts; these tests fail when a copy drifts from its source.
import { describe, expect, it } from 'vitest';
import * as layout from '../../boot/layout.js';
import { MEMORY_MAP } from './abi.js';
import { StubHarness } from './testing.js';
import type { WasmGlobal } from './wasm.js';

function globalValue(h: StubHarness<'ioapic'> | StubHarness<'console'> | StubHarness<'pci'>, name: string): number {
  const g = (h.exports as unknown as Record<string, WasmGlobal | undefined>)[name];
  if (g === undefined) throw new Error(`module exports no ${name}`);
  return Number(g.value);
}

describe('platform constants mirrored in AssemblyScript', () => {
  it('ioapic_constants_equal_boot_layout', async () => {
    const h = await StubHarness.create('ioapic');

    expect({
      base: globalValue(h, 'LAYOUT_IOAPIC_BASE'),
      id: globalValue(h, 'LAYOUT_IOAPIC_ID'),
      pins: globalValue(h, 'LAYOUT_IOAPIC_PINS'),
      intxBase: globalValue(h, 'LAYOUT_PCI_INTX_GSI_BASE'),
      sci: globalValue(h, 'LAYOUT_SCI_IRQ'),
    }).toEqual({
      base: layout.IOAPIC_BASE,
      id: layout.IOAPIC_ID,
      pins: layout.IOAPIC_PINS,
      intxBase: layout.PCI_INTX_GSI_BASE,
      sci: layout.SCI_IRQ,
    });
  });

  it('console_constants_equal_boot_layout', async () => {
    const h = await StubHarness.create('console');

    expect({
      com1: [globalValue(h, 'LAYOUT_COM1_PORT'), globalValue(h, 'LAYOUT_COM1_SIZE'), globalValue(h, 'LAYOUT_COM1_IRQ')],
      i8042: [globalValue(h, 'LAYOUT_I8042_DATA'), globalValue(h, 'LAYOUT_I8042_COMMAND'), globalValue(h, 'LAYOUT_I8042_RESET_COMMAND')],
      pm: [
        globalValue(h, 'LAYOUT_PM1A_EVT'), globalValue(h, 'LAYOUT_PM1_EVT_LEN'), globalValue(h, 'LAYOUT_PM1A_CNT'),
        globalValue(h, 'LAYOUT_PM1_CNT_LEN'), globalValue(h, 'LAYOUT_PM_TMR'), globalValue(h, 'LAYOUT_PM_TMR_LEN'),
      ],
      s5: globalValue(h, 'LAYOUT_SLEEP_TYPE_S5'),
      sci: globalValue(h, 'LAYOUT_SCI_IRQ'),
    }).toEqual({
      com1: [layout.COM1.port, layout.COM1.size, layout.COM1.irq],
      i8042: [layout.I8042.data, layout.I8042.command, layout.I8042.resetCommand],
      pm: [
        layout.ACPI_PM.pm1aEvent, layout.ACPI_PM.pm1EventLen, layout.ACPI_PM.pm1aControl,
        layout.ACPI_PM.pm1ControlLen, layout.ACPI_PM.pmTimer, layout.ACPI_PM.pmTimerLen,
      ],
      s5: layout.SLEEP_TYPE_S5,
      sci: layout.SCI_IRQ,
    });
  });
});

describe('platform constants mirrored in AssemblyScript (pci)', () => {
  it('pci_constants_equal_boot_layout', async () => {
    const h = await StubHarness.create('pci');

    expect({
      ecam: globalValue(h, 'LAYOUT_PCI_ECAM_BASE'),
      mmio32: [globalValue(h, 'LAYOUT_PCI_MMIO32_BASE'), globalValue(h, 'LAYOUT_PCI_MMIO32_SIZE')],
      ports: [globalValue(h, 'LAYOUT_PCI_CONFIG_PORT'), globalValue(h, 'LAYOUT_PCI_CONFIG_PORTS_SIZE')],
      io: [globalValue(h, 'LAYOUT_PCI_IO_WINDOW_BASE'), globalValue(h, 'LAYOUT_PCI_IO_WINDOW_SIZE')],
      intx: [globalValue(h, 'LAYOUT_PCI_INTX_GSI_BASE'), globalValue(h, 'LAYOUT_IOAPIC_PINS')],
    }).toEqual({
      ecam: layout.PCI_ECAM.base,
      mmio32: [layout.PCI_MMIO32.base, layout.PCI_MMIO32.size],
      ports: [layout.PCI_CONFIG_PORTS.base, layout.PCI_CONFIG_PORTS.size],
      io: [layout.PCI_IO_WINDOW.base, layout.PCI_IO_WINDOW.size],
      intx: [layout.PCI_INTX_GSI_BASE, layout.IOAPIC_PINS],
    });
  });
});

describe('memory map', () => {
  for (const kind of ['ioapic', 'console', 'pci'] as const) {
    it(`${kind}_state_window_starts_at_the_abi_base_and_fits_below_scratch`, async () => {
      const h = await StubHarness.create(kind);

      expect(h.exports.state_base()).toBe(MEMORY_MAP.stateBase);
      expect(h.exports.state_base() + h.exports.state_size()).toBeLessThanOrEqual(MEMORY_MAP.stateLimit);
      expect(h.exports.memory.buffer.byteLength).toBe(MEMORY_MAP.pages * 65536);
    });
  }

  it('pci_capability_buffer_and_staging_area_are_the_abi_areas_between_scratch_and_tx_out', async () => {
    const h = await StubHarness.create('pci');

    expect(h.exports.cfg_cap_buf()).toBe(MEMORY_MAP.pciCapInBase);
    expect(globalValue(h, 'MEMORY_PCI_STAGING_BASE')).toBe(MEMORY_MAP.pciStagingBase);
    expect(globalValue(h, 'MEMORY_PCI_STAGING_SIZE')).toBe(MEMORY_MAP.pciStagingSize);
    expect(globalValue(h, 'STAGING_FITS')).toBe(1);
    expect(MEMORY_MAP.pciStagingBase).toBeGreaterThanOrEqual(MEMORY_MAP.scratchBase + 0x100);
    expect(MEMORY_MAP.pciStagingBase + MEMORY_MAP.pciStagingSize).toBeLessThanOrEqual(MEMORY_MAP.pciCapInBase);
    expect(MEMORY_MAP.pciCapInBase + MEMORY_MAP.pciCapInSize).toBeLessThanOrEqual(MEMORY_MAP.txOutBase);
  });

  it('console_tx_buffer_is_the_abi_tx_out_area', async () => {
    const h = await StubHarness.create('console');

    expect(h.exports.tx_buf()).toBe(MEMORY_MAP.txOutBase);
  });
});
