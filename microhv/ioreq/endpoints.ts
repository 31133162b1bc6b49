// Ioreq endpoints: what the core creates when a domain registers a range
// (idl/proto/ioreq.proto, control.proto RegisterIoreqRange). Per endpoint:
// a page of IoreqSlots (one per vCPU), an event channel each way per vCPU,
// and a buffered ring for posted writes with its notify channel. They belong
// to the core and outlive the domain process: a successor gets the same fds.
// Their numbers sit in a SharedArrayBuffer that every vCPU thread reads.
import * as sys from '../sys/index.js';
import { IoreqSlot, IoreqState } from '../../idl/generated/ioreq.js';
import { RingProtocol } from '../../idl/generated/ring.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import { createSharedRing, type SharedRing } from '../../idl/ring/shm.js';
import { IoreqSlots } from '../../idl/ioreq/slot.js';
import type { RingGeometry } from '../../idl/ring/ring.js';

export const MAX_ENDPOINTS = 32;
export const MAX_VCPUS = 64;
/** Posted writes in flight per endpoint before a writing vCPU has to wait. */
export const BUFFERED_GEOMETRY: RingGeometry = { order: 9, slotSize: 24, protocol: RingProtocol.RING_PROTOCOL_BUFFERED_IOREQ };
const PAGE = 4096;

// Words per endpoint in the shared table.
const F = { USED: 0, VCPUS: 1, SLOTS: 2, RING: 3, RING_NOTIFY: 4, LOCK: 5, REQ_PROD_PVT: 6, RSP_CONS: 7, TO_SERVER: 8, TO_VCPU: 8 + MAX_VCPUS } as const;
const STRIDE = 8 + 2 * MAX_VCPUS;

export interface EndpointFds {
  readonly vcpus: number;
  readonly slots: number;
  readonly ring: number;
  readonly ringNotify: number;
  readonly toServer: readonly number[];
  readonly toVcpu: readonly number[];
}

/** The shared table of endpoint fds; the same class serves the core and the vCPU threads. */
export class EndpointTable {
  readonly buffer: SharedArrayBuffer;
  private readonly w: Int32Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(4 * STRIDE * MAX_ENDPOINTS);
    this.w = new Int32Array(this.buffer);
  }

  private at(id: number, f: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= MAX_ENDPOINTS) throw new RangeError(`endpoint ${id} out of range`);
    return id * STRIDE + f;
  }

  set(id: number, e: EndpointFds): void {
    const w = this.w;
    w[this.at(id, F.VCPUS)] = e.vcpus;
    w[this.at(id, F.SLOTS)] = e.slots;
    w[this.at(id, F.RING)] = e.ring;
    w[this.at(id, F.RING_NOTIFY)] = e.ringNotify;
    e.toServer.forEach((fd, v) => { w[this.at(id, F.TO_SERVER + v)] = fd; });
    e.toVcpu.forEach((fd, v) => { w[this.at(id, F.TO_VCPU + v)] = fd; });
    // Release: a thread that sees USED also sees the fds above.
    Atomics.store(w, this.at(id, F.USED), 1);
  }

  get(id: number): EndpointFds | undefined {
    const w = this.w;
    if (Atomics.load(w, this.at(id, F.USED)) !== 1) return undefined;
    const vcpus = w[this.at(id, F.VCPUS)]!;
    return {
      vcpus,
      slots: w[this.at(id, F.SLOTS)]!,
      ring: w[this.at(id, F.RING)]!,
      ringNotify: w[this.at(id, F.RING_NOTIFY)]!,
      toServer: Array.from({ length: vcpus }, (_, v) => w[this.at(id, F.TO_SERVER + v)]!),
      toVcpu: Array.from({ length: vcpus }, (_, v) => w[this.at(id, F.TO_VCPU + v)]!),
    };
  }

  /** The producer-side cursors of the endpoint's buffered ring, shared by all vCPU threads. */
  ringCursors(id: number): { lock: number; reqProdPvt: number; rspCons: number; words: Int32Array } {
    return { lock: this.at(id, F.LOCK), reqProdPvt: this.at(id, F.REQ_PROD_PVT), rspCons: this.at(id, F.RSP_CONS), words: this.w };
  }
}

/** Bytes of the slot page for `vcpus` vCPUs: one 64-byte slot each, whole pages. */
export const slotPageBytes = (vcpus: number): number => Math.ceil((vcpus * IoreqSlot.SIZE) / PAGE) * PAGE;

/** Creates an endpoint's memory and event channels (core side). */
export function createEndpoint(name: string, vcpus: number): { fds: EndpointFds; ring: SharedRing } {
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > MAX_VCPUS) throw new RangeError(`vcpus must be 1..${MAX_VCPUS}`);
  const bytes = slotPageBytes(vcpus);
  const slots = sys.memfdCreate(`${name}-slots`, sys.consts.MFD_CLOEXEC | sys.consts.MFD_ALLOW_SEALING);
  sys.ftruncate(slots, bytes);
  sys.addSeals(slots, sys.consts.F_SEAL_SHRINK | sys.consts.F_SEAL_GROW | sys.consts.F_SEAL_SEAL);
  const m = sys.mmap(bytes, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, slots, 0);
  const mem = new SharedBytes(m.buffer);
  for (let v = 0; v < vcpus; v++) IoreqSlot.storeState(mem, v * IoreqSlot.SIZE, IoreqState.IOREQ_STATE_IDLE);
  sys.munmap(m);
  const efd = (): number => sys.eventfd(0, sys.consts.EFD_CLOEXEC | sys.consts.EFD_NONBLOCK);
  const ring = createSharedRing(`${name}-buffered`, BUFFERED_GEOMETRY);
  return {
    fds: { vcpus, slots, ring: ring.fd, ringNotify: efd(), toServer: Array.from({ length: vcpus }, efd), toVcpu: Array.from({ length: vcpus }, efd) },
    ring,
  };
}

/**
 * Platform reset, with every vCPU thread stopped: an ioreq a domain has taken (IN_PROCESS) is let
 * finish, as a bus completes a cycle already under way; one no domain has taken yet is withdrawn.
 * Every slot ends IDLE, so no answer to an access from before the reset can meet one from after it.
 * Returns the slots still IN_PROCESS at the deadline (their domain died meanwhile; its successor
 * answers them, and the slot's sequence number keeps that answer from matching a newer request).
 */
export async function settleSlots(fds: EndpointFds, deadlineMs: number): Promise<number> {
  const m = sys.mmap(slotPageBytes(fds.vcpus), sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, fds.slots, 0);
  const slots = new IoreqSlots(new SharedBytes(m.buffer), 0, fds.vcpus);
  const end = Date.now() + deadlineMs;
  let stuck = 0;
  try {
    for (let v = 0; v < fds.vcpus; v++) {
      slots.withdraw(v);
      while (slots.state(v) === IoreqState.IOREQ_STATE_IN_PROCESS && Date.now() < end) await new Promise((r) => setTimeout(r, 2));
      if (slots.state(v) === IoreqState.IOREQ_STATE_IN_PROCESS) stuck++;
      else slots.release(v);
    }
  } finally {
    sys.munmap(m);
  }
  return stuck;
}
