// The inflight protocol of one queue (idl/proto/block.proto, idl/proto/virtio.proto VirtqState):
// taking a chain, publishing completed chains in batches, and the restart procedure that makes
// a successor's guest see every request complete exactly once.
//
// Each step is a store into the state region or guest memory; a kill -9 can stop the process
// between any two. `point` is called at the interesting places between steps: the fault
// injector's seam (a test throws from it to model a kill; a campaign may SIGKILL the process).
import { BlockInflightSlot } from '../../idl/generated/block.js';
import { VirtqState } from '../../idl/generated/virtio.js';
import type { StateRef } from '../virtio/device.js';
import type { QueueFault } from '../virtio/errors.js';
import type { SplitQueue } from '../virtio/queue.js';
import { BlockError } from './errors.js';
import { SLOT_DONE, SLOT_FREE, SLOT_INFLIGHT, type BlockState } from './persist.js';

export const FAULT_POINTS = [
  'recorded', // a slot went INFLIGHT, the fetch cursor is not advanced yet
  'fetched', // a chain was taken, not yet submitted
  'submitted', // its I/O was started, not yet completed
  'completed', // its status byte is in guest memory, its element not yet published
  'marked', // publication step 1 done (slots DONE), batch not claimed
  'claimed', // step 2 done (batch_end stored), elements not written
  'element', // one more used element written (step 3 in progress)
  'published', // step 4 done (used->idx stored), slots not freed
  'freed', // step 5 done, the used cursor not advanced
] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];
export type FaultHook = (point: FaultPoint, queue: number) => void;

export interface Done {
  readonly head: number;
  readonly len: number;
}

/** Distance from a to b in free-running u32 counters. */
function ahead(a: number, b: number): number {
  return (b - a) >>> 0;
}

export class InflightQueue {
  private readonly vs: StateRef;

  constructor(private readonly state: BlockState, readonly q: number, private readonly vq: SplitQueue, private readonly hook: FaultHook | undefined) {
    this.vs = state.queueRef(q);
  }

  private point(p: FaultPoint): void {
    this.hook?.(p, this.q);
  }

  get fetched(): number {
    return VirtqState.loadFetched(this.vs.m, this.vs.base);
  }

  get used(): number {
    return VirtqState.loadUsed(this.vs.m, this.vs.base);
  }

  private slotState(head: number): number {
    return BlockInflightSlot.loadState(this.state.m, this.state.slot(this.q, head));
  }

  /** Records that the chain at `head` was taken at the current fetch position. */
  take(head: number): QueueFault | undefined {
    const s = this.state.slot(this.q, head);
    // GUEST-INPUT: a head the device still holds cannot be made available again (2.7.13).
    if (BlockInflightSlot.loadState(this.state.m, s) !== SLOT_FREE) return 'head_in_flight';
    const fetched = this.fetched;
    BlockInflightSlot.setSeq(this.state.m, s, fetched);
    // ORDER: the slot is INFLIGHT (with its seq) before the cursor moves past its chain; a
    // successor that finds seq == fetched knows the chain was taken and advances the cursor.
    BlockInflightSlot.storeState(this.state.m, s, SLOT_INFLIGHT);
    this.point('recorded');
    VirtqState.storeFetched(this.vs.m, this.vs.base, fetched + 1);
    return undefined;
  }

  /**
   * Publishes completed chains (steps 1 to 6 of VirtqState's comment); returns whether the
   * driver wants a used-buffer notification.
   */
  publish(batch: readonly Done[]): boolean {
    if (batch.length === 0) return false;
    const { m, base } = this.vs;
    const start = this.used;
    const end = start + batch.length;
    batch.forEach((d, i) => {
      const s = this.state.slot(this.q, d.head);
      BlockInflightSlot.setUsedPos(this.state.m, s, (start + i) >>> 0);
      BlockInflightSlot.setUsedLen(this.state.m, s, d.len);
      // ORDER: position and len are in the slot before it reads DONE.
      BlockInflightSlot.storeState(this.state.m, s, SLOT_DONE);
    });
    this.point('marked');
    // ORDER: the batch is claimed only once every slot in it is DONE with its position.
    VirtqState.storeBatchEnd(m, base, end >>> 0);
    this.point('claimed');
    batch.forEach((d, i) => {
      this.vq.writeUsed(start + i, d.head, d.len);
      this.point('element');
    });
    const notify = this.vq.publish(start, end);
    this.point('published');
    for (const d of batch) BlockInflightSlot.storeState(this.state.m, this.state.slot(this.q, d.head), SLOT_FREE);
    this.point('freed');
    // ORDER: the used cursor catches up with batch_end last: until then a successor knows a
    // batch was in progress and checks the guest's used->idx to finish or repair it.
    VirtqState.storeUsed(m, base, end >>> 0);
    return notify;
  }

  /**
   * The restart procedure (block.proto): finishes or repairs a batch in progress, advances a
   * fetch cursor left behind its recorded chain, publishes chains whose status was already
   * written, and returns the heads still in flight, oldest first, for resubmission.
   */
  recover(): { resubmit: number[]; published: boolean } {
    const { m, base } = this.vs;
    const size = this.vq.size;
    const heads = this.state.maxQueueSize;
    for (let h = 0; h < heads; h++) {
      const st = this.slotState(h);
      if (st !== SLOT_FREE && (st > SLOT_DONE || h >= size)) throw new BlockError('BAD_STATE', `queue ${this.q} slot ${h} in state ${st}`);
    }
    let published = false;
    const used = this.used;
    const batchEnd = VirtqState.loadBatchEnd(m, base);
    const k = ahead(used, batchEnd);
    if (k > size) throw new BlockError('BAD_STATE', `queue ${this.q}: batch of ${k} elements`);
    if (k > 0) {
      const inBatch = (h: number): boolean => this.slotState(h) === SLOT_DONE && ahead(used, BlockInflightSlot.getUsedPos(this.state.m, this.state.slot(this.q, h))) < k;
      // GUEST-INPUT: used->idx is in guest memory; only "equals batch_end" is taken as published.
      if (this.vq.usedIdx() !== (batchEnd & 0xffff)) {
        for (let h = 0; h < size; h++) {
          if (!inBatch(h)) continue;
          const s = this.state.slot(this.q, h);
          this.vq.writeUsed(BlockInflightSlot.getUsedPos(this.state.m, s), h, BlockInflightSlot.getUsedLen(this.state.m, s));
        }
        this.vq.publish(used, used + k);
        published = true;
      }
      for (let h = 0; h < size; h++) if (inBatch(h)) BlockInflightSlot.storeState(this.state.m, this.state.slot(this.q, h), SLOT_FREE);
      VirtqState.storeUsed(m, base, batchEnd);
    }
    const fetched = this.fetched;
    for (let h = 0; h < size; h++) {
      if (this.slotState(h) === SLOT_INFLIGHT && BlockInflightSlot.getSeq(this.state.m, this.state.slot(this.q, h)) === fetched) {
        VirtqState.storeFetched(m, base, fetched + 1);
        break;
      }
    }
    // Slots DONE outside a batch had their status written before a kill: publish them now.
    const done: { head: number; len: number; seq: number }[] = [];
    const inflight: { head: number; age: number }[] = [];
    const now = this.fetched;
    for (let h = 0; h < size; h++) {
      const s = this.state.slot(this.q, h);
      const seq = BlockInflightSlot.getSeq(this.state.m, s);
      if (this.slotState(h) === SLOT_DONE) done.push({ head: h, len: BlockInflightSlot.getUsedLen(this.state.m, s), seq });
      else if (this.slotState(h) === SLOT_INFLIGHT) inflight.push({ head: h, age: ahead(seq, now) });
    }
    if (done.length > 0) {
      done.sort((a, b) => ahead(b.seq, now) - ahead(a.seq, now));
      this.publish(done);
      published = true;
    }
    inflight.sort((a, b) => b.age - a.age);
    return { resubmit: inflight.map((x) => x.head), published };
  }
}
