// The block domain's state region (DESIGN.md 2.1): the layout of idl/proto/block.proto, the
// header that ties a region to one disk, and typed access to the inflight slots. The region is
// updated in place (see block.proto for the protocol and inflight.ts for its steps).
import { BlockInflightSlot, BlockStateHeader, BlockStateMagic } from '../../idl/generated/block.js';
import { VirtioTransportState, VirtqState } from '../../idl/generated/virtio.js';
import type { SharedBytes } from '../../idl/runtime/shared.js';
import type { StateRef } from '../virtio/device.js';
import type { BlockLimits } from './config.js';
import { BlockError } from './errors.js';

export const LAYOUT_VERSION = 1;

// BlockInflightSlot.state values (block.proto).
export const SLOT_FREE = 0;
export const SLOT_INFLIGHT = 1;
export const SLOT_DONE = 2;

const TRANSPORT_AT = BlockStateHeader.SIZE;
const QUEUES_AT = TRANSPORT_AT + VirtioTransportState.SIZE;

/** Bytes of state region a device with these queues needs (the wiring asks microhv for this). */
export function stateBytes(numQueues: number, maxQueueSize: number): number {
  return QUEUES_AT + numQueues * VirtqState.SIZE + numQueues * maxQueueSize * BlockInflightSlot.SIZE;
}

export class BlockState {
  private readonly slotsAt: number;

  /**
   * `m` is the mapped region (a SharedBytes over the memfd mapping, or over an ArrayBuffer in
   * tests) and `base` where the layout starts in it.
   */
  constructor(readonly m: SharedBytes, readonly base: number, readonly numQueues: number, readonly maxQueueSize: number) {
    const need = stateBytes(numQueues, maxQueueSize);
    if (base < 0 || base % 8 !== 0 || base + need > m.byteLength) {
      throw new BlockError('BAD_STATE', `state region of ${m.byteLength} bytes at ${base}, need ${need}`);
    }
    this.slotsAt = base + QUEUES_AT + numQueues * VirtqState.SIZE;
  }

  /** True when the region was never initialised (its magic is stored last). */
  blank(): boolean {
    return BlockStateHeader.getMagic(this.m, this.base) === BlockStateMagic.BLOCK_STATE_MAGIC_INVALID;
  }

  /** Writes the header of a fresh region; `seal` then marks it initialised. */
  initHeader(l: BlockLimits): void {
    const { m, base } = this;
    BlockStateHeader.setLayoutVersion(m, base, LAYOUT_VERSION);
    BlockStateHeader.setNumQueues(m, base, this.numQueues);
    BlockStateHeader.setMaxQueueSize(m, base, this.maxQueueSize);
    BlockStateHeader.setCapacity(m, base, BigInt(l.capacity));
    BlockStateHeader.setFeaturesLo(m, base, Number(l.features & 0xffff_ffffn));
    BlockStateHeader.setFeaturesHi(m, base, Number(l.features >> 32n));
    BlockStateHeader.storeWriteback(m, base, 1);
    for (let i = 0; i < this.numQueues * this.maxQueueSize; i++) BlockInflightSlot.storeState(m, this.slotsAt + i * BlockInflightSlot.SIZE, SLOT_FREE);
  }

  seal(): void {
    // ORDER: the magic is the last store of initialisation: a region without it is blank.
    BlockStateHeader.setMagic(this.m, this.base, BlockStateMagic.BLOCK_STATE_MAGIC_V1);
  }

  /** Refuses a region made for another disk, layout or feature set (never resume the wrong guest). */
  check(l: BlockLimits): void {
    const { m, base } = this;
    const have = {
      magic: BlockStateHeader.getMagic(m, base), version: BlockStateHeader.getLayoutVersion(m, base),
      queues: BlockStateHeader.getNumQueues(m, base), size: BlockStateHeader.getMaxQueueSize(m, base),
      capacity: BlockStateHeader.getCapacity(m, base),
      features: (BigInt(BlockStateHeader.getFeaturesHi(m, base)) << 32n) | BigInt(BlockStateHeader.getFeaturesLo(m, base)),
    };
    const want = { magic: BlockStateMagic.BLOCK_STATE_MAGIC_V1, version: LAYOUT_VERSION, queues: this.numQueues, size: this.maxQueueSize, capacity: BigInt(l.capacity), features: l.features };
    for (const k of Object.keys(want) as (keyof typeof want)[]) {
      if (have[k] !== want[k]) throw new BlockError('BAD_STATE', `state region ${k} is ${String(have[k])}, this device has ${String(want[k])}`);
    }
  }

  transportRef(): StateRef {
    return { m: this.m, base: this.base + TRANSPORT_AT };
  }

  queueRef(q: number): StateRef {
    return { m: this.m, base: this.base + QUEUES_AT + q * VirtqState.SIZE };
  }

  writeback(): number {
    return BlockStateHeader.loadWriteback(this.m, this.base);
  }

  setWriteback(v: number): void {
    BlockStateHeader.storeWriteback(this.m, this.base, v);
  }

  /** Base of the slot of `head` in queue q (head < maxQueueSize, checked by the caller). */
  slot(q: number, head: number): number {
    return this.slotsAt + (q * this.maxQueueSize + head) * BlockInflightSlot.SIZE;
  }

  /** Frees every slot of queue q (device reset: nothing of it is in flight any more). */
  clearQueue(q: number): void {
    for (let h = 0; h < this.maxQueueSize; h++) BlockInflightSlot.storeState(this.m, this.slot(q, h), SLOT_FREE);
  }
}
