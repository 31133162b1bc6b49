// The block domain process's state region (GetStateRegion, control.proto): the ioreq applied
// log first, then the device's own layout (persist.ts, block.proto) at BLOCK_REGION_BASE.
//
//   [0, APPLIED_LOG_BYTES)          one IoreqApplied (ioreq.proto) per vCPU slot, vCPU v at
//                                   v * IoreqApplied.SIZE, for up to APPLIED_VCPUS vCPUs
//   [APPLIED_LOG_BYTES, BASE)       zero, reserved
//   [BLOCK_REGION_BASE, + blockStateBytes(options))   the device (persist.ts)
//
// The device layout starts on a page of its own so that its size can change with the options
// (queues, queue size) without moving the log.
import type { AppliedLog } from '../../idl/ioreq/server.js';
import { IoreqApplied } from '../../idl/generated/ioreq.js';
import type { SharedBytes } from '../../idl/runtime/shared.js';
import { MAX_VCPUS } from '../../microhv/ioreq/endpoints.js';
import type { BlockOptions } from './config.js';
import { blockStateBytes } from './index.js';

/** vCPU slots the applied log has room for: as many as an ioreq endpoint can have. */
export const APPLIED_VCPUS = MAX_VCPUS;
export const APPLIED_LOG_BYTES = APPLIED_VCPUS * IoreqApplied.SIZE;
const PAGE = 4096;
/** Where the device's layout starts in the region. */
export const BLOCK_REGION_BASE = Math.ceil(APPLIED_LOG_BYTES / PAGE) * PAGE;

/** Bytes of state region a disk with these options needs. */
export function regionBytes(o: BlockOptions): number {
  return BLOCK_REGION_BASE + blockStateBytes(o);
}

/**
 * The applied log (idl/ioreq/server.ts) kept in the state region. The block domain registers
 * no buffered writes, so it keeps no ring cursor (ringConsumed/recordPosted).
 */
export class RegionAppliedLog implements AppliedLog {
  constructor(private readonly m: SharedBytes, readonly vcpus: number) {
    if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > APPLIED_VCPUS) throw new RangeError(`applied log for ${vcpus} vCPUs (1..${APPLIED_VCPUS})`);
    if (m.byteLength < APPLIED_LOG_BYTES) throw new RangeError(`applied log needs ${APPLIED_LOG_BYTES} bytes, region has ${m.byteLength}`);
  }

  private at(vcpu: number): number {
    if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= this.vcpus) throw new RangeError(`vCPU ${vcpu}`);
    return vcpu * IoreqApplied.SIZE;
  }

  last(vcpu: number): { seq: bigint; data: bigint } {
    const base = this.at(vcpu);
    return { seq: IoreqApplied.getSeq(this.m, base), data: IoreqApplied.getData(this.m, base) };
  }

  record(vcpu: number, seq: bigint, data: bigint): void {
    const base = this.at(vcpu);
    // ORDER: data before seq. A successor trusts `data` only when `seq` matches the slot's, so
    // a kill between the two stores leaves the old seq and the ioreq is applied again (register
    // writes are idempotent; README "Ioreqs and exactly-once"). Both are stores to a MAP_SHARED
    // page by the one thread that writes the log: kill -9 stops it between instructions, and the
    // stores it made stay, in program order (x86 does not reorder stores). No reader runs
    // concurrently: a successor starts only once its predecessor is gone.
    IoreqApplied.setData(this.m, base, data);
    IoreqApplied.setSeq(this.m, base, seq);
  }
}
