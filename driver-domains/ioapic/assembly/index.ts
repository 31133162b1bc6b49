// ioapic stub domain: the exports of the module ABI (driver-domains/runtime/ABI.md).
// Wiring only; the model is device.ts, the registers regs.ts, the state persist.ts.
import { answer } from "../../common/assembly/host";
import { Dir, Space, sizeMask, sizeValid } from "../../common/assembly/ioreq";
import * as layout from "../../common/assembly/layout";
import {
  ABI_VERSION, STATE_BASE, STATE_MAGIC_IOAPIC as STATE_MAGIC, counterGet,
} from "../../common/assembly/memory";
import {
  eoi as eoiVector, invalidAccess, readIndirect, resetDevice, routeAddress, routeData, routeFlags, setIrq, writeIndirect,
} from "./device";
import { COUNTERS_BASE, COUNTER_COUNT, LAYOUT_REVISION, STATE_SIZE, state } from "./persist";
import { MMIO_SIZE, REG_EOI, REG_IOREGSEL, REG_IOWIN } from "./regs";

// Platform constants, exported so that a test can compare them with boot/layout.ts.
export const LAYOUT_IOAPIC_BASE: u64 = layout.IOAPIC_BASE;
export const LAYOUT_IOAPIC_ID: u32 = layout.IOAPIC_ID;
export const LAYOUT_IOAPIC_PINS: u32 = layout.IOAPIC_PINS;
export const LAYOUT_PCI_INTX_GSI_BASE: u32 = layout.PCI_INTX_GSI_BASE;
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
  // The fill also deasserted every line input, which reset() leaves alone.
  resetDevice();
}

export function reset(): void {
  resetDevice();
}

export function counter(id: u32): u64 { return counterGet(COUNTERS_BASE, COUNTER_COUNT, id); }
export function counter_count(): u32 { return COUNTER_COUNT; }

export function set_irq(pin: u32, level: u32): void { setIrq(pin, level); }

/** Changes whenever a route may have changed; the runtime re-reads routes when it does. */
export function route_generation(): u32 { return state().routeGeneration; }
/** The MSI address pin `pin` delivers with now. */
export function route_addr(pin: u32): u64 { return routeAddress(pin); }
/** The MSI data pin `pin` delivers with now. */
export function route_data(pin: u32): u32 { return routeData(pin); }
/** RouteFlag bits: masked, level-triggered, deliverable. */
export function route_flags(pin: u32): u32 { return routeFlags(pin); }
export function eoi(vector: u32): void { eoiVector(vector); }

function readRegister(offset: u32, size: u32): u64 {
  // GUEST-INPUT: IOREGSEL takes byte, word or dword reads; IOWIN only dwords (datasheet 3.1).
  if (offset == REG_IOREGSEL && size <= 4) return <u64>state().ioregsel;
  if (offset == REG_IOWIN && size == 4) return <u64>readIndirect(state().ioregsel);
  // The EOI register is write-only; every other offset is unimplemented.
  invalidAccess("ioapic: bad read at offset", <u64>offset, size);
  return 0;
}

function writeRegister(offset: u32, size: u32, value: u64): void {
  // GUEST-INPUT: same size rules as reads; only bits 7:0 of IOREGSEL and EOI exist.
  if (offset == REG_IOREGSEL && size <= 4) {
    state().ioregsel = <u32>(value & 0xff);
  } else if (offset == REG_IOWIN && size == 4) {
    writeIndirect(state().ioregsel, <u32>value);
  } else if (offset == REG_EOI && size <= 4) {
    eoiVector(<u32>(value & 0xff));
  } else {
    invalidAccess("ioapic: bad write at offset", <u64>offset, size);
  }
}

export function ioreq(seq: u64, space: u32, addr: u64, size: u32, dir: u32, data: u64): void {
  let result: u64 = 0;
  // GUEST-INPUT: space, size and direction come from the trapped instruction via the
  // runtime; the address must fall inside this page. Every path answers exactly once.
  if (space != <u32>Space.Mmio || !sizeValid(size) || dir > <u32>Dir.Write
      || addr < layout.IOAPIC_BASE || addr - layout.IOAPIC_BASE >= MMIO_SIZE) {
    invalidAccess("ioapic: access outside the register page", addr, size);
  } else {
    const offset = <u32>(addr - layout.IOAPIC_BASE);
    if (dir == <u32>Dir.Read) result = readRegister(offset, size) & sizeMask(size);
    else writeRegister(offset, size, data & sizeMask(size));
  }
  answer(seq, dir == <u32>Dir.Read ? result : 0);
}
