// The fixed linear-memory map shared by every stub domain (driver-domains/runtime/ABI.md,
// "Memory"). Mirrored in driver-domains/runtime/abi.ts; runtime/layout.test.ts checks both.
//
//   0x0000..0x00ff  never used (keeps a zero pointer meaningless)
//   0x0100..0x20ff  STATE: the whole device state, persisted by the runtime
//   0x2100..0x21ff  SCRATCH: log message assembly, transient
//   0x2200..0x2eff  PCI_STAGING: pci device table staged by cfg_* before init(), transient
//   0x2f00..0x2fff  PCI_CAP_IN: pci capability bytes handed to cfg_cap, transient
//   0x3000..0x3fff  TX_OUT: console tx_drain output, transient
//   0x4000..        static data (string literals) placed by the compiler (--memoryBase)
//
// Nothing else in the module is mutable: the build rejects mutable globals, a start
// function and memory growth, so copying STATE into a fresh instance restores it exactly.

export const STATE_BASE: usize = 0x100;
export const STATE_LIMIT: usize = 0x2100;
export const SCRATCH_BASE: usize = 0x2100;
export const SCRATCH_SIZE: u32 = 0x100;
/** pci only: the device table as cfg_* builds it; init() copies it into STATE. */
export const PCI_STAGING_BASE: usize = 0x2200;
export const PCI_STAGING_SIZE: u32 = 0xd00;
/** pci only: where the runtime writes one capability's bytes before cfg_cap. */
export const PCI_CAP_IN_BASE: usize = 0x2f00;
export const PCI_CAP_IN_SIZE: u32 = 0x100;
export const TX_OUT_BASE: usize = 0x3000;
export const TX_OUT_SIZE: u32 = 0x1000;

/**
 * First word of every state image: "MH" (microhv) in the low half, the module kind in the
 * high half, so that a runtime never resumes one module from another's image.
 */
export const STATE_MAGIC_IOAPIC: u32 = 0x0001_484d;
export const STATE_MAGIC_CONSOLE: u32 = 0x0002_484d;
export const STATE_MAGIC_PCI: u32 = 0x0003_484d;
/** The stub-domain ABI revision (driver-domains/runtime/ABI.md). */
export const ABI_VERSION: u32 = 1;

/** Counters are u64 slots; ids out of range read 0 and are never written. */
export function counterGet(base: usize, count: u32, id: u32): u64 {
  if (id >= count) return 0;
  return load<u64>(base + (<usize>id << 3));
}

/** Increments a counter and returns its new value, saturating instead of wrapping. */
export function counterBump(base: usize, id: u32): u64 {
  const addr = base + (<usize>id << 3);
  let v = load<u64>(addr);
  if (v != 0xffff_ffff_ffff_ffff) v += 1;
  store<u64>(addr, v);
  return v;
}
