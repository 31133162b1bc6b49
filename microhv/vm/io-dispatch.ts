// Port and MMIO accesses that trapped, on the vCPU thread. An address no
// domain has claimed behaves as on a PC with nothing there: reads return
// all-ones and writes are dropped. Counters live in shared memory so that the
// core can report them without stopping the vCPU.
import type { KvmExitName } from '../kvm/abi.js';

/** Counter slots of the shared stats block (BigUint64Array). */
export const STAT = { EXITS: 0, PIO: 1, MMIO: 2, UNCLAIMED_READ: 3, UNCLAIMED_WRITE: 4, EOI: 5, INTR: 6, WORDS: 8 } as const;

export class IoDispatch {
  private readonly stats: BigUint64Array;

  constructor(stats: SharedArrayBuffer) {
    this.stats = new BigUint64Array(stats);
  }

  private bump(slot: number): void {
    Atomics.add(this.stats, slot, 1n);
  }

  count(reason: KvmExitName | `UNKNOWN_${number}`): void {
    this.bump(STAT.EXITS);
    if (reason === 'IO') this.bump(STAT.PIO);
    else if (reason === 'MMIO') this.bump(STAT.MMIO);
    else if (reason === 'INTR') this.bump(STAT.INTR);
  }

  read(_space: 'pio' | 'mmio', _addr: number, data: Uint8Array): void {
    this.bump(STAT.UNCLAIMED_READ);
    data.fill(0xff);
  }

  write(_space: 'pio' | 'mmio', _addr: number, _data: Uint8Array): void {
    this.bump(STAT.UNCLAIMED_WRITE);
  }

  eoi(_vector: number): void {
    this.bump(STAT.EOI);
  }
}
