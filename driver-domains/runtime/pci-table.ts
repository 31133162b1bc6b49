// The pci domain's device table: the bus-0 endpoints it presents, staged into
// the module with the cfg_* exports before init() (ABI.md, "pci also exports").
// A restarted instance restores the table from its state window and never
// stages it again. Every refusal is a configuration error, not a guest fault:
// the domain does not start with a table other than the one it was given.
import { PciBarFlag, PciBarKind, PciConfigStatus, type PciExports } from './abi.js';
import { DomainProcessError } from './process-errors.js';
import { BAR_SIZE, pciIdentity, virtioCapabilities } from '../virtio/pci.js';
import { BLOCK_PCI_CLASS, CONFIG_LENGTH, VIRTIO_ID_BLOCK } from '../block/config.js';

export interface PciBarSpec { readonly bar: number; readonly kind: PciBarKind; readonly sizeLog2: number; readonly flags: number }
export interface PciMsixSpec { readonly vectors: number; readonly tableBar: number; readonly tableOffset: number; readonly pbaBar: number; readonly pbaOffset: number }

/** One endpoint: function 0 of `slot` (1..31), with its config dwords as cfg_device takes them. */
export interface PciFunctionSpec {
  readonly slot: number;
  readonly ids: number;
  readonly subsystem: number;
  readonly classRev: number;
  readonly pin: number;
  readonly bars: readonly PciBarSpec[];
  readonly msix?: PciMsixSpec;
  /** Vendor-specific capabilities (ID 09h) as opaque bytes, in list order. */
  readonly caps: readonly Uint8Array[];
}

/**
 * The table `microhv run` gives every guest today: no endpoints. The host bridge at 00:00.0 is
 * the module's own and needs no staging.
 */
export const DEFAULT_PCI_TABLE: readonly PciFunctionSpec[] = [];

/** The BAR the block domain serves (virtio registers, driver-domains/virtio/pci.ts) and the one with the MSI-X table. */
export const VIRTIO_BAR = 4;
export const VIRTIO_MSIX_BAR = 1;
/** The MSI-X BAR: table at 0, PBA at 2 KiB (room for 128 table entries), 4 KiB in all. */
const MSIX_BAR_LOG2 = 12;
const PBA_OFFSET = 0x800;

/**
 * A virtio-blk function (virtio 1.2, 4.1: modern, non-transitional) at `slot` with `queues`
 * request queues: its registers in BAR 4 (64-bit, the block domain's), its MSI-X table and PBA
 * in BAR 1 (this domain's), one vector per queue plus one for configuration changes, and the
 * virtio capabilities, and INTA# for a driver that does not enable MSI-X (its backend's request
 * arrives through the INTx request page; the GSI is the DSDT's _PRT's for the slot).
 */
export function virtioBlockFunction(slot: number, queues: number): PciFunctionSpec {
  const id = pciIdentity(VIRTIO_ID_BLOCK, BLOCK_PCI_CLASS);
  const caps = virtioCapabilities({ bar: VIRTIO_BAR, at: 0x4c, next: 0, deviceCfgLength: CONFIG_LENGTH, numQueues: queues });
  return {
    slot,
    ids: ((id.deviceId << 16) | id.vendorId) >>> 0,
    subsystem: ((id.subsystemId << 16) | id.subsystemVendorId) >>> 0,
    classRev: ((id.classCode << 8) | id.revisionId) >>> 0,
    pin: 1,
    bars: [
      { bar: VIRTIO_MSIX_BAR, kind: PciBarKind.Mem32, sizeLog2: MSIX_BAR_LOG2, flags: PciBarFlag.ServedByPci },
      { bar: VIRTIO_BAR, kind: PciBarKind.Mem64, sizeLog2: Math.log2(BAR_SIZE), flags: 0 },
    ],
    msix: { vectors: queues + 1, tableBar: VIRTIO_MSIX_BAR, tableOffset: 0, pbaBar: VIRTIO_MSIX_BAR, pbaOffset: PBA_OFFSET },
    caps: caps.each,
  };
}

/** Stages `table` into a module that has not run init(); throws on the first refused call. */
export function stagePciTable(ex: PciExports, table: readonly PciFunctionSpec[]): void {
  for (const f of table) {
    const at = `00:${f.slot.toString(16).padStart(2, '0')}.0`;
    check(`${at} device`, ex.cfg_device(f.slot, f.ids, f.subsystem, f.classRev, f.pin));
    for (const b of f.bars) check(`${at} BAR ${b.bar}`, ex.cfg_bar(f.slot, b.bar, b.kind, b.sizeLog2, b.flags));
    const m = f.msix;
    if (m !== undefined) check(`${at} MSI-X`, ex.cfg_msix(f.slot, m.vectors, m.tableBar, m.tableOffset, m.pbaBar, m.pbaOffset));
    f.caps.forEach((cap, i) => {
      // cfg_cap_buf() is 256 bytes; the module refuses a longer len, but the copy must not overrun first.
      if (cap.length > 256) throw new DomainProcessError('CONFIG', `${at} capability ${i}: ${cap.length} bytes, at most 256`);
      new Uint8Array(ex.memory.buffer).set(cap, ex.cfg_cap_buf());
      check(`${at} capability ${i}`, ex.cfg_cap(f.slot, cap.length));
    });
  }
}

function check(what: string, status: number): void {
  if (status !== PciConfigStatus.Ok) throw new DomainProcessError('CONFIG', `pci device table: ${what} refused (${PciConfigStatus[status] ?? status})`);
}
