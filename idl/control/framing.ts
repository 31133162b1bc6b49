// Control-channel framing (idl/proto/control.proto, "Transport"):
// FrameHeader (8 bytes, fixed layout) + Envelope (protobuf), sent with one
// sendmsg that carries the frame's fds as SCM_RIGHTS.
//
// FrameDecoder is the decoder of untrusted stream bytes: it never buffers
// more than one frame (MAX_FRAME_BYTES + header), never holds more than two
// frames' worth of fds, and reports every malformation as a ControlError.

import {
  ENVELOPE_BODY_SENDER,
  FrameHeader,
  Limits,
  decodeEnvelope,
  encodeEnvelope,
  fdIndexesOfEnvelope,
} from '../generated/control.js';
import type { Envelope, EnvelopeBody } from '../generated/control.js';
import { CodecError, RecordError } from '../runtime/errors.js';
import { SharedBytes } from '../runtime/shared.js';
import { Reader, Writer } from '../runtime/wire.js';
import { ControlError } from './errors.js';

export const MAX_FRAME_BYTES = Limits.MAX_FRAME_BYTES;
export const MAX_FDS_PER_FRAME = Limits.MAX_FDS_PER_FRAME;
export const FRAME_VERSION = Limits.FRAME_VERSION;
export const HEADER_BYTES = FrameHeader.SIZE;

/** One decoded frame and the fds that came with it (now owned by the receiver). */
export interface Frame {
  readonly envelope: Envelope;
  readonly body: EnvelopeBody;
  readonly fds: number[];
}

/** Which end of the channel a party is; decides which bodies it may receive. */
export type Side = 'microhv' | 'domain';

function checkFdRefs(envelope: Envelope, fdCount: number): void {
  const refs: number[] = [];
  fdIndexesOfEnvelope(envelope, refs);
  for (const i of refs) {
    if (i >= fdCount) throw new ControlError('FD_MISMATCH', `FdRef ${i} but the frame carries ${fdCount} fds`);
  }
}

/** Encodes one frame. Refuses what the receiver would reject. */
export function encodeFrame(envelope: Envelope, fdCount: number): Uint8Array {
  if (envelope.body === undefined) throw new ControlError('ENCODE', 'envelope without a body');
  if (fdCount > MAX_FDS_PER_FRAME) throw new ControlError('ENCODE', `${fdCount} fds, at most ${MAX_FDS_PER_FRAME}`);
  checkFdRefs(envelope, fdCount);
  const w = new Writer();
  // Room for the header, filled once the payload length is known.
  w.reserve(HEADER_BYTES);
  try {
    encodeEnvelope(w, envelope);
  } catch (e) {
    throw new ControlError('ENCODE', 'envelope does not encode', { cause: e });
  }
  const bytes = w.finish();
  const length = bytes.length - HEADER_BYTES;
  if (length > MAX_FRAME_BYTES) throw new ControlError('ENCODE', `frame of ${length} bytes exceeds ${MAX_FRAME_BYTES}`);
  const mem = new SharedBytes(bytes.buffer);
  FrameHeader.write(mem, 0, { length, fdCount, version: FRAME_VERSION });
  return bytes;
}

export class FrameDecoder {
  private buf = new Uint8Array(HEADER_BYTES + 4096);
  private start = 0;
  private end = 0;
  private fdQueue: number[] = [];

  /** The side this decoder belongs to: frames must come from the other one. */
  constructor(private readonly side: Side) {}

  /** Bytes buffered of an incomplete frame. */
  get buffered(): number {
    return this.end - this.start;
  }

  /** Adds received bytes and the fds that came with them. */
  push(data: Uint8Array, fds: readonly number[]): void {
    this.fdQueue.push(...fds);
    if (this.fdQueue.length > 2 * MAX_FDS_PER_FRAME) {
      throw new ControlError('FD_MISMATCH', `${this.fdQueue.length} fds received ahead of their frames`);
    }
    if (data.length === 0) return;
    if (this.end + data.length > this.buf.length) this.compact(data.length);
    this.buf.set(data, this.end);
    this.end += data.length;
  }

  private compact(incoming: number): void {
    const live = this.end - this.start;
    // Never more than one maximal frame plus what one recvmsg brought.
    const size = Math.max(this.buf.length, live + incoming);
    const next = size === this.buf.length ? this.buf : new Uint8Array(size);
    // set() copies correctly when source and target share the buffer.
    next.set(this.buf.subarray(this.start, this.end), 0);
    this.buf = next;
    this.start = 0;
    this.end = live;
  }

  /** The next complete frame, or null when more bytes are needed. Throws ControlError. */
  next(): Frame | null {
    const avail = this.end - this.start;
    if (avail < HEADER_BYTES) return null;
    const header = this.buf.subarray(this.start, this.start + HEADER_BYTES);
    let h;
    try {
      h = FrameHeader.decode(header);
    } catch (e) {
      throw new ControlError('BAD_HEADER', 'frame header', { cause: e instanceof RecordError ? e : undefined });
    }
    if (h.version !== FRAME_VERSION) throw new ControlError('BAD_HEADER', `version ${h.version}, expected ${FRAME_VERSION}`);
    // Checked before waiting for the payload: an over-long frame is refused at once.
    if (h.length > MAX_FRAME_BYTES) throw new ControlError('FRAME_TOO_LARGE', `length ${h.length} exceeds ${MAX_FRAME_BYTES}`);
    if (h.fdCount > MAX_FDS_PER_FRAME) throw new ControlError('BAD_HEADER', `fd_count ${h.fdCount} exceeds ${MAX_FDS_PER_FRAME}`);
    if (avail < HEADER_BYTES + h.length) return null;
    if (this.fdQueue.length < h.fdCount) {
      throw new ControlError('FD_MISMATCH', `frame declares ${h.fdCount} fds, ${this.fdQueue.length} arrived`);
    }
    const payload = this.buf.subarray(this.start + HEADER_BYTES, this.start + HEADER_BYTES + h.length);
    this.start += HEADER_BYTES + h.length;
    if (this.start === this.end) this.start = this.end = 0;
    const fds = this.fdQueue.splice(0, h.fdCount);
    try {
      return this.decodePayload(payload, fds);
    } catch (e) {
      // The frame is rejected: the fds it brought are ours to close.
      this.fdQueue.unshift(...fds);
      throw e;
    }
  }

  private decodePayload(payload: Uint8Array, fds: number[]): Frame {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(new Reader(payload));
    } catch (e) {
      if (e instanceof CodecError) throw new ControlError('DECODE', e.message, { cause: e });
      throw e;
    }
    const body = envelope.body;
    if (body === undefined) throw new ControlError('UNKNOWN_TYPE', 'envelope carries no known body');
    const sender = ENVELOPE_BODY_SENDER[body.case];
    if (sender !== 'either' && sender === this.side) {
      throw new ControlError('BAD_SENDER', `${body.case} may only be sent by ${sender}`);
    }
    checkFdRefs(envelope, fds.length);
    return { envelope, body, fds };
  }

  /** End of stream: throws TRUNCATED if it fell inside a frame. */
  finish(): void {
    if (this.end - this.start > 0) throw new ControlError('TRUNCATED', `stream ended with ${this.end - this.start} bytes of an incomplete frame`);
  }

  /** Takes the fds not yet handed out with a frame (the caller closes them). */
  takeStrayFds(): number[] {
    const fds = this.fdQueue;
    this.fdQueue = [];
    return fds;
  }
}
