// Fakes for virtio unit tests (STYLE.md, "Tests in layers"): guest RAM made of ArrayBuffers, a
// guest driver that sets a device up through its BAR the way Linux's virtio_pci_modern does and
// plays the driver side of split virtqueues, an interrupt recorder, and a stub device.
import { SharedBytes } from '../../idl/runtime/shared.js';
import { VirtqAvailHeader, VirtqDesc, VirtqUsedElem, VirtqUsedHeader } from '../../idl/generated/virtio.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from './chain.js';
import type { DeviceRun, InterruptSink, VirtioDevice } from './device.js';
import { NO_VECTOR, STATUS, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, bit } from './device.js';
import { FaultCounters } from './errors.js';
import { GuestMemory } from './memory.js';
import { COMMON_CFG, DEVICE_CFG_OFFSET, ISR_CFG, notifyOffset } from './pci.js';
import { VirtioPciCommonCfg as C, VirtioTransportState, VirtqState } from '../../idl/generated/virtio.js';
import { VirtioPciTransport } from './transport.js';

/** Guest RAM of one or more regions, with a bump allocator for the driver's structures. */
export class FakeGuestMemory {
  readonly memory: GuestMemory;
  private readonly chunks: { gpa: number; mem: SharedBytes }[] = [];
  private next: number;
  private readonly limit: number;

  /**
   * `backing` supplies each region's bytes (default: an ArrayBuffer, host alignment unknown);
   * tests of O_DIRECT in place pass page-aligned mmaps.
   */
  constructor(layout: readonly { gpa: number; size: number }[] = [{ gpa: 0, size: 4 << 20 }], backing?: (size: number) => { buffer: ArrayBuffer; hostAlign: number }) {
    const aligns: number[] = [];
    for (const l of layout) {
      const b = backing?.(l.size) ?? { buffer: new ArrayBuffer(l.size), hostAlign: 1 };
      this.chunks.push({ gpa: l.gpa, mem: new SharedBytes(b.buffer) });
      aligns.push(b.hostAlign);
    }
    this.memory = new GuestMemory(this.chunks.map((c, i) => ({ gpa: c.gpa, bytes: c.mem.u8, hostAlign: aligns[i] })));
    const first = layout[0];
    if (first === undefined) throw new RangeError('no regions');
    // Leave the first page unused, so gpa 0 is never a valid allocation.
    this.next = first.gpa + 4096;
    this.limit = first.gpa + first.size;
  }

  /** Allocates `size` bytes of the first region, zeroed, aligned to `align`. */
  alloc(size: number, align = 16): number {
    const at = Math.ceil(this.next / align) * align;
    if (at + size > this.limit) throw new RangeError(`fake guest memory exhausted (${size} bytes)`);
    this.next = at + size;
    this.bytes(at, size).fill(0);
    return at;
  }

  private chunk(gpa: number, len: number): { mem: SharedBytes; at: number } {
    for (const c of this.chunks) {
      if (gpa >= c.gpa && gpa + len <= c.gpa + c.mem.byteLength) return { mem: c.mem, at: gpa - c.gpa };
    }
    throw new RangeError(`gpa 0x${gpa.toString(16)}+${len} outside fake RAM`);
  }

  bytes(gpa: number, len: number): Uint8Array {
    const { mem, at } = this.chunk(gpa, len);
    return mem.u8.subarray(at, at + len);
  }

  write(gpa: number, data: Uint8Array): void {
    this.bytes(gpa, data.byteLength).set(data);
  }

  read(gpa: number, len: number): Uint8Array {
    return this.bytes(gpa, len).slice();
  }

  /** Writes descriptor i of the table at `table` (a queue's or an indirect one). */
  writeDesc(table: number, i: number, d: { addr: number | bigint; len: number; flags: number; next: number }): void {
    const { mem, at } = this.chunk(table + VirtqDesc.SIZE * i, VirtqDesc.SIZE);
    VirtqDesc.write(mem, at, { addr: BigInt(d.addr), len: d.len, flags: d.flags, next: d.next });
  }

  /** The SharedBytes and offset of `gpa`, for generated record accessors. */
  at(gpa: number, len: number): { mem: SharedBytes; at: number } {
    return this.chunk(gpa, len);
  }
}

/** A BAR as the guest reaches it (the transport, in tests). */
export interface Bar {
  read(offset: number, size: number): bigint;
  write(offset: number, size: number, value: bigint): void;
}

/** Records every interrupt the device raises. */
export class RecordingInterrupts implements InterruptSink {
  readonly vectors: number[] = [];
  level = false;
  raises = 0;

  msix(vector: number): void {
    this.vectors.push(vector);
  }

  intx(level: boolean): void {
    if (level && !this.level) this.raises++;
    this.level = level;
  }

  count(vector: number): number {
    return this.vectors.filter((v) => v === vector).length;
  }
}

export interface Buffer {
  readonly gpa: number;
  readonly len: number;
  readonly writable: boolean;
}

export interface DriverQueueOptions {
  readonly eventIdx: boolean;
  readonly indirect: boolean;
}

/** The driver side of one split virtqueue (virtio 1.2, 2.7.13 Supplying Buffers to The Device). */
export class DriverQueue {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  private readonly free: number[] = [];
  private availIdx = 0;
  private lastUsed = 0;
  private kickedAt = 0;
  /** Heads the driver gave the device and has not seen come back. */
  readonly outstanding = new Set<number>();

  constructor(private readonly mem: FakeGuestMemory, readonly index: number, readonly size: number, private readonly opts: DriverQueueOptions, private readonly bar: Bar) {
    this.desc = mem.alloc(VirtqDesc.SIZE * size, 16);
    this.avail = mem.alloc(VirtqAvailHeader.SIZE + 2 * size + 2, 2);
    this.used = mem.alloc(VirtqUsedHeader.SIZE + VirtqUsedElem.SIZE * size + 2, 4);
    for (let i = size - 1; i >= 0; i--) this.free.push(i);
  }

  get freeCount(): number {
    return this.free.length;
  }

  /** Writes descriptor i of the queue's table (no checks: hostile tests use it directly). */
  writeDesc(i: number, d: { addr: number | bigint; len: number; flags: number; next: number }): void {
    this.mem.writeDesc(this.desc, i, d);
  }

  /**
   * Puts `buffers` in descriptors and returns the head (not yet made available). With
   * `indirect`, one descriptor points at a table holding them all.
   */
  add(buffers: readonly Buffer[], indirect = false): number {
    if (indirect) {
      const table = this.mem.alloc(VirtqDesc.SIZE * buffers.length, 16);
      buffers.forEach((b, i) => {
        const last = i === buffers.length - 1;
        this.mem.writeDesc(table, i, { addr: b.gpa, len: b.len, flags: (b.writable ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), next: last ? 0 : i + 1 });
      });
      const head = this.take(1)[0] ?? 0;
      this.writeDesc(head, { addr: table, len: VirtqDesc.SIZE * buffers.length, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
      return head;
    }
    const ids = this.take(buffers.length);
    buffers.forEach((b, i) => {
      const next = ids[i + 1];
      this.writeDesc(ids[i] ?? 0, { addr: b.gpa, len: b.len, flags: (b.writable ? VIRTQ_DESC_F_WRITE : 0) | (next === undefined ? 0 : VIRTQ_DESC_F_NEXT), next: next ?? 0 });
    });
    return ids[0] ?? 0;
  }

  private take(n: number): number[] {
    if (n > this.free.length) throw new RangeError(`queue ${this.index}: ${n} descriptors wanted, ${this.free.length} free`);
    return this.free.splice(this.free.length - n, n);
  }

  /** Makes `head` available: ring entry, then (after the entry) the index. */
  pushHead(head: number): void {
    const { mem, at } = this.mem.at(this.avail, VirtqAvailHeader.SIZE + 2 * this.size);
    mem.dv.setUint16(at + VirtqAvailHeader.SIZE + 2 * (this.availIdx % this.size), head, true); // avail->ring[] entry
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.setAvailIdx(this.availIdx);
    this.outstanding.add(head);
  }

  /** Every avail->ring[] entry as it is in memory (what an index that jumps exposes to the device). */
  availEntries(): number[] {
    const { mem, at } = this.mem.at(this.avail, VirtqAvailHeader.SIZE + 2 * this.size);
    return Array.from({ length: this.size }, (_, i) => mem.dv.getUint16(at + VirtqAvailHeader.SIZE + 2 * i, true));
  }

  /** Moves avail->idx by `n` without adding entries (hostile tests: an index that jumps). */
  jumpAvail(n: number): void {
    this.availIdx = (this.availIdx + n) & 0xffff;
    this.setAvailIdx(this.availIdx);
  }

  /** Stores avail->idx directly (hostile tests: an index that jumps). */
  setAvailIdx(idx: number): void {
    const { mem, at } = this.mem.at(this.avail, VirtqAvailHeader.SIZE);
    VirtqAvailHeader.setIdx(mem, at, idx & 0xffff);
  }

  setAvailFlags(flags: number): void {
    const { mem, at } = this.mem.at(this.avail, VirtqAvailHeader.SIZE);
    VirtqAvailHeader.setFlags(mem, at, flags);
  }

  /** used_event (EVENT_IDX): interrupt me once the used index passes this. */
  setUsedEvent(v: number): void {
    this.mem.at(this.avail, 0).mem.dv.setUint16(this.mem.at(this.avail, 0).at + VirtqAvailHeader.SIZE + 2 * this.size, v & 0xffff, true); // used_event
  }

  availEvent(): number {
    const { mem, at } = this.mem.at(this.used, VirtqUsedHeader.SIZE + VirtqUsedElem.SIZE * this.size + 2);
    return mem.dv.getUint16(at + VirtqUsedHeader.SIZE + VirtqUsedElem.SIZE * this.size, true); // avail_event
  }

  usedIdx(): number {
    const { mem, at } = this.mem.at(this.used, VirtqUsedHeader.SIZE);
    return VirtqUsedHeader.getIdx(mem, at);
  }

  /** The notification, suppressed as the device asked (virtio 1.2, 2.7.13.4). */
  kick(): void {
    const old = this.kickedAt;
    this.kickedAt = this.availIdx;
    if (this.opts.eventIdx) {
      const ev = this.availEvent();
      if (((this.availIdx - ev - 1) & 0xffff) >= ((this.availIdx - old) & 0xffff)) return;
    } else {
      const { mem, at } = this.mem.at(this.used, VirtqUsedHeader.SIZE);
      if ((VirtqUsedHeader.getFlags(mem, at) & 1) !== 0) return;
    }
    this.forceKick();
  }

  forceKick(): void {
    this.bar.write(notifyOffset(this.index), 2, BigInt(this.index));
  }

  /** Used elements published since the last call; their heads return to the free list. */
  takeUsed(): { id: number; len: number }[] {
    const out: { id: number; len: number }[] = [];
    const end = this.usedIdx();
    while (this.lastUsed !== end) {
      const { mem, at } = this.mem.at(this.used + VirtqUsedHeader.SIZE + VirtqUsedElem.SIZE * (this.lastUsed % this.size), VirtqUsedElem.SIZE);
      const e = { id: VirtqUsedElem.getId(mem, at), len: VirtqUsedElem.getLen(mem, at) };
      out.push(e);
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
      if (this.outstanding.delete(e.id)) this.release(e.id);
    }
    // Ask for an interrupt on the next completion, as Linux's virtqueue_enable_cb does.
    if (this.opts.eventIdx) this.setUsedEvent(this.lastUsed);
    return out;
  }

  /** Returns a chain's descriptors to the free list (walks NEXT within the direct table). */
  private release(head: number): void {
    let i = head;
    for (let n = 0; n < this.size; n++) {
      this.free.push(i);
      const { mem, at } = this.mem.at(this.desc + VirtqDesc.SIZE * i, VirtqDesc.SIZE);
      const flags = VirtqDesc.getFlags(mem, at);
      if ((flags & VIRTQ_DESC_F_NEXT) === 0 || (flags & VIRTQ_DESC_F_INDIRECT) !== 0) return;
      i = VirtqDesc.getNext(mem, at);
    }
  }
}

/** The guest's virtio-pci driver, following Linux's virtio_pci_modern probe sequence. */
export class VirtioPciDriver {
  constructor(readonly bar: Bar, readonly mem: FakeGuestMemory) {}

  status(): number {
    return Number(this.bar.read(COMMON_CFG.offset + C.OFFSET.deviceStatus, 1));
  }

  setStatus(v: number): void {
    this.bar.write(COMMON_CFG.offset + C.OFFSET.deviceStatus, 1, BigInt(v));
  }

  common(offset: number, size: number): bigint {
    return this.bar.read(COMMON_CFG.offset + offset, size);
  }

  setCommon(offset: number, size: number, v: bigint | number): void {
    this.bar.write(COMMON_CFG.offset + offset, size, BigInt(v));
  }

  deviceFeatures(): bigint {
    this.setCommon(C.OFFSET.deviceFeatureSelect, 4, 0);
    const lo = this.common(C.OFFSET.deviceFeature, 4);
    this.setCommon(C.OFFSET.deviceFeatureSelect, 4, 1);
    return (this.common(C.OFFSET.deviceFeature, 4) << 32n) | lo;
  }

  writeDriverFeatures(f: bigint): void {
    this.setCommon(C.OFFSET.driverFeatureSelect, 4, 0);
    this.setCommon(C.OFFSET.driverFeature, 4, f & 0xffff_ffffn);
    this.setCommon(C.OFFSET.driverFeatureSelect, 4, 1);
    this.setCommon(C.OFFSET.driverFeature, 4, f >> 32n);
  }

  isr(): number {
    return Number(this.bar.read(ISR_CFG.offset, 1));
  }

  config(offset: number, size: number): bigint {
    return this.bar.read(DEVICE_CFG_OFFSET + offset, size);
  }

  /** Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (virtio 1.2, 3.1.1 steps 1..6). */
  negotiate(wanted: bigint): { features: bigint; ok: boolean } {
    this.setStatus(0);
    this.setStatus(STATUS.ACKNOWLEDGE);
    this.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER);
    const features = this.deviceFeatures() & wanted;
    this.writeDriverFeatures(features);
    this.setStatus(STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.FEATURES_OK);
    return { features, ok: (this.status() & STATUS.FEATURES_OK) !== 0 };
  }

  /** Sets up queue q at `size` (the device maximum when omitted) and enables it. */
  setupQueue(q: number, features: bigint, size?: number, msix = NO_VECTOR): DriverQueue {
    this.setCommon(C.OFFSET.queueSelect, 2, q);
    const max = Number(this.common(C.OFFSET.queueSize, 2));
    const n = size ?? max;
    if (n !== max) this.setCommon(C.OFFSET.queueSize, 2, n);
    const opts = { eventIdx: (features & bit(VIRTIO_F_EVENT_IDX)) !== 0n, indirect: (features & bit(VIRTIO_F_INDIRECT_DESC)) !== 0n };
    const dq = new DriverQueue(this.mem, q, n, opts, this.bar);
    // Linux writes the 64-bit addresses as two 32-bit halves, low first.
    for (const [off, gpa] of [[C.OFFSET.queueDesc, dq.desc], [C.OFFSET.queueDriver, dq.avail], [C.OFFSET.queueDevice, dq.used]] as const) {
      this.setCommon(off, 4, gpa % 2 ** 32);
      this.setCommon(off + 4, 4, Math.floor(gpa / 2 ** 32));
    }
    this.setCommon(C.OFFSET.queueMsixVector, 2, msix);
    this.setCommon(C.OFFSET.queueEnable, 2, 1);
    return dq;
  }

  driverOk(): void {
    this.setStatus(this.status() | STATUS.DRIVER_OK);
  }

  /** The whole probe: negotiate, set up `queues` queues, DRIVER_OK. */
  init(wanted: bigint, queues: number, opts: { size?: number; msix?: boolean } = {}): { features: bigint; queues: DriverQueue[] } {
    const { features, ok } = this.negotiate(wanted);
    if (!ok) throw new Error('device refused the features');
    if (opts.msix === true) this.setCommon(C.OFFSET.configMsixVector, 2, 0);
    const qs: DriverQueue[] = [];
    for (let q = 0; q < queues; q++) qs.push(this.setupQueue(q, features, opts.size, opts.msix === true ? q + 1 : NO_VECTOR));
    this.driverOk();
    return { features, queues: qs };
  }
}

/** A device with no behaviour of its own, for transport tests: records what it is asked. */
export class StubDevice implements VirtioDevice {
  readonly virtioId = 0x7f;
  readonly configLength = 8;
  readonly config = new Uint8Array(8);
  runs: DeviceRun[] = [];
  notified: number[] = [];
  resets = 0;
  /** When set, reset completes only once this is called (requests still in flight). */
  pendingReset: (() => void) | undefined;
  holdReset = false;
  acceptAll = true;

  constructor(readonly features: bigint, readonly numQueues = 1, readonly maxQueueSize = 16) {}

  readConfig(offset: number, size: number): bigint {
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.config[offset + i] ?? 0);
    return v;
  }

  writeConfig(offset: number, size: number, value: bigint): void {
    for (let i = 0; i < size; i++) this.config[offset + i] = Number((value >> BigInt(8 * i)) & 0xffn);
  }

  acceptFeatures(): boolean {
    return this.acceptAll;
  }

  start(run: DeviceRun): void {
    this.runs.push(run);
  }

  notify(queue: number): void {
    this.notified.push(queue);
  }

  reset(done: () => void): void {
    this.resets++;
    if (this.holdReset) this.pendingReset = done;
    else done();
  }
}

/** A transport over a fresh state region, with its guest driver: the fixture of transport tests. */
export function transportFixture<D extends VirtioDevice>(device: D, opts: { fake?: FakeGuestMemory; state?: SharedBytes; msixVectors?: number; fresh?: boolean } = {}) {
  const fake = opts.fake ?? new FakeGuestMemory();
  const state = opts.state ?? new SharedBytes(new ArrayBuffer(VirtioTransportState.SIZE + VirtqState.SIZE * device.numQueues));
  const counters = new FaultCounters();
  const interrupts = new RecordingInterrupts();
  const queueState = Array.from({ length: device.numQueues }, (_, q) => ({ m: state, base: VirtioTransportState.SIZE + VirtqState.SIZE * q }));
  const transport = new VirtioPciTransport({
    device, memory: fake.memory, transportState: { m: state, base: 0 }, queueState, interrupts, counters, msixVectors: opts.msixVectors ?? 8,
  });
  if (opts.fresh ?? true) transport.initFresh();
  return { device, fake, state, counters, interrupts, transport, driver: new VirtioPciDriver(transport, fake) };
}
