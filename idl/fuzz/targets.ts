// Fuzz targets, one per decoder of untrusted bytes. Each exports the
// jazzer.js signature `fuzz(data)`: it must return normally or throw the
// decoder's typed error; anything else (a TypeError, a RangeError, a hang)
// is a finding. `seeds()` gives valid inputs to start mutating from.

import { FrameDecoder, encodeFrame } from '../control/framing.js';
import { ControlError } from '../control/errors.js';
import {
  Capability,
  ErrorCode,
  Role,
  ShutdownReason,
  createEnvelope,
  createHello,
  createIoreqRangeReply,
  ENVELOPE_BODY_SENDER,
  decodeEnvelope,
  encodeEnvelope,
  fdIndexesOfEnvelope,
} from '../generated/control.js';
import type { Envelope } from '../generated/control.js';
import { EvtchnOp } from '../generated/evtchn.js';
import { BufferedIoreq, IoreqSlot } from '../generated/ioreq.js';
import { FrameHeader } from '../generated/control.js';
import { RingHeader, RingProtocol, RingTestRecord } from '../generated/ring.js';
import { RingError } from '../ring/errors.js';
import { BackRing, FrontRing, attachRing, initRing, ringBytes } from '../ring/ring.js';
import { CodecError, RecordError } from '../runtime/errors.js';
import { SharedBytes } from '../runtime/shared.js';
import { Reader, encodeMessage } from '../runtime/wire.js';

export interface FuzzTarget {
  readonly name: string;
  fuzz(data: Uint8Array): void;
  seeds(): Uint8Array[];
}

function expected(e: unknown, ...types: Array<abstract new (...args: never[]) => Error>): void {
  if (types.some((t) => e instanceof t)) return;
  throw e;
}

const SAMPLE_ENVELOPES: Envelope[] = [
  createEnvelope({ id: 1, body: { case: 'hello', value: createHello({ protocolVersion: 1, domainId: 2, role: Role.ROLE_PCI, capabilities: [Capability.CAPABILITY_MSI_ROUTE], guestIds: [1], generation: 1, heartbeatIntervalMs: 100 }) } }),
  createEnvelope({ replyTo: 1, body: { case: 'ioreqRangeReply', value: createIoreqRangeReply({ rangeId: 1, slots: { index: 0 }, vcpuCount: 1, toServer: [{ index: 1 }], toVcpu: [{ index: 2 }] }) } }),
  createEnvelope({ replyTo: 2, body: { case: 'error', value: { code: ErrorCode.ERROR_CODE_BAD_STATE, message: 'not while sleeping' } } }),
  createEnvelope({ id: 3, body: { case: 'setMsiRoute', value: { guestId: 1, slot: 2, vector: 1, address: 0xfee00000n, data: 0x4041, effective: true } } }),
  // One of each lifecycle message, so mutation starts next to every body case.
  createEnvelope({ id: 4, body: { case: 'activate', value: {} } }),
  createEnvelope({ id: 5, body: { case: 'sleep', value: {} } }),
  createEnvelope({ id: 6, body: { case: 'wake', value: {} } }),
  createEnvelope({ id: 7, body: { case: 'snapshot', value: {} } }),
  createEnvelope({ id: 8, body: { case: 'restore', value: { snapshotSeq: 3n } } }),
  createEnvelope({ id: 9, body: { case: 'shutdown', value: { reason: ShutdownReason.SHUTDOWN_REASON_HUNG, deadlineMs: 100 } } }),
  createEnvelope({ id: 10, body: { case: 'heartbeat', value: { seq: 77n } } }),
  createEnvelope({ replyTo: 10, body: { case: 'heartbeatReply', value: { seq: 77n, inflight: 2 } } }),
  createEnvelope({ replyTo: 8, body: { case: 'ack', value: {} } }),
  createEnvelope({ id: 11, body: { case: 'getStateRegion', value: {} } }),
  createEnvelope({ id: 12, body: { case: 'mapGuestMemory', value: { guestId: 1 } } }),
  createEnvelope({ id: 13, body: { case: 'evtchnClose', value: { port: 4 } } }),
  createEnvelope({ id: 14, body: { case: 'bindIrqfd', value: { guestId: 1, gsi: 4, eventfd: { index: 0 }, resample: { index: 1 }, unbind: false } } }),
];

/** Envelope bytes straight into the protobuf decoder. */
export const envelopeTarget: FuzzTarget = {
  name: 'envelope',
  fuzz(data) {
    let env: Envelope;
    try {
      env = decodeEnvelope(new Reader(data));
    } catch (e) {
      expected(e, CodecError);
      return;
    }
    // Whatever decodes must re-encode to something that decodes to the same value.
    let again: Envelope;
    try {
      again = decodeEnvelope(new Reader(encodeMessage(encodeEnvelope, env)));
    } catch (e) {
      // Decoding accepts unknown-but-skippable content the encoder never makes;
      // re-encoding can only fail on values the decoder already refused.
      throw new Error('re-encoding a decoded envelope failed', { cause: e });
    }
    if (JSON.stringify(again, big) !== JSON.stringify(env, big)) throw new Error('envelope round trip changed the value');
  },
  seeds: () => SAMPLE_ENVELOPES.map((e) => encodeMessage(encodeEnvelope, e)),
};

function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? [...v] : v;
}

/**
 * The stream decoder of the control channel. The first byte picks how the
 * input is cut into reads and how many fds arrive with the first read.
 */
export const controlFrameTarget: FuzzTarget = {
  name: 'control-frame',
  fuzz(data) {
    if (data.length === 0) return;
    const ctl = data[0] as number;
    const chunk = (ctl & 0x0f) + 1;
    const fdCount = ctl >> 4;
    const d = new FrameDecoder(ctl & 1 ? 'microhv' : 'domain');
    let body = data.subarray(1);
    if ((ctl & 0x08) !== 0 && body.length >= FrameHeader.SIZE) {
      // Bit 3: make the header's length agree with the bytes that follow, so
      // mutations inside the payload reach the protobuf decoder instead of
      // stopping at a length mismatch.
      body = Uint8Array.from(body);
      FrameHeader.setLength(new SharedBytes(body.buffer), 0, body.length - FrameHeader.SIZE);
    }
    try {
      for (let at = 0; at < body.length; at += chunk) {
        d.push(body.subarray(at, at + chunk), at === 0 ? Array.from({ length: fdCount }, (_, i) => 1000 + i) : []);
        for (let frames = 0; d.next() !== null; frames++) {
          if (frames > body.length) throw new Error('decoder produced more frames than bytes');
        }
      }
      d.finish();
    } catch (e) {
      expected(e, ControlError);
    }
    if (d.takeStrayFds().length > 2 * 16) throw new Error('decoder kept more fds than its bound');
  },
  seeds: () =>
    SAMPLE_ENVELOPES.map((e) => {
      const refs: number[] = [];
      fdIndexesOfEnvelope(e, refs);
      const fds = refs.length === 0 ? 0 : Math.max(...refs) + 1;
      // Control byte: fds in the high nibble; bit 3 fixes the length; bits 0-2 the read size; bit 0 the side.
      const side = ENVELOPE_BODY_SENDER[e.body?.case ?? 'ack'] === 'domain' ? 1 : 0;
      return new Uint8Array([(fds << 4) | 0x0e | side, ...encodeFrame(e, fds)]);
    }),
};

/** Every fixed-layout record decoder, picked by the first byte. */
export const ringRecordsTarget: FuzzTarget = {
  name: 'ring-records',
  fuzz(data) {
    if (data.length === 0) return;
    const rest = data.subarray(1);
    try {
      switch ((data[0] as number) % 6) {
        case 0: IoreqSlot.decode(rest); break;
        case 1: BufferedIoreq.decode(rest); break;
        case 2: EvtchnOp.decode(rest); break;
        case 3: RingTestRecord.decode(rest); break;
        case 4: FrameHeader.decode(rest); break;
        default: RingHeader.decode(rest); break;
      }
    } catch (e) {
      expected(e, RecordError);
    }
  },
  seeds: () => {
    const slot = new SharedBytes(new ArrayBuffer(64));
    IoreqSlot.write(slot, 0, { seq: 1n, addr: 0x3f8n, data: 0x41n, state: 2, count: 1, type: 1, dir: 1, size: 1, vcpu: 0 });
    const op = new SharedBytes(new ArrayBuffer(16));
    EvtchnOp.write(op, 0, { op: 1, port: 3, value: 0n });
    return [new Uint8Array([0, ...slot.u8]), new Uint8Array([2, ...op.u8])];
  },
};

/**
 * A ring whose peer writes arbitrary indices and header words between the
 * local side's operations: the local side must only ever see RingError,
 * and never count more work than the ring has slots.
 */
export const ringIndicesTarget: FuzzTarget = {
  name: 'ring-indices',
  fuzz(data) {
    const g = { order: 2, slotSize: 24, protocol: RingProtocol.RING_PROTOCOL_TEST };
    const mem = new SharedBytes(new ArrayBuffer(ringBytes(g)));
    initRing(mem, 0, g);
    const geometry = attachRing(mem, 0, RingProtocol.RING_PROTOCOL_TEST);
    const front = new FrontRing(mem, 0, geometry);
    const back = new BackRing(mem, 0, geometry);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength); // fuzz input words, not a wire record
    for (let at = 0; at + 5 <= data.length; at += 5) {
      const op = data[at] as number;
      const word = dv.getUint32(at + 1, true); // an operand drawn from the fuzz input, not a wire field
      try {
        switch (op % 8) {
          case 0: RingHeader.storeReqProd(mem, 0, word); break; // hostile front
          case 1: RingHeader.storeRspProd(mem, 0, word); break; // hostile back
          case 2: RingHeader.storeReqEvent(mem, 0, word); break;
          case 3: {
            const n = back.unconsumedRequests();
            if (n > back.size) throw new Error(`back sees ${n} requests in a ring of ${back.size}`);
            if (n > 0) {
              back.consumeRequest();
              back.commitResponse();
              back.pushResponses();
            }
            break;
          }
          case 4: {
            const n = front.unconsumedResponses();
            if (n > front.size) throw new Error(`front sees ${n} responses in a ring of ${front.size}`);
            if (n > 0) front.consumeResponse();
            break;
          }
          case 5:
            if (front.freeRequests() > 0) {
              front.requestOffset();
              front.commitRequest();
              front.pushRequests();
            }
            break;
          case 6: back.finalCheckForRequests(); break;
          default: front.finalCheckForResponses(); break;
        }
      } catch (e) {
        expected(e, RingError);
      }
    }
  },
  seeds: () => [new Uint8Array([5, 0, 0, 0, 0, 3, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3, 0, 0, 0, 0])],
};

export const TARGETS: readonly FuzzTarget[] = [envelopeTarget, controlFrameTarget, ringRecordsTarget, ringIndicesTarget];
