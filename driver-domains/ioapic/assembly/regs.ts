// 82093AA I/O APIC register interface (Intel 82093AA datasheet, 290566-001, section 3)
// and the MSI format it is delivered as (Intel SDM Vol. 3A, 11.11.1 Message Address
// Register Format and 11.11.2 Message Data Register Format).
//
// Redirection-entry fields are decoded into the enums below when the guest writes them
// and encoded again when it reads them: no raw bit is ever passed on to an MSI.

/** Direct registers, offsets in the 4 KiB page (datasheet 3.1 Table 2). */
export const REG_IOREGSEL: u32 = 0x00;
export const REG_IOWIN: u32 = 0x10;
/** EOI register of the IO(x)APIC version 0x20 (not in the 82093AA itself). */
export const REG_EOI: u32 = 0x40;
export const MMIO_SIZE: u64 = 0x1000;

/** Indirect registers selected by IOREGSEL (datasheet 3.2). */
export const IND_ID: u32 = 0x00;
export const IND_VERSION: u32 = 0x01;
export const IND_ARB: u32 = 0x02;
export const IND_REDIR_FIRST: u32 = 0x10;
export const IND_REDIR_LAST: u32 = 0x3f;

/**
 * Version 0x20: an IO-APIC with the EOI register, so Linux (io_apic.c, __eoi_ioapic_pin)
 * clears remote IRR by writing it instead of toggling the trigger mode. 0x11 would be the
 * plain 82093AA.
 */
export const VERSION: u32 = 0x20;
/** IOAPICVER bits 23:16: index of the last redirection entry. */
export const MAX_REDIR_SHIFT: u32 = 16;
/** IOAPICID bits 27:24 (datasheet 3.2.1); IOAPICARB bits 27:24 mirror it (3.2.3). */
export const ID_SHIFT: u32 = 24;
export const ID_MASK: u32 = 0xf;

// IOREDTBL bit positions (datasheet 3.2.4).
export const RTE_VECTOR_MASK: u32 = 0xff;
export const RTE_DELIVERY_SHIFT: u32 = 8;
export const RTE_DESTMODE_BIT: u32 = 1 << 11;
export const RTE_DELIVS_BIT: u32 = 1 << 12;
export const RTE_POLARITY_BIT: u32 = 1 << 13;
export const RTE_REMOTE_IRR_BIT: u32 = 1 << 14;
export const RTE_TRIGGER_BIT: u32 = 1 << 15;
export const RTE_MASK_BIT: u32 = 1 << 16;
/** High dword bits 31:24 = entry bits 63:56, the destination field. */
export const RTE_DEST_SHIFT: u32 = 24;

/** Vectors 0..15 are reserved; a LAPIC rejects them (SDM 10.5.3, "Receive Illegal Vector"). */
export const MIN_VECTOR: u32 = 0x10;

export const enum Trigger { Edge = 0, Level = 1 }
export const enum Polarity { ActiveHigh = 0, ActiveLow = 1 }
export const enum DestMode { Physical = 0, Logical = 1 }
/** Datasheet 3.2.4, bits 10:8. Every encoding is named so that decoding is total. */
export const enum DeliveryMode {
  Fixed = 0, LowestPriority = 1, Smi = 2, Reserved3 = 3, Nmi = 4, Init = 5, Reserved6 = 6, ExtInt = 7,
}

export function triggerFromBit(set: bool): Trigger { return set ? Trigger.Level : Trigger.Edge; }
export function polarityFromBit(set: bool): Polarity { return set ? Polarity.ActiveLow : Polarity.ActiveHigh; }
export function destModeFromBit(set: bool): DestMode { return set ? DestMode.Logical : DestMode.Physical; }

export function deliveryModeFromBits(bits: u32): DeliveryMode {
  switch (bits & 7) {
    case 0: return DeliveryMode.Fixed;
    case 1: return DeliveryMode.LowestPriority;
    case 2: return DeliveryMode.Smi;
    case 3: return DeliveryMode.Reserved3;
    case 4: return DeliveryMode.Nmi;
    case 5: return DeliveryMode.Init;
    case 6: return DeliveryMode.Reserved6;
    default: return DeliveryMode.ExtInt;
  }
}

export function triggerBit(t: Trigger): u32 {
  switch (t) {
    case Trigger.Level: return RTE_TRIGGER_BIT;
    default: return 0;
  }
}

export function polarityBit(p: Polarity): u32 {
  switch (p) {
    case Polarity.ActiveLow: return RTE_POLARITY_BIT;
    default: return 0;
  }
}

export function destModeBit(m: DestMode): u32 {
  switch (m) {
    case DestMode.Logical: return RTE_DESTMODE_BIT;
    default: return 0;
  }
}

export function deliveryModeBits(m: DeliveryMode): u32 {
  switch (m) {
    case DeliveryMode.Fixed: return 0;
    case DeliveryMode.LowestPriority: return 1;
    case DeliveryMode.Smi: return 2;
    case DeliveryMode.Reserved3: return 3;
    case DeliveryMode.Nmi: return 4;
    case DeliveryMode.Init: return 5;
    case DeliveryMode.Reserved6: return 6;
    default: return 7;
  }
}

/**
 * SMI, NMI, INIT and ExtINT are edge-triggered whatever the trigger bit says (datasheet
 * 3.2.4, delivery mode table); only Fixed and Lowest Priority honour a level setting.
 */
export function effectiveTrigger(mode: DeliveryMode, programmed: Trigger): Trigger {
  switch (mode) {
    case DeliveryMode.Fixed:
    case DeliveryMode.LowestPriority:
      return programmed;
    default:
      return Trigger.Edge;
  }
}

// MSI encoding (SDM Vol. 3A, 11.11.1 and 11.11.2).
export const MSI_ADDR_BASE: u64 = 0xfee0_0000;
export const MSI_ADDR_DEST_SHIFT: u64 = 12;
/** Redirection hint: the destination set arbitrates for the lowest priority (11.11.1). */
export const MSI_ADDR_RH: u64 = 1 << 3;
export const MSI_ADDR_DM_LOGICAL: u64 = 1 << 2;
export const MSI_DATA_DELIVERY_SHIFT: u32 = 8;
/** Level bit: assert (meaningful for level-triggered messages only). */
export const MSI_DATA_LEVEL_ASSERT: u32 = 1 << 14;
export const MSI_DATA_TRIGGER_LEVEL: u32 = 1 << 15;

/** The MSI delivery-mode field for the modes that are delivered at all. */
export function msiDeliveryBits(m: DeliveryMode): u32 {
  switch (m) {
    case DeliveryMode.Fixed: return 0;
    case DeliveryMode.LowestPriority: return 1;
    case DeliveryMode.Smi: return 2;
    case DeliveryMode.Nmi: return 4;
    case DeliveryMode.Init: return 5;
    default: return 0; // not delivered: see canDeliver
  }
}

/**
 * ExtINT needs an 8259 to supply the vector in an INTA cycle, and the split irqchip has
 * none; the reserved encodings mean nothing. Fixed and Lowest Priority need a legal vector.
 */
export function canDeliver(m: DeliveryMode, vector: u32): bool {
  switch (m) {
    case DeliveryMode.Fixed:
    case DeliveryMode.LowestPriority:
      return vector >= MIN_VECTOR;
    case DeliveryMode.Smi:
    case DeliveryMode.Nmi:
    case DeliveryMode.Init:
      return true;
    default:
      return false;
  }
}

export function msiAddress(dest: u32, mode: DestMode, delivery: DeliveryMode): u64 {
  let addr = MSI_ADDR_BASE | (<u64>(dest & 0xff) << MSI_ADDR_DEST_SHIFT);
  switch (mode) {
    case DestMode.Logical: addr |= MSI_ADDR_DM_LOGICAL; break;
    default: break;
  }
  // Lowest priority keeps its meaning as a message: RH set, as Linux composed such MSIs.
  if (delivery == DeliveryMode.LowestPriority) addr |= MSI_ADDR_RH;
  return addr;
}

export function msiData(vector: u32, delivery: DeliveryMode, trigger: Trigger): u32 {
  let data = (vector & 0xff) | (msiDeliveryBits(delivery) << MSI_DATA_DELIVERY_SHIFT);
  switch (trigger) {
    case Trigger.Level: data |= MSI_DATA_TRIGGER_LEVEL | MSI_DATA_LEVEL_ASSERT; break;
    default: break;
  }
  return data;
}
