// The generic ring of idl/ring/ring.ts, for AssemblyScript domains (wasm).
// Same protocol, same header (idl/proto/ring.proto), same validation; errors
// are negative return codes because a wasm stub domain must never trap on
// peer input. The header accessors are generated (./generated/ring.ts).
//
// Memory ordering: wasm atomics are sequentially consistent. atomic.store of
// an index publishes every plain store before it; atomic.load of an index
// happens before every plain load after it. Each ordering point says what
// it orders.

import { RingHeader, RingMagic } from './generated/ring';

export const RING_VERSION: u32 = 1;
export const MAX_ORDER: u32 = 16;
export const MAX_SLOT_SIZE: u32 = 4096;

/** The peer moved its producer index backwards. */
export const RING_ERR_PROD_BACKWARDS: i32 = -1;
/** The peer moved its producer index further than it has slots for. */
export const RING_ERR_PROD_TOO_FAR: i32 = -2;
/** The header is not a valid ring of the expected protocol. */
export const RING_ERR_BAD_HEADER: i32 = -3;

function validateProd(prod: u32, last: u32, limit: u32): i32 {
  const ahead = prod - last;
  const room = limit - last;
  if (ahead <= room) return 0;
  // A wrapped difference above 2^31 can only come from an index that went back.
  return ahead > 0x80000000 ? RING_ERR_PROD_BACKWARDS : RING_ERR_PROD_TOO_FAR;
}

/** Checks the static header; returns 0 or RING_ERR_BAD_HEADER. */
export function checkHeader(base: usize, protocol: u32, bytesAvailable: u32): i32 {
  // ORDER: acquire the magic before reading the static fields it publishes.
  if (atomic.load<u32>(base, RingHeader.OFFSET_MAGIC) != <u32>RingMagic.RING_MAGIC_V1) return RING_ERR_BAD_HEADER;
  if (RingHeader.getVersion(base) != RING_VERSION || RingHeader.getReserved0(base) != 0) return RING_ERR_BAD_HEADER;
  const order = RingHeader.getOrder(base);
  const slot = RingHeader.getSlotSize(base);
  if (order > MAX_ORDER || slot < 8 || slot > MAX_SLOT_SIZE || (slot & 7) != 0) return RING_ERR_BAD_HEADER;
  if (RingHeader.getProtocol(base) != protocol) return RING_ERR_BAD_HEADER;
  if (<u64>RingHeader.SIZE + (<u64>1 << order) * <u64>slot > <u64>bytesAvailable) return RING_ERR_BAD_HEADER;
  return 0;
}

class RingSide {
  base: usize;
  size: u32;
  mask: u32;
  slotSize: u32;
  /** 0, or the error that broke this side for good. */
  broken: i32 = 0;

  constructor(base: usize) {
    // Geometry is read once, after checkHeader; later peer writes to it are ignored.
    this.base = base;
    this.size = <u32>1 << RingHeader.getOrder(base);
    this.mask = this.size - 1;
    this.slotSize = RingHeader.getSlotSize(base);
  }

  slot(idx: u32): usize {
    return this.base + <usize>RingHeader.SIZE + <usize>((idx & this.mask) * this.slotSize);
  }
}

export class FrontRing extends RingSide {
  reqProdPvt: u32 = 0;
  rspCons: u32 = 0;
  pushedReqProd: u32 = 0;
  lastRspProd: u32 = 0;

  constructor(base: usize, reqProdPvt: u32, rspCons: u32) {
    super(base);
    this.reqProdPvt = reqProdPvt;
    this.rspCons = rspCons;
    this.pushedReqProd = reqProdPvt;
    this.lastRspProd = rspCons;
  }

  freeRequests(): u32 {
    return this.size - (this.reqProdPvt - this.rspCons);
  }

  /** Slot for the next request; check freeRequests() first. */
  requestSlot(): usize {
    return this.slot(this.reqProdPvt);
  }

  commitRequest(): void {
    this.reqProdPvt++;
  }

  /** Publishes requests; true when the back asked to be notified. */
  pushRequests(): bool {
    const old = this.pushedReqProd;
    const next = this.reqProdPvt;
    if (old == next) return false;
    // ORDER: seq_cst store: the request slots written before it are visible before req_prod.
    RingHeader.storeReqProd(this.base, next);
    this.pushedReqProd = next;
    // ORDER: seq_cst load after the store: req_event is read only once req_prod is visible.
    const event = RingHeader.loadReqEvent(this.base);
    return next - event < next - old;
  }

  /** Unconsumed responses, or a negative RING_ERR_* when the peer misbehaved. */
  unconsumedResponses(): i32 {
    if (this.broken != 0) return this.broken;
    // ORDER: acquire: response slots are read only after this load.
    const prod = RingHeader.loadRspProd(this.base);
    if (prod != this.lastRspProd) {
      const err = validateProd(prod, this.lastRspProd, this.pushedReqProd);
      if (err != 0) {
        this.broken = err;
        return err;
      }
      this.lastRspProd = prod;
    }
    return <i32>(prod - this.rspCons);
  }

  responseSlot(): usize {
    return this.slot(this.rspCons);
  }

  consumeResponse(): void {
    if (this.rspCons != this.lastRspProd) this.rspCons++;
  }

  /** Before sleeping: ask for a notification and check again. >0: do not sleep. */
  finalCheckForResponses(): i32 {
    const n = this.unconsumedResponses();
    if (n != 0) return n;
    // ORDER: seq_cst store of rsp_event, then re-read rsp_prod: closes the race with a concurrent push.
    RingHeader.storeRspEvent(this.base, this.rspCons + 1);
    return this.unconsumedResponses();
  }
}

export class BackRing extends RingSide {
  reqCons: u32 = 0;
  rspProdPvt: u32 = 0;
  pushedRspProd: u32 = 0;
  lastReqProd: u32 = 0;

  constructor(base: usize, reqCons: u32, rspProdPvt: u32) {
    super(base);
    this.reqCons = reqCons;
    this.rspProdPvt = rspProdPvt;
    this.pushedRspProd = rspProdPvt;
    this.lastReqProd = reqCons;
  }

  /** Unconsumed requests, or a negative RING_ERR_* when the peer misbehaved. */
  unconsumedRequests(): i32 {
    if (this.broken != 0) return this.broken;
    // ORDER: acquire: request slots are read only after this load.
    const prod = RingHeader.loadReqProd(this.base);
    if (prod != this.lastReqProd) {
      const err = validateProd(prod, this.lastReqProd, this.rspProdPvt + this.size);
      if (err != 0) {
        this.broken = err;
        return err;
      }
      this.lastReqProd = prod;
    }
    return <i32>(prod - this.reqCons);
  }

  requestSlot(): usize {
    return this.slot(this.reqCons);
  }

  consumeRequest(): void {
    if (this.reqCons != this.lastReqProd) this.reqCons++;
  }

  /** Slot for the next response: that of the oldest unanswered request. */
  responseSlot(): usize {
    return this.slot(this.rspProdPvt);
  }

  commitResponse(): void {
    if (this.rspProdPvt != this.reqCons) this.rspProdPvt++;
  }

  /** Publishes responses; true when the front asked to be notified. */
  pushResponses(): bool {
    const old = this.pushedRspProd;
    const next = this.rspProdPvt;
    if (old == next) return false;
    // ORDER: seq_cst store: response slots written before it are visible before rsp_prod.
    RingHeader.storeRspProd(this.base, next);
    this.pushedRspProd = next;
    // ORDER: seq_cst load after the store: rsp_event is read only once rsp_prod is visible.
    const event = RingHeader.loadRspEvent(this.base);
    return next - event < next - old;
  }

  /** Before sleeping: ask for a notification and check again. >0: do not sleep. */
  finalCheckForRequests(): i32 {
    const n = this.unconsumedRequests();
    if (n != 0) return n;
    // ORDER: seq_cst store of req_event, then re-read req_prod: closes the race with a concurrent push.
    RingHeader.storeReqEvent(this.base, this.reqCons + 1);
    return this.unconsumedRequests();
  }
}
