// Parsing virtio-blk requests (virtio 1.2, 5.2.6 Device Operation) from decoded chains.
//
// Framing follows 2.6.4 (Message Framing): the device makes no assumption about how the driver
// splits a request into descriptors. The device-readable bytes, in order, are the 16-byte
// header followed by the request's data (OUT) or ranges (DISCARD, WRITE_ZEROES); the
// device-writable bytes are the data (IN, GET_ID) followed by the status byte, which is the
// last byte of the chain. Everything the parser decides on is copied out of guest memory
// first (header, ranges), so the guest cannot change it between the check and the use.
import { VirtioBlkDiscardWriteZeroes, VirtioBlkReqHeader } from '../../idl/generated/virtio.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import type { Chain, Segment } from '../virtio/chain.js';
import type { SegmentFault } from '../virtio/errors.js';
import { ID_BYTES, MAX_RANGES, MAX_RANGE_SECTORS, SECTOR, type BlockLimits } from './config.js';
import type { RequestFault } from './errors.js';

// virtio 1.2, 5.2.6: request types and status values.
export const VIRTIO_BLK_T = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8, GET_LIFETIME: 10, DISCARD: 11, WRITE_ZEROES: 13, SECURE_ERASE: 14 } as const;
export const VIRTIO_BLK_S = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;
export const WRITE_ZEROES_FLAG_UNMAP = 1;

/** The byte the status goes to, and the used length to report (every writable byte). */
export interface Completion {
  readonly status: Uint8Array;
  readonly usedLen: number;
}

export interface ByteRange {
  readonly offset: number;
  readonly length: number;
  /** WRITE_ZEROES: the driver allows deallocation (VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP). */
  readonly unmap: boolean;
}

export type BlockRequest = Completion &
  (
    | { readonly kind: 'read'; readonly offset: number; readonly length: number; readonly iov: Uint8Array[]; readonly aligned: boolean }
    | { readonly kind: 'write'; readonly offset: number; readonly length: number; readonly iov: Uint8Array[]; readonly aligned: boolean }
    | { readonly kind: 'flush' }
    | { readonly kind: 'get_id'; readonly iov: Uint8Array[] }
    | { readonly kind: 'discard'; readonly ranges: ByteRange[] }
    | { readonly kind: 'write_zeroes'; readonly ranges: ByteRange[] }
    | { readonly kind: 'fail'; readonly code: number; readonly fault: RequestFault | SegmentFault }
  );

/** What depends on negotiation and on the backend, per device. */
export interface ParseContext {
  readonly limits: BlockLimits;
  readonly discard: boolean; // VIRTIO_BLK_F_DISCARD negotiated
  readonly writeZeroes: boolean; // VIRTIO_BLK_F_WRITE_ZEROES negotiated
  /** Whether [gpa, gpa + len) is host-aligned for O_DIRECT (checked per data buffer). */
  readonly hostAligned: (gpa: number, len: number) => boolean;
}

/** Views covering bytes [start, start + length) of the stream `views` spell out. */
export function sliceViews(views: readonly Uint8Array[], start: number, length: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = start;
  let want = length;
  for (const v of views) {
    if (want === 0) break;
    if (skip >= v.byteLength) {
      skip -= v.byteLength;
      continue;
    }
    const take = Math.min(v.byteLength - skip, want);
    out.push(v.subarray(skip, skip + take));
    want -= take;
    skip = 0;
  }
  return out;
}

function copyOut(views: readonly Uint8Array[], into: Uint8Array): void {
  let at = 0;
  for (const v of views) {
    into.set(v, at);
    at += v.byteLength;
  }
}

const header = new SharedBytes(new ArrayBuffer(VirtioBlkReqHeader.SIZE));
const ranges = new SharedBytes(new ArrayBuffer(VirtioBlkDiscardWriteZeroes.SIZE * MAX_RANGES));

/**
 * Parses one chain. `undefined` means the chain has no usable status byte: the request cannot
 * even be failed, and the caller sets NEEDS_RESET ('no_status').
 */
export function parseRequest(chain: Chain, ctx: ParseContext): BlockRequest | undefined {
  const segs = chain.segments;
  const last = segs[segs.length - 1];
  // GUEST-INPUT: the status byte is the last byte of the last descriptor, which must be writable.
  if (last === undefined || !last.writable || last.fault !== undefined) return undefined;
  const lastView = last.views[last.views.length - 1];
  if (lastView === undefined) return undefined;
  const status = lastView.subarray(lastView.byteLength - 1);
  // The used length is 32-bit; the chain decoder fails chains whose buffers add up to more.
  const usedLen = Math.min(chain.writableBytes, 0xffff_ffff);
  const fail: Fail = (fault, code = VIRTIO_BLK_S.IOERR) => ({ kind: 'fail', code, fault, status, usedLen });
  // GUEST-INPUT: a chain with an unusable buffer (outside RAM, over a ring, ...) fails whole.
  if (chain.fault !== undefined) return fail(chain.fault);
  // GUEST-INPUT: the header needs 16 device-readable bytes.
  if (chain.readableBytes < VirtioBlkReqHeader.SIZE) return fail('short_header');
  // The layout Linux uses (header, data buffers, status, each its own descriptor) is parsed
  // without re-slicing the stream: the data buffers' views are the request's iov as they are.
  return fastLayout(segs) ? parseFast(chain, ctx, status, usedLen, fail) : parseGeneral(chain, ctx, status, usedLen, fail);
}

/** Any framing (virtio 1.2, 2.6.4): the header and data are cut out of the readable and writable streams. */
function parseGeneral(chain: Chain, ctx: ParseContext, status: Uint8Array, usedLen: number, fail: Fail): BlockRequest {
  const l = ctx.limits;
  const segs = chain.segments;
  const readable = segs.filter((s) => !s.writable).flatMap((s) => s.views);
  const writable = segs.filter((s) => s.writable).flatMap((s) => s.views);
  copyOut(sliceViews(readable, 0, VirtioBlkReqHeader.SIZE), header.u8);
  const type = VirtioBlkReqHeader.getType(header, 0);
  const sector = VirtioBlkReqHeader.getSector(header, 0);
  const inBytes = chain.readableBytes - VirtioBlkReqHeader.SIZE; // data the driver sends
  const outBytes = chain.writableBytes - 1; // data the driver receives

  switch (type) {
    case VIRTIO_BLK_T.IN:
    case VIRTIO_BLK_T.OUT: {
      const isRead = type === VIRTIO_BLK_T.IN;
      const length = isRead ? outBytes : inBytes;
      // GUEST-INPUT: data moves one way only: IN has no readable data, OUT no writable bytes but status.
      if ((isRead && inBytes !== 0) || (!isRead && outBytes !== 0)) return fail('wrong_direction');
      const fault = dataFault(l, isRead, sector, length, segs.some((s) => s.len > l.sizeMax && s.writable === isRead));
      if (fault !== undefined) return fail(fault);
      const offset = Number(sector) * SECTOR;
      const iov = isRead ? sliceViews(writable, 0, length) : sliceViews(readable, VirtioBlkReqHeader.SIZE, length);
      const aligned = l.ioAlign > 1 && dataAligned(isRead ? segs.filter((s) => s.writable) : segs.filter((s) => !s.writable), isRead, ctx, l.ioAlign);
      return { kind: isRead ? 'read' : 'write', offset, length, iov, aligned, status, usedLen };
    }
    case VIRTIO_BLK_T.FLUSH:
      // A FLUSH carries no data (the driver SHOULD NOT include any; any it does is ignored).
      return { kind: 'flush', status, usedLen };
    case VIRTIO_BLK_T.GET_ID:
      // GUEST-INPUT: exactly 20 writable bytes before the status, nothing readable after the header.
      if (inBytes !== 0) return fail('wrong_direction');
      if (outBytes !== ID_BYTES) return fail('bad_length');
      return { kind: 'get_id', iov: sliceViews(writable, 0, ID_BYTES), status, usedLen };
    case VIRTIO_BLK_T.DISCARD:
    case VIRTIO_BLK_T.WRITE_ZEROES: {
      const isDiscard = type === VIRTIO_BLK_T.DISCARD;
      if (!(isDiscard ? ctx.discard : ctx.writeZeroes)) return fail('unsupported_type', VIRTIO_BLK_S.UNSUPP);
      return parseRanges(isDiscard, readable, inBytes, outBytes, ctx, { status, usedLen }, fail);
    }
    default:
      // GET_LIFETIME, SECURE_ERASE, the zoned types and anything else: not offered.
      return fail('unsupported_type', VIRTIO_BLK_S.UNSUPP);
  }
}

type Fail = (fault: RequestFault | SegmentFault, code?: number) => BlockRequest;

/**
 * The fast path of a read or write laid out as Linux does it: a 16-byte readable header buffer,
 * data buffers all in the data's direction, each one view, and a 1-byte writable status buffer.
 * Any other layout (or another request type) returns undefined and takes the general path, so
 * both paths apply the same checks to the same bytes.
 */
function fastLayout(segs: readonly Segment[]): boolean {
  const n = segs.length;
  const first = segs[0];
  const last = segs[n - 1];
  if (n < 3 || first === undefined || last === undefined || first.writable || first.len !== VirtioBlkReqHeader.SIZE || first.views.length !== 1) return false;
  if (!last.writable || last.len !== 1) return false;
  const dataWritable = segs[1]?.writable === true;
  for (let i = 1; i < n - 1; i++) {
    const s = segs[i]!;
    if (s.writable !== dataWritable || s.views.length !== 1) return false;
  }
  return true;
}

function parseFast(chain: Chain, ctx: ParseContext, status: Uint8Array, usedLen: number, fail: Fail): BlockRequest {
  const l = ctx.limits;
  const segs = chain.segments;
  header.u8.set(segs[0]!.views[0]!);
  const type = VirtioBlkReqHeader.getType(header, 0);
  const sector = VirtioBlkReqHeader.getSector(header, 0);
  const isRead = type === VIRTIO_BLK_T.IN;
  const dataWritable = segs[1]!.writable;
  // Only reads and writes take this path; the other types (and a data direction that does not
  // match the type: 'wrong_direction') are parsed, and failed, by the general path.
  if ((type !== VIRTIO_BLK_T.IN && type !== VIRTIO_BLK_T.OUT) || dataWritable !== isRead) return parseGeneral(chain, ctx, status, usedLen, fail);
  const iov: Uint8Array[] = [];
  let length = 0;
  let oversize = false;
  let aligned = l.ioAlign > 1;
  for (let i = 1; i < segs.length - 1; i++) {
    const s = segs[i]!;
    iov.push(s.views[0]!);
    length += s.len;
    if (s.len > l.sizeMax) oversize = true;
    if (aligned && (s.len % l.ioAlign !== 0 || !ctx.hostAligned(s.gpa, s.len))) aligned = false;
  }
  const fault = dataFault(l, isRead, sector, length, oversize);
  if (fault !== undefined) return fail(fault);
  return { kind: isRead ? 'read' : 'write', offset: Number(sector) * SECTOR, length, iov, aligned, status, usedLen };
}

/**
 * The checks of a read or write once its data length is known, in the order both parsers apply
 * them; `oversizeSegment`: a data buffer is longer than size_max.
 */
function dataFault(l: BlockLimits, isRead: boolean, sector: bigint, length: number, oversizeSegment: boolean): RequestFault | SegmentFault | undefined {
  // GUEST-INPUT: whole sectors, at least one (virtio 1.2, 5.2.6.1).
  if (length === 0 || length % SECTOR !== 0) return 'bad_length';
  // GUEST-INPUT: each data buffer at most size_max, the whole at most seg_max * size_max.
  if (oversizeSegment) return 'oversize_segment';
  if (length > l.maxRequestBytes) return 'oversize_request';
  if (!isRead && l.readOnly) return 'read_only';
  // GUEST-INPUT: the sectors must lie inside the disk (sector is a 64-bit guest value).
  if (sector > BigInt(l.capacity) || Number(sector) + length / SECTOR > l.capacity) return 'out_of_range';
  // GUEST-INPUT: O_DIRECT needs offset and length aligned; the guest was told blk_size.
  if ((Number(sector) * SECTOR) % l.ioAlign !== 0 || length % l.ioAlign !== 0) return 'unaligned';
  return undefined;
}

/**
 * Whether O_DIRECT can use the data buffers in place: the header (16 readable bytes first) and
 * the status (the last writable byte) must each have a buffer of their own, as Linux lays them
 * out, and every data buffer must be one host-aligned view of whole aligned blocks. A request
 * framed otherwise is bounced.
 */
function dataAligned(segs: readonly Segment[], isRead: boolean, ctx: ParseContext, align: number): boolean {
  const edge = isRead ? segs[segs.length - 1] : segs[0];
  if (edge?.len !== (isRead ? 1 : VirtioBlkReqHeader.SIZE)) return false;
  const data = isRead ? segs.slice(0, -1) : segs.slice(1);
  return data.every((s) => s.views.length === 1 && s.len % align === 0 && ctx.hostAligned(s.gpa, s.len));
}

function parseRanges(
  isDiscard: boolean,
  readable: readonly Uint8Array[],
  inBytes: number,
  outBytes: number,
  ctx: ParseContext,
  c: Completion,
  fail: (f: RequestFault, code?: number) => BlockRequest,
): BlockRequest {
  const l = ctx.limits;
  // GUEST-INPUT: only the status is writable; the ranges are whole 16-byte records, at least one.
  if (outBytes !== 0) return fail('wrong_direction');
  if (inBytes === 0 || inBytes % VirtioBlkDiscardWriteZeroes.SIZE !== 0) return fail('bad_length');
  const n = inBytes / VirtioBlkDiscardWriteZeroes.SIZE;
  if (n > MAX_RANGES) return fail('too_many_segments');
  copyOut(sliceViews(readable, VirtioBlkReqHeader.SIZE, inBytes), ranges.u8);
  const out: ByteRange[] = [];
  for (let i = 0; i < n; i++) {
    const at = i * VirtioBlkDiscardWriteZeroes.SIZE;
    const sector = VirtioBlkDiscardWriteZeroes.getSector(ranges, at);
    const count = VirtioBlkDiscardWriteZeroes.getNumSectors(ranges, at);
    const flags = VirtioBlkDiscardWriteZeroes.getFlags(ranges, at);
    // GUEST-INPUT: unknown flags, and unmap on a discard, are UNSUPP (virtio 1.2, 5.2.6.2).
    if ((flags & ~WRITE_ZEROES_FLAG_UNMAP) !== 0 || (isDiscard && flags !== 0)) return fail('bad_flags', VIRTIO_BLK_S.UNSUPP);
    // GUEST-INPUT: each range at most max_*_sectors, inside the disk, aligned for O_DIRECT.
    if (count > MAX_RANGE_SECTORS) return fail('oversize_request');
    if (sector > BigInt(l.capacity) || Number(sector) + count > l.capacity) return fail('out_of_range');
    const offset = Number(sector) * SECTOR;
    const length = count * SECTOR;
    if (offset % l.ioAlign !== 0 || length % l.ioAlign !== 0) return fail('unaligned');
    if (length > 0) out.push({ offset, length, unmap: (flags & WRITE_ZEROES_FLAG_UNMAP) !== 0 });
  }
  if (l.readOnly) return fail('read_only');
  return isDiscard ? { kind: 'discard', ranges: out, ...c } : { kind: 'write_zeroes', ranges: out, ...c };
}
