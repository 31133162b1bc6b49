// What the console restart test's guest does and what it reports: shared by
// the test and its vCPU worker (importing the worker itself would run it).

export interface ConsoleVcpuInput {
  readonly endpoints: SharedArrayBuffer;
  readonly com1: number;
  /** [0]: 1 when the scratch value is written (the test then kills the domain), 2 when the successor runs. */
  readonly handshake: SharedArrayBuffer;
  readonly lines: number;
}
export interface ConsoleVcpuResult {
  /** The scratch register read after the kill the test made between write and read. */
  readonly scratchAcrossKill: number;
  /** Later scratch round trips (write, then read) whose read differed from the write. */
  readonly scratchMismatches: number;
  readonly scratchChecks: number;
}

export const SCRATCH_VALUE = 0xa5;
export const line = (i: number): string => `line ${String(i).padStart(5, '0')} of the console restart test\n`;

/** One access of a scripted vCPU (vcpu-script-worker.ts). */
export interface VcpuStep {
  readonly op: 'read' | 'write' | 'post';
  readonly endpoint: number;
  readonly space: 'pio' | 'mmio';
  readonly addr: number;
  readonly size: 1 | 2 | 4 | 8;
  readonly value?: number;
}
