// A minimal AML encoder: just the terms the DSDT needs (ACPI 6.5, 20.2 AML Grammar Definition)
// and the resource descriptors of _CRS (ACPI 6.5, 6.4 Resource Data Types).
export type Aml = readonly number[];

const ZERO_OP = 0x00, ONE_OP = 0x01, NAME_OP = 0x08, BYTE_PREFIX = 0x0a, WORD_PREFIX = 0x0b,
  DWORD_PREFIX = 0x0c, STRING_PREFIX = 0x0d, QWORD_PREFIX = 0x0e, SCOPE_OP = 0x10, BUFFER_OP = 0x11,
  PACKAGE_OP = 0x12, EXT_OP_PREFIX = 0x5b, DEVICE_OP = 0x82, ROOT_CHAR = 0x5c, DUAL_NAME_PREFIX = 0x2e,
  MULTI_NAME_PREFIX = 0x2f;

const le = (v: number, n: number): number[] => Array.from({ length: n }, (_, i) => Math.floor(v / 2 ** (8 * i)) & 0xff);

/** PkgLength (20.2.4): the length counts its own encoding bytes; 1 to 4 bytes, up to 2^28. */
export function pkgLength(contentLength: number): number[] {
  if (contentLength + 1 <= 0x3f) return [contentLength + 1];
  for (let extra = 1; extra <= 3; extra++) {
    const total = contentLength + 1 + extra;
    if (total < 2 ** (4 + 8 * extra)) return [(extra << 6) | (total & 0xf), ...le(Math.floor(total / 16), extra)];
  }
  throw new RangeError(`AML package of ${contentLength} bytes is over the 2^28 limit`);
}

/** NameSeg (20.2.2): four characters, lead [A-Z_], then [A-Z0-9_], padded with '_'. */
export function nameSeg(seg: string): number[] {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(seg)) throw new RangeError(`bad AML name segment '${seg}'`);
  return [...seg.padEnd(4, '_')].map((c) => c.charCodeAt(0));
}

/** NameString: an optional root prefix, then one, two (DualNamePath) or more (MultiNamePath) segments. */
export function nameString(path: string): number[] {
  const root = path.startsWith('\\');
  const segs = (root ? path.slice(1) : path).split('.').map(nameSeg);
  const prefix = root ? [ROOT_CHAR] : [];
  if (segs.length === 1) return [...prefix, ...segs.flat()];
  if (segs.length === 2) return [...prefix, DUAL_NAME_PREFIX, ...segs.flat()];
  return [...prefix, MULTI_NAME_PREFIX, segs.length, ...segs.flat()];
}

/** The shortest integer encoding (20.2.3 ComputationalData). */
export function integer(v: number | bigint): number[] {
  const n = BigInt(v);
  if (n < 0n || n >= 1n << 64n) throw new RangeError(`AML integer ${n} out of range`);
  if (n === 0n) return [ZERO_OP];
  if (n === 1n) return [ONE_OP];
  const bytes = (k: number): number[] => Array.from({ length: k }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
  if (n <= 0xffn) return [BYTE_PREFIX, ...bytes(1)];
  if (n <= 0xffffn) return [WORD_PREFIX, ...bytes(2)];
  if (n <= 0xffff_ffffn) return [DWORD_PREFIX, ...bytes(4)];
  return [QWORD_PREFIX, ...bytes(8)];
}

export function string(s: string): number[] {
  if (!/^[\x01-\x7f]*$/.test(s)) throw new RangeError('AML strings are ASCII without NUL');
  return [STRING_PREFIX, ...[...s].map((c) => c.charCodeAt(0)), 0];
}

/** A compressed EISA id such as PNP0A08 (ACPI 6.5, 6.1.5 _HID): 3 letters in 5 bits each, 4 hex digits. */
export function eisaId(id: string): number[] {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new RangeError(`bad EISA id '${id}'`);
  const c = (i: number): number => id.charCodeAt(i) - 0x40;
  const vendor = (c(0) << 10) | (c(1) << 5) | c(2);
  const product = parseInt(id.slice(3), 16);
  // Stored big-endian in memory, so the little-endian DWord reads back byte-swapped.
  return [DWORD_PREFIX, vendor >> 8, vendor & 0xff, product >> 8, product & 0xff];
}

export const name = (path: string, value: Aml): number[] => [NAME_OP, ...nameString(path), ...value];
export const scope = (path: string, body: Aml): number[] => {
  const inner = [...nameString(path), ...body];
  return [SCOPE_OP, ...pkgLength(inner.length), ...inner];
};
export const device = (path: string, body: Aml): number[] => {
  const inner = [...nameString(path), ...body];
  return [EXT_OP_PREFIX, DEVICE_OP, ...pkgLength(inner.length), ...inner];
};
export function pkg(elements: readonly Aml[]): number[] {
  if (elements.length > 255) throw new RangeError('Package() holds at most 255 elements; use VarPackage');
  const inner = [elements.length, ...elements.flat()];
  return [PACKAGE_OP, ...pkgLength(inner.length), ...inner];
}
export function buffer(bytes: Aml): number[] {
  const inner = [...integer(bytes.length), ...bytes];
  return [BUFFER_OP, ...pkgLength(inner.length), ...inner];
}

// --- Resource descriptors (ACPI 6.5, 6.4) ---------------------------------------------------

/** I/O Port Descriptor (6.4.2.5), 16-bit decode, fixed base. */
export const ioPort = (base: number, length: number): number[] =>
  [0x47, 0x01, ...le(base, 2), ...le(base, 2), 0x01, length];
/** IRQ Descriptor without flags (6.4.2.1): edge-triggered, active-high, exclusive ISA IRQ. */
export const irqNoFlags = (irq: number): number[] => [0x22, ...le(1 << irq, 2)];

/** 32-Bit Fixed Memory Range Descriptor (6.4.3.4), read/write. */
export const memory32Fixed = (base: number, length: number): number[] => [0x86, ...le(9, 2), 0x01, ...le(base, 4), ...le(length, 4)];

export enum AddressSpaceType { Memory = 0, Io = 1, BusNumber = 2 }
/** General flags (6.4.3.5.1): producer, positive decode, MinFixed and MaxFixed. */
const PRODUCER_FIXED = 0x0c;
/** Memory type-specific flags (6.4.3.5.5): read/write, non-cacheable. I/O (6.4.3.5.6): ISA and non-ISA ranges. */
const TYPE_FLAGS = { [AddressSpaceType.Memory]: 0x01, [AddressSpaceType.Io]: 0x03, [AddressSpaceType.BusNumber]: 0x00 } satisfies Record<AddressSpaceType, number>;

/** Word Address Space Descriptor (6.4.3.5.3), for bus numbers and I/O ranges. */
export function wordAddressSpace(type: AddressSpaceType, min: number, length: number): number[] {
  return [0x88, ...le(0x0d, 2), type, PRODUCER_FIXED, TYPE_FLAGS[type], ...le(0, 2), ...le(min, 2), ...le(min + length - 1, 2), ...le(0, 2), ...le(length, 2)];
}
/** DWord Address Space Descriptor (6.4.3.5.2), for the 32-bit MMIO window. */
export function dwordAddressSpace(type: AddressSpaceType, min: number, length: number): number[] {
  return [0x87, ...le(0x17, 2), type, PRODUCER_FIXED, TYPE_FLAGS[type], ...le(0, 4), ...le(min, 4), ...le(min + length - 1, 4), ...le(0, 4), ...le(length, 4)];
}
/** A ResourceTemplate: the descriptors then an End Tag (6.4.2.9) whose zero checksum means "valid". */
export const resourceTemplate = (descriptors: readonly Aml[]): number[] => buffer([...descriptors.flat(), 0x79, 0x00]);
