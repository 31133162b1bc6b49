// Generated codecs and records: round trips, layout constants, hostile bytes.
import { describe, expect, it } from 'vitest';
import {
  Capability,
  ENVELOPE_BODY_CASES,
  ENVELOPE_BODY_REQUIRES,
  ENVELOPE_BODY_SENDER,
  ErrorCode,
  FrameHeader,
  Polarity,
  Role,
  TriggerMode,
  createEnvelope,
  createHello,
  createIoreqRangeReply,
  createRouteIoapicPin,
  decodeEnvelope,
  encodeEnvelope,
  fdIndexesOfEnvelope,
} from './generated/control.js';
import type { Envelope } from './generated/control.js';
import { EvtchnOp } from './generated/evtchn.js';
import { BufferedIoreq, IoreqSlot } from './generated/ioreq.js';
import { RingHeader } from './generated/ring.js';
import { CodecError, RecordError } from './runtime/errors.js';
import { SharedBytes } from './runtime/shared.js';
import { Reader, Writer, decodeMessage, encodeMessage } from './runtime/wire.js';

function roundTrip(e: Envelope): Envelope {
  return decodeMessage(decodeEnvelope, encodeMessage(encodeEnvelope, e));
}

function codecCode(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof CodecError || e instanceof RecordError) return e.code;
    throw e;
  }
  return 'no error';
}

function bytes(build: (w: Writer) => void): Uint8Array {
  const w = new Writer();
  build(w);
  return w.finish();
}

describe('control message codecs', () => {
  it('round_trips_a_hello_with_repeated_enums_and_integers', () => {
    const e = createEnvelope({
      id: 0xffff_fffe,
      body: {
        case: 'hello',
        value: createHello({
          protocolVersion: 1, domainId: 7, role: Role.ROLE_BLOCK, generation: 3, heartbeatIntervalMs: 500,
          capabilities: [Capability.CAPABILITY_STATE_REGION, Capability.CAPABILITY_IRQFD], guestIds: [1, 300, 70000],
        }),
      },
    });

    expect(roundTrip(e)).toEqual(e);
  });

  it('round_trips_64_bit_values_at_their_limits', () => {
    const e = createEnvelope({ id: 1, body: { case: 'snapshotReply', value: { stateBytes: 0xffff_ffff_ffff_ffffn, snapshotSeq: 1n << 63n } } });

    expect(roundTrip(e)).toEqual(e);
  });

  it('round_trips_nested_messages_with_fd_references', () => {
    const e = createEnvelope({
      replyTo: 9,
      body: {
        case: 'ioreqRangeReply',
        value: createIoreqRangeReply({ rangeId: 2, slots: { index: 0 }, vcpuCount: 2, toServer: [{ index: 1 }, { index: 2 }], toVcpu: [{ index: 3 }, { index: 4 }] }),
      },
    });
    const fds: number[] = [];

    fdIndexesOfEnvelope(roundTrip(e), fds);

    expect(roundTrip(e)).toEqual(e);
    expect(fds).toEqual([0, 1, 2, 3, 4]);
  });

  it('round_trips_enums_that_must_never_be_raw_bits', () => {
    const e = createEnvelope({
      id: 4,
      body: { case: 'routeIoapicPin', value: createRouteIoapicPin({ guestId: 1, pin: 9, vector: 0x29, trigger: TriggerMode.TRIGGER_MODE_LEVEL, polarity: Polarity.POLARITY_ACTIVE_LOW, delivery: 1, destApicId: 0 }) },
    });

    expect(roundTrip(e)).toEqual(e);
  });

  it('round_trips_utf8_error_messages', () => {
    const e = createEnvelope({ replyTo: 3, body: { case: 'error', value: { code: ErrorCode.ERROR_CODE_CONFLICT, message: 'plage déjà prise ✓' } } });

    expect(roundTrip(e)).toEqual(e);
  });

  it('skips_unknown_fields_for_forward_compatibility', () => {
    const known = encodeMessage(encodeEnvelope, createEnvelope({ id: 5, body: { case: 'activate', value: {} } }));
    const withExtra = new Uint8Array([...bytes((w) => { w.tag(900, 2); w.string('from a newer peer'); w.tag(901, 5); w.fixed32(1); }), ...known]);

    expect(decodeMessage(decodeEnvelope, withExtra).body?.case).toBe('activate');
  });

  it('refuses_to_encode_the_reserved_zero_enum', () => {
    const e = createEnvelope({ id: 1, body: { case: 'hello', value: createHello({ protocolVersion: 1 }) } });

    expect(codecCode(() => encodeMessage(encodeEnvelope, e))).toBe('ENCODE');
  });

  it('lists_sender_and_capability_for_every_envelope_case', () => {
    for (const c of ENVELOPE_BODY_CASES) {
      expect(['microhv', 'domain', 'either']).toContain(ENVELOPE_BODY_SENDER[c]);
      expect(ENVELOPE_BODY_REQUIRES[c] === null || ENVELOPE_BODY_SENDER[c] === 'domain').toBe(true);
    }
    expect(ENVELOPE_BODY_REQUIRES.setMsiRoute).toBe(Capability.CAPABILITY_MSI_ROUTE);
  });
});

describe('hostile protobuf bytes', () => {
  it('rejects_a_submessage_length_past_the_end', () => {
    const b = bytes((w) => { w.tag(10, 2); w.varint32(50); w.uint32(1); });

    expect(codecCode(() => decodeMessage(decodeEnvelope, b))).toBe('TRUNCATED');
  });

  it('rejects_a_varint_longer_than_ten_bytes', () => {
    const b = new Uint8Array([0x08, ...new Array<number>(11).fill(0xff), 0x01]);

    expect(codecCode(() => decodeMessage(decodeEnvelope, b))).toBe('VARINT_TOO_LONG');
  });

  it('rejects_a_known_field_with_the_wrong_wire_type', () => {
    const b = bytes((w) => { w.tag(1, 2); w.string('x'); });

    expect(codecCode(() => decodeMessage(decodeEnvelope, b))).toBe('BAD_WIRE_TYPE');
  });

  it('rejects_field_number_zero_and_group_wire_types', () => {
    expect(codecCode(() => decodeMessage(decodeEnvelope, new Uint8Array([0x00, 0x00])))).toBe('BAD_TAG');
    expect(codecCode(() => decodeMessage(decodeEnvelope, new Uint8Array([0x0b])))).toBe('BAD_TAG');
  });

  it('rejects_invalid_utf8_in_a_string', () => {
    const inner = bytes((w) => { w.tag(1, 0); w.uint32(3); w.tag(2, 2); w.bytes(new Uint8Array([0xc3, 0x28])); });
    const b = bytes((w) => { w.tag(22, 2); w.bytes(inner); });

    expect(codecCode(() => decodeMessage(decodeEnvelope, b))).toBe('BAD_UTF8');
  });

  it('rejects_an_unknown_value_in_a_packed_repeated_enum', () => {
    const packed = bytes((w) => { w.uint32(1); w.uint32(77); });
    const hello = bytes((w) => { w.tag(3, 0); w.uint32(1); w.tag(4, 2); w.bytes(packed); });
    const b = bytes((w) => { w.tag(10, 2); w.bytes(hello); });

    expect(codecCode(() => decodeMessage(decodeEnvelope, b))).toBe('BAD_ENUM');
  });

  it('keeps_a_nested_decoder_inside_its_parent_length', () => {
    // Hello claims 2 bytes; its role varint would need a third.
    const b = new Uint8Array([0x52, 0x02, 0x18, 0x81, 0x01]);

    expect(codecCode(() => decodeMessage(decodeEnvelope, b))).toBe('TRUNCATED');
  });

  it('reads_64_bit_varints_without_losing_bits', () => {
    const b = bytes((w) => w.varint64(0xfedc_ba98_7654_3210n));

    expect(new Reader(b).varint64('x')).toBe(0xfedc_ba98_7654_3210n);
  });
});

describe('fixed-layout records', () => {
  it('place_ioreq_slot_fields_at_their_spec_offsets', () => {
    expect(IoreqSlot.SIZE).toBe(64);
    expect(IoreqSlot.OFFSET).toEqual({ seq: 0, addr: 8, data: 16, state: 24, count: 28, type: 32, dir: 33, size: 34, reserved0: 35, vcpu: 36, reserved1: 40 });
  });

  it('place_ring_header_fields_at_their_spec_offsets', () => {
    expect(RingHeader.OFFSET).toMatchObject({ reqProd: 0, rspEvent: 4, magic: 8, version: 12, order: 14, slotSize: 16, protocol: 20, rspProd: 64, reqEvent: 68 });
    expect(RingHeader.SIZE).toBe(128);
  });

  it('place_small_records_at_their_spec_offsets', () => {
    expect([BufferedIoreq.SIZE, BufferedIoreq.OFFSET.vcpu]).toEqual([24, 20]);
    expect([EvtchnOp.SIZE, EvtchnOp.OFFSET.value]).toEqual([16, 8]);
    expect([FrameHeader.SIZE, FrameHeader.OFFSET.fdCount, FrameHeader.OFFSET.version]).toEqual([8, 4, 5]);
  });

  it('writes_little_endian_bytes', () => {
    const mem = new SharedBytes(new ArrayBuffer(8));
    FrameHeader.write(mem, 0, { length: 0x01020304, fdCount: 5, version: 1 });

    expect([...mem.u8]).toEqual([4, 3, 2, 1, 5, 1, 0, 0]);
  });

  it('round_trips_an_ioreq_slot', () => {
    const mem = new SharedBytes(new ArrayBuffer(128));
    const rec = { seq: 9n, addr: 0xfee0_0000n, data: 0xffn, state: 2, count: 1, type: 2, dir: 1, size: 4, vcpu: 1 } as const;
    IoreqSlot.write(mem, 64, rec);

    expect(IoreqSlot.read(mem, 64)).toEqual(rec);
  });

  it('rejects_a_record_shorter_than_its_size', () => {
    expect(codecCode(() => IoreqSlot.decode(new Uint8Array(63)))).toBe('TRUNCATED');
  });

  it('rejects_an_unknown_enum_in_a_slot', () => {
    const mem = new SharedBytes(new ArrayBuffer(64));
    IoreqSlot.write(mem, 0, { seq: 1n, addr: 0n, data: 0n, state: 1, count: 1, type: 1, dir: 1, size: 1, vcpu: 0 });
    IoreqSlot.setType(mem, 0, 9);

    expect(codecCode(() => IoreqSlot.read(mem, 0))).toBe('BAD_ENUM');
  });

  it('rejects_a_never_initialised_slot', () => {
    expect(codecCode(() => IoreqSlot.decode(new Uint8Array(64)))).toBe('BAD_ENUM');
  });

  it('rejects_nonzero_reserved_bytes', () => {
    const mem = new SharedBytes(new ArrayBuffer(64));
    IoreqSlot.write(mem, 0, { seq: 1n, addr: 0n, data: 0n, state: 1, count: 1, type: 1, dir: 1, size: 1, vcpu: 0 });
    mem.u8[50] = 1;

    expect(codecCode(() => IoreqSlot.read(mem, 0))).toBe('RESERVED_NONZERO');
  });

  it('rejects_a_misaligned_record_base', () => {
    const mem = new SharedBytes(new ArrayBuffer(128));

    expect(codecCode(() => IoreqSlot.read(mem, 4))).toBe('MISALIGNED');
  });
});
