// Port and MMIO accesses that trapped, on the vCPU thread. A registered range
// goes to its endpoint (ioreq slot round trip, or a posted write on the
// buffered ring); an address no domain has claimed behaves as on a PC with
// nothing there: reads return all-ones and writes are dropped. Counters live
// in shared memory so that the core can report them without stopping the vCPU.
import type { KvmExitName } from '../kvm/abi.js';
import { IoreqClient, type WaitOutcome } from '../ioreq/client.js';
import { EndpointTable } from '../ioreq/endpoints.js';
import { RangeTable, type Space } from '../ioreq/ranges.js';
import { IOAPIC_BASE } from '../../boot/layout.js';

const IOAPIC_EOI_REGISTER = IOAPIC_BASE + 0x40;

/** Counter slots of the shared stats block (BigUint64Array). */
export const STAT = { EXITS: 0, PIO: 1, MMIO: 2, UNCLAIMED_READ: 3, UNCLAIMED_WRITE: 4, EOI: 5, INTR: 6, IOREQ_SYNC: 7, IOREQ_POSTED: 8, WORDS: 10 } as const;

export class IoDispatch {
  private readonly stats: BigUint64Array;
  private readonly ranges: RangeTable;
  private readonly client: IoreqClient;

  constructor(stats: SharedArrayBuffer, ranges: SharedArrayBuffer, endpoints: SharedArrayBuffer, vcpu: number, stopRequested: () => boolean) {
    this.stats = new BigUint64Array(stats);
    this.ranges = new RangeTable(ranges);
    this.client = new IoreqClient(new EndpointTable(endpoints), vcpu, stopRequested);
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

  read(space: Space, addr: number, data: Uint8Array): WaitOutcome {
    const r = this.ranges.lookup(space, addr);
    if (!r) {
      this.bump(STAT.UNCLAIMED_READ);
      data.fill(0xff);
      return 'answered';
    }
    this.bump(STAT.IOREQ_SYNC);
    return this.client.roundTrip(r.endpoint, space, r.relative === true ? addr - r.first : addr, 'read', data);
  }

  write(space: Space, addr: number, data: Uint8Array): WaitOutcome {
    const r = this.ranges.lookup(space, addr);
    if (!r) {
      this.bump(STAT.UNCLAIMED_WRITE);
      return 'answered';
    }
    const at = r.relative === true ? addr - r.first : addr;
    if (r.buffered) {
      this.bump(STAT.IOREQ_POSTED);
      return this.client.post(r.endpoint, space, at, data);
    }
    this.bump(STAT.IOREQ_SYNC);
    return this.client.roundTrip(r.endpoint, space, at, 'write', data);
  }

  /**
   * KVM_EXIT_IOAPIC_EOI: the guest ended a level-triggered interrupt. It goes to the IO-APIC's owner as a
   * posted write of the vector to the IO-APIC's EOI register (version 0x20 register at +0x40), the same
   * operation a guest kernel may do itself, so no separate message exists for it. Posted: the vCPU need
   * not wait for the IO-APIC to clear remote IRR.
   */
  eoi(vector: number): WaitOutcome {
    this.bump(STAT.EOI);
    const r = this.ranges.lookup('mmio', IOAPIC_EOI_REGISTER);
    if (!r) return 'answered';
    const data = new Uint8Array(4);
    data[0] = vector & 0xff;
    return this.client.post(r.endpoint, 'mmio', IOAPIC_EOI_REGISTER, data);
  }
}
