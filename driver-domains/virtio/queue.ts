// One split virtqueue in guest memory, device side (virtio 1.2, 2.7 Split Virtqueues): reading
// the available ring, walking chains, writing and publishing the used ring, and the
// notification suppression of 2.7.7 and 2.7.10 (flags, or used_event/avail_event with
// VIRTIO_F_EVENT_IDX).
//
// The device's cursors (how many chains it took, how many elements it published) are not kept
// here: they live in the state region (VirtqState) and the caller passes them in, so a
// successor process resumes from them.
//
// Memory ordering. Guest memory is shared with vCPUs running on other host CPUs. Ring indices
// are read and written with Atomics (seq_cst: on x86 a plain load, and an xchg store that is a
// full barrier), descriptors and elements with plain accesses; each ordering point says what
// it orders. Between the ordering points the domain is single-threaded.
import { VirtqAvailHeader, VirtqDesc, VirtqUsedElem, VirtqUsedHeader } from '../../idl/generated/virtio.js';
import { walkChain, type Chain, type ChainContext } from './chain.js';
import type { QueueFault } from './errors.js';
import { overlaps, type GpaRange, type GuestMemory, type Region } from './memory.js';

// virtio 1.2, 2.7.6 and 2.7.8: ring flag bits.
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** Bytes of one available-ring entry (a u16 head index) and of used_event/avail_event. */
const AVAIL_ENTRY = 2;
const EVENT_WORD = 2;

/** The queue registers the driver wrote (guest-physical addresses as numbers). */
export interface QueueConfig {
  readonly size: number;
  readonly desc: number;
  readonly driver: number;
  readonly device: number;
}

export interface QueueFeatures {
  /** VIRTIO_F_EVENT_IDX negotiated (virtio 1.2, 2.7.7.2 and 2.7.10.2). */
  readonly eventIdx: boolean;
  /** VIRTIO_F_INDIRECT_DESC negotiated. */
  readonly indirect: boolean;
}

/** The three parts of a queue as guest-physical ranges (virtio 1.2, 2.7 alignment and size table). */
export function queueRanges(cfg: QueueConfig): { desc: GpaRange; avail: GpaRange; used: GpaRange } {
  const n = cfg.size;
  return {
    desc: { start: cfg.desc, end: cfg.desc + VirtqDesc.SIZE * n },
    avail: { start: cfg.driver, end: cfg.driver + VirtqAvailHeader.SIZE + AVAIL_ENTRY * n + EVENT_WORD },
    used: { start: cfg.device, end: cfg.device + VirtqUsedHeader.SIZE + VirtqUsedElem.SIZE * n + EVENT_WORD },
  };
}

/**
 * Checks a queue layout the driver enabled; undefined when usable. Each part must be aligned as
 * virtio 1.2, 2.7 requires (16, 2, 4), lie in one RAM region and not overlap the others.
 */
export function checkLayout(memory: GuestMemory, cfg: QueueConfig, maxSize: number): QueueFault | undefined {
  // GUEST-INPUT: queue_size: a power of 2, 1..max (virtio 1.2, 2.7: "Queue Size ... power of 2").
  if (!(cfg.size >= 1 && cfg.size <= maxSize && (cfg.size & (cfg.size - 1)) === 0)) return 'ring_layout';
  // GUEST-INPUT: alignment of each part (virtio 1.2, 2.7 table "Virtqueue Part Alignment").
  if (cfg.desc % 16 !== 0 || cfg.driver % 2 !== 0 || cfg.device % 4 !== 0) return 'ring_layout';
  const r = queueRanges(cfg);
  const parts = [r.desc, r.avail, r.used];
  // GUEST-INPUT: each part inside one region of guest RAM.
  for (const p of parts) if (memory.locate(p.start, p.end - p.start) === undefined) return 'ring_layout';
  // GUEST-INPUT: parts must not overlap, or the device's used writes would rewrite descriptors.
  if (overlaps(r.desc, r.avail) || overlaps(r.desc, r.used) || overlaps(r.avail, r.used)) return 'ring_layout';
  return undefined;
}

export class SplitQueue {
  readonly size: number;
  readonly ranges: readonly GpaRange[];
  private readonly mask: number;
  private readonly avail: Region;
  private readonly availAt: number;
  private readonly used: Region;
  private readonly usedAt: number;
  private readonly ctx: ChainContext;

  /** `cfg` must have passed checkLayout. `forbidden` is shared with the other queues. */
  constructor(memory: GuestMemory, cfg: QueueConfig, readonly features: QueueFeatures, maxIndirect: number, forbidden: readonly GpaRange[]) {
    const r = queueRanges(cfg);
    const desc = memory.locate(r.desc.start, r.desc.end - r.desc.start);
    const avail = memory.locate(r.avail.start, r.avail.end - r.avail.start);
    const used = memory.locate(r.used.start, r.used.end - r.used.start);
    if (desc === undefined || avail === undefined || used === undefined) throw new RangeError('SplitQueue: layout not checked');
    this.size = cfg.size;
    this.mask = cfg.size - 1;
    this.ranges = [r.desc, r.avail, r.used];
    this.avail = avail;
    this.availAt = avail.base + (cfg.driver - avail.gpa);
    this.used = used;
    this.usedAt = used.base + (cfg.device - used.gpa);
    this.ctx = { memory, descRegion: desc, descGpa: cfg.desc, size: cfg.size, indirect: features.indirect, maxIndirect, forbidden };
  }

  /** The driver's avail->idx. */
  availIdx(): number {
    // ORDER: acquire. The ring entries and descriptors the driver wrote before its idx store
    // (it issues a write barrier first, virtio 1.2, 2.7.13) are read only after this load.
    return Atomics.load(this.avail.u16, (this.availAt + VirtqAvailHeader.OFFSET.idx) >> 1);
  }

  /** The head the driver put at free-running available position `pos`. */
  headAt(pos: number): number {
    const at = this.availAt + VirtqAvailHeader.SIZE + AVAIL_ENTRY * (pos & this.mask);
    return this.avail.mem.dv.getUint16(at, true); // avail->ring[pos % size], a u16 with no record of its own
  }

  walk(head: number): Chain | QueueFault {
    // GUEST-INPUT: the head read from the available ring must name a descriptor.
    if (!(head < this.size)) return 'head_out_of_range';
    return walkChain(this.ctx, head);
  }

  /** Writes the element for free-running used position `pos` (not yet visible to the driver). */
  writeUsed(pos: number, id: number, len: number): void {
    const at = this.usedAt + VirtqUsedHeader.SIZE + VirtqUsedElem.SIZE * (pos & this.mask);
    VirtqUsedElem.setId(this.used.mem, at, id);
    VirtqUsedElem.setLen(this.used.mem, at, len);
  }

  /** The used->idx the guest currently sees (for the restart check). */
  usedIdx(): number {
    return Atomics.load(this.used.u16, (this.usedAt + VirtqUsedHeader.OFFSET.idx) >> 1);
  }

  /**
   * Makes every element before free-running position `end` visible and says whether the driver
   * wants a used-buffer notification for the batch that began at `start`.
   */
  publish(start: number, end: number): boolean {
    // ORDER: release, and a full barrier. The elements written before this store are visible
    // before the new idx (virtio 1.2, 2.7.8.2); the xchg also orders the store before the
    // used_event/flags load below, so a driver that re-enabled interrupts is not missed.
    Atomics.store(this.used.u16, (this.usedAt + VirtqUsedHeader.OFFSET.idx) >> 1, end & 0xffff);
    if (this.features.eventIdx) {
      const usedEvent = Atomics.load(this.avail.u16, (this.availAt + VirtqAvailHeader.SIZE + AVAIL_ENTRY * this.size) >> 1);
      // virtio 1.2, 2.7.10.2: notify when used_event lies in [start, end), modulo 2^16.
      return ((end - usedEvent - 1) & 0xffff) < ((end - start) & 0xffff);
    }
    const flags = Atomics.load(this.avail.u16, (this.availAt + VirtqAvailHeader.OFFSET.flags) >> 1);
    return (flags & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  /**
   * With EVENT_IDX, asks the driver to notify once it adds the entry at free-running position
   * `fetched` (virtio 1.2, 2.7.7.2), and returns the avail idx read after that request: a
   * caller that finds new entries there must serve them, since the driver may have skipped its
   * notification. Without EVENT_IDX the driver always notifies; it returns the avail idx.
   */
  armNotify(fetched: number): number {
    if (this.features.eventIdx) {
      // ORDER: full barrier. The avail_event store must be visible before avail->idx is read
      // again; otherwise an entry added in between could be neither seen nor notified.
      Atomics.store(this.used.u16, (this.usedAt + VirtqUsedHeader.SIZE + VirtqUsedElem.SIZE * this.size) >> 1, fetched & 0xffff);
    }
    return this.availIdx();
  }
}
