// The synchronous ioreq slot protocol of idl/proto/ioreq.proto: one
// IoreqSlot per (vCPU, server) in a shared page, and the state machine
//   IDLE -> READY (microhv) -> IN_PROCESS (server) -> RESP_READY (server) -> IDLE (microhv).
// Only the `state` word is written by both parties; each transition below is
// a compare-and-swap on it, so a party can only move the slot out of a state
// it owns, and a hostile or confused peer shows up as a typed error.

import { IoreqDir, IoreqSlot, IoreqState } from '../generated/ioreq.js';
import type { IoreqSlotRecord, IoreqType } from '../generated/ioreq.js';
import { RecordError } from '../runtime/errors.js';
import type { SharedBytes } from '../runtime/shared.js';

export type IoreqErrorCode =
  | 'BAD_STATE' // the slot is not in the state this step needs
  | 'MALFORMED' // the slot's fields do not decode (cause: the RecordError)
  | 'NO_SUCH_SLOT'; // vCPU index past the slot page

export class IoreqError extends Error {
  override readonly name = 'IoreqError';
  constructor(
    readonly code: IoreqErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

/** What microhv fills in for one trapped access. */
export interface IoreqRequest {
  readonly seq: bigint;
  readonly addr: bigint;
  readonly data: bigint;
  readonly type: IoreqType;
  readonly dir: IoreqDir;
  readonly size: number;
  readonly count: number;
  readonly vcpu: number;
}

export class IoreqSlots {
  constructor(
    readonly mem: SharedBytes,
    readonly base: number,
    readonly vcpus: number,
  ) {
    mem.check(base, vcpus * IoreqSlot.SIZE, IoreqSlot.ALIGN, 'ioreq slot page');
  }

  private at(vcpu: number): number {
    if (!Number.isInteger(vcpu) || vcpu < 0 || vcpu >= this.vcpus) throw new IoreqError('NO_SUCH_SLOT', `vcpu ${vcpu} of ${this.vcpus}`);
    return this.base + vcpu * IoreqSlot.SIZE;
  }

  private stateIndex(vcpu: number): number {
    return (this.at(vcpu) + IoreqSlot.OFFSET.state) >> 2;
  }

  /** Moves the state word from `from` to `to`, or throws BAD_STATE naming what it found. */
  private transition(vcpu: number, from: IoreqState, to: IoreqState): void {
    // ORDER: seq_cst compare-and-swap: every field written before it is visible to the party that sees `to`.
    const seen = Atomics.compareExchange(this.mem.i32, this.stateIndex(vcpu), from, to) >>> 0;
    if (seen !== from) throw new IoreqError('BAD_STATE', `slot ${vcpu}: state ${seen}, expected ${from}`);
  }

  /** Current state (any value: the peer may have written garbage). */
  state(vcpu: number): number {
    // ORDER: acquire: fields read after this see what the last transition published.
    return Atomics.load(this.mem.i32, this.stateIndex(vcpu)) >>> 0;
  }

  // ------------------------------------------------------- microhv's side

  /**
   * microhv, at a platform reset with its vCPUs stopped: takes back a published ioreq no server has
   * claimed (READY -> IDLE). False when the slot was not READY (a server won the race, or it held none).
   */
  withdraw(vcpu: number): boolean {
    // ORDER: compare-and-swap against the server's READY -> IN_PROCESS: exactly one side moves it.
    return Atomics.compareExchange(this.mem.i32, this.stateIndex(vcpu), IoreqState.IOREQ_STATE_READY, IoreqState.IOREQ_STATE_IDLE) >>> 0 === IoreqState.IOREQ_STATE_READY;
  }

  /** microhv, once a reset has settled the slot: IDLE, whatever answer it still held. */
  release(vcpu: number): void {
    IoreqSlot.storeState(this.mem, this.at(vcpu), IoreqState.IOREQ_STATE_IDLE);
  }

  /** microhv, once when it creates the page: every slot IDLE. */
  initialise(): void {
    for (let v = 0; v < this.vcpus; v++) {
      this.mem.u8.fill(0, this.at(v), this.at(v) + IoreqSlot.SIZE);
      IoreqSlot.storeState(this.mem, this.at(v), IoreqState.IOREQ_STATE_IDLE);
    }
  }

  /** microhv: fills the slot and hands it to the server (IDLE -> READY). */
  publish(req: IoreqRequest): void {
    const off = this.at(req.vcpu);
    if (this.state(req.vcpu) !== IoreqState.IOREQ_STATE_IDLE) throw new IoreqError('BAD_STATE', `slot ${req.vcpu} is not idle`);
    IoreqSlot.setSeq(this.mem, off, req.seq);
    IoreqSlot.setAddr(this.mem, off, req.addr);
    IoreqSlot.setData(this.mem, off, req.dir === IoreqDir.IOREQ_DIR_WRITE ? req.data : 0n);
    IoreqSlot.setCount(this.mem, off, req.count);
    IoreqSlot.setType(this.mem, off, req.type);
    IoreqSlot.setDir(this.mem, off, req.dir);
    IoreqSlot.setSize(this.mem, off, req.size);
    IoreqSlot.setReserved0(this.mem, off, 0);
    IoreqSlot.setVcpu(this.mem, off, req.vcpu);
    this.transition(req.vcpu, IoreqState.IOREQ_STATE_IDLE, IoreqState.IOREQ_STATE_READY);
  }

  /**
   * microhv: takes the server's answer (RESP_READY -> IDLE). Returns the
   * data (meaningful for reads), or null while the server has not answered.
   */
  takeResponse(vcpu: number): bigint | null {
    if (this.state(vcpu) !== IoreqState.IOREQ_STATE_RESP_READY) return null;
    const data = IoreqSlot.getData(this.mem, this.at(vcpu));
    this.transition(vcpu, IoreqState.IOREQ_STATE_RESP_READY, IoreqState.IOREQ_STATE_IDLE);
    return data;
  }

  // -------------------------------------------------------- server's side

  /**
   * Server: claims a published ioreq (READY -> IN_PROCESS) and returns it,
   * validated; null when the slot holds none. A successor after a restart
   * also gets a slot left IN_PROCESS by its predecessor, so it can compare
   * the seq with the last one its state region says it applied.
   */
  claim(vcpu: number): IoreqSlotRecord | null {
    const s = this.state(vcpu);
    if (s !== IoreqState.IOREQ_STATE_READY && s !== IoreqState.IOREQ_STATE_IN_PROCESS) return null;
    let rec: IoreqSlotRecord;
    try {
      rec = IoreqSlot.read(this.mem, this.at(vcpu));
    } catch (e) {
      if (e instanceof RecordError) throw new IoreqError('MALFORMED', `slot ${vcpu}`, { cause: e });
      throw e;
    }
    // GUEST-INPUT: size and count describe the guest's access; a server must never act on others.
    if (![1, 2, 4, 8].includes(rec.size) || rec.count === 0) throw new IoreqError('MALFORMED', `slot ${vcpu}: size ${rec.size} count ${rec.count}`);
    if (s === IoreqState.IOREQ_STATE_READY) this.transition(vcpu, IoreqState.IOREQ_STATE_READY, IoreqState.IOREQ_STATE_IN_PROCESS);
    return rec;
  }

  /** Server: answers a claimed ioreq (IN_PROCESS -> RESP_READY); `data` is the read result. */
  complete(vcpu: number, data: bigint): void {
    const off = this.at(vcpu);
    if (this.state(vcpu) !== IoreqState.IOREQ_STATE_IN_PROCESS) throw new IoreqError('BAD_STATE', `slot ${vcpu} was not claimed`);
    if (IoreqSlot.getDir(this.mem, off) === IoreqDir.IOREQ_DIR_READ) {
      const bits = BigInt(8 * IoreqSlot.getSize(this.mem, off));
      IoreqSlot.setData(this.mem, off, BigInt.asUintN(Number(bits), data));
    }
    this.transition(vcpu, IoreqState.IOREQ_STATE_IN_PROCESS, IoreqState.IOREQ_STATE_RESP_READY);
  }
}
