// A little-endian byte builder for the firmware ABIs that boot/ produces: boot_params and
// ACPI tables are fixed by the Linux boot protocol and the ACPI spec, not by our IDL, so
// their offsets are written here (each caller cites its spec section). x86 is little-endian,
// hence every DataView access passes `true`.

export class Bytes {
  readonly u8: Uint8Array;
  private readonly view: DataView;

  constructor(size: number) {
    this.u8 = new Uint8Array(size);
    this.view = new DataView(this.u8.buffer);
  }

  u8at(off: number, v: number): this { this.view.setUint8(off, v); return this; }
  u16(off: number, v: number): this { this.view.setUint16(off, v, true); return this; }
  u32(off: number, v: number): this { this.view.setUint32(off, v >>> 0, true); return this; }
  u64(off: number, v: number | bigint): this { this.view.setBigUint64(off, BigInt(v), true); return this; }
  ascii(off: number, s: string): this {
    for (let i = 0; i < s.length; i++) this.view.setUint8(off + i, s.charCodeAt(i) & 0x7f);
    return this;
  }
  set(off: number, src: Uint8Array): this { this.u8.set(src, off); return this; }
}

/** Reads little-endian integers; callers bound-check with `has` first (DataView throws otherwise). */
export class Reader {
  private readonly view: DataView;
  constructor(readonly u8: Uint8Array) { this.view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength); }
  has(off: number, len: number): boolean { return off >= 0 && off + len <= this.u8.byteLength; }
  u8at(off: number): number { return this.view.getUint8(off); }
  u16(off: number): number { return this.view.getUint16(off, true); }
  u32(off: number): number { return this.view.getUint32(off, true); }
  u64(off: number): bigint { return this.view.getBigUint64(off, true); }
}

/** Sum of all bytes modulo 256: ACPI tables are valid when this is 0 (ACPI 6.5, 5.2.6). */
export function byteSum(b: Uint8Array): number {
  let s = 0;
  for (const x of b) s = (s + x) & 0xff;
  return s;
}
