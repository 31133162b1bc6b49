// The console domain's state, at fixed addresses in STATE (../../common/assembly/memory.ts).
// The runtime persists [STATE_BASE, STATE_BASE + STATE_SIZE): the UART registers, the
// receive FIFO, the undrained transmit bytes, the ACPI registers and the PM timer's
// origin, the pending platform event, and the counters.
import { STATE_BASE } from "../../common/assembly/memory";
import { RX_FIFO_SIZE } from "./regs";

/** Bumped whenever this layout changes; a state image of another layout is refused. */
export const LAYOUT_REVISION: u32 = 1;

@unmanaged export class ConsoleState {
  magic: u32;
  layout: u32;
  // 16550A
  ier: u8;
  lcr: u8;
  mcr: u8;
  /** Latched LSR error bits (OE); DR, THRE and TEMT are derived. */
  lsrErrors: u8;
  /** Modem status: inputs in bits 7:4, deltas in bits 3:0. */
  msr: u8;
  scr: u8;
  dll: u8;
  dlm: u8;
  fifoEnabled: u8;
  rxTrigger: u8;
  /** The THRE interrupt is armed (cleared by an IIR read that reports it or a THR write). */
  thrPending: u8;
  /** Last level sent for the UART's IRQ line. */
  irqLevel: u8;
  rxHead: u8;
  rxCount: u8;
  // ACPI
  /** Last level sent for the SCI. */
  sciLevel: u8;
  /** PM timer bit 31 when last observed, for TMR_STS. */
  timerMsb: u8;
  pm1Sts: u16;
  pm1En: u16;
  pm1Cnt: u16;
  _pad: u16;
  platformEvent: u32;
  txHead: u32;
  txCount: u32;
  _pad2: u32;
  /** now_ns() at power-on: the PM timer counts from it. */
  timerOriginNs: u64;
}

/** Transmitted bytes not yet drained; full means loss (counted), never a stalled guest. */
export const TX_CAPACITY: u32 = 4096;

export const RX_FIFO_BASE: usize = STATE_BASE + offsetof<ConsoleState>();
export const TX_RING_BASE: usize = RX_FIFO_BASE + <usize>RX_FIFO_SIZE;
export const COUNTERS_BASE: usize = (TX_RING_BASE + <usize>TX_CAPACITY + 7) & ~(<usize>7);

/** Counter ids (driver-domains/runtime/abi.ts ConsoleCounter mirrors them). */
export const C_INVALID_ACCESS: u32 = 0;
export const C_TX_DROPPED: u32 = 1;
export const C_RX_OVERRUN: u32 = 2;
export const C_RX_REJECTED: u32 = 3;
export const C_IGNORED_COMMAND: u32 = 4;
export const COUNTER_COUNT: u32 = 5;

export const STATE_END: usize = COUNTERS_BASE + (<usize>COUNTER_COUNT << 3);
export const STATE_SIZE: u32 = <u32>(STATE_END - STATE_BASE);

// @ts-ignore: decorator
@inline export function state(): ConsoleState {
  return changetype<ConsoleState>(STATE_BASE);
}
