// ioreq argument encodings of the stub-domain ABI (driver-domains/runtime/ABI.md).
// The runtime translates the IDL slot (idl/proto/ioreq.proto) into these.

export const enum Space { Pio = 0, Mmio = 1 }
export const enum Dir { Read = 0, Write = 1 }

/** Access sizes an x86 instruction can produce: 1, 2, 4 or 8 bytes. */
export function sizeValid(size: u32): bool {
  return size == 1 || size == 2 || size == 4 || size == 8;
}

/** The low `size` bytes; `size` must have passed sizeValid. */
export function sizeMask(size: u32): u64 {
  return size >= 8 ? 0xffff_ffff_ffff_ffff : ((<u64>1 << (<u64>size << 3)) - 1);
}
