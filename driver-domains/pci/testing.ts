// Fakes for the pci module's tests: a device table like the one the runtime will stage (a
// virtio-style function with MSI-X and vendor capabilities, and a legacy-style one with an
// I/O BAR and no MSI-X), and config accessors that play the guest through CONFIG_ADDRESS/
// CONFIG_DATA and through ECAM. Tests only.
import { PCI_CONFIG_PORTS, PCI_ECAM } from '../../boot/layout.js';
import { PciBarFlag, PciBarKind, PciConfigStatus, type IoSize, type PciExports } from '../runtime/abi.js';
import { FakeClock, StubHarness } from '../runtime/testing.js';

export type Pci = StubHarness<'pci'>;

export const CONFIG_ADDRESS = PCI_CONFIG_PORTS.base;
export const CONFIG_DATA = PCI_CONFIG_PORTS.base + 4;

/** Register offsets and bits, spelled out independently of the model (PCI 3.0, 6.1 and 6.2). */
export const REG = {
  id: 0x00, command: 0x04, status: 0x06, classRev: 0x08, misc: 0x0c, bar0: 0x10, subsystem: 0x2c, rom: 0x30,
  capPtr: 0x34, interruptLine: 0x3c, interruptPin: 0x3d,
} as const;
export const CMD = { io: 1, memory: 2, busMaster: 4, intxDisable: 1 << 10 } as const;
export const STATUS = { interrupt: 1 << 3, capList: 1 << 4 } as const;

/** The virtio-style function: slot 3, INTA#, MSI-X in BAR 1, the backend's registers in BAR 4. */
export const VIRTIO = {
  slot: 3,
  ids: (0x1042 << 16) | 0x1af4,
  subsystem: (0x0002 << 16) | 0x1af4,
  classRev: (0x018000 << 8) | 0x01,
  pin: 1,
  msixBar: 1,
  msixBarLog2: 12,
  backendBar: 4,
  backendBarLog2: 14,
  vectors: 4,
  tableOffset: 0x000,
  pbaOffset: 0x800,
} as const;

/** The legacy-style function: slot 5, INTB#, an I/O BAR 0 and a 1 MiB memory BAR 2, no MSI-X. */
export const LEGACY = {
  slot: 5,
  ids: (0x1234 << 16) | 0x8086,
  subsystem: 0,
  classRev: (0x020000 << 8) | 0x03,
  pin: 2,
  ioBar: 0,
  ioBarLog2: 5,
  memBar: 2,
  memBarLog2: 20,
} as const;

/** A virtio 1.x vendor capability (virtio 1.2, 4.1.4 struct virtio_pci_cap), 16 bytes. */
export function virtioCap(cfgType: number, bar: number, offset: number, length: number): Uint8Array {
  const b = new Uint8Array(16);
  // Test data in the virtio little-endian layout; not an IDL record.
  const v = new DataView(b.buffer);
  v.setUint8(0, 0x09);
  v.setUint8(1, 0xee); // next pointer: the module must replace it
  v.setUint8(2, 16);
  v.setUint8(3, cfgType);
  v.setUint8(4, bar);
  v.setUint32(8, offset, true);
  v.setUint32(12, length, true);
  return b;
}

/** The notify capability: 20 bytes, with notify_off_multiplier (virtio 1.2, 4.1.4.4). */
export function virtioNotifyCap(bar: number, offset: number, length: number, multiplier: number): Uint8Array {
  const b = new Uint8Array(20);
  b.set(virtioCap(2, bar, offset, length));
  b[2] = 20;
  new DataView(b.buffer).setUint32(16, multiplier, true);
  return b;
}

export const VIRTIO_CAPS: readonly Uint8Array[] = [
  virtioCap(1, VIRTIO.backendBar, 0x0000, 0x38),
  virtioNotifyCap(VIRTIO.backendBar, 0x1000, 0x1000, 4),
  virtioCap(3, VIRTIO.backendBar, 0x2000, 0x4),
  virtioCap(4, VIRTIO.backendBar, 0x3000, 0x40),
];

export function stageCap(e: PciExports, slot: number, bytes: Uint8Array): number {
  new Uint8Array(e.memory.buffer).set(bytes, e.cfg_cap_buf());
  return e.cfg_cap(slot, bytes.length);
}

function expectOk(what: string, status: number): void {
  if (status !== PciConfigStatus.Ok) throw new Error(`${what}: ${PciConfigStatus[status] ?? status}`);
}

/** Stages the two functions above, as the runtime will before init(). */
export function stageTable(e: PciExports): void {
  expectOk('virtio device', e.cfg_device(VIRTIO.slot, VIRTIO.ids, VIRTIO.subsystem, VIRTIO.classRev, VIRTIO.pin));
  expectOk('virtio msix bar', e.cfg_bar(VIRTIO.slot, VIRTIO.msixBar, PciBarKind.Mem32, VIRTIO.msixBarLog2, PciBarFlag.ServedByPci));
  expectOk('virtio backend bar', e.cfg_bar(VIRTIO.slot, VIRTIO.backendBar, PciBarKind.Mem64, VIRTIO.backendBarLog2, PciBarFlag.Prefetchable));
  expectOk('virtio msix', e.cfg_msix(VIRTIO.slot, VIRTIO.vectors, VIRTIO.msixBar, VIRTIO.tableOffset, VIRTIO.msixBar, VIRTIO.pbaOffset));
  for (const cap of VIRTIO_CAPS) expectOk('virtio cap', stageCap(e, VIRTIO.slot, cap));
  expectOk('legacy device', e.cfg_device(LEGACY.slot, LEGACY.ids, LEGACY.subsystem, LEGACY.classRev, LEGACY.pin));
  expectOk('legacy io bar', e.cfg_bar(LEGACY.slot, LEGACY.ioBar, PciBarKind.Io, LEGACY.ioBarLog2, 0));
  expectOk('legacy mem bar', e.cfg_bar(LEGACY.slot, LEGACY.memBar, PciBarKind.Mem32, LEGACY.memBarLog2, 0));
}

/** A powered-on pci module with the standard table. */
export function createPci(clock?: FakeClock): Promise<Pci> {
  return StubHarness.create('pci', { beforeInit: stageTable, ...(clock === undefined ? {} : { clock }) });
}

/** A powered-on pci module with whatever `stage` puts in the table. */
export function createPciWith(stage: (e: PciExports) => void): Promise<Pci> {
  return StubHarness.create('pci', { beforeInit: stage });
}

export function configAddress(bus: number, slot: number, fn: number, reg: number): number {
  return (0x8000_0000 | (bus << 16) | (slot << 11) | (fn << 8) | (reg & 0xfc)) >>> 0;
}

/** A config read through CONFIG_ADDRESS/CONFIG_DATA (PCI 3.0, 3.2.2.3.2). */
export function cf8Read(h: Pci, slot: number, reg: number, size: IoSize = 4, bus = 0, fn = 0): number {
  h.pioWrite(CONFIG_ADDRESS, configAddress(bus, slot, fn, reg), 4);
  return h.pioRead(CONFIG_DATA + (reg & 3), size) >>> 0;
}

export function cf8Write(h: Pci, slot: number, reg: number, value: number, size: IoSize = 4, bus = 0, fn = 0): void {
  h.pioWrite(CONFIG_ADDRESS, configAddress(bus, slot, fn, reg), 4);
  h.pioWrite(CONFIG_DATA + (reg & 3), value >>> 0, size);
}

export function ecamAddress(slot: number, reg: number, fn = 0): number {
  return PCI_ECAM.base + (slot << 15) + (fn << 12) + reg;
}

/** A config read through ECAM (PCIe 4.0, 7.2.2), bus 0. */
export function ecamRead(h: Pci, slot: number, reg: number, size: IoSize = 4, fn = 0): number {
  return h.mmioRead(ecamAddress(slot, reg, fn), size) >>> 0;
}

export function ecamWrite(h: Pci, slot: number, reg: number, value: number, size: IoSize = 4, fn = 0): void {
  h.mmioWrite(ecamAddress(slot, reg, fn), value >>> 0, size);
}

/** The capability IDs in list order, following the pointers from 0x34 (at most 48 hops). */
export function capabilityList(h: Pci, slot: number): { id: number; at: number }[] {
  const caps: { id: number; at: number }[] = [];
  let at = ecamRead(h, slot, REG.capPtr, 1);
  for (let hops = 0; at !== 0 && hops < 48; hops++) {
    caps.push({ id: ecamRead(h, slot, at, 1), at });
    at = ecamRead(h, slot, at + 1, 1);
  }
  return caps;
}

/** Where the MSI-X table of the virtio function is now. */
export function msixTable(h: Pci): number {
  return Number(h.exports.bar_addr(VIRTIO.slot, VIRTIO.msixBar)) + VIRTIO.tableOffset;
}

export function msixPba(h: Pci): number {
  return Number(h.exports.bar_addr(VIRTIO.slot, VIRTIO.msixBar)) + VIRTIO.pbaOffset;
}

/** Programs table entry `vector` as Linux does (address low, high, data, then vector control). */
export function programVector(h: Pci, vector: number, addr: number, data: number, masked: boolean): void {
  const entry = msixTable(h) + 16 * vector;
  h.mmioWrite(entry, addr);
  h.mmioWrite(entry + 4, 0);
  h.mmioWrite(entry + 8, data);
  h.mmioWrite(entry + 12, masked ? 1 : 0);
}

export const MSIX_CAP = 0x40;
export const MSIX_CTRL = { functionMask: 1 << 14, enable: 1 << 15 } as const;

/** Writes the MSI-X Message Control word of the virtio function. */
export function msixControl(h: Pci, bits: number): void {
  ecamWrite(h, VIRTIO.slot, MSIX_CAP + 2, bits, 2);
}

/** Bus mastering on and MSI-X enabled and unmasked, as a driver leaves a working device. */
export function enableMsix(h: Pci): void {
  ecamWrite(h, VIRTIO.slot, REG.command, CMD.memory | CMD.busMaster, 2);
  msixControl(h, MSIX_CTRL.enable);
}
