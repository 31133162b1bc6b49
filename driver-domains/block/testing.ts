// Fakes for the block domain's unit tests: an in-memory backend whose operations can be held
// and completed in any order (with a model of what a flush made durable), and a fake guest that
// drives a block domain through its BAR like Linux's virtio_blk and checks every completion.
import { VirtioBlkDiscardWriteZeroes, VirtioBlkReqHeader } from '../../idl/generated/virtio.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, bit } from '../virtio/device.js';
import { DriverQueue, FakeGuestMemory, RecordingInterrupts, VirtioPciDriver, type Bar, type Buffer } from '../virtio/testing.js';
import type { BlockBackend, SpaceOutcome } from './backend.js';
import { SECTOR, VIRTIO_BLK_F, type BlockOptions } from './config.js';
import type { FaultHook } from './inflight.js';
import { blockStateBytes, createBlockDomain, type BlockDomain } from './index.js';
import { VIRTIO_BLK_T } from './request.js';

interface HeldOp {
  readonly kind: string;
  readonly run: () => void;
}

/** A disk in memory. With `hold`, operations wait until released, in any order the test picks. */
export class MemoryBackend implements BlockBackend {
  readonly disk: Uint8Array;
  /** The disk as of the last completed flush: what survives a host crash. */
  readonly durable: Uint8Array;
  readonly ioAlign = 1;
  hold = false;
  readonly held: HeldOp[] = [];
  flushes = 0;
  /** Operation kinds that fail (the next time they run). */
  readonly failing = new Set<string>();
  spaceOutcome: SpaceOutcome = 'punched';

  constructor(readonly size: number, readonly readOnly = false) {
    this.disk = new Uint8Array(size);
    this.durable = new Uint8Array(size);
  }

  private op(kind: string, fn: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const run = (): void => {
        if (this.failing.delete(kind)) reject(new Error(`injected ${kind} failure`));
        else {
          fn();
          resolve();
        }
      };
      if (this.hold) this.held.push({ kind, run });
      else queueMicrotask(run);
    });
  }

  /** Completes held operations: all, or the ones at the given indices (in that order). */
  release(indices?: readonly number[]): void {
    const picked = indices === undefined ? this.held.splice(0) : indices.map((i) => this.held[i]).filter((x): x is HeldOp => x !== undefined);
    if (indices !== undefined) for (const op of picked) this.held.splice(this.held.indexOf(op), 1);
    for (const op of picked) op.run();
  }

  read(offset: number, iov: readonly Uint8Array[]): Promise<void> {
    // Data is copied when the operation runs, as the kernel does during preadv.
    return this.op('read', () => {
      let at = offset;
      for (const v of iov) {
        v.set(this.disk.subarray(at, at + v.byteLength));
        at += v.byteLength;
      }
    });
  }

  write(offset: number, iov: readonly Uint8Array[]): Promise<void> {
    return this.op('write', () => {
      let at = offset;
      for (const v of iov) {
        this.disk.set(v, at);
        at += v.byteLength;
      }
    });
  }

  flush(): Promise<void> {
    return this.op('flush', () => {
      this.durable.set(this.disk);
      this.flushes++;
    });
  }

  async discard(offset: number, length: number): Promise<SpaceOutcome> {
    await this.op('discard', () => this.disk.fill(0, offset, offset + length));
    return this.spaceOutcome;
  }

  async writeZeroes(offset: number, length: number): Promise<SpaceOutcome> {
    await this.op('write_zeroes', () => this.disk.fill(0, offset, offset + length));
    return this.spaceOutcome;
  }

  async close(): Promise<void> {}
}

/** A request the fake guest made, and what became of it. */
export interface GuestRequest {
  readonly queue: number;
  readonly head: number;
  readonly type: number;
  readonly statusGpa: number;
  readonly dataGpa: number;
  readonly dataLen: number;
  completions: number;
  usedLen: number;
}

export interface BlockGuestOptions<B extends BlockBackend = MemoryBackend> {
  readonly options?: BlockOptions;
  /** The disk (default: a MemoryBackend of `sectors` sectors). */
  readonly backend?: B;
  readonly sectors?: number;
  /** Features the driver accepts (default: all the device offers). */
  readonly wanted?: bigint;
  readonly queues?: number;
  readonly msix?: boolean;
  readonly faultHook?: FaultHook;
  /** Guest RAM, bytes (default 16 MiB). */
  readonly ramBytes?: number;
  /** Where guest RAM comes from (default an ArrayBuffer; page-aligned mmaps for O_DIRECT in place). */
  readonly ramBacking?: (size: number) => { buffer: ArrayBuffer; hostAlign: number };
}

export const ALL_FEATURES = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_INDIRECT_DESC) | bit(VIRTIO_F_EVENT_IDX) |
  Object.values(VIRTIO_BLK_F).reduce((a, f) => a | bit(f), 0n);

/** The guest: memory, a virtio-blk driver on top of the Linux-like virtio-pci driver, and checks. */
export class BlockGuest<B extends BlockBackend = MemoryBackend> {
  readonly fake: FakeGuestMemory;
  readonly interrupts = new RecordingInterrupts();
  readonly region: SharedBytes;
  readonly backend: B;
  domain!: BlockDomain;
  readonly driver: VirtioPciDriver;
  queues: DriverQueue[] = [];
  features = 0n;
  /** Outstanding requests by queue and head; completions that match none are anomalies. */
  private readonly outstanding = new Map<string, GuestRequest>();
  readonly anomalies: string[] = [];
  readonly completed: GuestRequest[] = [];

  constructor(private readonly o: BlockGuestOptions<B> = {}) {
    this.fake = new FakeGuestMemory([{ gpa: 0, size: o.ramBytes ?? 16 << 20 }], o.ramBacking);
    this.backend = o.backend ?? (new MemoryBackend((o.sectors ?? 2048) * SECTOR) as unknown as B);
    this.region = new SharedBytes(new ArrayBuffer(blockStateBytes(o.options ?? {})));
    // The guest reaches whichever domain instance is current: a successor serves the same BAR.
    const bar: Bar = { read: (off, size) => this.domain.transport.read(off, size), write: (off, size, v) => this.domain.transport.write(off, size, v) };
    this.driver = new VirtioPciDriver(bar, this.fake);
    this.domain = this.boot();
  }

  /** Starts a domain instance over the guest's memory, the disk and the state region. */
  boot(faultHook: FaultHook | undefined = this.o.faultHook): BlockDomain {
    this.domain = createBlockDomain({
      ...this.o.options, backend: this.backend, memory: this.fake.memory, region: this.region, interrupts: this.interrupts,
      msixVectors: 8, faultHook,
    });
    return this.domain;
  }

  /** Linux's probe: features, queues, DRIVER_OK. */
  init(): this {
    const r = this.driver.init(this.o.wanted ?? ALL_FEATURES, this.o.queues ?? 1, { msix: this.o.msix });
    this.features = r.features;
    this.queues = r.queues;
    return this;
  }

  queue(q: number): DriverQueue {
    const dq = this.queues[q];
    if (dq === undefined) throw new RangeError(`queue ${q}`);
    return dq;
  }

  /** Builds header, data and status buffers; returns the buffers for the chain and the request. */
  private build(q: number, type: number, sector: bigint, data: { len: number; writable: boolean; bytes?: Uint8Array } | undefined): { buffers: Buffer[]; req: Omit<GuestRequest, 'head'> } {
    const hdr = this.fake.alloc(VirtioBlkReqHeader.SIZE, 16);
    const h = this.fake.at(hdr, VirtioBlkReqHeader.SIZE);
    VirtioBlkReqHeader.write(h.mem, h.at, { type, ioprio: 0, sector });
    const buffers: Buffer[] = [{ gpa: hdr, len: VirtioBlkReqHeader.SIZE, writable: false }];
    let dataGpa = 0;
    if (data !== undefined) {
      dataGpa = this.fake.alloc(data.len, 4096);
      if (data.bytes !== undefined) this.fake.write(dataGpa, data.bytes);
      buffers.push({ gpa: dataGpa, len: data.len, writable: data.writable });
    }
    const statusGpa = this.fake.alloc(1, 1);
    this.fake.write(statusGpa, Uint8Array.of(0xff));
    buffers.push({ gpa: statusGpa, len: 1, writable: true });
    return { buffers, req: { queue: q, type, statusGpa, dataGpa, dataLen: data?.len ?? 0, completions: 0, usedLen: -1 } };
  }

  /** Adds a chain and makes it available (and kicks unless `kick` is false). */
  post(q: number, buffers: readonly Buffer[], req: Omit<GuestRequest, 'head'>, opts: { indirect?: boolean; kick?: boolean } = {}): GuestRequest {
    const dq = this.queue(q);
    const head = dq.add(buffers, opts.indirect ?? false);
    const full: GuestRequest = { ...req, head };
    this.outstanding.set(`${q}:${head}`, full);
    dq.pushHead(head);
    if (opts.kick ?? true) dq.kick();
    return full;
  }

  read(sector: number, count: number, opts: { q?: number; indirect?: boolean; kick?: boolean } = {}): GuestRequest {
    const { buffers, req } = this.build(opts.q ?? 0, VIRTIO_BLK_T.IN, BigInt(sector), { len: count * SECTOR, writable: true });
    return this.post(opts.q ?? 0, buffers, req, opts);
  }

  write(sector: number, bytes: Uint8Array, opts: { q?: number; indirect?: boolean; kick?: boolean } = {}): GuestRequest {
    const { buffers, req } = this.build(opts.q ?? 0, VIRTIO_BLK_T.OUT, BigInt(sector), { len: bytes.byteLength, writable: false, bytes });
    return this.post(opts.q ?? 0, buffers, req, opts);
  }

  flush(opts: { q?: number; kick?: boolean } = {}): GuestRequest {
    const { buffers, req } = this.build(opts.q ?? 0, VIRTIO_BLK_T.FLUSH, 0n, undefined);
    return this.post(opts.q ?? 0, buffers, req, opts);
  }

  getId(len = 20): GuestRequest {
    const { buffers, req } = this.build(0, VIRTIO_BLK_T.GET_ID, 0n, { len, writable: true });
    return this.post(0, buffers, req);
  }

  /** DISCARD or WRITE_ZEROES of ranges (sector, count, flags). */
  ranges(type: number, ranges: readonly { sector: number; count: number; flags?: number }[]): GuestRequest {
    const bytes = new SharedBytes(new ArrayBuffer(VirtioBlkDiscardWriteZeroes.SIZE * ranges.length));
    ranges.forEach((r, i) => VirtioBlkDiscardWriteZeroes.write(bytes, i * VirtioBlkDiscardWriteZeroes.SIZE, { sector: BigInt(r.sector), numSectors: r.count, flags: r.flags ?? 0 }));
    const { buffers, req } = this.build(0, type, 0n, { len: bytes.byteLength, writable: false, bytes: bytes.u8 });
    return this.post(0, buffers, req);
  }

  /** A chain of the caller's own buffers (hostile tests), with a request record for its status byte. */
  raw(buffers: readonly Buffer[], statusGpa: number, opts: { q?: number; indirect?: boolean; kick?: boolean } = {}): GuestRequest {
    return this.post(opts.q ?? 0, buffers, { queue: opts.q ?? 0, type: -1, statusGpa, dataGpa: 0, dataLen: 0, completions: 0, usedLen: -1 }, opts);
  }

  /** Waits for the device to go idle, then collects every published completion. */
  async settle(): Promise<GuestRequest[]> {
    await this.domain.device.idle();
    return this.collect();
  }

  /** Reads the used rings: each element must match one outstanding request, once. */
  collect(): GuestRequest[] {
    const out: GuestRequest[] = [];
    this.queues.forEach((dq, q) => {
      for (const e of dq.takeUsed()) {
        const key = `${q}:${e.id}`;
        const r = this.outstanding.get(key);
        if (r === undefined) {
          this.anomalies.push(`queue ${q}: used element for head ${e.id} that is not outstanding`);
          continue;
        }
        this.outstanding.delete(key);
        r.completions++;
        r.usedLen = e.len;
        out.push(r);
        this.completed.push(r);
      }
    });
    return out;
  }

  get pending(): number {
    return this.outstanding.size;
  }

  status(r: GuestRequest): number {
    return this.fake.read(r.statusGpa, 1)[0] ?? -1;
  }

  data(r: GuestRequest): Uint8Array {
    return this.fake.read(r.dataGpa, r.dataLen);
  }
}

/** Bytes whose content says where they belong: sector s, generation g (for checksummed checks). */
export function pattern(sector: number, count: number, gen: number): Uint8Array {
  const out = new Uint8Array(count * SECTOR);
  const dv = new DataView(out.buffer);
  // Test data, not a record: one hashed word per 4 bytes.
  for (let i = 0; i < out.byteLength; i += 4) dv.setUint32(i, Math.imul((sector * SECTOR + i) ^ (gen * 0x9e3779b1), 0x85ebca6b) >>> 0, true);
  return out;
}

/**
 * -1 when `a` and `b` hold the same bytes, else the first offset where they differ (the length
 * of the shorter one when only the lengths differ). Tests compare disks and buffers with this:
 * a deep equality over typed arrays costs tens of milliseconds per 8 KiB.
 */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))) return -1;
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
