// Errors and fault counters of the virtio layer (the virtio-pci transport and split virtqueues).
//
// Two boundaries, two mechanisms:
// - The host side (the process wiring, a state region that does not fit) gets a VirtioError
//   with a `code`: a programming or configuration error, raised before the guest runs.
// - Guest input never raises. Each way a guest can break the rules is a `GuestFault`: the
//   request fails with a status or the device goes to NEEDS_RESET, and the fault's counter
//   rises (STYLE.md, "Errors"). Counters are data, so tests assert the exact cause.

export type VirtioErrorCode =
  | 'BAD_MEMORY_MAP' // guest regions overlap, are empty, unaligned or past 2^52
  | 'BAD_STATE' // a state region that does not belong to this device, or an impossible record
  | 'BAD_CONFIG'; // options the device cannot offer (e.g. a queue size that is not a power of 2)

export class VirtioError extends Error {
  override readonly name = 'VirtioError';
  constructor(readonly code: VirtioErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
  }
}

/**
 * Faults that leave a queue's structure untrustworthy: the device sets DEVICE_NEEDS_RESET
 * (virtio 1.2, 2.1.2) and stops serving the queue until the driver resets it.
 */
export const QUEUE_FAULTS = [
  'avail_idx_jump', // the available index moved more than the queue size past the device's cursor
  'head_out_of_range', // an available-ring entry >= queue size
  'head_in_flight', // the driver made available a head the device has not returned yet
  'next_out_of_range', // a `next` index outside the (direct or indirect) table
  'chain_too_long', // more descriptors than the table holds: a loop
  'indirect_not_negotiated', // F_INDIRECT without VIRTIO_F_INDIRECT_DESC
  'indirect_nested', // F_INDIRECT inside an indirect table
  'indirect_with_next', // F_INDIRECT together with F_NEXT
  'indirect_bad_length', // an indirect table of 0 bytes, not a multiple of 16, or too large
  'indirect_outside_ram', // an indirect table not entirely inside one guest RAM region
  'ring_layout', // queue size not a power of 2, rings misaligned, outside RAM or overlapping
] as const;
export type QueueFault = (typeof QUEUE_FAULTS)[number];

/** Faults of one buffer of a chain: the chain's request fails, the queue goes on. */
export const SEGMENT_FAULTS = [
  'buffer_zero_length', // a descriptor of length 0
  'buffer_outside_ram', // address + length not entirely in guest RAM
  'buffer_overlaps_ring', // the buffer overlaps a ring of an enabled queue
  'readable_after_writable', // a device-readable buffer after a device-writable one (2.7.4.2)
  'length_overflow', // the chain's buffers add up to more than 2^32 - 1 bytes (len is 32-bit)
] as const;
export type SegmentFault = (typeof SEGMENT_FAULTS)[number];

/** Register accesses the transport ignores (virtio 1.2, 4.1.3 and 4.1.4.3 driver requirements). */
export const TRANSPORT_FAULTS = [
  'bad_access', // a width or alignment the register does not take, or one crossing a structure
  'read_only_write', // a write to a read-only register
  'features_rejected', // FEATURES_OK with features not offered, or without VERSION_1
  'features_after_ok', // driver_feature written after FEATURES_OK
  'status_cleared', // a status write that clears bits other than by writing 0
  'status_out_of_order', // FEATURES_OK before DRIVER, DRIVER_OK before FEATURES_OK
  'queue_change_enabled', // a queue register written while the queue is enabled
  'queue_enable_late', // queue_enable after DRIVER_OK (needs VIRTIO_F_RING_RESET)
  'queue_disable', // queue_enable written 0 (needs VIRTIO_F_RING_RESET)
  'bad_queue_select', // a queue register written with queue_select past num_queues
  'bad_msix_vector', // a vector past the MSI-X table: stored as NO_VECTOR
  'notify_bad_offset', // a write to the notify area that names no queue
  'write_during_reset', // a register write while a reset waits for in-flight requests
] as const;
export type TransportFault = (typeof TRANSPORT_FAULTS)[number];

export type GuestFault = QueueFault | SegmentFault | TransportFault;

/** Set membership for the fatal ones (the decoder returns either kind as a string). */
const QUEUE_FAULT_SET: ReadonlySet<string> = new Set(QUEUE_FAULTS);
export function isQueueFault(s: string): s is QueueFault {
  return QUEUE_FAULT_SET.has(s);
}

/**
 * Per-cause counters with a rate-limited log: the first `burst` faults of a cause are logged,
 * then every `every`-th, so a guest that loops on a bad request cannot flood the log.
 */
export class FaultCounters<K extends string = string> {
  private readonly counts = new Map<K, number>();

  constructor(
    private readonly log: ((line: string) => void) | undefined = undefined,
    private readonly label = 'guest fault',
    private readonly burst = 10,
    private readonly every = 1000,
  ) {}

  bump(cause: K, detail?: string): void {
    const n = (this.counts.get(cause) ?? 0) + 1;
    this.counts.set(cause, n);
    if (this.log !== undefined && (n <= this.burst || n % this.every === 0)) {
      this.log(`${this.label} ${cause} (#${n})${detail === undefined ? '' : `: ${detail}`}`);
    }
  }

  get(cause: K): number {
    return this.counts.get(cause) ?? 0;
  }

  /** Every nonzero counter, for reports and tests. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  total(): number {
    let t = 0;
    for (const n of this.counts.values()) t += n;
    return t;
  }
}
