// What the pci domain does with input it cannot serve: count it, and log it when its counter
// reaches 1, 2, 4, 8, ... (common/assembly/log.ts), so a hostile guest cannot flood the log.
import { counterBump } from "../../common/assembly/memory";
import { LogLevel, logAccess, logEvent, logWorthy } from "../../common/assembly/log";
import { COUNTERS_BASE, C_ABSENT_FUNCTION, C_BAD_HOST_CALL, C_INVALID_ACCESS } from "./persist";

/** An access the model cannot serve (reads of it answer all-ones, index.ts). */
export function invalidAccess(what: string, where: u64, size: u32): void {
  const n = counterBump(COUNTERS_BASE, C_INVALID_ACCESS);
  if (logWorthy(n)) logAccess(LogLevel.Warn, what, where, size, n);
}

/**
 * An access the model does not serve but that ordinary software makes: Linux's probe of the
 * configuration mechanisms writes a byte to 0xcfb (it expects it to pass through). Counted
 * like any invalid access, logged at debug level only.
 */
export function passedThrough(what: string, where: u64, size: u32): void {
  const n = counterBump(COUNTERS_BASE, C_INVALID_ACCESS);
  if (logWorthy(n)) logAccess(LogLevel.Debug, what, where, size, n);
}

/**
 * A config access to a function that does not exist. Normal: every enumeration probes all 32
 * slots. Counted, and logged at debug level only.
 */
export function absentFunction(bdf: u32): void {
  const n = counterBump(COUNTERS_BASE, C_ABSENT_FUNCTION);
  if (logWorthy(n)) logEvent(LogLevel.Debug, "pci: config access to absent bus/device/function", <u64>bdf, n);
}

/** A runtime call naming a device, vector or pin that does not exist: a runtime bug, not guest input. */
export function badHostCall(what: string, value: u64): void {
  const n = counterBump(COUNTERS_BASE, C_BAD_HOST_CALL);
  if (logWorthy(n)) logEvent(LogLevel.Error, what, value, n);
}
