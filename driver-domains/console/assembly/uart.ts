// 16550A UART model (PC16550D datasheet) for COM1.
//
// Transmit is instantaneous: a THR write moves the byte into the transmit ring at once, so
// THR and the shift register are always empty (LSR.THRE and LSR.TEMT read set) and the
// THRE interrupt re-arms after every THR write. An IER write with ETBEI set while THR is
// empty arms it too, which Linux's 8250 driver checks at start-up (UART_BUG_THRE test)
// and relies on when it restarts transmission. Reading IIR while it reports THRE clears it.
//
// Receive: host bytes enter through rx(); the FIFO holds 16 bytes (1 with FIFOs off). A
// full FIFO refuses host input (rx returns 0 and the runtime keeps the byte), so host
// input is never lost; an overrun can only come from loopback. Data below the trigger
// level is reported at once as a character timeout: host input arrives in whole batches,
// so waiting four character times would only add latency.
//
// The IRQ line is the pending-interrupt signal gated by MCR.OUT2, as PC boards wire it;
// in loopback mode OUT2 is internal, so the line stays low.
import { set_pin } from "../../common/assembly/host";
import { COM1_IRQ } from "../../common/assembly/layout";
import { counterBump } from "../../common/assembly/memory";
import { LogLevel, logEvent, logWorthy } from "../../common/assembly/log";
import {
  COUNTERS_BASE, C_RX_OVERRUN, C_RX_REJECTED, C_TX_DROPPED, RX_FIFO_BASE, TX_CAPACITY, TX_RING_BASE, state,
} from "./persist";
import {
  FCR_CLEAR_RX, FCR_ENABLE, FCR_TRIGGER_SHIFT, IER_EDSSI, IER_ELSI, IER_ERBFI, IER_ETBEI, IER_MASK,
  IIR_CTI, IIR_FIFO_ENABLED, IIR_MSI, IIR_NO_INT, IIR_RDA, IIR_RLS, IIR_THRE, LCR_DLAB, LSR_DR,
  LSR_ERRORS, LSR_OE, LSR_TEMT, LSR_THRE, MCR_DTR, MCR_LOOP, MCR_MASK, MCR_OUT1, MCR_OUT2, MCR_RTS,
  MSR_CTS, MSR_DCD, MSR_DCTS, MSR_DDCD, MSR_DDSR, MSR_DELTAS, MSR_DSR, MSR_RI, MSR_TERI,
  RX_FIFO_SIZE, UART_IER_DLM, UART_IIR_FCR, UART_LCR, UART_LSR, UART_MCR, UART_MSR,
  UART_RBR_THR_DLL, UART_SCR, rxTriggerLevel,
} from "./regs";

/** Modem inputs when not in loopback: a terminal that is present and ready (DCD, DSR, CTS). */
const MODEM_INPUTS_CONNECTED: u8 = MSR_DCD | MSR_DSR | MSR_CTS;

function rxCapacity(): u32 {
  return state().fifoEnabled != 0 ? RX_FIFO_SIZE : 1;
}

function rxClear(): void {
  state().rxHead = 0;
  state().rxCount = 0;
}

function rxPop(): u8 {
  const s = state();
  if (s.rxCount == 0) return 0;
  const b = load<u8>(RX_FIFO_BASE + <usize>s.rxHead);
  s.rxHead = <u8>((<u32>s.rxHead + 1) % RX_FIFO_SIZE);
  s.rxCount--;
  return b;
}

function rxPushUnchecked(b: u8): void {
  const s = state();
  const tail = (<u32>s.rxHead + <u32>s.rxCount) % RX_FIFO_SIZE;
  store<u8>(RX_FIFO_BASE + <usize>tail, b);
  s.rxCount++;
}

/** A byte from the looped-back transmitter; a full receiver overruns (LSR.OE). */
function rxFromLoopback(b: u8): void {
  const s = state();
  if (<u32>s.rxCount < rxCapacity()) {
    rxPushUnchecked(b);
    return;
  }
  // With FIFOs off the holding register is overwritten; with FIFOs on the FIFO keeps its
  // contents and the character in the shift register is lost (PC16550D, LSR bit 1).
  if (s.fifoEnabled == 0) store<u8>(RX_FIFO_BASE + <usize>s.rxHead, b);
  s.lsrErrors |= LSR_OE;
  const n = counterBump(COUNTERS_BASE, C_RX_OVERRUN);
  if (logWorthy(n)) logEvent(LogLevel.Info, "uart: receiver overrun", <u64>b, n);
}

function txPush(b: u8): void {
  const s = state();
  if (s.txCount >= TX_CAPACITY) {
    const n = counterBump(COUNTERS_BASE, C_TX_DROPPED);
    if (logWorthy(n)) logEvent(LogLevel.Warn, "uart: transmit buffer full, byte dropped", <u64>b, n);
    return;
  }
  store<u8>(TX_RING_BASE + <usize>((s.txHead + s.txCount) % TX_CAPACITY), b);
  s.txCount++;
}

/** Copies every pending transmitted byte to `dst` (at most TX_CAPACITY) and empties the ring. */
export function txDrain(dst: usize): u32 {
  const s = state();
  // txCount never exceeds TX_CAPACITY; the clamp keeps even a damaged state image from
  // writing past the TX_OUT area.
  const n = min(s.txCount, TX_CAPACITY);
  for (let i: u32 = 0; i < n; i++) {
    store<u8>(dst + <usize>i, load<u8>(TX_RING_BASE + <usize>((s.txHead + i) % TX_CAPACITY)));
  }
  s.txHead = 0;
  s.txCount = 0;
  return n;
}

function modemInputs(): u8 {
  const mcr = state().mcr;
  if ((mcr & MCR_LOOP) == 0) return MODEM_INPUTS_CONNECTED;
  // Loopback wiring (PC16550D, MCR bit 4): DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
  let v: u8 = 0;
  if ((mcr & MCR_DTR) != 0) v |= MSR_DSR;
  if ((mcr & MCR_RTS) != 0) v |= MSR_CTS;
  if ((mcr & MCR_OUT1) != 0) v |= MSR_RI;
  if ((mcr & MCR_OUT2) != 0) v |= MSR_DCD;
  return v;
}

/** Recomputes the modem inputs and accumulates their delta bits. */
function updateModemStatus(): void {
  const s = state();
  const before = s.msr & 0xf0;
  const after = modemInputs();
  const changed = before ^ after;
  let deltas = s.msr & MSR_DELTAS;
  if ((changed & MSR_CTS) != 0) deltas |= MSR_DCTS;
  if ((changed & MSR_DSR) != 0) deltas |= MSR_DDSR;
  if ((changed & MSR_DCD) != 0) deltas |= MSR_DDCD;
  // TERI: trailing edge only, RI going from on to off.
  if ((before & MSR_RI) != 0 && (after & MSR_RI) == 0) deltas |= MSR_TERI;
  s.msr = after | deltas;
}

/** IIR bits 3:0 for the highest-priority pending interrupt (PC16550D, Table V). */
function interruptId(): u8 {
  const s = state();
  const ier = s.ier;
  if ((ier & IER_ELSI) != 0 && (s.lsrErrors & LSR_ERRORS) != 0) return IIR_RLS;
  if ((ier & IER_ERBFI) != 0 && s.rxCount != 0) {
    return s.fifoEnabled != 0 && s.rxCount < s.rxTrigger ? IIR_CTI : IIR_RDA;
  }
  if ((ier & IER_ETBEI) != 0 && s.thrPending != 0) return IIR_THRE;
  if ((ier & IER_EDSSI) != 0 && (s.msr & MSR_DELTAS) != 0) return IIR_MSI;
  return IIR_NO_INT;
}

/** Drives IRQ 4 toward the ioapic domain when the gated interrupt output changes. */
export function updateIrq(): void {
  const s = state();
  const out2 = (s.mcr & (MCR_OUT2 | MCR_LOOP)) == MCR_OUT2;
  const level: u8 = out2 && interruptId() != IIR_NO_INT ? 1 : 0;
  if (level == s.irqLevel) return;
  s.irqLevel = level;
  set_pin(COM1_IRQ, <u32>level);
}

function lsr(): u8 {
  const s = state();
  let v: u8 = LSR_THRE | LSR_TEMT | (s.lsrErrors & LSR_ERRORS);
  if (s.rxCount != 0) v |= LSR_DR;
  return v;
}

/** One byte-wide register read; `reg` is 0..7. */
export function uartRead(reg: u32): u8 {
  const s = state();
  const dlab = (s.lcr & LCR_DLAB) != 0;
  switch (reg) {
    case UART_RBR_THR_DLL: return dlab ? s.dll : rxPop();
    case UART_IER_DLM: return dlab ? s.dlm : s.ier;
    case UART_IIR_FCR: {
      const id = interruptId();
      if (id == IIR_THRE) s.thrPending = 0;
      return id | (s.fifoEnabled != 0 ? IIR_FIFO_ENABLED : 0);
    }
    case UART_LCR: return s.lcr;
    case UART_MCR: return s.mcr;
    case UART_LSR: {
      const v = lsr();
      s.lsrErrors = 0;
      return v;
    }
    case UART_MSR: {
      const v = s.msr;
      s.msr &= ~MSR_DELTAS;
      return v;
    }
    default: return s.scr;
  }
}

function writeFcr(v: u8): void {
  const s = state();
  const enable: u8 = (v & FCR_ENABLE) != 0 ? 1 : 0;
  // Changing the FIFO enable clears both FIFOs; with FIFOs off the other bits are not
  // programmed (PC16550D, FCR bit 0).
  if (enable != s.fifoEnabled) rxClear();
  s.fifoEnabled = enable;
  if (enable == 0) return;
  if ((v & FCR_CLEAR_RX) != 0) rxClear();
  // FCR_CLEAR_TX: the transmitter FIFO is always empty here (bytes leave on THR write),
  // and bytes already in the ring have left the UART, so there is nothing to clear.
  s.rxTrigger = rxTriggerLevel(<u32>(v >> FCR_TRIGGER_SHIFT));
}

/** One byte-wide register write; `reg` is 0..7. */
export function uartWrite(reg: u32, v: u8): void {
  const s = state();
  const dlab = (s.lcr & LCR_DLAB) != 0;
  switch (reg) {
    case UART_RBR_THR_DLL: {
      if (dlab) { s.dll = v; break; }
      if ((s.mcr & MCR_LOOP) != 0) rxFromLoopback(v);
      else txPush(v);
      // THR empties at once, so the THRE interrupt is armed again.
      s.thrPending = 1;
      break;
    }
    case UART_IER_DLM: {
      if (dlab) { s.dlm = v; break; }
      // GUEST-INPUT: bits 7:4 do not exist on a 16550A (Linux probes bit 6 for XScale UARTs).
      s.ier = v & IER_MASK;
      if ((s.ier & IER_ETBEI) != 0) s.thrPending = 1;
      break;
    }
    case UART_IIR_FCR: writeFcr(v); break;
    case UART_LCR: s.lcr = v; break;
    case UART_MCR: {
      // GUEST-INPUT: bits 7:5 do not exist on a 16550A.
      s.mcr = v & MCR_MASK;
      updateModemStatus();
      break;
    }
    // LSR and MSR writes are factory-test features; the model ignores them (the caller counts them).
    case UART_LSR: break;
    case UART_MSR: break;
    default: s.scr = v; break;
  }
}

/** True for the registers whose writes the model ignores (the caller counts them). */
export function uartWriteIgnored(reg: u32): bool {
  return reg == UART_LSR || reg == UART_MSR;
}

/** Host input; false when the receiver cannot take it now. */
export function uartRx(b: u8): bool {
  const s = state();
  // In loopback the serial input is disconnected (PC16550D, MCR bit 4), and a full FIFO
  // pushes back: either way the runtime keeps the byte and offers it again later.
  if ((s.mcr & MCR_LOOP) != 0 || <u32>s.rxCount >= rxCapacity()) {
    counterBump(COUNTERS_BASE, C_RX_REJECTED);
    return false;
  }
  rxPushUnchecked(b);
  updateIrq();
  return true;
}

/** Master reset (PC16550D Table IV); the divisor latch and the scratch register keep their values. */
export function uartReset(): void {
  const s = state();
  s.ier = 0;
  s.lcr = 0;
  s.mcr = 0;
  s.lsrErrors = 0;
  s.fifoEnabled = 0;
  s.rxTrigger = 1;
  s.thrPending = 0;
  rxClear();
  s.msr = MODEM_INPUTS_CONNECTED;
}

/** Power-on values of what a master reset leaves alone. */
export function uartPowerOn(): void {
  const s = state();
  // 115200 / 12 = 9600 baud, the usual firmware default.
  s.dll = 12;
  s.dlm = 0;
  s.scr = 0;
  s.irqLevel = 0;
  s.msr = MODEM_INPUTS_CONNECTED;
}
