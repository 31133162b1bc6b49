// The server side of the ioreq channel (idl/proto/ioreq.proto), used by every
// domain that serves a port or MMIO range. It drains the buffered ring first
// (posted writes happened before any access that is now waiting in a slot),
// then answers the slots. Exactly-once across restarts: the server records
// (seq, data) of each applied ioreq through `persist` before answering; a
// successor that finds the same seq still waiting answers it from that record
// and does not apply it again. Posted writes get no answer, so their record is
// the ring's consumer cursor: a log that keeps it (recordPosted) is told the
// cursor after each posted write, and the successor resumes there rather than
// at rsp_prod, which lags until the end of a batch.
import * as sys from '../../microhv/sys/index.js';
import { BufferedIoreq, IoreqDir, IoreqSlot, IoreqState, IoreqType } from '../generated/ioreq.js';
import { RingHeader, RingProtocol } from '../generated/ring.js';
import { SharedBytes } from '../runtime/shared.js';
import { BackRing } from '../ring/ring.js';
import { mapSharedRing } from '../ring/shm.js';

export type IoSpace = 'pio' | 'mmio';
export interface IoreqEndpointFds {
  readonly vcpus: number;
  readonly slots: number;
  readonly ring: number;
  readonly ringNotify: number;
  readonly toServer: readonly number[];
  readonly toVcpu: readonly number[];
}
export interface IoreqHandler {
  read(space: IoSpace, addr: number, size: number, vcpu: number): bigint;
  write(space: IoSpace, addr: number, size: number, data: bigint, vcpu: number): void;
}
/** Where the server keeps, per vCPU slot, the last ioreq it applied: its state region. */
export interface AppliedLog {
  last(vcpu: number): { seq: bigint; data: bigint };
  /** Must be durable (in the state region) when it returns: the answer follows it. */
  record(vcpu: number, seq: bigint, data: bigint): void;
  /**
   * Optional. The buffered ring's consumer cursor as last recorded by recordPosted, or undefined
   * when none was recorded yet (the server then resumes at rsp_prod).
   */
  ringConsumed?(): number | undefined;
  /**
   * Optional. Called after each posted write is applied, with the consumer cursor just past it.
   * Must be durable when it returns, together with the state the write changed: a successor
   * resumes at this cursor and never applies that write again.
   */
  recordPosted?(consumed: number): void;
}
export interface ServerCounters { sync: number; posted: number; replayed: number; malformed: number; held: number }

const SLOT_BYTES = 64;
const PAGE = 4096;

export class IoreqServer {
  readonly counters: ServerCounters = { sync: 0, posted: 0, replayed: 0, malformed: 0, held: 0 };
  private readonly slots: SharedBytes;
  private readonly back: BackRing;

  /**
   * `hold`, asked after each synchronous ioreq is applied and logged: true keeps its answer back
   * (the slot stays IN_PROCESS, the vCPU waits) and ends this serve(); the next serve() answers it
   * from the log. A server uses it when the ioreq changed something outside itself that must be
   * in place before the guest goes on (the pci domain moving a BAR).
   */
  constructor(private readonly fds: IoreqEndpointFds, private readonly handler: IoreqHandler, private readonly log: AppliedLog, private readonly hold?: () => boolean) {
    const bytes = Math.ceil((fds.vcpus * SLOT_BYTES) / PAGE) * PAGE;
    this.slots = new SharedBytes(sys.mmap(bytes, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, fds.slots, 0).buffer);
    const ring = mapSharedRing(fds.ring, RingProtocol.RING_PROTOCOL_BUFFERED_IOREQ);
    // A successor resumes consuming where its predecessor recorded the last posted write it applied.
    // Without such a record it resumes where the published responses end, which re-applies the
    // writes of a batch whose responses were not yet pushed (harmless only for idempotent registers).
    const published = RingHeader.loadRspProd(ring.mem, 0) >>> 0;
    const consumed = log.ringConsumed?.() ?? published;
    // BackRing refuses cursors more than a ring apart, so a corrupt record cannot skip requests silently.
    this.back = new BackRing(ring.mem, 0, ring.geometry, { reqCons: consumed, rspProdPvt: published });
    // The writes in [published, consumed) were applied but their (empty) responses never pushed:
    // answer them now; the next serve() publishes them, which frees their slots for the vCPUs.
    while (this.back.rspProdPvt !== this.back.reqCons) this.back.commitResponse();
  }

  /** The fds to wait on for work (all eventfds, readable when signalled). */
  waitFds(): number[] {
    return [this.fds.ringNotify, ...this.fds.toServer];
  }

  /** Does all pending work; returns how many ioreqs it handled. */
  serve(): number {
    for (const fd of this.waitFds()) sys.eventfdTryRead(fd);
    return this.drainPosted() + this.answerSlots();
  }

  private drainPosted(): number {
    let n = 0;
    for (;;) {
      const avail = this.back.unconsumedRequests();
      if (avail === 0) {
        if (!this.back.finalCheckForRequests()) break;
        continue;
      }
      const off = this.back.requestOffset();
      let rec: ReturnType<typeof BufferedIoreq.read> | undefined;
      try {
        rec = BufferedIoreq.read(this.back.mem, off);
      } catch {
        this.counters.malformed++; // a malformed record from the core's side: skip it, never crash
      }
      this.back.consumeRequest();
      this.back.commitResponse();
      if (rec && validSize(rec.size)) {
        this.handler.write(rec.type === IoreqType.IOREQ_TYPE_PIO ? 'pio' : 'mmio', Number(rec.addr), rec.size, rec.data, rec.vcpu);
        this.counters.posted++;
        n++;
      }
      // Recorded for a skipped record too, so a successor does not meet it again.
      this.log.recordPosted?.(this.back.reqCons);
    }
    this.back.pushResponses();
    return n;
  }

  private answerSlots(): number {
    let n = 0;
    for (let v = 0; v < this.fds.vcpus; v++) {
      const base = v * SLOT_BYTES;
      const st = IoreqSlot.loadState(this.slots, base);
      if (st !== IoreqState.IOREQ_STATE_READY && st !== IoreqState.IOREQ_STATE_IN_PROCESS) continue;
      const seq = IoreqSlot.getSeq(this.slots, base);
      const done = this.log.last(v);
      if (done.seq === seq) {
        // Applied by us or a predecessor that died before answering: answer, do not apply again.
        IoreqSlot.setData(this.slots, base, done.data);
        this.counters.replayed++;
      } else {
        IoreqSlot.storeState(this.slots, base, IoreqState.IOREQ_STATE_IN_PROCESS);
        const size = IoreqSlot.getSize(this.slots, base);
        const space: IoSpace = IoreqSlot.getType(this.slots, base) === IoreqType.IOREQ_TYPE_PIO ? 'pio' : 'mmio';
        const addr = Number(IoreqSlot.getAddr(this.slots, base));
        let data = 0n;
        if (!validSize(size)) this.counters.malformed++;
        else if (IoreqSlot.getDir(this.slots, base) === IoreqDir.IOREQ_DIR_READ) data = this.handler.read(space, addr, size, v) & mask(size);
        else this.handler.write(space, addr, size, IoreqSlot.getData(this.slots, base) & mask(size), v);
        this.log.record(v, seq, data);
        IoreqSlot.setData(this.slots, base, data);
        this.counters.sync++;
        if (this.hold?.() === true) {
          this.counters.held++;
          return n;
        }
      }
      // ORDER: seq_cst store publishes data before the vCPU can see RESP_READY.
      IoreqSlot.storeState(this.slots, base, IoreqState.IOREQ_STATE_RESP_READY);
      sys.eventfdWrite(this.fds.toVcpu[v]!, 1n);
      n++;
    }
    return n;
  }
}

const validSize = (s: number): boolean => s === 1 || s === 2 || s === 4 || s === 8;
const mask = (size: number): bigint => (1n << BigInt(8 * size)) - 1n;


/** An AppliedLog kept in memory: for tests, and for servers whose state region holds it elsewhere. */
export class MemoryAppliedLog implements AppliedLog {
  private readonly entries = new Map<number, { seq: bigint; data: bigint }>();
  private consumed: number | undefined;
  last(vcpu: number): { seq: bigint; data: bigint } { return this.entries.get(vcpu) ?? { seq: 0n, data: 0n }; }
  record(vcpu: number, seq: bigint, data: bigint): void { this.entries.set(vcpu, { seq, data }); }
  ringConsumed(): number | undefined { return this.consumed; }
  recordPosted(consumed: number): void { this.consumed = consumed; }
}
