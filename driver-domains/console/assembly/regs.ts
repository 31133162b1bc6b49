// Register definitions of the devices the console domain models.

// --- 16550A UART (National Semiconductor PC16550D datasheet, Table II "Summary of
// Accessible Registers", and Table IV for reset values). Offsets from the base port.
export const UART_RBR_THR_DLL: u32 = 0; // read RBR, write THR; DLL when LCR.DLAB
export const UART_IER_DLM: u32 = 1;     // IER; DLM when LCR.DLAB
export const UART_IIR_FCR: u32 = 2;     // read IIR, write FCR
export const UART_LCR: u32 = 3;
export const UART_MCR: u32 = 4;
export const UART_LSR: u32 = 5;
export const UART_MSR: u32 = 6;
export const UART_SCR: u32 = 7;

/** IER bits 3:0; bits 7:4 are always zero. */
export const IER_ERBFI: u8 = 0x01;  // received data available
export const IER_ETBEI: u8 = 0x02;  // transmitter holding register empty
export const IER_ELSI: u8 = 0x04;   // receiver line status
export const IER_EDSSI: u8 = 0x08;  // modem status
export const IER_MASK: u8 = 0x0f;

/** IIR: bit 0 clear = interrupt pending; bits 3:1 identify it; bits 7:6 = FIFOs enabled. */
export const IIR_NO_INT: u8 = 0x01;
export const IIR_RLS: u8 = 0x06;
export const IIR_RDA: u8 = 0x04;
export const IIR_CTI: u8 = 0x0c;
export const IIR_THRE: u8 = 0x02;
export const IIR_MSI: u8 = 0x00;
export const IIR_FIFO_ENABLED: u8 = 0xc0;

/** FCR (write-only). */
export const FCR_ENABLE: u8 = 0x01;
export const FCR_CLEAR_RX: u8 = 0x02;
export const FCR_CLEAR_TX: u8 = 0x04;
export const FCR_TRIGGER_SHIFT: u8 = 6;

export const LCR_DLAB: u8 = 0x80;

/** MCR bits 4:0; bits 7:5 are always zero on the 16550A. */
export const MCR_DTR: u8 = 0x01;
export const MCR_RTS: u8 = 0x02;
export const MCR_OUT1: u8 = 0x04;
export const MCR_OUT2: u8 = 0x08;
export const MCR_LOOP: u8 = 0x10;
export const MCR_MASK: u8 = 0x1f;

export const LSR_DR: u8 = 0x01;
export const LSR_OE: u8 = 0x02;
export const LSR_PE: u8 = 0x04;
export const LSR_FE: u8 = 0x08;
export const LSR_BI: u8 = 0x10;
export const LSR_THRE: u8 = 0x20;
export const LSR_TEMT: u8 = 0x40;
/** The bits that raise a receiver line status interrupt and clear on an LSR read. */
export const LSR_ERRORS: u8 = LSR_OE | LSR_PE | LSR_FE | LSR_BI;

export const MSR_DCTS: u8 = 0x01;
export const MSR_DDSR: u8 = 0x02;
export const MSR_TERI: u8 = 0x04;
export const MSR_DDCD: u8 = 0x08;
export const MSR_DELTAS: u8 = 0x0f;
export const MSR_CTS: u8 = 0x10;
export const MSR_DSR: u8 = 0x20;
export const MSR_RI: u8 = 0x40;
export const MSR_DCD: u8 = 0x80;

export const RX_FIFO_SIZE: u32 = 16;

/** RX trigger levels selected by FCR bits 7:6 (PC16550D, FCR description). */
export function rxTriggerLevel(bits: u32): u8 {
  switch (bits & 3) {
    case 0: return 1;
    case 1: return 4;
    case 2: return 8;
    default: return 14;
  }
}

// --- ACPI fixed hardware (ACPI 6.5, 4.8.3.1 PM1 Event Grouping, 4.8.3.2 PM1 Control
// Grouping, 4.8.3.3 Power Management Timer).
/** PM1 status bits (Table 4.13). Write 1 to clear. */
export const PM1_STS_TMR: u16 = 1 << 0;
export const PM1_STS_BM: u16 = 1 << 4;
export const PM1_STS_GBL: u16 = 1 << 5;
export const PM1_STS_PWRBTN: u16 = 1 << 8;
export const PM1_STS_SLPBTN: u16 = 1 << 9;
export const PM1_STS_RTC: u16 = 1 << 10;
export const PM1_STS_PCIEXP_WAKE: u16 = 1 << 14;
export const PM1_STS_WAK: u16 = 1 << 15;
export const PM1_STS_DEFINED: u16 = PM1_STS_TMR | PM1_STS_BM | PM1_STS_GBL | PM1_STS_PWRBTN
  | PM1_STS_SLPBTN | PM1_STS_RTC | PM1_STS_PCIEXP_WAKE | PM1_STS_WAK;
/** PM1 enable bits (Table 4.14). */
export const PM1_EN_TMR: u16 = 1 << 0;
export const PM1_EN_GBL: u16 = 1 << 5;
export const PM1_EN_PWRBTN: u16 = 1 << 8;
export const PM1_EN_SLPBTN: u16 = 1 << 9;
export const PM1_EN_RTC: u16 = 1 << 10;
export const PM1_EN_PCIEXP_WAKE_DIS: u16 = 1 << 14;
export const PM1_EN_DEFINED: u16 = PM1_EN_TMR | PM1_EN_GBL | PM1_EN_PWRBTN | PM1_EN_SLPBTN
  | PM1_EN_RTC | PM1_EN_PCIEXP_WAKE_DIS;
/** Status bits that raise the SCI when their enable bit (same position) is set. */
export const PM1_SCI_SOURCES: u16 = PM1_STS_TMR | PM1_STS_GBL | PM1_STS_PWRBTN | PM1_STS_SLPBTN | PM1_STS_RTC;
/** PM1 control bits (Table 4.16). */
export const PM1_CNT_SCI_EN: u16 = 1 << 0;
export const PM1_CNT_BM_RLD: u16 = 1 << 1;
export const PM1_CNT_GBL_RLS: u16 = 1 << 2;
export const PM1_CNT_SLP_TYP_SHIFT: u16 = 10;
export const PM1_CNT_SLP_TYP_MASK: u16 = 7 << 10;
export const PM1_CNT_SLP_EN: u16 = 1 << 13;
/** Bits the model stores: BM_RLD and SLP_TYP (SCI_EN is fixed, GBL_RLS and SLP_EN are write-only). */
export const PM1_CNT_STORED: u16 = PM1_CNT_BM_RLD | PM1_CNT_SLP_TYP_MASK;

/** PM timer frequency (ACPI 6.5, 4.8.3.3): 3.579545 MHz. */
export const PM_TIMER_HZ: u64 = 3_579_545;
export const NS_PER_S: u64 = 1_000_000_000;

// --- i8042 (IBM PC/AT Technical Reference, keyboard controller status register).
/** Status: system flag set (self-test passed), keyboard not inhibited, both buffers empty. */
export const I8042_STATUS_IDLE: u32 = 0x14;

/** What the runtime must do for the platform (driver-domains/runtime/abi.ts PlatformEvent). */
export const enum PlatformEvent { None = 0, PowerOff = 1, Reset = 2, Sleep = 3 }

/** A pending event is replaced only by a more drastic one. */
export function eventRank(e: PlatformEvent): u32 {
  switch (e) {
    case PlatformEvent.PowerOff: return 3;
    case PlatformEvent.Reset: return 2;
    case PlatformEvent.Sleep: return 1;
    default: return 0;
  }
}
