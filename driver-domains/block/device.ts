// The virtio-blk device model (virtio 1.2, 5.2): takes chains from its queues, parses them,
// runs them on the backend with many in flight, and publishes completions in batches through
// the inflight protocol (inflight.ts), whose state lives in the state region.
//
// Single-threaded: every entry point (notify, an I/O completion, a batch publication) runs to
// its end before the next. Guest mistakes become a status and a counter, or NEEDS_RESET; they
// never throw out of here.
import { SharedBytes } from '../../idl/runtime/shared.js';
import type { DeviceRun, VirtioDevice, VirtioHost } from '../virtio/device.js';
import { bit } from '../virtio/device.js';
import type { FaultCounters } from '../virtio/errors.js';
import type { GuestMemory } from '../virtio/memory.js';
import type { BlockBackend, SpaceOutcome } from './backend.js';
import { CONFIG_LENGTH, VIRTIO_BLK_F, VIRTIO_ID_BLOCK, WRITEBACK_OFFSET, composeConfig, type BlockLimits } from './config.js';
import { InflightQueue, type Done, type FaultHook, type FaultPoint } from './inflight.js';
import type { BlockState } from './persist.js';
import { VIRTIO_BLK_S, parseRequest, type BlockRequest, type ParseContext } from './request.js';

/** Thrown by a fault hook to model kill -9 at that point: the device stops dead, as a process would. */
export class DomainKilled extends Error {
  override readonly name = 'DomainKilled';
}

export interface BlockDeviceOptions {
  readonly limits: BlockLimits;
  readonly state: BlockState;
  readonly backend: BlockBackend;
  readonly memory: GuestMemory;
  /** Guest faults (shared with the transport) and backend events. */
  readonly counters: FaultCounters;
  readonly events: FaultCounters;
  readonly faultHook?: FaultHook;
  /** Runs a batch publication after the completions of this turn (default setImmediate). */
  readonly defer?: (fn: () => void) => void;
  /**
   * Whether the function may master the bus now: the driver's Bus Master Enable, as the pci domain
   * states it (control.proto, "INTx"). While it may not, no request is taken from a ring (requests
   * already taken complete). Default: always.
   */
  readonly busMaster?: () => boolean;
  /** Runs `fn` once more later while requests wait for Bus Master Enable (default: after 10 ms). */
  readonly retry?: (fn: () => void) => void;
}

interface QueueRun {
  readonly q: number;
  readonly iq: InflightQueue;
  readonly vq: NonNullable<DeviceRun['queues'][number]>;
  inflight: number;
  readonly pending: Done[];
  publishing: boolean;
}

interface Run {
  readonly host: VirtioHost;
  readonly features: bigint;
  readonly ctx: ParseContext;
  readonly queues: (QueueRun | undefined)[];
}

export class BlockDevice implements VirtioDevice {
  readonly virtioId = VIRTIO_ID_BLOCK;
  readonly configLength = CONFIG_LENGTH;
  private readonly cfg = new SharedBytes(new ArrayBuffer(CONFIG_LENGTH));
  private run: Run | undefined;
  private inflight = 0;
  private resetDone: (() => void) | undefined;
  private stopped = false;
  private dead = false;
  /** A look at the rings is scheduled for when Bus Master Enable may be set. */
  private busMasterRetry = false;
  private waiters: (() => void)[] = [];
  private readonly defer: (fn: () => void) => void;

  constructor(private readonly o: BlockDeviceOptions) {
    this.defer = o.defer ?? ((fn) => void setImmediate(fn));
  }

  get numQueues(): number {
    return this.o.limits.numQueues;
  }

  get maxQueueSize(): number {
    return this.o.limits.queueSize;
  }

  get features(): bigint {
    return this.o.limits.features;
  }

  /** Requests taken and not yet completed. */
  get inFlight(): number {
    return this.inflight;
  }

  /** True once a fault hook killed this instance (tests: its successor takes over). */
  get killed(): boolean {
    return this.dead;
  }

  readConfig(offset: number, size: number): bigint {
    composeConfig(this.o.limits, this.o.state.writeback(), this.cfg);
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.cfg.u8[offset + i] ?? 0);
    return v;
  }

  writeConfig(offset: number, size: number, value: bigint, features: bigint): void {
    // GUEST-INPUT: only `writeback`, one byte, and only with VIRTIO_BLK_F_CONFIG_WCE (5.2.5).
    if (offset === WRITEBACK_OFFSET && size === 1 && (features & bit(VIRTIO_BLK_F.CONFIG_WCE)) !== 0n) {
      this.o.state.setWriteback(value === 0n ? 0 : 1);
      return;
    }
    this.o.counters.bump('read_only_write', `device config 0x${offset.toString(16)}`);
  }

  acceptFeatures(features: bigint): boolean {
    // virtio 1.2, 5.2.5.1: CONFIG_WCE without FLUSH starts in writethrough.
    if ((features & bit(VIRTIO_BLK_F.CONFIG_WCE)) !== 0n && (features & bit(VIRTIO_BLK_F.FLUSH)) === 0n) this.o.state.setWriteback(0);
    return true;
  }

  start(run: DeviceRun): void {
    const l = this.o.limits;
    const ctx: ParseContext = {
      limits: l,
      discard: (run.features & bit(VIRTIO_BLK_F.DISCARD)) !== 0n,
      writeZeroes: (run.features & bit(VIRTIO_BLK_F.WRITE_ZEROES)) !== 0n,
      hostAligned: (gpa) => this.o.memory.hostAligned(gpa, l.ioAlign),
    };
    const queues = run.queues.map((vq, q) => (vq === undefined ? undefined : { q, vq, iq: new InflightQueue(this.o.state, q, vq, this.o.faultHook), inflight: 0, pending: [], publishing: false }));
    this.run = { host: run.host, features: run.features, ctx, queues };
    this.stopped = false;
    this.guard(() => {
      for (const qr of queues) {
        if (qr === undefined || !run.resuming) continue;
        // A successor: finish or repair a half-published batch, resubmit what was in flight,
        // and interrupt once, since the predecessor may have died before its interrupt.
        const { resubmit } = qr.iq.recover();
        for (const head of resubmit) this.submit(qr, head);
        run.host.interruptQueue(qr.q);
      }
      for (const qr of queues) if (qr !== undefined) this.service(qr);
    });
  }

  notify(queue: number): void {
    const qr = this.run?.queues[queue];
    if (qr !== undefined) this.guard(() => this.service(qr));
  }

  reset(done: () => void): void {
    this.resetDone = done;
    this.run = undefined;
    if (this.inflight === 0) this.finishReset();
  }

  private finishReset(): void {
    for (let q = 0; q < this.o.limits.numQueues; q++) this.o.state.clearQueue(q);
    this.o.state.setWriteback(1);
    this.stopped = false;
    const done = this.resetDone;
    this.resetDone = undefined;
    done?.();
    this.wake();
  }

  /** Resolves once nothing is in flight or waiting to be published. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.dead || (this.inflight === 0 && (this.run?.queues.every((qr) => qr === undefined || (qr.pending.length === 0 && !qr.publishing)) ?? true));
  }

  private wake(): void {
    if (!this.isIdle()) return;
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  /** Runs an entry point; a fault hook's DomainKilled stops this instance for good. */
  private guard(fn: () => void): void {
    if (this.dead) return;
    try {
      fn();
    } catch (err) {
      if (!(err instanceof DomainKilled)) throw err;
      this.dead = true;
      this.wake();
    }
  }

  private point(p: FaultPoint, q: number): void {
    this.o.faultHook?.(p, q);
  }

  private fault(cause: string, detail: string): void {
    this.stopped = true;
    this.run?.host.needsReset(cause, detail);
  }

  /** Takes chains from the available ring until it is empty or the queue depth is reached. */
  private service(qr: QueueRun): void {
    const size = qr.vq.size;
    while (!this.stopped && this.run?.queues[qr.q] === qr && qr.inflight < this.o.limits.queueDepth) {
      const fetched = qr.iq.fetched;
      let avail = qr.vq.availIdx();
      if (((avail - fetched) & 0xffff) === 0) avail = qr.vq.armNotify(fetched);
      // GUEST-INPUT: the driver cannot have more than `size` chains out (avail - used <= size).
      if (((avail - qr.iq.used) & 0xffff) > size) return this.fault('avail_idx_jump', `queue ${qr.q}: avail ${avail}, used ${qr.iq.used & 0xffff}`);
      if (((avail - fetched) & 0xffff) === 0) return;
      if (this.o.busMaster?.() === false) return this.waitForBusMaster(qr.q);
      const head = qr.vq.headAt(fetched);
      // GUEST-INPUT: the head indexes the slot table, so it is checked before the walk does.
      if (head >= size) return this.fault('head_out_of_range', `queue ${qr.q}: head ${head}`);
      const taken = qr.iq.take(head);
      if (taken !== undefined) return this.fault(taken, `queue ${qr.q}: head ${head}`);
      this.point('fetched', qr.q);
      this.submit(qr, head);
    }
  }

  /** A request waits in a ring while the function may not master the bus: every queue is looked at again shortly. */
  private waitForBusMaster(q: number): void {
    if (this.busMasterRetry) return;
    this.busMasterRetry = true;
    this.o.events.bump('bus_master_off', `queue ${q}: requests wait until the driver sets Bus Master Enable`);
    (this.o.retry ?? ((fn) => setTimeout(fn, 10)))(() => {
      this.busMasterRetry = false;
      this.guard(() => { for (const qr of this.run?.queues ?? []) if (qr !== undefined) this.service(qr); });
    });
  }

  /** Walks, parses and starts the chain at `head` (its slot is already INFLIGHT). */
  private submit(qr: QueueRun, head: number): void {
    const run = this.run;
    if (run === undefined) return;
    const chain = qr.vq.walk(head);
    if (typeof chain === 'string') return this.fault(chain, `queue ${qr.q}: head ${head}`);
    const req = parseRequest(chain, run.ctx);
    if (req === undefined) return this.fault('no_status', `queue ${qr.q}: head ${head}`);
    if (req.kind === 'fail') this.o.counters.bump(req.fault, `queue ${qr.q}: head ${head}`);
    qr.inflight++;
    this.inflight++;
    const io = this.io(req, run.features);
    this.point('submitted', qr.q);
    void io.then((status) => this.guard(() => this.complete(qr, head, req, status)));
  }

  private writethrough(features: bigint): boolean {
    // virtio 1.2, 5.2.6.2: without FLUSH negotiated, or with writeback 0, a completed write is stable.
    return (features & bit(VIRTIO_BLK_F.FLUSH)) === 0n || this.o.state.writeback() === 0;
  }

  /** Runs a request on the backend; resolves to its status byte. */
  private async io(req: BlockRequest, features: bigint): Promise<number> {
    const b = this.o.backend;
    try {
      switch (req.kind) {
        case 'read':
          await b.read(req.offset, req.iov, req.aligned);
          break;
        case 'write':
          await b.write(req.offset, req.iov, req.aligned);
          if (this.writethrough(features)) await b.flush();
          break;
        case 'flush':
          // fdatasync covers every write that completed before it was called (5.2.6.2, case 3).
          await b.flush();
          break;
        case 'get_id': {
          let at = 0;
          for (const v of req.iov) {
            v.set(this.o.limits.serial.subarray(at, at + v.byteLength));
            at += v.byteLength;
          }
          break;
        }
        case 'discard':
          for (const r of req.ranges) this.count(await b.discard(r.offset, r.length));
          break;
        case 'write_zeroes':
          for (const r of req.ranges) this.count(await b.writeZeroes(r.offset, r.length, r.unmap));
          if (this.writethrough(features)) await b.flush();
          break;
        case 'fail':
          return req.code;
        default: {
          const never: never = req;
          throw new Error(`unknown request ${JSON.stringify(never)}`);
        }
      }
      return VIRTIO_BLK_S.OK;
    } catch (err) {
      this.o.events.bump('io_error', err instanceof Error ? err.message : String(err));
      return VIRTIO_BLK_S.IOERR;
    }
  }

  private count(outcome: SpaceOutcome): void {
    if (outcome === 'ignored') this.o.events.bump('discard_ignored');
    else if (outcome === 'zeroes_written') this.o.events.bump('zeroes_written');
  }

  private complete(qr: QueueRun, head: number, req: BlockRequest, status: number): void {
    qr.inflight--;
    this.inflight--;
    if (this.resetDone !== undefined) {
      // A reset is draining: the driver no longer expects this completion.
      if (this.inflight === 0) this.finishReset();
      return;
    }
    // The status byte goes to guest memory before the element that publishes it (2.7.8.2).
    req.status[0] = status;
    this.point('completed', qr.q);
    qr.pending.push({ head, len: req.usedLen });
    if (!qr.publishing) {
      qr.publishing = true;
      this.defer(() => this.guard(() => this.publish(qr)));
    }
    this.service(qr);
  }

  private publish(qr: QueueRun): void {
    qr.publishing = false;
    const run = this.run;
    // After a reset the pending completions belong to a driver that is gone.
    if (run === undefined || run.queues[qr.q] !== qr) return;
    const batch = qr.pending.splice(0);
    if (qr.iq.publish(batch)) run.host.interruptQueue(qr.q);
    this.wake();
  }
}
