// Every ring protocol: its id and its records. A protocol declares nothing
// else; the ring logic is generic (ring.ts), as with Xen's DEFINE_RING_TYPES.

import { EvtchnOp } from '../generated/evtchn.js';
import { BufferedIoreq } from '../generated/ioreq.js';
import { RingProtocol, RingTestRecord } from '../generated/ring.js';
import { slotSizeFor } from './ring.js';
import type { RingGeometry } from './ring.js';

export interface RingProtocolSpec {
  readonly protocol: RingProtocol;
  /** Bytes of a request record. */
  readonly requestSize: number;
  /** Bytes of a response record; 0 when a response only returns the slot. */
  readonly responseSize: number;
}

type ProtocolName = Exclude<keyof typeof RingProtocol, 'RING_PROTOCOL_INVALID'>;

export const RING_PROTOCOLS = {
  RING_PROTOCOL_BUFFERED_IOREQ: { protocol: RingProtocol.RING_PROTOCOL_BUFFERED_IOREQ, requestSize: BufferedIoreq.SIZE, responseSize: 0 },
  RING_PROTOCOL_EVTCHN_OP: { protocol: RingProtocol.RING_PROTOCOL_EVTCHN_OP, requestSize: EvtchnOp.SIZE, responseSize: 0 },
  RING_PROTOCOL_TEST: { protocol: RingProtocol.RING_PROTOCOL_TEST, requestSize: RingTestRecord.SIZE, responseSize: RingTestRecord.SIZE },
} as const satisfies Record<ProtocolName, RingProtocolSpec>;

/** The geometry of a ring of 2^order slots for `spec`. */
export function geometryFor(spec: RingProtocolSpec, order: number): RingGeometry {
  return { order, slotSize: slotSizeFor(spec.requestSize, spec.responseSize), protocol: spec.protocol };
}
