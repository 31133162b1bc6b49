// Log messages assembled in SCRATCH (transient memory, not state) and handed to the host.
// Rate limit: callers log a guest-caused event only when its counter reaches a power of
// two (1, 2, 4, 8, ...), so a hostile guest gets at most 64 lines per counter, ever,
// and no clock or extra state is needed for it.
import { log } from "./host";
import { SCRATCH_BASE, SCRATCH_SIZE } from "./memory";

export const enum LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 }

/** True for 1, 2, 4, 8, ...: the counter values at which an event is logged. */
export function logWorthy(count: u64): bool {
  return count != 0 && (count & (count - 1)) == 0;
}

/** Appends the ASCII subset of a (static) string; returns the new length. */
function appendText(len: u32, text: string): u32 {
  for (let i = 0; i < text.length && len < SCRATCH_SIZE; i++) {
    const c = <u32>text.charCodeAt(i);
    store<u8>(SCRATCH_BASE + len, c < 0x80 ? <u8>c : <u8>0x3f);
    len++;
  }
  return len;
}

function appendHex(len: u32, v: u64): u32 {
  len = appendText(len, "0x");
  let shift: i32 = 60;
  while (shift > 0 && ((v >> <u64>shift) & 0xf) == 0) shift -= 4;
  for (; shift >= 0 && len < SCRATCH_SIZE; shift -= 4) {
    const d = <u32>((v >> <u64>shift) & 0xf);
    store<u8>(SCRATCH_BASE + len, <u8>(d < 10 ? 0x30 + d : 0x57 + d));
    len++;
  }
  return len;
}

function appendDec(len: u32, v: u64): u32 {
  let div: u64 = 1;
  while (v / div >= 10) div *= 10;
  for (; div > 0 && len < SCRATCH_SIZE; div /= 10) {
    store<u8>(SCRATCH_BASE + len, <u8>(0x30 + <u32>((v / div) % 10)));
    len++;
  }
  return len;
}

/** Logs "<text> <hex value> (count <n>)". */
export function logEvent(level: LogLevel, text: string, value: u64, count: u64): void {
  let len = appendText(0, text);
  len = appendText(len, " ");
  len = appendHex(len, value);
  len = appendText(len, " (count ");
  len = appendDec(len, count);
  len = appendText(len, ")");
  log(<u32>level, SCRATCH_BASE, len);
}

/** Logs "<text> <hex addr> size <size> (count <n>)" for a rejected access. */
export function logAccess(level: LogLevel, text: string, addr: u64, size: u32, count: u64): void {
  let len = appendText(0, text);
  len = appendText(len, " ");
  len = appendHex(len, addr);
  len = appendText(len, " size ");
  len = appendDec(len, <u64>size);
  len = appendText(len, " (count ");
  len = appendDec(len, count);
  len = appendText(len, ")");
  log(<u32>level, SCRATCH_BASE, len);
}
