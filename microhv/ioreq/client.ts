// The vCPU side of the ioreq channel (idl/proto/ioreq.proto). Runs on a vCPU
// thread: a trapped access to a registered range becomes either a slot
// round trip (reads, and writes to unbuffered ranges) or a posted record on
// the endpoint's buffered ring. While the server is down the request simply
// stays parked: the vCPU waits, and is never answered with all-ones.
import * as sys from '../sys/index.js';
import { IoreqDir, IoreqSlot, IoreqState, IoreqType, BufferedIoreq } from '../../idl/generated/ioreq.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import { FrontRing } from '../../idl/ring/ring.js';
import { mapSharedRing } from '../../idl/ring/shm.js';
import { RingProtocol } from '../../idl/generated/ring.js';
import { BUFFERED_GEOMETRY, EndpointTable, slotPageBytes, type EndpointFds } from './endpoints.js';
import type { Space } from './ranges.js';

interface Mapped { fds: EndpointFds; slots: SharedBytes; ring: SharedBytes }

/** How the wait for an answer ends: answered, or the vCPU was told to stop meanwhile. */
export type WaitOutcome = 'answered' | 'stopped';

export class IoreqClient {
  private readonly mapped = new Map<number, Mapped>();

  constructor(private readonly table: EndpointTable, private readonly vcpu: number, private readonly stopRequested: () => boolean) {}

  private endpoint(id: number): Mapped {
    let m = this.mapped.get(id);
    if (m) return m;
    const fds = this.table.get(id);
    if (!fds) throw new Error(`endpoint ${id} is not published`);
    const slots = sys.mmap(slotPageBytes(fds.vcpus), sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, fds.slots, 0);
    const ring = mapSharedRing(fds.ring, RingProtocol.RING_PROTOCOL_BUFFERED_IOREQ);
    m = { fds, slots: new SharedBytes(slots.buffer), ring: ring.mem };
    this.mapped.set(id, m);
    return m;
  }

  /** A synchronous ioreq through this vCPU's slot. For a read, the answer is written into `data`. */
  roundTrip(id: number, space: Space, addr: number, dir: 'read' | 'write', data: Uint8Array): WaitOutcome {
    const e = this.endpoint(id);
    const base = this.vcpu * IoreqSlot.SIZE;
    const m = e.slots;
    // GUEST-INPUT: size is 1, 2, 4 or 8 (checked by RunPage); the value is zero-extended.
    const seq = IoreqSlot.getSeq(m, base) + 1n;
    IoreqSlot.setSeq(m, base, seq);
    IoreqSlot.setAddr(m, base, BigInt(addr));
    IoreqSlot.setData(m, base, dir === 'write' ? toBig(data) : 0n);
    IoreqSlot.setCount(m, base, 1);
    IoreqSlot.setType(m, base, space === 'pio' ? IoreqType.IOREQ_TYPE_PIO : IoreqType.IOREQ_TYPE_MMIO);
    IoreqSlot.setDir(m, base, dir === 'write' ? IoreqDir.IOREQ_DIR_WRITE : IoreqDir.IOREQ_DIR_READ);
    IoreqSlot.setSize(m, base, data.byteLength);
    IoreqSlot.setVcpu(m, base, this.vcpu);
    // ORDER: seq_cst store publishes every field above before the server can see READY.
    IoreqSlot.storeState(m, base, IoreqState.IOREQ_STATE_READY);
    sys.eventfdWrite(e.fds.toServer[this.vcpu]!, 1n);
    const toVcpu = e.fds.toVcpu[this.vcpu]!;
    // ORDER: seq_cst load; the data read after seeing RESP_READY is the server's.
    while (IoreqSlot.loadState(m, base) !== IoreqState.IOREQ_STATE_RESP_READY) {
      if (this.stopRequested()) return 'stopped';
      sys.poll([{ fd: toVcpu, events: sys.consts.POLLIN }], 100);
      sys.eventfdTryRead(toVcpu);
    }
    if (dir === 'read') fromBig(IoreqSlot.getData(m, base), data);
    IoreqSlot.storeState(m, base, IoreqState.IOREQ_STATE_IDLE);
    return 'answered';
  }

  /** A posted write on the endpoint's buffered ring; waits only while the ring is full. */
  post(id: number, space: Space, addr: number, data: Uint8Array): WaitOutcome {
    const e = this.endpoint(id);
    const c = this.table.ringCursors(id);
    for (;;) {
      lock(c.words, c.lock);
      let notify = false;
      let full = false;
      try {
        // Every vCPU thread produces into this ring; the cursors live in shared memory under the lock.
        const front = new FrontRing(e.ring, 0, BUFFERED_GEOMETRY, { reqProdPvt: c.words[c.reqProdPvt]! >>> 0, rspCons: c.words[c.rspCons]! >>> 0 });
        while (front.unconsumedResponses() > 0) front.consumeResponse();
        if (front.freeRequests() === 0) full = true;
        else {
          BufferedIoreq.write(e.ring, front.requestOffset(), {
            addr: BigInt(addr), data: toBig(data), type: space === 'pio' ? IoreqType.IOREQ_TYPE_PIO : IoreqType.IOREQ_TYPE_MMIO,
            size: data.byteLength, vcpu: this.vcpu,
          });
          front.commitRequest();
          notify = front.pushRequests();
        }
        const cur = front.cursors();
        c.words[c.reqProdPvt] = cur.reqProdPvt | 0;
        c.words[c.rspCons] = cur.rspCons | 0;
      } finally {
        unlock(c.words, c.lock);
      }
      if (!full) {
        if (notify) sys.eventfdWrite(e.fds.ringNotify, 1n);
        return 'answered';
      }
      // The server is behind (or down): wait for it to free slots, as a real bus would stall.
      if (this.stopRequested()) return 'stopped';
      sys.eventfdWrite(e.fds.ringNotify, 1n);
      sys.poll([], 1);
    }
  }
}

function lock(w: Int32Array, i: number): void {
  // A short critical section between vCPU threads of one process: spin, then sleep on the word.
  while (Atomics.compareExchange(w, i, 0, 1) !== 0) Atomics.wait(w, i, 1, 1);
}
function unlock(w: Int32Array, i: number): void {
  Atomics.store(w, i, 0);
  Atomics.notify(w, i, 1);
}


/** Little-endian bytes (1, 2, 4 or 8 of them) to a zero-extended value. */
export function toBig(b: Uint8Array): bigint {
  let v = 0n;
  for (let i = b.byteLength - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  return v;
}
/** The low `out.byteLength` bytes of a value, little-endian. */
export function fromBig(v: bigint, out: Uint8Array): void {
  for (let i = 0; i < out.byteLength; i++) out[i] = Number((v >> BigInt(8 * i)) & 0xffn);
}
