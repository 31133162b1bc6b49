// The host imports a stub domain may use: module "env" and nothing else
// (driver-domains/runtime/ABI.md). A module imports only those it calls; the build
// rejects any other import (driver-domains/build.ts).

/** Completes ioreq `seq`. Reads pass the value read (low `size` bytes); writes pass 0. */
// @ts-ignore: decorator
@external("env", "answer") export declare function answer(seq: u64, data: u64): void;

/** Drives a legacy interrupt line toward the ioapic domain: 1 = the source requests service. */
// @ts-ignore: decorator
@external("env", "set_pin") export declare function set_pin(gsi: u32, level: u32): void;

/** Asks microhv to deliver one MSI (Intel SDM Vol. 3A, 11.11 Message Signalled Interrupts). */
// @ts-ignore: decorator
@external("env", "msi") export declare function msi(addr: u64, data: u32): void;

/** UTF-8 text at [ptr, ptr+len) of this module's memory; `level` is a LogLevel. */
// @ts-ignore: decorator
@external("env", "log") export declare function log(level: u32, ptr: usize, len: u32): void;

/** Host CLOCK_MONOTONIC in nanoseconds; continuous across a domain restart on one host. */
// @ts-ignore: decorator
@external("env", "now_ns") export declare function now_ns(): u64;
