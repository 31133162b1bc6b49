// The descriptor-chain decoder of split virtqueues (virtio 1.2, 2.7.5 The Virtqueue Descriptor
// Table, 2.7.5.3 Indirect Descriptors): from a head index to the list of guest buffers it
// names. Every field it reads is guest-written and read exactly once into a local, so a guest
// that rewrites a descriptor while it is being walked only changes which checks apply.
//
// Two outcomes:
// - a QueueFault string: the chain's structure cannot be trusted (a loop, an index out of
//   range, a malformed indirect table). The caller sets NEEDS_RESET.
// - a Chain: the structure is sound. Each buffer that cannot be used (outside RAM, zero length,
//   overlapping a ring) carries its own SegmentFault and no views, and the chain records the
//   first fault, so the device can still fail that one request with a status.
import { VirtqDesc } from '../../idl/generated/virtio.js';
import type { QueueFault, SegmentFault } from './errors.js';
import type { GpaRange, GuestMemory, Region } from './memory.js';
import { MAX_GPA } from './memory.js';

// virtio 1.2, 2.7.5 The Virtqueue Descriptor Table: flag bits.
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;

/** The most bytes one chain may describe: used elements carry a 32-bit length. */
export const MAX_CHAIN_BYTES = 0xffff_ffff;

/** One buffer of a chain. */
export interface Segment {
  readonly gpa: number;
  readonly len: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE); otherwise device-readable. */
  readonly writable: boolean;
  /** Host views covering the buffer, in order; empty when `fault` is set. */
  readonly views: Uint8Array[];
  readonly fault: SegmentFault | undefined;
}

export interface Chain {
  readonly head: number;
  readonly segments: Segment[];
  /** Bytes in device-readable and device-writable buffers (faulty ones included). */
  readableBytes: number;
  writableBytes: number;
  /** The first buffer or ordering fault, undefined for a clean chain. */
  fault: SegmentFault | undefined;
}

/** What the decoder needs to know about one queue. */
export interface ChainContext {
  readonly memory: GuestMemory;
  /** The region holding the queue's descriptor table, and the table's address. */
  readonly descRegion: Region;
  readonly descGpa: number;
  /** Queue size: entries of the descriptor table. */
  readonly size: number;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  readonly indirect: boolean;
  /** The most entries an indirect table may have. */
  readonly maxIndirect: number;
  /** Ranges no buffer may touch: the rings of every enabled queue. */
  readonly forbidden: readonly GpaRange[];
}

/** The 64-bit address of a descriptor as a number, or -1 when it is past MAX_GPA. */
function descAddr(region: Region, at: number): number {
  // Two 32-bit halves rather than one 64-bit BigInt read: cheaper, and the high half bounds it.
  const lo = region.mem.dv.getUint32(region.base + at + VirtqDesc.OFFSET.addr, true); // low half of VirtqDesc.addr
  const hi = region.mem.dv.getUint32(region.base + at + VirtqDesc.OFFSET.addr + 4, true); // high half of VirtqDesc.addr
  const gpa = hi * 2 ** 32 + lo;
  return gpa < MAX_GPA ? gpa : -1;
}

function bufferFault(ctx: ChainContext, gpa: number, len: number, views: Uint8Array[]): SegmentFault | undefined {
  // GUEST-INPUT: a zero-length buffer carries nothing and is refused outright.
  if (len === 0) return 'buffer_zero_length';
  // GUEST-INPUT: every byte of the buffer must be guest RAM (views appends nothing otherwise).
  if (gpa < 0 || !ctx.memory.views(gpa, len, views)) return 'buffer_outside_ram';
  // GUEST-INPUT: a buffer over a ring would let the device's own data writes rewrite the ring.
  for (const r of ctx.forbidden) {
    if (gpa < r.end && r.start < gpa + len) {
      views.length = 0;
      return 'buffer_overlaps_ring';
    }
  }
  return undefined;
}

/**
 * Walks the chain that starts at `head` (already checked < size by the caller). Direct chains
 * hold at most `size` descriptors and an indirect table at most its own entries, so a loop
 * ends in 'chain_too_long' after a bounded walk.
 */
export function walkChain(ctx: ChainContext, head: number): Chain | QueueFault {
  const chain: Chain = { head, segments: [], readableBytes: 0, writableBytes: 0, fault: undefined };
  let region = ctx.descRegion;
  let tableAt = ctx.descGpa - region.gpa;
  let entries = ctx.size;
  let indirect = false;
  let seen = 0;
  let sawWritable = false;
  let i = head;
  for (;;) {
    // GUEST-INPUT: `next` (or the head) must name an entry of the current table.
    if (i >= entries) return 'next_out_of_range';
    // GUEST-INPUT: a chain longer than its table revisits an entry: a loop (2.7.5.3.1, 2.7.4.2).
    if (++seen > entries) return 'chain_too_long';
    const at = tableAt + i * VirtqDesc.SIZE;
    const gpa = descAddr(region, at);
    const len = VirtqDesc.getLen(region.mem, region.base + at);
    const flags = VirtqDesc.getFlags(region.mem, region.base + at);
    const next = VirtqDesc.getNext(region.mem, region.base + at);
    if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
      // GUEST-INPUT: virtio 1.2, 2.7.5.3.1: only with the feature, never nested, never with NEXT.
      if (!ctx.indirect) return 'indirect_not_negotiated';
      if (indirect) return 'indirect_nested';
      if ((flags & VIRTQ_DESC_F_NEXT) !== 0) return 'indirect_with_next';
      // GUEST-INPUT: the table is whole 16-byte descriptors, at least one, at most maxIndirect.
      if (len === 0 || len % VirtqDesc.SIZE !== 0 || len / VirtqDesc.SIZE > ctx.maxIndirect) return 'indirect_bad_length';
      // GUEST-INPUT: the table must lie in one RAM region (its entries are read in place).
      const table = gpa < 0 ? undefined : ctx.memory.locate(gpa, len);
      if (table === undefined) return 'indirect_outside_ram';
      region = table;
      tableAt = gpa - table.gpa;
      entries = len / VirtqDesc.SIZE;
      indirect = true;
      seen = 0;
      i = 0;
      continue;
    }
    const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
    const views: Uint8Array[] = [];
    let fault = bufferFault(ctx, gpa, len, views);
    // GUEST-INPUT: virtio 1.2, 2.7.4.2: device-readable buffers come before device-writable ones.
    if (fault === undefined && sawWritable && !writable) fault = 'readable_after_writable';
    sawWritable ||= writable;
    chain.segments.push({ gpa, len, writable, views: fault === undefined ? views : [], fault });
    if (writable) chain.writableBytes += len;
    else chain.readableBytes += len;
    chain.fault ??= fault;
    // GUEST-INPUT: a chain's total length must fit the 32-bit used length (2.7.8).
    if (chain.readableBytes + chain.writableBytes > MAX_CHAIN_BYTES) chain.fault ??= 'length_overflow';
    if ((flags & VIRTQ_DESC_F_NEXT) === 0) return chain;
    i = next;
  }
}
