// Test helpers for boot/: a synthetic bzImage and a reader over a BootPlan's writes that plays
// the guest's view of memory (unwritten RAM reads as zero, as a fresh memfd does).
import type { BootPlan } from './linux.js';

export interface FakeHeader {
  bootFlag: number; magic: number; version: number; setupSects: number; kernelBytes: number; syssize?: number;
  xloadflags: number; initrdAddrMax: number; kernelAlignment: number; relocatable: number; cmdlineSize: number;
  prefAddress: bigint; initSize: number; jump: number; imageBytes?: number;
}
export const GOOD_HEADER: FakeHeader = {
  bootFlag: 0xaa55, magic: 0x5372_6448, version: 0x020f, setupSects: 4, kernelBytes: 0x10000, xloadflags: 0x3,
  initrdAddrMax: 0x7fff_ffff, kernelAlignment: 0x20_0000, relocatable: 1, cmdlineSize: 2047,
  prefAddress: 0x100_0000n, initSize: 0x200_0000, jump: 0x6a,
};

/** A bzImage with the given setup-header fields (boot.rst offsets) and a patterned kernel body. */
export function fakeBzImage(over: Partial<FakeHeader> = {}): Uint8Array {
  const h = { ...GOOD_HEADER, ...over };
  const setup = (h.setupSects + 1) * 512;
  const img = Buffer.alloc(h.imageBytes ?? setup + h.kernelBytes);
  const w = (off: number, f: (o: number) => void): void => { if (off < img.length) f(off); };
  w(0x1f1, (o) => img.writeUInt8(h.setupSects, o));
  w(0x1f4, (o) => img.writeUInt32LE(h.syssize ?? h.kernelBytes / 16, o));
  w(0x1fe, (o) => img.writeUInt16LE(h.bootFlag, o));
  w(0x200, (o) => { img[o] = 0xeb; img[o + 1] = h.jump; });
  w(0x202, (o) => img.writeUInt32LE(h.magic, o));
  w(0x206, (o) => img.writeUInt16LE(h.version, o));
  w(0x211, (o) => img.writeUInt8(1, o)); // LOADED_HIGH, as every bzImage has
  w(0x22c, (o) => img.writeUInt32LE(h.initrdAddrMax, o));
  w(0x230, (o) => img.writeUInt32LE(h.kernelAlignment, o));
  w(0x234, (o) => img.writeUInt8(h.relocatable, o));
  w(0x236, (o) => img.writeUInt16LE(h.xloadflags, o));
  w(0x238, (o) => img.writeUInt32LE(h.cmdlineSize, o));
  w(0x258, (o) => img.writeBigUInt64LE(h.prefAddress, o));
  w(0x260, (o) => img.writeUInt32LE(h.initSize, o));
  for (let i = setup; i < img.length; i++) img[i] = i & 0xff;
  return new Uint8Array(img.buffer, img.byteOffset, img.length);
}

/** Guest memory as the plan leaves it. */
export class PlannedMemory {
  constructor(private readonly plan: BootPlan) {}

  bytes(gpa: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (const w of this.plan.writes) {
      const lo = Math.max(gpa, w.gpa);
      const hi = Math.min(gpa + len, w.gpa + w.bytes.byteLength);
      if (lo < hi) out.set(w.bytes.subarray(lo - w.gpa, hi - w.gpa), lo - gpa);
    }
    return out;
  }
  u8(gpa: number): number { return this.bytes(gpa, 1)[0] ?? 0; }
  u16(gpa: number): number { return Buffer.from(this.bytes(gpa, 2)).readUInt16LE(0); }
  u32(gpa: number): number { return Buffer.from(this.bytes(gpa, 4)).readUInt32LE(0); }
  u64(gpa: number): bigint { return Buffer.from(this.bytes(gpa, 8)).readBigUInt64LE(0); }

  /**
   * Walks the 4-level page tables from CR3 (Intel SDM vol. 3, 4.5) and returns the physical
   * address `va` maps to, or undefined where a level is not present.
   */
  translate(va: number): number | undefined {
    const v = BigInt(va);
    let table = this.plan.sregs.cr3 & ~0xfffn;
    for (const [shift, last] of [[39n, false], [30n, false], [21n, false], [12n, true]] as const) {
      const e = this.u64(Number(table + ((v >> shift) & 0x1ffn) * 8n));
      if (!(e & 1n)) return undefined;
      const addr = e & 0x000f_ffff_ffff_f000n;
      if (last || (shift !== 39n && e & 0x80n)) return Number((addr & ~((1n << shift) - 1n)) + (v & ((1n << shift) - 1n)));
      table = addr;
    }
    return undefined;
  }
}
