// What a virtio device shows on PCI (virtio 1.2, 4.1 Virtio Over PCI Bus): its IDs, its one
// memory BAR and the vendor capabilities that locate the configuration structures in it.
// The pci domain owns configuration space: it places these capability bytes in the device's
// config space and the BAR in guest-physical space, and sends BAR accesses here as ioreqs.
//
// BAR layout (one 64-bit memory BAR, 16 KiB; each structure at a 4 KiB boundary so the pci
// domain and the ioreq range table can reason in pages):
//
//   0x0000  common configuration   VirtioPciCommonCfg, 64 bytes      cfg_type 1
//   0x1000  ISR status             1 byte, read clears               cfg_type 3
//   0x2000  device configuration   device-specific (virtio-blk: 64)  cfg_type 4
//   0x3000  notifications          queue q at 0x3000 + 4*q           cfg_type 2
//
// A fifth capability, cfg_type 5 (PCI configuration access, 4.1.4.9), is required of every
// device; its data window is served by the pci domain, which turns an access into a BAR
// access at the bar/offset/length the driver wrote into the capability.
import { SharedBytes } from '../../idl/runtime/shared.js';
import { VirtioPciCap, VirtioPciCfgCap, VirtioPciCommonCfg, VirtioPciNotifyCap } from '../../idl/generated/virtio.js';

export const BAR_SIZE = 0x4000;
export const COMMON_CFG = { offset: 0x0000, length: VirtioPciCommonCfg.SIZE } as const;
export const ISR_CFG = { offset: 0x1000, length: 1 } as const;
export const DEVICE_CFG_OFFSET = 0x2000;
export const NOTIFY_CFG_OFFSET = 0x3000;
/** Bytes between two queues' notification addresses (notify_off_multiplier). */
export const NOTIFY_OFF_MULTIPLIER = 4;
/** Each structure's window in the BAR; accesses may not cross one. */
export const WINDOW = 0x1000;

// virtio 1.2, 4.1.4: cfg_type values.
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
export const VIRTIO_PCI_CAP_PCI_CFG = 5;
/** PCI Local Bus 3.0, appendix H: vendor-specific capability. */
export const PCI_CAP_ID_VNDR = 0x09;

/** virtio 1.2, 4.1.2 PCI Device Discovery. */
export interface PciIdentity {
  readonly vendorId: number;
  readonly deviceId: number;
  readonly revisionId: number;
  readonly subsystemVendorId: number;
  readonly subsystemId: number;
  /** Class code, prog-if in the low byte (e.g. 0x018000: mass storage, other). */
  readonly classCode: number;
}

/** A modern (non-transitional) device: ID 0x1040 + virtio device ID, revision 1 (4.1.2.1). */
export function pciIdentity(virtioDeviceId: number, classCode: number): PciIdentity {
  return { vendorId: 0x1af4, deviceId: 0x1040 + virtioDeviceId, revisionId: 1, subsystemVendorId: 0x1af4, subsystemId: 0x1100, classCode };
}

/** The BAR as the pci domain must present it. */
export interface BarDescription {
  readonly index: number;
  readonly size: number;
  readonly is64: true;
  readonly prefetchable: false;
}

export interface CapabilityOptions {
  /** BAR index the structures live in (0..5; a 64-bit BAR takes this index and the next). */
  readonly bar: number;
  /** Config-space offset of the first capability (4-byte aligned, >= 0x40). */
  readonly at: number;
  /** Config-space offset of the capability after these (e.g. MSI-X), 0 for none. */
  readonly next: number;
  /** Length of the device-specific configuration structure, bytes. */
  readonly deviceCfgLength: number;
  readonly numQueues: number;
}

export interface Capabilities {
  /** The capability bytes, to be copied to config space at `at`. */
  readonly bytes: Uint8Array;
  /**
   * Each capability on its own, in order (common, notify, ISR, device, pci_cfg), for a pci
   * domain that stages vendor capabilities one by one and links them itself (cfg_cap).
   */
  readonly each: readonly Uint8Array[];
  /** Config-space offset of each capability, by cfg_type. */
  readonly offsets: Readonly<Record<'common' | 'notify' | 'isr' | 'device' | 'pciCfg', number>>;
}

/** The five virtio capabilities, chained in config space from `at` to `next`. */
export function virtioCapabilities(o: CapabilityOptions): Capabilities {
  if (o.at % 4 !== 0 || o.at < 0x40 || o.bar < 0 || o.bar > 5) throw new RangeError(`capabilities at 0x${o.at.toString(16)} in BAR ${o.bar}`);
  const sizes = [VirtioPciCap.SIZE, VirtioPciNotifyCap.SIZE, VirtioPciCap.SIZE, VirtioPciCap.SIZE, VirtioPciCfgCap.SIZE];
  const total = sizes.reduce((a, b) => a + b, 0);
  const mem = new SharedBytes(new ArrayBuffer(total));
  const starts: number[] = [];
  let p = 0;
  for (const s of sizes) {
    starts.push(p);
    p += s;
  }
  const nextOf = (i: number): number => (i + 1 < starts.length ? o.at + (starts[i + 1] ?? 0) : o.next);
  const plain = (i: number, cfgType: number, offset: number, length: number): void => {
    const b = starts[i] ?? 0;
    VirtioPciCap.write(mem, b, { capVndr: PCI_CAP_ID_VNDR, capNext: nextOf(i), capLen: VirtioPciCap.SIZE, cfgType, bar: o.bar, id: 0, offset, length });
  };
  plain(0, VIRTIO_PCI_CAP_COMMON_CFG, COMMON_CFG.offset, COMMON_CFG.length);
  VirtioPciNotifyCap.write(mem, starts[1] ?? 0, {
    capVndr: PCI_CAP_ID_VNDR, capNext: nextOf(1), capLen: VirtioPciNotifyCap.SIZE, cfgType: VIRTIO_PCI_CAP_NOTIFY_CFG, bar: o.bar, id: 0,
    offset: NOTIFY_CFG_OFFSET, length: o.numQueues * NOTIFY_OFF_MULTIPLIER, notifyOffMultiplier: NOTIFY_OFF_MULTIPLIER,
  });
  plain(2, VIRTIO_PCI_CAP_ISR_CFG, ISR_CFG.offset, ISR_CFG.length);
  plain(3, VIRTIO_PCI_CAP_DEVICE_CFG, DEVICE_CFG_OFFSET, o.deviceCfgLength);
  // The pci_cfg capability's bar/offset/length belong to the driver: they start at zero.
  VirtioPciCfgCap.write(mem, starts[4] ?? 0, {
    capVndr: PCI_CAP_ID_VNDR, capNext: nextOf(4), capLen: VirtioPciCfgCap.SIZE, cfgType: VIRTIO_PCI_CAP_PCI_CFG, bar: 0, id: 0,
    offset: 0, length: 0, pciCfgData: new Uint8Array(4),
  });
  const at = (i: number): number => o.at + (starts[i] ?? 0);
  const each = starts.map((st, i) => mem.u8.slice(st, st + (sizes[i] ?? 0)));
  return { bytes: mem.u8, each, offsets: { common: at(0), notify: at(1), isr: at(2), device: at(3), pciCfg: at(4) } };
}

/** BAR offset of queue q's notification address; the wiring binds an ioeventfd there. */
export function notifyOffset(queue: number): number {
  return NOTIFY_CFG_OFFSET + queue * NOTIFY_OFF_MULTIPLIER;
}
