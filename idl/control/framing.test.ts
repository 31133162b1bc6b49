import { describe, expect, it } from 'vitest';
import { Capability, FrameHeader, Role, createEnvelope, createHello } from '../generated/control.js';
import type { Envelope } from '../generated/control.js';
import { SharedBytes } from '../runtime/shared.js';
import { Writer } from '../runtime/wire.js';
import { ControlError } from './errors.js';
import { FrameDecoder, HEADER_BYTES, MAX_FRAME_BYTES, encodeFrame } from './framing.js';

function hello(): Envelope {
  return createEnvelope({
    id: 7,
    body: {
      case: 'hello',
      value: createHello({ protocolVersion: 1, domainId: 3, role: Role.ROLE_PCI, capabilities: [Capability.CAPABILITY_MSI_ROUTE], generation: 1 }),
    },
  });
}

/** A frame around hand-written payload bytes, for inputs the encoder refuses to make. */
function rawFrame(payload: Uint8Array, fdCount = 0, version = 1, reserved0 = 0): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  const mem = new SharedBytes(out.buffer);
  FrameHeader.setLength(mem, 0, payload.length);
  FrameHeader.setFdCount(mem, 0, fdCount);
  FrameHeader.setVersion(mem, 0, version);
  FrameHeader.setReserved0(mem, 0, reserved0);
  out.set(payload, HEADER_BYTES);
  return out;
}

function payload(build: (w: Writer) => void): Uint8Array {
  const w = new Writer();
  build(w);
  return w.finish();
}

/** Envelope { id: 1, hello: { role: <role> } } written by hand. */
function helloWithRole(role: number): Uint8Array {
  const inner = payload((w) => {
    w.tag(3, 0);
    w.uint32(role);
  });
  return payload((w) => {
    w.tag(1, 0);
    w.uint32(1);
    w.tag(10, 2);
    w.bytes(inner);
  });
}

function errorOf(f: () => unknown): ControlError {
  try {
    f();
  } catch (e) {
    if (e instanceof ControlError) return e;
    throw e;
  }
  throw new Error('expected a ControlError');
}

describe('frame round trip', () => {
  it('decodes_what_it_encodes', () => {
    const d = new FrameDecoder('domain');
    d.push(encodeFrame(hello(), 0), []);

    const f = d.next();

    expect(f?.envelope).toEqual(hello());
    expect(d.next()).toBeNull();
  });

  it('reassembles_frames_delivered_one_byte_at_a_time', () => {
    const bytes = new Uint8Array([...encodeFrame(hello(), 0), ...encodeFrame(hello(), 0)]);
    const d = new FrameDecoder('domain');
    const got: Envelope[] = [];

    for (const b of bytes) {
      d.push(new Uint8Array([b]), []);
      for (let f = d.next(); f !== null; f = d.next()) got.push(f.envelope);
    }

    expect(got).toEqual([hello(), hello()]);
    expect(d.buffered).toBe(0);
  });

  it('hands_each_frame_its_own_fds', () => {
    const env = createEnvelope({ replyTo: 4, body: { case: 'stateRegionReply', value: { memfd: { index: 0 }, size: 4096n, fresh: true } } });
    const d = new FrameDecoder('domain');
    d.push(encodeFrame(env, 1), [42]);

    expect(d.next()?.fds).toEqual([42]);
  });
});

describe('hostile frames', () => {
  it('rejects_a_length_over_the_bound_before_the_payload_arrives', () => {
    const d = new FrameDecoder('domain');
    const header = rawFrame(new Uint8Array(0));
    FrameHeader.setLength(new SharedBytes(header.buffer), 0, MAX_FRAME_BYTES + 1);
    d.push(header, []);

    expect(errorOf(() => d.next()).code).toBe('FRAME_TOO_LARGE');
  });

  it('reports_truncation_when_the_stream_ends_inside_a_frame', () => {
    const d = new FrameDecoder('domain');
    d.push(encodeFrame(hello(), 0).subarray(0, 12), []);

    expect(d.next()).toBeNull();
    expect(errorOf(() => d.finish()).code).toBe('TRUNCATED');
  });

  it('rejects_an_envelope_without_a_known_body', () => {
    const d = new FrameDecoder('domain');
    d.push(rawFrame(payload((w) => { w.tag(99, 0); w.uint32(5); })), []);

    expect(errorOf(() => d.next()).code).toBe('UNKNOWN_TYPE');
  });

  it('rejects_an_unknown_enum_value', () => {
    const d = new FrameDecoder('domain');
    d.push(rawFrame(helloWithRole(99)), []);

    const e = errorOf(() => d.next());

    expect(e.code).toBe('DECODE');
    expect((e.cause as { code?: string }).code).toBe('BAD_ENUM');
  });

  it('rejects_the_reserved_zero_enum_value', () => {
    const d = new FrameDecoder('domain');
    d.push(rawFrame(helloWithRole(0)), []);

    expect((errorOf(() => d.next()).cause as { code?: string }).code).toBe('BAD_ENUM');
  });

  it('rejects_a_wrong_frame_version', () => {
    const d = new FrameDecoder('domain');
    d.push(rawFrame(helloWithRole(1), 0, 2), []);

    expect(errorOf(() => d.next()).code).toBe('BAD_HEADER');
  });

  it('rejects_reserved_header_bits', () => {
    const d = new FrameDecoder('domain');
    d.push(rawFrame(helloWithRole(1), 0, 1, 1), []);

    expect(errorOf(() => d.next()).code).toBe('BAD_HEADER');
  });

  it('rejects_a_frame_declaring_more_fds_than_arrived', () => {
    const d = new FrameDecoder('domain');
    d.push(rawFrame(helloWithRole(1), 2), [10]);

    expect(errorOf(() => d.next()).code).toBe('FD_MISMATCH');
    expect(d.takeStrayFds()).toEqual([10]);
  });

  it('rejects_an_fd_reference_past_the_fds_carried', () => {
    const env = createEnvelope({ replyTo: 1, body: { case: 'stateRegionReply', value: { memfd: { index: 3 }, size: 1n, fresh: false } } });
    const inner = payload((w) => {
      w.tag(1, 2);
      w.bytes(payload((x) => { x.tag(1, 0); x.uint32(3); }));
    });
    const bytes = payload((w) => { w.tag(2, 0); w.uint32(1); w.tag(33, 2); w.bytes(inner); });
    const d = new FrameDecoder('domain');
    d.push(rawFrame(bytes, 1), [11]);

    expect(() => encodeFrame(env, 1)).toThrow(ControlError);
    expect(errorOf(() => d.next()).code).toBe('FD_MISMATCH');
    expect(d.takeStrayFds()).toEqual([11]);
  });

  it('rejects_a_body_the_peer_side_may_not_send', () => {
    const env = createEnvelope({ id: 1, body: { case: 'mapGuestMemory', value: { guestId: 1 } } });
    const d = new FrameDecoder('domain');
    d.push(encodeFrame(env, 0), []);

    expect(errorOf(() => d.next()).code).toBe('BAD_SENDER');
  });

  it('refuses_to_hold_fds_far_ahead_of_their_frames', () => {
    const d = new FrameDecoder('domain');

    expect(errorOf(() => d.push(new Uint8Array(1), Array.from({ length: 33 }, (_, i) => i))).code).toBe('FD_MISMATCH');
  });
});
