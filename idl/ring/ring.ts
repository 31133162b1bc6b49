// The generic shared-memory ring, with the semantics of Xen's
// xen/include/public/io/ring.h: free-running req_prod/rsp_prod indices,
// req_event/rsp_event for notification hold-off, and fixed-size slots that
// hold a request and then the response that replaces it. Each ring protocol
// only says what its records are (idl/ring/protocols.ts); the logic is here,
// once. The header layout comes from idl/proto/ring.proto.
//
// Memory ordering. The indices are read and written with Atomics on an
// Int32Array over the shared mapping; slot contents with plain DataView
// accesses. V8 compiles Atomics.store to a sequentially consistent store
// (xchg on x86-64, a full barrier) and Atomics.load to an acquire load, and
// never moves plain accesses across either. Each ordering point below says
// what it orders.

import { RingHeader, RingMagic, isValidRingProtocol } from '../generated/ring.js';
import type { RingProtocol } from '../generated/ring.js';
import type { SharedBytes } from '../runtime/shared.js';
import { RingError } from './errors.js';

export const RING_VERSION = 1;
export const MAX_ORDER = 16;
export const MAX_SLOT_SIZE = 4096;

export interface RingGeometry {
  /** log2 of the slot count. */
  readonly order: number;
  /** Bytes per slot, a multiple of 8. */
  readonly slotSize: number;
  readonly protocol: RingProtocol;
}

/** Bytes a ring of this geometry occupies, header included. */
export function ringBytes(g: RingGeometry): number {
  return RingHeader.SIZE + (1 << g.order) * g.slotSize;
}

/** Smallest legal slot size holding both a request and a response record. */
export function slotSizeFor(requestSize: number, responseSize: number): number {
  return Math.max(8, Math.ceil(Math.max(requestSize, responseSize) / 8) * 8);
}

function checkGeometry(g: RingGeometry, where: string): void {
  if (!Number.isInteger(g.order) || g.order < 0 || g.order > MAX_ORDER) {
    throw new RingError('BAD_HEADER', `${where}: order ${g.order} outside 0..${MAX_ORDER}`);
  }
  if (!Number.isInteger(g.slotSize) || g.slotSize < 8 || g.slotSize > MAX_SLOT_SIZE || g.slotSize % 8 !== 0) {
    throw new RingError('BAD_HEADER', `${where}: slot size ${g.slotSize} not a multiple of 8 in 8..${MAX_SLOT_SIZE}`);
  }
  if (!isValidRingProtocol(g.protocol)) {
    throw new RingError('BAD_HEADER', `${where}: unknown protocol ${g.protocol}`);
  }
}

function checkFits(mem: SharedBytes, base: number, g: RingGeometry, where: string): void {
  if (!Number.isInteger(base) || base < 0 || base % 64 !== 0 || base + ringBytes(g) > mem.byteLength) {
    throw new RingError('BAD_HEADER', `${where}: ring of ${ringBytes(g)} bytes at ${base} does not fit a ${mem.byteLength}-byte buffer (or base not 64-aligned)`);
  }
}

/**
 * Creator side: writes a fresh header (indices zero, events 1) before either
 * party attaches. Normally microhv, which owns the memfd.
 */
export function initRing(mem: SharedBytes, base: number, g: RingGeometry): void {
  checkGeometry(g, 'initRing');
  checkFits(mem, base, g, 'initRing');
  mem.u8.fill(0, base, base + ringBytes(g));
  RingHeader.setVersion(mem, base, RING_VERSION);
  RingHeader.setOrder(mem, base, g.order);
  RingHeader.setSlotSize(mem, base, g.slotSize);
  RingHeader.setProtocol(mem, base, g.protocol);
  // As ring.h's SHARED_RING_INIT: each side asks to be told about the first entry.
  RingHeader.storeReqEvent(mem, base, 1);
  RingHeader.storeRspEvent(mem, base, 1);
  // ORDER: magic last, after every static field: a party that sees the magic sees the rest.
  Atomics.store(mem.i32, (base + RingHeader.OFFSET.magic) >> 2, RingMagic.RING_MAGIC_V1);
}

/**
 * Either party: validates the static header once and returns a private copy
 * of the geometry. The peer may scribble on the header later; the copy is
 * what bounds every slot access.
 */
export function attachRing(mem: SharedBytes, base: number, expect: RingProtocol): RingGeometry {
  if (!Number.isInteger(base) || base < 0 || base + RingHeader.SIZE > mem.byteLength) {
    throw new RingError('BAD_HEADER', `attachRing: no room for a header at ${base}`);
  }
  // ORDER: acquire the magic before the static fields it publishes.
  const magic = Atomics.load(mem.i32, (base + RingHeader.OFFSET.magic) >> 2) >>> 0;
  if (magic !== RingMagic.RING_MAGIC_V1) throw new RingError('BAD_HEADER', `attachRing: bad magic 0x${magic.toString(16)}`);
  const version = RingHeader.getVersion(mem, base);
  if (version !== RING_VERSION) throw new RingError('BAD_HEADER', `attachRing: version ${version}, expected ${RING_VERSION}`);
  if (RingHeader.getReserved0(mem, base) !== 0) throw new RingError('BAD_HEADER', 'attachRing: reserved0 is not zero');
  const protocol = RingHeader.getProtocol(mem, base);
  const g = { order: RingHeader.getOrder(mem, base), slotSize: RingHeader.getSlotSize(mem, base), protocol: protocol as RingProtocol };
  checkGeometry(g, 'attachRing');
  if (protocol !== expect) throw new RingError('BAD_HEADER', `attachRing: protocol ${protocol}, expected ${expect}`);
  checkFits(mem, base, g, 'attachRing');
  return g;
}

/** The private cursors of the front, to keep in a state region. */
export interface FrontCursors {
  readonly reqProdPvt: number;
  readonly rspCons: number;
}

/** The private cursors of the back, to keep in a state region. */
export interface BackCursors {
  readonly reqCons: number;
  readonly rspProdPvt: number;
}

abstract class RingSide {
  readonly size: number;
  protected readonly mask: number;
  protected readonly slotSize: number;
  protected readonly slots: number;
  protected readonly i32: Int32Array;
  protected broken: RingError | null = null;

  constructor(
    readonly mem: SharedBytes,
    readonly base: number,
    readonly geometry: RingGeometry,
  ) {
    checkGeometry(geometry, 'ring');
    checkFits(mem, base, geometry, 'ring');
    this.size = 1 << geometry.order;
    this.mask = this.size - 1;
    this.slotSize = geometry.slotSize;
    this.slots = base + RingHeader.SIZE;
    this.i32 = mem.i32;
  }

  /** Byte offset in `mem` of the slot holding index `idx` (free-running). */
  slotOffset(idx: number): number {
    return this.slots + (idx & this.mask) * this.slotSize;
  }

  /** The error that broke this ring, or null. */
  get error(): RingError | null {
    return this.broken;
  }

  protected fail(code: 'PROD_BACKWARDS' | 'PROD_TOO_FAR', message: string): never {
    this.broken = new RingError(code, message);
    throw this.broken;
  }

  protected checkBroken(): void {
    if (this.broken !== null) throw new RingError('BROKEN', 'ring is broken by an earlier peer error', { cause: this.broken });
  }

  /**
   * Validates a producer index read from the peer. `last` is the previous
   * value read (it never moves backwards), `limit` the furthest it may be
   * given the slots the peer has been handed.
   */
  protected validateProd(prod: number, last: number, limit: number, what: string): void {
    const ahead = (prod - last) >>> 0;
    const room = (limit - last) >>> 0;
    if (ahead <= room) return;
    // A wrapped difference above 2^31 can only come from an index that went back.
    if (ahead > 0x8000_0000) this.fail('PROD_BACKWARDS', `${what} moved back from ${last} to ${prod}`);
    this.fail('PROD_TOO_FAR', `${what} is ${prod}, at most ${limit} allowed`);
  }
}

/** The front end: produces requests, consumes responses. */
export class FrontRing extends RingSide {
  reqProdPvt: number;
  rspCons: number;
  /** req_prod as we last published it (our own copy: the shared word is peer-writable). */
  private pushedReqProd: number;
  private lastRspProd: number;
  private readonly reqProdIdx: number;
  private readonly reqEventIdx: number;
  private readonly rspProdIdx: number;
  private readonly rspEventIdx: number;

  constructor(mem: SharedBytes, base: number, geometry: RingGeometry, cursors: FrontCursors = { reqProdPvt: 0, rspCons: 0 }) {
    super(mem, base, geometry);
    this.reqProdPvt = cursors.reqProdPvt >>> 0;
    this.rspCons = cursors.rspCons >>> 0;
    this.pushedReqProd = this.reqProdPvt;
    this.lastRspProd = this.rspCons;
    this.reqProdIdx = (base + RingHeader.OFFSET.reqProd) >> 2;
    this.reqEventIdx = (base + RingHeader.OFFSET.reqEvent) >> 2;
    this.rspProdIdx = (base + RingHeader.OFFSET.rspProd) >> 2;
    this.rspEventIdx = (base + RingHeader.OFFSET.rspEvent) >> 2;
  }

  cursors(): FrontCursors {
    return { reqProdPvt: this.reqProdPvt, rspCons: this.rspCons };
  }

  /** Slots free for new requests (ring.h RING_FREE_REQUESTS). */
  freeRequests(): number {
    return this.size - ((this.reqProdPvt - this.rspCons) >>> 0);
  }

  /** Offset of the slot for the next request. Throws FULL when there is none. */
  requestOffset(): number {
    this.checkBroken();
    if (this.freeRequests() === 0) throw new RingError('FULL', 'no free request slot');
    return this.slotOffset(this.reqProdPvt);
  }

  /** Counts the request written at requestOffset() as produced (not yet visible). */
  commitRequest(): void {
    if (this.freeRequests() === 0) throw new RingError('FULL', 'no free request slot');
    this.reqProdPvt = (this.reqProdPvt + 1) >>> 0;
  }

  /**
   * Publishes produced requests. Returns true when the back asked to be
   * notified (ring.h RING_PUSH_REQUESTS_AND_CHECK_NOTIFY).
   */
  pushRequests(): boolean {
    this.checkBroken();
    const old = this.pushedReqProd;
    const next = this.reqProdPvt;
    if (old === next) return false;
    // ORDER: seq_cst store: the slot contents written before it are visible to the back before the new req_prod.
    Atomics.store(this.i32, this.reqProdIdx, next | 0);
    this.pushedReqProd = next;
    // ORDER: seq_cst load after the seq_cst store: req_event is read only after req_prod is globally visible (no store-load reordering).
    const event = Atomics.load(this.i32, this.reqEventIdx) >>> 0;
    return ((next - event) >>> 0) < ((next - old) >>> 0);
  }

  /** Responses published and not yet consumed, validated against what we asked for. */
  unconsumedResponses(): number {
    this.checkBroken();
    // ORDER: acquire: response slots are read only after this load of rsp_prod.
    const prod = Atomics.load(this.i32, this.rspProdIdx) >>> 0;
    if (prod !== this.lastRspProd) {
      // The back can only answer requests we have pushed.
      this.validateProd(prod, this.lastRspProd, this.pushedReqProd, 'rsp_prod');
      this.lastRspProd = prod;
    }
    return (prod - this.rspCons) >>> 0;
  }

  /** Offset of the next response to read. Check unconsumedResponses() first. */
  responseOffset(): number {
    this.checkBroken();
    if (this.rspCons === this.lastRspProd) throw new RingError('EMPTY', 'no response to consume');
    return this.slotOffset(this.rspCons);
  }

  /** Frees the slot of the response at responseOffset(). */
  consumeResponse(): void {
    if (this.rspCons === this.lastRspProd) throw new RingError('EMPTY', 'no response to consume');
    this.rspCons = (this.rspCons + 1) >>> 0;
  }

  /**
   * Before sleeping: asks for a notification on the next response and checks
   * once more (ring.h RING_FINAL_CHECK_FOR_RESPONSES). True: do not sleep.
   */
  finalCheckForResponses(): boolean {
    if (this.unconsumedResponses() > 0) return true;
    // ORDER: seq_cst store of rsp_event, then a re-read of rsp_prod: a response pushed concurrently is either seen here or its producer sees our event and notifies.
    Atomics.store(this.i32, this.rspEventIdx, (this.rspCons + 1) | 0);
    return this.unconsumedResponses() > 0;
  }
}

/** The back end: consumes requests, produces responses. */
export class BackRing extends RingSide {
  reqCons: number;
  rspProdPvt: number;
  private pushedRspProd: number;
  private lastReqProd: number;
  private readonly reqProdIdx: number;
  private readonly reqEventIdx: number;
  private readonly rspProdIdx: number;
  private readonly rspEventIdx: number;

  constructor(mem: SharedBytes, base: number, geometry: RingGeometry, cursors: BackCursors = { reqCons: 0, rspProdPvt: 0 }) {
    super(mem, base, geometry);
    this.reqCons = cursors.reqCons >>> 0;
    this.rspProdPvt = cursors.rspProdPvt >>> 0;
    if (((this.reqCons - this.rspProdPvt) >>> 0) > this.size) {
      throw new RingError('BAD_HEADER', `saved cursors req_cons ${this.reqCons} rsp_prod_pvt ${this.rspProdPvt} are more than a ring apart`);
    }
    this.pushedRspProd = this.rspProdPvt;
    this.lastReqProd = this.reqCons;
    this.reqProdIdx = (base + RingHeader.OFFSET.reqProd) >> 2;
    this.reqEventIdx = (base + RingHeader.OFFSET.reqEvent) >> 2;
    this.rspProdIdx = (base + RingHeader.OFFSET.rspProd) >> 2;
    this.rspEventIdx = (base + RingHeader.OFFSET.rspEvent) >> 2;
  }

  cursors(): BackCursors {
    return { reqCons: this.reqCons, rspProdPvt: this.rspProdPvt };
  }

  /** Requests published and not yet consumed, validated (never more than the ring holds). */
  unconsumedRequests(): number {
    this.checkBroken();
    // ORDER: acquire: request slots are read only after this load of req_prod.
    const prod = Atomics.load(this.i32, this.reqProdIdx) >>> 0;
    if (prod !== this.lastReqProd) {
      // The front owns at most `size` slots past the responses we produced.
      this.validateProd(prod, this.lastReqProd, (this.rspProdPvt + this.size) >>> 0, 'req_prod');
      this.lastReqProd = prod;
    }
    return (prod - this.reqCons) >>> 0;
  }

  /** Offset of the next request to read. Check unconsumedRequests() first. */
  requestOffset(): number {
    this.checkBroken();
    if (this.reqCons === this.lastReqProd) throw new RingError('EMPTY', 'no request to consume');
    return this.slotOffset(this.reqCons);
  }

  /** Marks the request at requestOffset() consumed; its slot now takes the response. */
  consumeRequest(): void {
    if (this.reqCons === this.lastReqProd) throw new RingError('EMPTY', 'no request to consume');
    this.reqCons = (this.reqCons + 1) >>> 0;
  }

  /** Offset of the slot for the next response: that of the oldest unanswered request. */
  responseOffset(): number {
    this.checkBroken();
    if (this.rspProdPvt === this.reqCons) throw new RingError('FULL', 'no consumed request to answer');
    return this.slotOffset(this.rspProdPvt);
  }

  /** Counts the response written at responseOffset() as produced (not yet visible). */
  commitResponse(): void {
    if (this.rspProdPvt === this.reqCons) throw new RingError('FULL', 'no consumed request to answer');
    this.rspProdPvt = (this.rspProdPvt + 1) >>> 0;
  }

  /** Publishes produced responses; true when the front asked to be notified. */
  pushResponses(): boolean {
    this.checkBroken();
    const old = this.pushedRspProd;
    const next = this.rspProdPvt;
    if (old === next) return false;
    // ORDER: seq_cst store: response slot contents are visible to the front before the new rsp_prod.
    Atomics.store(this.i32, this.rspProdIdx, next | 0);
    this.pushedRspProd = next;
    // ORDER: seq_cst load after the seq_cst store: rsp_event is read only after rsp_prod is globally visible.
    const event = Atomics.load(this.i32, this.rspEventIdx) >>> 0;
    return ((next - event) >>> 0) < ((next - old) >>> 0);
  }

  /** Before sleeping: asks for a notification on the next request and checks once more. */
  finalCheckForRequests(): boolean {
    if (this.unconsumedRequests() > 0) return true;
    // ORDER: seq_cst store of req_event, then a re-read of req_prod: closes the race with a concurrent push.
    Atomics.store(this.i32, this.reqEventIdx, (this.reqCons + 1) | 0);
    return this.unconsumedRequests() > 0;
  }
}
