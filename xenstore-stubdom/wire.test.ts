import { describe, expect, it } from 'vitest';
import { FrameDecoder, HEADER_SIZE, Op, PAYLOAD_MAX, encodeFrame, oneArg, splitStrings, strings } from './wire.js';

function header(len: number): Buffer {
  const h = Buffer.alloc(HEADER_SIZE);
  h.writeUInt32LE(Op.READ, 0);
  h.writeUInt32LE(len, 12);
  return h;
}

describe('FrameDecoder', () => {
  it('decodes_frame_delivered_one_byte_at_a_time', () => {
    const bytes = encodeFrame(Op.READ, 7, 3, strings('/a/b'));
    const dec = new FrameDecoder();
    const results = [...bytes].map((b) => {
      dec.push(Buffer.from([b]));
      return dec.next().kind;
    });
    expect(results.filter((k) => k === 'frame')).toHaveLength(1);
    expect(results.at(-1)).toBe('frame');
  });

  it('decodes_several_frames_from_one_chunk_in_order', () => {
    const dec = new FrameDecoder();
    dec.push(Buffer.concat([encodeFrame(Op.READ, 1, 0, strings('/x')), encodeFrame(Op.WRITE, 2, 0, strings('/y', 'v'))]));
    const a = dec.next();
    const b = dec.next();
    expect(a.kind === 'frame' && a.frame.header.reqId).toBe(1);
    expect(b.kind === 'frame' && b.frame.header.type).toBe(Op.WRITE);
    expect(dec.next().kind).toBe('need-more');
  });

  it('accepts_payload_of_exactly_the_limit', () => {
    const dec = new FrameDecoder();
    dec.push(Buffer.concat([header(PAYLOAD_MAX), Buffer.alloc(PAYLOAD_MAX)]));
    expect(dec.next().kind).toBe('frame');
  });

  it('rejects_header_length_above_limit_without_waiting_for_payload', () => {
    const dec = new FrameDecoder();
    dec.push(header(PAYLOAD_MAX + 1));
    expect(dec.next()).toEqual({ kind: 'violation', reason: 'payload-too-long', len: PAYLOAD_MAX + 1 });
  });

  it('yields_nothing_after_a_violation_and_holds_no_bytes', () => {
    const dec = new FrameDecoder();
    dec.push(header(0xffffffff));
    dec.next();
    dec.push(encodeFrame(Op.READ, 1, 0, strings('/')));
    expect(dec.next().kind).toBe('need-more');
    expect(dec.pendingBytes).toBe(0);
  });

  it('frames_from_one_chunk_do_not_alias_each_other', () => {
    const dec = new FrameDecoder();
    dec.push(Buffer.concat([encodeFrame(Op.READ, 1, 0, strings('/a')), encodeFrame(Op.READ, 2, 0, strings('/b'))]));
    const a = dec.next();
    const b = dec.next();
    if (a.kind === 'frame') a.frame.payload.fill(0x41);
    expect(b.kind === 'frame' && b.frame.payload.toString()).toBe('/b\0');
  });
});

describe('payload strings', () => {
  it('split_strings_rejects_missing_terminator', () => {
    expect(splitStrings(Buffer.from('a\0b'))).toBeUndefined();
  });

  it('split_strings_of_empty_payload_is_empty_list', () => {
    expect(splitStrings(Buffer.alloc(0))).toEqual([]);
  });

  it('one_arg_requires_exactly_one_trailing_nul', () => {
    expect(oneArg(Buffer.from('/a\0'))).toBe('/a');
    expect(oneArg(Buffer.from('/a\0b\0'))).toBeUndefined();
    expect(oneArg(Buffer.from('/a'))).toBeUndefined();
    expect(oneArg(Buffer.alloc(0))).toBeUndefined();
  });
});
