// The pci device table staged through StubRuntime.open's beforeInit hook: what
// is staged is what the guest reads, a restored instance keeps it without
// staging again, and a refused entry stops the domain with a CONFIG error.
import { beforeAll, describe, expect, test } from 'vitest';
import { PCI_CONFIG_PORTS } from '../../boot/layout.js';
import { ensureBuilt, repoRoot } from '../build.js';
import { PciBarKind } from './abi.js';
import { StubRuntime } from './domain.js';
import { DEFAULT_PCI_TABLE, stagePciTable, type PciFunctionSpec } from './pci-table.js';
import { REGION_BYTES } from './persist.js';
import { DomainProcessError } from './process-errors.js';

let wasm: string;
beforeAll(async () => {
  wasm = await ensureBuilt(repoRoot(), 'pci');
});

const CONFIG_ADDRESS = PCI_CONFIG_PORTS.base;
const CONFIG_DATA = PCI_CONFIG_PORTS.base + 4;

/** Config dword 0 (Device ID << 16 | Vendor ID) of 00:slot.0, read through CONFIG_ADDRESS/CONFIG_DATA. */
function idsOf(rt: StubRuntime<'pci'>, slot: number): number {
  rt.device.write('pio', CONFIG_ADDRESS, 4, BigInt((0x8000_0000 | (slot << 11)) >>> 0));
  return Number(rt.device.read('pio', CONFIG_DATA, 4));
}

const NET: PciFunctionSpec = {
  slot: 2, ids: (0x1041 << 16) | 0x1af4, subsystem: 0, classRev: 0x0200_0001, pin: 1,
  bars: [{ bar: 0, kind: PciBarKind.Mem32, sizeLog2: 12, flags: 0 }], caps: [],
};

describe('pci device table', () => {
  test('the_default_table_presents_only_the_host_bridge', () => {
    const rt = StubRuntime.open('pci', wasm, new Uint8Array(REGION_BYTES), true, {}, (ex) => stagePciTable(ex, DEFAULT_PCI_TABLE));
    expect(idsOf(rt, 0)).toBe((0x0008 << 16) | 0x1b36);
    expect(idsOf(rt, 2) >>> 0).toBe(0xffff_ffff);
  });

  test('a_staged_function_is_visible_in_config_space_after_power_on', () => {
    const rt = StubRuntime.open('pci', wasm, new Uint8Array(REGION_BYTES), true, {}, (ex) => stagePciTable(ex, [NET]));
    expect(idsOf(rt, 2)).toBe(NET.ids);
  });

  test('a_restored_instance_keeps_the_table_without_staging_it_again', () => {
    const region = new Uint8Array(REGION_BYTES);
    StubRuntime.open('pci', wasm, region, true, {}, (ex) => stagePciTable(ex, [NET]));
    let staged = 0;
    const second = StubRuntime.open('pci', wasm, region, false, {}, () => { staged++; });
    expect(second.restored).toBe(true);
    expect(staged).toBe(0);
    expect(idsOf(second, 2)).toBe(NET.ids);
  });

  test('a_refused_entry_is_a_config_error_naming_the_function_and_the_status', () => {
    const bad: PciFunctionSpec = { ...NET, slot: 0 };
    const open = (): unknown => StubRuntime.open('pci', wasm, new Uint8Array(REGION_BYTES), true, {}, (ex) => stagePciTable(ex, [bad]));
    expect(open).toThrow(DomainProcessError);
    expect(open).toThrow(/00:00\.0 device refused \(BadSlot\)/);
  });

  test('a_capability_longer_than_the_staging_buffer_is_refused_before_it_is_copied', () => {
    const big: PciFunctionSpec = { ...NET, caps: [new Uint8Array(257)] };
    expect(() => StubRuntime.open('pci', wasm, new Uint8Array(REGION_BYTES), true, {}, (ex) => stagePciTable(ex, [big]))).toThrow(/257 bytes, at most 256/);
  });
});
