// Errors of the block domain's boundaries, and the counters of what the guest got wrong.
//
// BlockError crosses the host boundary (the process wiring): an image that cannot be opened, a
// state region that belongs to another disk, options the device cannot offer. It wraps the
// lower error (a SysError, a VirtioError) as `cause`.
//
// Guest mistakes never raise: each one fails its request with VIRTIO_BLK_S_IOERR or
// VIRTIO_BLK_S_UNSUPP (or, for the chain itself, sets NEEDS_RESET) and bumps one counter
// below, alongside the virtio layer's (driver-domains/virtio/errors.ts).

export type BlockErrorCode =
  | 'BAD_OPTIONS' // a queue count, queue size, block size or serial the device cannot offer
  | 'BAD_IMAGE' // the image cannot be opened, is empty, or does not suit O_DIRECT
  | 'BAD_STATE' // the state region was made for another disk or layout, or holds an impossible record
  | 'IO'; // the backend failed (reported to the guest as VIRTIO_BLK_S_IOERR)

export class BlockError extends Error {
  override readonly name = 'BlockError';
  constructor(readonly code: BlockErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
  }
}

/** Request faults (virtio 1.2, 5.2.6): each fails one request with a status. */
export const REQUEST_FAULTS = [
  'short_header', // fewer than 16 device-readable bytes: no request header
  'no_status', // the chain does not end in a usable device-writable byte: NEEDS_RESET
  'wrong_direction', // data in the direction the type does not move it (IN with readable data, ...)
  'bad_length', // IN/OUT data not whole sectors or empty; GET_ID not 20 bytes; ranges not 16-byte records
  'oversize_segment', // a data buffer longer than size_max
  'oversize_request', // more data than seg_max * size_max
  'out_of_range', // sectors past the capacity
  'read_only', // a write, discard or write-zeroes to a read-only disk
  'too_many_segments', // more discard / write-zeroes ranges than max_*_seg
  'bad_flags', // unknown range flags, or unmap on a discard: VIRTIO_BLK_S_UNSUPP
  'unsupported_type', // a request type not offered or not negotiated: VIRTIO_BLK_S_UNSUPP
  'unaligned', // with O_DIRECT, a range not aligned to the logical block size
] as const;
export type RequestFault = (typeof REQUEST_FAULTS)[number];

/** Backend events worth counting that are not the guest's fault. */
export const BACKEND_EVENTS = [
  'io_error', // the image file failed a read, write or sync
  'discard_ignored', // the file system cannot punch holes: DISCARD did nothing (it is a hint)
  'zeroes_written', // the file system cannot punch or zero ranges: WRITE_ZEROES wrote zeroes
] as const;
export type BackendEvent = (typeof BACKEND_EVENTS)[number];
