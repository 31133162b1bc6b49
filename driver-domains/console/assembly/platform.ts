// The minimal platform devices: the i8042's reset line, the ACPI PM1a event and control
// blocks with the SCI, and the ACPI PM timer.
//
// PM timer: 32 bits at 3.579545 MHz (FADT TMR_VAL_EXT), counted from now_ns() at power-on.
// now_ns() is the host's CLOCK_MONOTONIC, which keeps running while a domain restarts, so a
// restored instance reads a continuous timer. TMR_STS (bit 31 of the timer changed) is
// evaluated when the guest reads PM1 status or the timer; there is no asynchronous SCI for
// TMR_EN, which Linux never sets (it uses the timer as a clocksource only).
import { now_ns, set_pin } from "../../common/assembly/host";
import { SCI_IRQ, SLEEP_TYPE_S5 } from "../../common/assembly/layout";
import { counterBump } from "../../common/assembly/memory";
import { LogLevel, logEvent, logWorthy } from "../../common/assembly/log";
import { COUNTERS_BASE, C_IGNORED_COMMAND, state } from "./persist";
import {
  NS_PER_S, PM1_CNT_SCI_EN, PM1_CNT_SLP_EN, PM1_CNT_SLP_TYP_MASK, PM1_CNT_SLP_TYP_SHIFT,
  PM1_CNT_STORED, PM1_EN_DEFINED, PM1_SCI_SOURCES, PM1_STS_DEFINED, PM1_STS_PWRBTN, PM1_STS_TMR,
  PM_TIMER_HZ, PlatformEvent, eventRank,
} from "./regs";

export function raiseEvent(e: PlatformEvent): void {
  const s = state();
  if (eventRank(e) > eventRank(<PlatformEvent>s.platformEvent)) s.platformEvent = <u32>e;
}

function ignoredCommand(what: string, value: u64): void {
  const n = counterBump(COUNTERS_BASE, C_IGNORED_COMMAND);
  if (logWorthy(n)) logEvent(LogLevel.Debug, what, value, n);
}

// --- i8042 -----------------------------------------------------------------------------

/** Data port reads: the output buffer is always empty. */
export function i8042DataRead(): u8 { return 0; }

export function i8042DataWrite(v: u8): void {
  ignoredCommand("i8042: data byte ignored", <u64>v);
}

export function i8042CommandWrite(v: u8, resetCommand: u8): void {
  // GUEST-INPUT: only the pulse-reset command (also the FADT reset register) does anything.
  if (v == resetCommand) raiseEvent(PlatformEvent.Reset);
  else ignoredCommand("i8042: command ignored", <u64>v);
}

// --- PM timer --------------------------------------------------------------------------

/** The 32-bit timer value now. */
export function pmTimer(): u32 {
  const now = now_ns();
  const origin = state().timerOriginNs;
  // A clock that appears to go backwards (a foreign state image) holds the timer at 0
  // rather than jumping by 2^64 ns.
  const elapsed: u64 = now > origin ? now - origin : 0;
  // Split so that elapsed * 3579545 cannot overflow 64 bits (it would after ~86 minutes).
  const ticks = (elapsed / NS_PER_S) * PM_TIMER_HZ + ((elapsed % NS_PER_S) * PM_TIMER_HZ) / NS_PER_S;
  const value = <u32>ticks;
  const msb: u8 = <u8>(value >>> 31);
  const s = state();
  if (msb != s.timerMsb) {
    s.timerMsb = msb;
    s.pm1Sts |= PM1_STS_TMR;
  }
  return value;
}

export function pmTimerPowerOn(): void {
  state().timerOriginNs = now_ns();
  state().timerMsb = 0;
}

// --- PM1 event and control blocks ---------------------------------------------------------

export function updateSci(): void {
  const s = state();
  // SCI_EN is fixed at 1: the platform is always in ACPI mode (FADT SMI_CMD = 0).
  const level: u8 = (s.pm1Sts & s.pm1En & PM1_SCI_SOURCES) != 0 ? 1 : 0;
  if (level == s.sciLevel) return;
  s.sciLevel = level;
  set_pin(SCI_IRQ, <u32>level);
}

/** Byte `index` (0..3) of the PM1a event block: status (0, 1) then enable (2, 3). */
export function pm1EventRead(index: u32): u8 {
  const s = state();
  if (index < 2) {
    pmTimer(); // brings TMR_STS up to date
    return <u8>(s.pm1Sts >> <u16>(index << 3));
  }
  return <u8>(s.pm1En >> <u16>((index - 2) << 3));
}

export function pm1EventWrite(index: u32, v: u8): void {
  const s = state();
  if (index < 2) {
    // GUEST-INPUT: status bits are write-one-to-clear; undefined bits stay clear.
    s.pm1Sts &= ~((<u16>v << <u16>(index << 3)) & PM1_STS_DEFINED);
  } else {
    const shift = <u16>((index - 2) << 3);
    const kept = s.pm1En & ~(<u16>0xff << shift);
    // GUEST-INPUT: only defined enable bits are stored.
    s.pm1En = (kept | (<u16>v << shift)) & PM1_EN_DEFINED;
  }
  updateSci();
}

/** Byte `index` (0..1) of PM1a control. SLP_EN and GBL_RLS read as zero. */
export function pm1ControlRead(index: u32): u8 {
  const v = state().pm1Cnt | PM1_CNT_SCI_EN;
  return <u8>(v >> <u16>(index << 3));
}

export function pm1ControlWrite(index: u32, v: u8): void {
  const s = state();
  const shift = <u16>(index << 3);
  const written = <u16>v << shift;
  // GUEST-INPUT: keep only the stored bits; SCI_EN cannot be cleared, GBL_RLS has no
  // firmware to notify.
  s.pm1Cnt = ((s.pm1Cnt & ~(<u16>0xff << shift)) | written) & PM1_CNT_STORED;
  if ((written & PM1_CNT_SLP_EN) != 0) {
    const slpTyp = <u32>((s.pm1Cnt & PM1_CNT_SLP_TYP_MASK) >> PM1_CNT_SLP_TYP_SHIFT);
    // \_S5 in the DSDT names SLEEP_TYPE_S5; the DSDT defines no other sleep state, so any
    // other type is reported as a sleep request for the runtime to refuse or honour.
    raiseEvent(slpTyp == SLEEP_TYPE_S5 ? PlatformEvent.PowerOff : PlatformEvent.Sleep);
  }
}

/** The fixed-feature power button was pressed (ACPI 6.5, 4.8.2.2.1.1). */
export function pressPowerButton(): void {
  state().pm1Sts |= PM1_STS_PWRBTN;
  updateSci();
}

export function pmReset(): void {
  const s = state();
  s.pm1Sts = 0;
  s.pm1En = 0;
  s.pm1Cnt = 0;
  s.platformEvent = <u32>PlatformEvent.None;
}
