import { describe, expect, it } from 'vitest';
import { VirtioPciCap, VirtioPciNotifyCap } from '../../idl/generated/virtio.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import { BAR_SIZE, COMMON_CFG, DEVICE_CFG_OFFSET, NOTIFY_CFG_OFFSET, PCI_CAP_ID_VNDR, notifyOffset, pciIdentity, virtioCapabilities } from './pci.js';

describe('virtio PCI capabilities', () => {
  const caps = virtioCapabilities({ bar: 4, at: 0x40, next: 0x98, deviceCfgLength: 64, numQueues: 2 });
  const space = new SharedBytes(new ArrayBuffer(256));
  space.u8.set(caps.bytes, 0x40);

  /** Walks the capability list the way a guest does, from the first offset. */
  function walk(): { at: number; type: number; bar: number; offset: number; length: number }[] {
    const out: { at: number; type: number; bar: number; offset: number; length: number }[] = [];
    for (let at = 0x40; at !== 0x98 && out.length < 8;) {
      const c = VirtioPciCap.read(space, at);
      expect(c.capVndr).toBe(PCI_CAP_ID_VNDR);
      out.push({ at, type: c.cfgType, bar: c.bar, offset: c.offset, length: c.length });
      at = c.capNext;
    }
    return out;
  }

  it('chains_five_vendor_capabilities_to_the_next_one', () => {
    expect(walk().map((c) => c.type)).toEqual([1, 2, 3, 4, 5]);
  });

  it('locates_each_structure_inside_the_bar', () => {
    const byType = new Map(walk().map((c) => [c.type, c]));

    expect(byType.get(1)).toMatchObject({ bar: 4, offset: COMMON_CFG.offset, length: 64 });
    expect(byType.get(2)).toMatchObject({ bar: 4, offset: NOTIFY_CFG_OFFSET, length: 8 });
    expect(byType.get(4)).toMatchObject({ bar: 4, offset: DEVICE_CFG_OFFSET, length: 64 });
    for (const c of walk().filter((x) => x.type !== 5)) expect(c.offset + c.length).toBeLessThanOrEqual(BAR_SIZE);
  });

  it('gives_the_notify_multiplier_that_matches_notify_offsets', () => {
    const n = VirtioPciNotifyCap.read(space, caps.offsets.notify);

    expect(n.offset + 1 * n.notifyOffMultiplier).toBe(notifyOffset(1));
    expect(n.capLen).toBe(20);
  });

  it('gives_each_capability_on_its_own_with_its_length_and_type', () => {
    expect(caps.each.map((c) => [c.byteLength, c[2], c[3]])).toEqual([[16, 16, 1], [20, 20, 2], [16, 16, 3], [16, 16, 4], [20, 20, 5]]);
  });

  it('identifies_a_modern_virtio_block_device', () => {
    expect(pciIdentity(2, 0x018000)).toMatchObject({ vendorId: 0x1af4, deviceId: 0x1042, revisionId: 1 });
  });
});
