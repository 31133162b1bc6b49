// The request parser's framing (virtio 1.2, 2.6.4: no assumption about how a request is split
// into descriptors) and its view slicing.
import { describe, expect, it } from 'vitest';
import { VirtioBlkReqHeader } from '../../idl/generated/virtio.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import type { Chain, Segment } from '../virtio/chain.js';
import { blockLimits } from './config.js';
import { VIRTIO_BLK_T, parseRequest, sliceViews, type ParseContext } from './request.js';

const limits = blockLimits({}, 1 << 20, 1);
const ctx: ParseContext = { limits, discard: true, writeZeroes: true, hostAligned: () => false };

function seg(bytes: Uint8Array, writable: boolean): Segment {
  return { gpa: 0x1000, len: bytes.byteLength, writable, views: [bytes], fault: undefined };
}

function chain(segments: Segment[]): Chain {
  return {
    head: 0, segments, fault: undefined,
    readableBytes: segments.filter((s) => !s.writable).reduce((a, s) => a + s.len, 0),
    writableBytes: segments.filter((s) => s.writable).reduce((a, s) => a + s.len, 0),
  };
}

function header(type: number, sector: bigint): Uint8Array {
  const m = new SharedBytes(new ArrayBuffer(16));
  VirtioBlkReqHeader.write(m, 0, { type, ioprio: 3, sector });
  return m.u8;
}

describe('parseRequest framing', () => {
  it('parses_a_header_split_across_two_descriptors', () => {
    const h = header(VIRTIO_BLK_T.IN, 5n);
    const r = parseRequest(chain([seg(h.slice(0, 5), false), seg(h.slice(5), false), seg(new Uint8Array(512), true), seg(new Uint8Array(1), true)]), ctx);

    expect(r).toMatchObject({ kind: 'read', offset: 5 * 512, length: 512 });
  });

  it('takes_the_status_from_the_last_byte_of_a_buffer_shared_with_data', () => {
    const data = new Uint8Array(513);
    const r = parseRequest(chain([seg(header(VIRTIO_BLK_T.IN, 0n), false), seg(data, true)]), ctx);

    expect(r?.kind).toBe('read');
    if (r?.kind !== 'read') return;
    expect(r.iov.map((v) => v.byteLength)).toEqual([512]);
    r.status[0] = 7;
    expect(data[512]).toBe(7);
    expect(r.usedLen).toBe(513);
  });

  it('takes_write_data_that_follows_the_header_in_the_same_buffer', () => {
    const buf = new Uint8Array(16 + 1024);
    buf.set(header(VIRTIO_BLK_T.OUT, 2n));
    buf[16] = 0xaa;
    const r = parseRequest(chain([seg(buf, false), seg(new Uint8Array(1), true)]), ctx);

    expect(r).toMatchObject({ kind: 'write', offset: 1024, length: 1024 });
    if (r?.kind === 'write') expect(r.iov[0]?.[0]).toBe(0xaa);
  });

  it('returns_undefined_when_the_last_buffer_is_not_writable', () => {
    expect(parseRequest(chain([seg(header(VIRTIO_BLK_T.FLUSH, 0n), false)]), ctx)).toBeUndefined();
  });

  it('reads_the_header_once_so_a_later_guest_change_does_not_matter', () => {
    const h = header(VIRTIO_BLK_T.IN, 1n);
    const r = parseRequest(chain([seg(h, false), seg(new Uint8Array(512), true), seg(new Uint8Array(1), true)]), ctx);
    h.fill(0xff);

    expect(r).toMatchObject({ kind: 'read', offset: 512 });
  });
});

describe('parseRequest with O_DIRECT', () => {
  const direct: ParseContext = { limits: blockLimits({}, 1 << 20, 4096), discard: true, writeZeroes: true, hostAligned: () => true };

  it('lets_o_direct_use_data_buffers_of_their_own_in_place', () => {
    const read = parseRequest(chain([seg(header(VIRTIO_BLK_T.IN, 8n), false), seg(new Uint8Array(4096), true), seg(new Uint8Array(1), true)]), direct);
    const write = parseRequest(chain([seg(header(VIRTIO_BLK_T.OUT, 8n), false), seg(new Uint8Array(4096), false), seg(new Uint8Array(1), true)]), direct);

    expect(read).toMatchObject({ kind: 'read', aligned: true });
    expect(write).toMatchObject({ kind: 'write', aligned: true });
  });

  it('bounces_a_read_whose_status_shares_the_data_buffer', () => {
    const r = parseRequest(chain([seg(header(VIRTIO_BLK_T.IN, 8n), false), seg(new Uint8Array(4097), true)]), direct);

    expect(r).toMatchObject({ kind: 'read', aligned: false });
  });

  it('fails_a_request_not_aligned_to_the_o_direct_block', () => {
    const r = parseRequest(chain([seg(header(VIRTIO_BLK_T.IN, 1n), false), seg(new Uint8Array(4096), true), seg(new Uint8Array(1), true)]), direct);

    expect(r).toMatchObject({ kind: 'fail', fault: 'unaligned' });
  });
});

describe('sliceViews', () => {
  it('covers_a_byte_range_that_spans_several_views', () => {
    const a = Uint8Array.of(0, 1, 2), b = Uint8Array.of(3, 4), c = Uint8Array.of(5, 6, 7);

    expect(sliceViews([a, b, c], 2, 4).map((v) => [...v])).toEqual([[2], [3, 4], [5]]);
    expect(sliceViews([a, b, c], 8, 4)).toEqual([]);
  });
});
