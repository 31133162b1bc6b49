// console stub domain: the exports of the module ABI (driver-domains/runtime/ABI.md).
// Wiring only: port decoding here; the UART is uart.ts, the platform devices platform.ts,
// the state persist.ts.
import { answer } from "../../common/assembly/host";
import { Dir, Space, sizeMask, sizeValid } from "../../common/assembly/ioreq";
import * as layout from "../../common/assembly/layout";
import {
  ABI_VERSION, STATE_BASE, STATE_MAGIC_CONSOLE as STATE_MAGIC, TX_OUT_BASE, counterBump, counterGet,
} from "../../common/assembly/memory";
import { LogLevel, logAccess, logWorthy } from "../../common/assembly/log";
import { COUNTERS_BASE, COUNTER_COUNT, C_INVALID_ACCESS, LAYOUT_REVISION, STATE_SIZE, state } from "./persist";
import {
  i8042CommandWrite, i8042DataRead, i8042DataWrite, pm1ControlRead, pm1ControlWrite, pm1EventRead,
  pm1EventWrite, pmReset, pmTimer, pmTimerPowerOn, pressPowerButton, updateSci,
} from "./platform";
import { I8042_STATUS_IDLE, PlatformEvent } from "./regs";
import {
  txDrain, uartPowerOn, uartRead, uartReset, uartRx, uartWrite, uartWriteIgnored, updateIrq,
} from "./uart";

// Platform constants, exported so that a test can compare them with boot/layout.ts.
export const LAYOUT_COM1_PORT: u32 = layout.COM1_PORT;
export const LAYOUT_COM1_SIZE: u32 = layout.COM1_SIZE;
export const LAYOUT_COM1_IRQ: u32 = layout.COM1_IRQ;
export const LAYOUT_I8042_DATA: u32 = layout.I8042_DATA;
export const LAYOUT_I8042_COMMAND: u32 = layout.I8042_COMMAND;
export const LAYOUT_I8042_RESET_COMMAND: u32 = layout.I8042_RESET_COMMAND;
export const LAYOUT_PM1A_EVT: u32 = layout.PM1A_EVT;
export const LAYOUT_PM1_EVT_LEN: u32 = layout.PM1_EVT_LEN;
export const LAYOUT_PM1A_CNT: u32 = layout.PM1A_CNT;
export const LAYOUT_PM1_CNT_LEN: u32 = layout.PM1_CNT_LEN;
export const LAYOUT_PM_TMR: u32 = layout.PM_TMR;
export const LAYOUT_PM_TMR_LEN: u32 = layout.PM_TMR_LEN;
export const LAYOUT_SLEEP_TYPE_S5: u32 = layout.SLEEP_TYPE_S5;
export const LAYOUT_SCI_IRQ: u32 = layout.SCI_IRQ;

export function abi_version(): u32 { return ABI_VERSION; }
export function state_base(): usize { return STATE_BASE; }
export function state_size(): u32 { return STATE_SIZE; }

/** 1 if STATE holds an image of this module's layout (checked by the runtime on restart). */
export function state_valid(): u32 {
  return state().magic == STATE_MAGIC && state().layout == LAYOUT_REVISION ? 1 : 0;
}

/** Power-on: every byte of STATE is rewritten. Not called on restart. */
export function init(): void {
  memory.fill(STATE_BASE, 0, STATE_SIZE);
  state().magic = STATE_MAGIC;
  state().layout = LAYOUT_REVISION;
  uartPowerOn();
  pmTimerPowerOn();
  uartReset();
  pmReset();
}

/** Platform reset: device registers to their reset values; undrained output is kept. */
export function reset(): void {
  uartReset();
  pmReset();
  updateIrq();
  updateSci();
}

export function counter(id: u32): u64 { return counterGet(COUNTERS_BASE, COUNTER_COUNT, id); }
export function counter_count(): u32 { return COUNTER_COUNT; }

export function rx(byte: u32): u32 { return uartRx(<u8>byte) ? 1 : 0; }
export function tx_buf(): usize { return TX_OUT_BASE; }
export function tx_drain(): u32 { return txDrain(TX_OUT_BASE); }

export function platform_event(): u32 { return state().platformEvent; }
/** The runtime has acted on the pending event (at-least-once: it may see it again after a crash). */
export function platform_event_clear(): void { state().platformEvent = <u32>PlatformEvent.None; }
export function power_button(): void { pressPowerButton(); }

function invalidAccess(addr: u64, size: u32): void {
  const n = counterBump(COUNTERS_BASE, C_INVALID_ACCESS);
  if (logWorthy(n)) logAccess(LogLevel.Warn, "console: invalid access at port", addr, size, n);
}

/** True if [port, port+size) lies inside [base, base+len). */
function within(port: u32, size: u32, base: u32, len: u32): bool {
  return port >= base && port - base + size <= len;
}

// The byte-wide devices take word and dword accesses as consecutive byte accesses, as the
// ISA bus splits them for an 8-bit device; the little-endian value is assembled here.
function readBytes(port: u32, size: u32): u64 {
  let v: u64 = 0;
  for (let i: u32 = 0; i < size; i++) v |= <u64>readByte(port + i) << (<u64>i << 3);
  return v;
}

function writeBytes(port: u32, size: u32, value: u64): void {
  for (let i: u32 = 0; i < size; i++) writeByte(port + i, <u8>(value >> (<u64>i << 3)));
}

// readByte and writeByte run only for ports that byteWide() placed in one of the three
// byte-wide blocks, so the last branch is the PM1a control block.
function readByte(port: u32): u8 {
  if (within(port, 1, layout.COM1_PORT, layout.COM1_SIZE)) return uartRead(port - layout.COM1_PORT);
  if (within(port, 1, layout.PM1A_EVT, layout.PM1_EVT_LEN)) return pm1EventRead(port - layout.PM1A_EVT);
  return pm1ControlRead(port - layout.PM1A_CNT);
}

function writeByte(port: u32, v: u8): void {
  if (within(port, 1, layout.COM1_PORT, layout.COM1_SIZE)) {
    const reg = port - layout.COM1_PORT;
    if (uartWriteIgnored(reg)) invalidAccess(<u64>port, 1);
    uartWrite(reg, v);
  } else if (within(port, 1, layout.PM1A_EVT, layout.PM1_EVT_LEN)) {
    pm1EventWrite(port - layout.PM1A_EVT, v);
  } else {
    pm1ControlWrite(port - layout.PM1A_CNT, v);
  }
}

/** True for an access to one of the byte-wide blocks that the byte split can serve. */
function byteWide(port: u32, size: u32): bool {
  // GUEST-INPUT: the whole access must stay inside one block; x86 has no 8-byte IN/OUT.
  if (size > 4) return false;
  return within(port, size, layout.COM1_PORT, layout.COM1_SIZE)
    || within(port, size, layout.PM1A_EVT, layout.PM1_EVT_LEN)
    || within(port, size, layout.PM1A_CNT, layout.PM1_CNT_LEN);
}

function pioRead(port: u32, size: u32): u64 {
  if (byteWide(port, size)) return readBytes(port, size);
  // GUEST-INPUT: the PM timer is read whole, so a dword read is one consistent sample.
  if (within(port, size, layout.PM_TMR, layout.PM_TMR_LEN) && size <= 4) {
    return <u64>(pmTimer() >>> ((port - layout.PM_TMR) << 3));
  }
  if (size == 1 && port == layout.I8042_DATA) return <u64>i8042DataRead();
  if (size == 1 && port == layout.I8042_COMMAND) return <u64>I8042_STATUS_IDLE;
  invalidAccess(<u64>port, size);
  return 0;
}

function pioWrite(port: u32, size: u32, value: u64): void {
  if (byteWide(port, size)) {
    writeBytes(port, size, value);
  } else if (size == 1 && port == layout.I8042_DATA) {
    i8042DataWrite(<u8>value);
  } else if (size == 1 && port == layout.I8042_COMMAND) {
    i8042CommandWrite(<u8>value, <u8>layout.I8042_RESET_COMMAND);
  } else {
    // Includes writes to the read-only PM timer.
    invalidAccess(<u64>port, size);
  }
}

export function ioreq(seq: u64, space: u32, addr: u64, size: u32, dir: u32, data: u64): void {
  let result: u64 = 0;
  // GUEST-INPUT: only port I/O to a 16-bit port with an x86 access size is meaningful.
  if (space != <u32>Space.Pio || !sizeValid(size) || dir > <u32>Dir.Write || addr > 0xffff) {
    invalidAccess(addr, size);
  } else {
    const port = <u32>addr;
    if (dir == <u32>Dir.Read) result = pioRead(port, size) & sizeMask(size);
    else pioWrite(port, size, data & sizeMask(size));
    updateIrq();
    updateSci();
  }
  answer(seq, dir == <u32>Dir.Read ? result : 0);
}
