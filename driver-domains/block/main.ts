// The block domain process: one guest's virtio-blk disk, served as its own OS process,
// spawned, supervised and restarted by microhv.
//
//   node dist/driver-domains/block/main.js --image PATH --slot N [--readonly] [--direct]
//        [--no-uring] [--queues N] [--queue-size N] [--serial TEXT]
//
// fd 3 is the control socket (control.proto). microhv says Hello (ROLE_BLOCK, one guest); the
// domain answers, then asks for what it serves the disk with, in this order:
//   GetStateRegion        the applied log and the device's registers, cursors and inflight
//                         slots (region.ts, persist.ts); a successor resumes from them
//   MapGuestMemory        the guest's RAM, each memfd mapped shared
//   (the image)           opened with UringBackend: the domain's own io_uring, restricted to
//                         the image, its completion eventfd on the reactor; FileBackend (libuv's
//                         thread pool) with --no-uring or when the kernel refuses a ring
//   GetMsixEventfds       one eventfd per MSI-X vector of its PCI function (`--slot`): a
//                         resuming device interrupts at once, so these come before it starts
//   GetIntxRequest        the function's INTx request page and eventfd (its pin, for a driver
//                         without MSI-X; the pci domain decides whether and where it is driven),
//                         whose command word gates the rings on the driver's Bus Master Enable
//   RegisterIoreqRange    its BAR as MMIO [0, BAR_SIZE): ioreqs carry offsets in the BAR
//   BindIoeventfd         one doorbell per queue, at its notify offset in the BAR
// then installs the sealed seccomp filter (with io_uring_enter on its own ring the only io_uring
// call left) and serves: ioreqs through the IoreqServer (the applied log answers a replayed slot),
// doorbells through transport.notify(q).
import * as sys from '../../microhv/sys/index.js';
import { adoptControl, type Connection } from '../../idl/control/channel.js';
import type { Frame } from '../../idl/control/framing.js';
import { Reactor } from '../../idl/control/reactor.js';
import {
  AddressSpace, ENVELOPE_BODY_SENDER, ErrorCode, Role,
  type EnvelopeBody, type EnvelopeBodyCase, type Hello,
} from '../../idl/generated/control.js';
import { IoreqServer, type IoreqHandler, type IoSpace } from '../../idl/ioreq/server.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import { SANDBOX_ENV } from '../../microhv/domains/sandbox-env.js';
import {
  CONTROL_FD, FENCE_FD, ackIn, checkInheritedFds, closeFds, endpointFds, enumName, explainFatal, getIntxRequest, hasFence, installStartFilter, mayMaster, requestReply, takeFd, type IntxRequest,
} from '../runtime/process-common.js';
import { DomainProcessError } from '../runtime/process-errors.js';
import { installFilter, sealedRules, uringRules } from '../runtime/seccomp.js';
import type { InterruptSink } from '../virtio/device.js';
import { GuestMemory, type GuestRegion } from '../virtio/memory.js';
import { BAR_SIZE } from '../virtio/pci.js';
import { USAGE, parseArgs, type Args } from './args.js';
import { BlockError } from './errors.js';
import { FileBackend, UringBackend, createBlockDomain, type BlockBackend, type BlockDomain } from './index.js';
import { BLOCK_REGION_BASE, RegionAppliedLog, regionBytes } from './region.js';
import { ensureThreadpool } from './threadpool.js';

const PROTOCOL_VERSION = 1;
/**
 * libuv pool threads: with FileBackend, concurrent preadv/pwritev/fdatasync calls (one more holds
 * the reactor's epoll_wait). With io_uring the pool only holds that wait; the size is kept so the
 * fallback keeps its concurrency.
 */
const THREADPOOL_SIZE = 16;
const PAGE = 4096;
/** sys.mmap maps at most this much at once (koffi's view limit); microhv splits larger RAM. */
const MAX_MAPPING = 2 ** 32;

/** Bodies microhv may send (the decoder already refused the others). */
type FromMicrohv = { [C in EnvelopeBodyCase]: (typeof ENVELOPE_BODY_SENDER)[C] extends 'domain' ? never : C }[EnvelopeBodyCase];
type Handler = (d: BlockProcess, f: Frame) => void;
type Phase = 'greeting' | 'starting' | 'serving' | 'sleeping' | 'closing';

/** Requests and notifications from microhv; replies to our own requests never reach this table. */
const HANDLERS = {
  hello: (d, f) => d.onHello(f),
  heartbeat: (d, f) => {
    if (f.body.case !== 'heartbeat') return;
    // Answered from the event loop, so a loop that is stuck shows up as a miss.
    d.conn.reply(f, { case: 'heartbeatReply', value: { seq: f.body.value.seq, inflight: d.inflight() } });
  },
  // The region was resumed from when it arrived; Restore and Activate only confirm it.
  restore: (d, f) => d.ack(f, ['starting', 'serving']),
  activate: (d, f) => d.ack(f, ['starting', 'serving']),
  sleep: (d, f) => d.sleep(f),
  wake: (d, f) => d.wake(f),
  snapshot: (d, f) => d.snapshot(f),
  shutdown: (d, f) => d.shutdown(f),
  resetDevice: (d, f) => d.resetDevice(f),
  ack: (d, f) => d.stray(f),
  error: (d, f) => {
    closeFds(f.fds);
    if (f.body.case === 'error') d.warn(`microhv sent an error that answers nothing of ours: ${enumName(ErrorCode, f.body.value.code)}: ${f.body.value.message}`);
  },
  mapGuestMemoryReply: (d, f) => d.stray(f),
  stateRegionReply: (d, f) => d.stray(f),
  ioreqRangeReply: (d, f) => d.stray(f),
  msiRouteReply: (d, f) => d.stray(f),
  evtchnBound: (d, f) => d.stray(f),
  irqLinesReply: (d, f) => d.stray(f),
  ioeventfdReply: (d, f) => d.stray(f),
  msixEventfdsReply: (d, f) => d.stray(f),
  intxRequestReply: (d, f) => d.stray(f),
} satisfies Record<FromMicrohv, Handler>;

/**
 * MSI-X vectors go to microhv's eventfds, the INTx request to its page (the pci domain routes
 * both: a vector to its KVM route or pending bit, the pin to its GSI or nowhere).
 */
export class FunctionInterrupts implements InterruptSink {
  /** Vectors past the eventfds microhv gave, and INTx assertions with no request page: signals with nowhere to go. */
  notDelivered = 0;
  private warned = false;

  constructor(private readonly eventfds: readonly number[], private readonly pin: IntxRequest | undefined, private readonly warn: (text: string) => void) {}

  msix(vector: number): void {
    const fd = this.eventfds[vector];
    if (fd === undefined) return this.drop(`MSI-X vector ${vector} (microhv gave ${this.eventfds.length})`);
    sys.eventfdWrite(fd, 1n);
  }

  intx(level: boolean): void {
    const pin = this.pin;
    // The transport states the line level at every start and reset (false); only an assertion
    // is a signal lost.
    if (pin === undefined) {
      if (level) this.drop('INTx (microhv gave no request page)');
      return;
    }
    // The word is the request; the eventfd only says to look. An unchanged level (each interrupt
    // while the ISR is already set) costs no wake-up.
    const want = level ? 1 : 0;
    if (Atomics.exchange(pin.word, 0, want) !== want) sys.eventfdWrite(pin.changed, 1n);
  }

  /**
   * Whether the driver lets the function master the bus, from the command word the pci domain
   * states on the same page. Without a page (a core that gave none) nothing can say, so it may.
   */
  busMaster(): boolean {
    return this.pin === undefined || mayMaster(Atomics.load(this.pin.command, 0));
  }

  private drop(what: string): void {
    this.notDelivered++;
    if (!this.warned) this.warn(`an interrupt was not delivered: ${what}; further ones are counted`);
    this.warned = true;
  }
}

class BlockProcess {
  readonly reactor = new Reactor();
  readonly conn: Connection;
  private phase: Phase = 'greeting';
  private generation = 0;
  private block: BlockDomain | undefined;
  private server: IoreqServer | undefined;
  private doorbells: number[] = [];
  private sink: FunctionInterrupts | undefined;
  private resourcesReady = false;
  private readonly waitKeys: Array<{ key: number; fd: number }> = [];
  private badIoreqs = 0;
  /** The ring's fd when the image is served through io_uring: the one the sealed filter leaves io_uring_enter to. */
  private ringFd: number | undefined;

  constructor(private readonly args: Args) {
    this.reactor.onHandlerError = (e) => this.fatal(e);
    this.conn = adoptControl(this.reactor, CONTROL_FD, {
      onFrame: (_c, f) => this.onFrame(f),
      onClose: (_c, err) => {
        // microhv is gone (or broke the protocol): without it there is nothing to serve.
        if (this.phase === 'closing') return;
        if (err !== null) this.fatal(err);
        else this.exit(0, 'control channel closed by microhv');
      },
    });
  }

  inflight(): number {
    return this.block?.device.inFlight ?? 0;
  }

  private onFrame(f: Frame): void {
    const handler: Handler = HANDLERS[f.body.case as FromMicrohv];
    if (this.phase === 'greeting' && f.body.case !== 'hello') {
      closeFds(f.fds);
      if (f.envelope.id !== 0) this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, `${f.body.case} before Hello`);
      return;
    }
    handler(this, f);
  }

  onHello(f: Frame): void {
    closeFds(f.fds);
    if (f.body.case !== 'hello') return;
    if (this.phase !== 'greeting') return this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, 'second Hello');
    const hello: Hello = f.body.value;
    if (hello.protocolVersion !== PROTOCOL_VERSION) {
      this.conn.replyError(f, ErrorCode.ERROR_CODE_VERSION_MISMATCH, `this domain speaks version ${PROTOCOL_VERSION}`);
      return this.exit(1, `microhv speaks protocol version ${hello.protocolVersion}`);
    }
    const guest = hello.guestIds[0];
    if (hello.role !== Role.ROLE_BLOCK || guest === undefined || hello.guestIds.length !== 1) {
      this.conn.replyError(f, ErrorCode.ERROR_CODE_INVALID_ARGUMENT, 'the block domain serves ROLE_BLOCK for one guest');
      return this.exit(1, `role ${enumName(Role, hello.role)}, guests [${hello.guestIds.join(', ')}]`);
    }
    this.generation = hello.generation;
    this.phase = 'starting';
    this.conn.reply(f, { case: 'helloReply', value: { protocolVersion: PROTOCOL_VERSION, pid: process.pid } });
    this.start(guest).catch((e: unknown) => this.fatal(e));
  }

  private async start(guest: number): Promise<void> {
    const a = this.args;
    const options = { numQueues: a.queues, queueSize: a.queueSize, readOnly: a.readOnly, serial: a.serial };
    const region = await this.stateRegion(regionBytes(options));
    const memory = await this.guestMemory(guest);
    const backend = await this.image();
    const msix = await this.msixEventfds(guest, a.queues + 1);
    const pin = await getIntxRequest(this.conn, guest, this.args.slot, (why) => this.warn(`no INTx request page (${why}): a driver without MSI-X gets no interrupt`));
    const sink = new FunctionInterrupts(msix, pin, (text) => this.warn(text));
    this.sink = sink;

    let block: BlockDomain;
    try {
      block = createBlockDomain({
        ...options, memory, region: region.bytes, regionBase: BLOCK_REGION_BASE, backend, interrupts: this.sink, busMaster: () => sink.busMaster(),
        msixVectors: a.queues + 1, log: (line) => this.warn(line),
      });
    } catch (e) {
      // A region made for another disk is STATE; options the image cannot take (too small for one block) are IMAGE.
      if (e instanceof BlockError && e.code === 'BAD_STATE') throw new DomainProcessError('STATE', 'the state region holds another disk', { cause: e });
      throw new DomainProcessError('IMAGE', a.image, { cause: e });
    }
    this.block = block;
    this.info(`${a.image} (${block.limits.capacity} sectors, ${a.queues} queue(s) of ${a.queueSize}${a.readOnly ? ', read-only' : ''}${a.direct ? ', O_DIRECT' : ''}, ${this.ringFd !== undefined ? 'io_uring' : 'thread pool'}) generation ${this.generation}: ${block.fresh ? 'fresh device' : `resumed device, status 0x${block.transport.status().toString(16)}`}${region.fresh === block.fresh ? '' : ` (microhv said the region was ${region.fresh ? '' : 'not '}fresh)`}`);

    const reply = await this.request({ case: 'registerIoreqRange', value: { guestId: guest, space: AddressSpace.ADDRESS_SPACE_MMIO, start: 0n, length: BigInt(BAR_SIZE), bufferedWrites: false } }, 'ioreqRangeReply');
    if (reply.body.case !== 'ioreqRangeReply') throw new DomainProcessError('PROTOCOL', 'unreachable');
    const fds = endpointFds(reply, reply.body.value);
    let log: RegionAppliedLog;
    try {
      log = new RegionAppliedLog(region.bytes, fds.vcpus);
    } catch (e) {
      throw new DomainProcessError('PROTOCOL', `ioreq endpoint for ${fds.vcpus} vCPUs`, { cause: e });
    }
    this.server = new IoreqServer(fds, this.barHandler(block), log);

    for (const [q, offset] of block.notifyOffsets.entries()) {
      const f = await this.request({ case: 'bindIoeventfd', value: { guestId: guest, space: AddressSpace.ADDRESS_SPACE_MMIO, addr: BigInt(offset), length: 2, datamatch: false, datamatchValue: 0n, unbind: false } }, 'ioeventfdReply');
      if (f.body.case !== 'ioeventfdReply') throw new DomainProcessError('PROTOCOL', 'unreachable');
      this.doorbells[q] = takeFd(f, f.body.value.eventfd?.index, `doorbell eventfd of queue ${q}`);
    }

    this.resourcesReady = true;
    // Every fd this domain will use is open (the image and its ring included): from here on it
    // makes no new file, path, socket or ring.
    try {
      installFilter([...sealedRules(), ...uringRules(this.ringFd)]);
    } catch (e) {
      throw new DomainProcessError('SANDBOX', 'sealed seccomp filter', { cause: e });
    }
    // Sleep (Wake starts serving then) or Shutdown may have arrived meanwhile.
    if (this.phase === 'starting') this.startServing();
  }

  /**
   * The image through the domain's io_uring (its eventfd on the reactor), made before the sealed
   * filter; through libuv's thread pool with --no-uring, or when the kernel refuses a ring
   * (ENOSYS, EPERM: said once here).
   */
  private async image(): Promise<BlockBackend> {
    const a = this.args;
    const o = { readOnly: a.readOnly, direct: a.direct };
    try {
      if (a.uring) {
        try {
          const watch = (fd: number, ready: () => void): (() => void) => {
            const key = this.reactor.add(fd, sys.consts.EPOLLIN, ready);
            return () => this.reactor.remove(key, fd);
          };
          // The ring holds the I/O fence: microhv starts no successor while a read of ours may still land in guest RAM.
          const b = await UringBackend.open(a.image, { ...o, watch, ring: { warn: (text) => this.warn(text), holds: hasFence() ? [FENCE_FD] : [] } });
          this.ringFd = b.ring.fd;
          return b;
        } catch (e) {
          // An image that cannot be opened is a BlockError and fatal below; a ring the kernel refuses is not.
          if (!(e instanceof sys.SysError)) throw e;
          this.warn(`no io_uring (${e.message}): the image is served through libuv's thread pool`);
        }
      }
      return await FileBackend.open(a.image, o);
    } catch (e) {
      throw new DomainProcessError('IMAGE', a.image, { cause: e });
    }
  }

  /** GetStateRegion, mapped shared; it must hold the applied log and this disk's layout. */
  private async stateRegion(need: number): Promise<{ bytes: SharedBytes; fresh: boolean }> {
    const f = await this.request({ case: 'getStateRegion', value: {} }, 'stateRegionReply');
    if (f.body.case !== 'stateRegionReply') throw new DomainProcessError('PROTOCOL', 'unreachable');
    const memfd = takeFd(f, f.body.value.memfd?.index, 'state region memfd');
    const size = f.body.value.size;
    try {
      if (size < BigInt(need)) {
        throw new DomainProcessError('STATE', `state region of ${size} bytes is too small: this disk needs ${need} (applied log and ${this.args.queues} queue(s) of ${this.args.queueSize})`);
      }
      // Only what is used is mapped: a region larger than 4 GiB is not refused for its size.
      return { bytes: new SharedBytes(sys.mmap(need, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, memfd, 0).buffer), fresh: f.body.value.fresh };
    } catch (e) {
      if (e instanceof DomainProcessError) throw e;
      throw new DomainProcessError('STATE', `mmap of the ${size}-byte state region`, { cause: e });
    } finally {
      // The mapping keeps the memory; the fd itself is not needed again.
      sys.close(memfd);
    }
  }

  /** MapGuestMemory: every region mapped shared, then the memfds closed. */
  private async guestMemory(guest: number): Promise<GuestMemory> {
    const f = await this.request({ case: 'mapGuestMemory', value: { guestId: guest } }, 'mapGuestMemoryReply');
    if (f.body.case !== 'mapGuestMemoryReply') throw new DomainProcessError('PROTOCOL', 'unreachable');
    const regions: GuestRegion[] = [];
    try {
      if (f.body.value.guestId !== guest || f.body.value.regions.length === 0) throw new DomainProcessError('PROTOCOL', `guest memory reply for guest ${f.body.value.guestId} with ${f.body.value.regions.length} regions`);
      for (const r of f.body.value.regions) {
        const fd = r.memfd === undefined ? undefined : f.fds[r.memfd.index];
        const { gpa, size, offset } = r;
        const aligned = (v: bigint): boolean => v % BigInt(PAGE) === 0n;
        if (fd === undefined) throw new DomainProcessError('PROTOCOL', `guest memory region at 0x${gpa.toString(16)} without its memfd`);
        if (size === 0n || size > BigInt(MAX_MAPPING) || !aligned(gpa) || !aligned(size) || !aligned(offset) || gpa + size > BigInt(Number.MAX_SAFE_INTEGER)) {
          throw new DomainProcessError('PROTOCOL', `guest memory region gpa 0x${gpa.toString(16)} size 0x${size.toString(16)} offset 0x${offset.toString(16)}`);
        }
        let bytes: Uint8Array;
        try {
          bytes = new Uint8Array(sys.mmap(Number(size), sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, fd, offset).buffer);
        } catch (e) {
          throw new DomainProcessError('PROTOCOL', `mmap of guest memory at 0x${gpa.toString(16)}`, { cause: e });
        }
        regions.push({ gpa: Number(gpa), bytes, hostAlign: PAGE });
      }
    } finally {
      // The mappings keep the memory; the memfds are not needed again (one may back several regions).
      closeFds([...new Set(f.fds)]);
    }
    try {
      return new GuestMemory(regions);
    } catch (e) {
      throw new DomainProcessError('PROTOCOL', 'guest memory regions', { cause: e });
    }
  }

  /** GetMsixEventfds for this function: one per vector; fewer than `want` leaves the rest counted, never thrown. */
  private async msixEventfds(guest: number, want: number): Promise<number[]> {
    const f = await this.request({ case: 'getMsixEventfds', value: { guestId: guest, slot: this.args.slot } }, 'msixEventfdsReply');
    if (f.body.case !== 'msixEventfdsReply') throw new DomainProcessError('PROTOCOL', 'unreachable');
    const out: number[] = [];
    for (const [v, ref] of f.body.value.eventfds.entries()) {
      const fd = f.fds[ref.index];
      if (fd === undefined || out.includes(fd)) {
        closeFds(f.fds);
        throw new DomainProcessError('PROTOCOL', `MSI-X eventfd of vector ${v} missing from the reply`);
      }
      out.push(fd);
    }
    for (const fd of f.fds) if (!out.includes(fd)) closeFds([fd]);
    if (out.length < want) this.warn(`microhv gave ${out.length} MSI-X eventfds for ${want} vectors: signals on the others are counted, not sent`);
    return out;
  }

  /** Ioreqs on the BAR: microhv sends offsets from the BAR's base, wherever the pci domain placed it. */
  private barHandler(block: BlockDomain): IoreqHandler {
    // A core defect, not guest input: the range was registered as MMIO [0, BAR_SIZE).
    const inBar = (space: IoSpace, addr: number, size: number): boolean => {
      if (space === 'mmio' && addr >= 0 && addr + size <= BAR_SIZE) return true;
      if (this.badIoreqs++ === 0) this.warn(`ioreq outside the BAR: ${space} 0x${addr.toString(16)}/${size}; further ones are counted`);
      return false;
    };
    return {
      read: (space, addr, size) => (inBar(space, addr, size) ? block.transport.read(addr, size) : 0n),
      write: (space, addr, size, data) => {
        if (inBar(space, addr, size)) block.transport.write(addr, size, data);
      },
    };
  }

  private startServing(): void {
    const server = this.server;
    const block = this.block;
    if (server === undefined || block === undefined) return;
    this.phase = 'serving';
    const serve = (): void => void server.serve();
    for (const fd of server.waitFds()) this.waitKeys.push({ key: this.reactor.add(fd, sys.consts.EPOLLIN, serve), fd });
    for (const [q, fd] of this.doorbells.entries()) {
      const ring = (): void => {
        // Drained before the queue is looked at: a ring after this read wakes us again.
        sys.eventfdTryRead(fd);
        block.transport.notify(q);
      };
      this.waitKeys.push({ key: this.reactor.add(fd, sys.consts.EPOLLIN, ring), fd });
    }
    // Work that waited while no instance served: parked slots now; doorbells rung meanwhile
    // are still counted in their eventfds, so the reactor reports them next.
    serve();
  }

  private stopServing(): void {
    for (const { key, fd } of this.waitKeys.splice(0)) this.reactor.remove(key, fd);
  }

  private request(body: EnvelopeBody, expect: EnvelopeBodyCase): Promise<Frame> {
    return requestReply(this.conn, body, expect);
  }

  ack(f: Frame, phases: readonly Phase[]): void {
    ackIn(this.conn, f, this.phase, phases);
  }

  sleep(f: Frame): void {
    closeFds(f.fds);
    // Also while starting: microhv may ask as soon as it answered the last request.
    if (this.phase !== 'serving' && this.phase !== 'starting') return this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, `sleep while ${this.phase}`);
    // New ioreqs and doorbells stay parked in their slots and eventfds; requests already taken finish first.
    this.stopServing();
    this.phase = 'sleeping';
    const idle = this.block?.device.idle() ?? Promise.resolve();
    idle.then(() => {
      if (!this.conn.closed) this.conn.reply(f, { case: 'ack', value: {} });
    }, (e: unknown) => this.fatal(e));
  }

  wake(f: Frame): void {
    closeFds(f.fds);
    if (this.phase !== 'sleeping') return this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, `wake while ${this.phase}`);
    this.conn.reply(f, { case: 'ack', value: {} });
    // Still acquiring its resources: start() begins serving when it is done.
    if (this.resourcesReady) this.startServing();
    else this.phase = 'starting';
  }

  /** The region is written in place as the device runs: a snapshot has nothing to add, and keeps no counter. */
  snapshot(f: Frame): void {
    closeFds(f.fds);
    if (this.phase !== 'sleeping' || !this.resourcesReady) return this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, `snapshot while ${this.phase}`);
    const a = this.args;
    this.conn.reply(f, { case: 'snapshotReply', value: { stateBytes: BigInt(regionBytes({ numQueues: a.queues, queueSize: a.queueSize })), snapshotSeq: 0n } });
  }

  /**
   * Platform reset (control.proto ResetDevice): the device resets as after the driver's write of
   * 0 to device_status; requests in flight drain first (their completions are dropped), then Ack.
   */
  resetDevice(f: Frame): void {
    closeFds(f.fds);
    const block = this.block;
    // Until its resources are in place the instance has nothing to reset; microhv asks again.
    if (block === undefined || !this.resourcesReady) return this.conn.replyError(f, ErrorCode.ERROR_CODE_BAD_STATE, `reset while ${this.phase}`);
    block.transport.platformReset();
    const drained = async (): Promise<void> => {
      while (block.transport.resetting) {
        await block.device.idle();
        // The reset finishes in the completion that made the device idle; look again after it.
        await new Promise((r) => setImmediate(r));
      }
    };
    drained().then(() => {
      this.info('platform reset');
      if (!this.conn.closed) this.conn.reply(f, { case: 'ack', value: {} });
    }, (e: unknown) => this.fatal(e));
  }

  shutdown(f: Frame): void {
    closeFds(f.fds);
    this.stopServing();
    // Nothing to commit: the region is current after every step; requests in flight are
    // resubmitted by a successor (or die with the guest).
    this.phase = 'closing';
    this.conn.reply(f, { case: 'ack', value: {} });
    this.exit(0, `shutdown with ${this.inflight()} request(s) in flight`);
  }

  stray(f: Frame): void {
    closeFds(f.fds);
    this.warn(`ignored ${f.body.case} that answers nothing of ours`);
  }

  info(text: string): void {
    process.stderr.write(`block[${process.pid}]: ${text}\n`);
  }

  warn(text: string): void {
    process.stderr.write(`block[${process.pid}] warning: ${text}\n`);
  }

  fatal(e: unknown): void {
    // The cause chain, without stacks: what went wrong, for microhv's log.
    const { status, text } = explainFatal(e);
    this.exit(status, text);
  }

  exit(status: number, why: string): void {
    if (status !== 0 || this.phase === 'closing') this.info(`exiting (${status}): ${why}`);
    this.phase = 'closing';
    // process.exit joins libuv's pool threads, and one of them may be blocked in the reactor's
    // epoll_wait (a koffi async call) forever: stop() wakes it synchronously before the exit.
    this.reactor.stop().catch(() => undefined);
    // A reply just queued (Ack, Error) is sent by sendmsg synchronously; nothing else needs draining.
    process.exit(status);
  }
}

function main(): void {
  let args: Args | 'help';
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`block: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  // Before the start filter (which refuses execve) and before any work: may exec this program again.
  const pool = ensureThreadpool(THREADPOOL_SIZE, FENCE_FD);
  // io_uring stays allowed until the sealed filter, which leaves only io_uring_enter on the domain's own ring.
  const seccomp = installStartFilter('block', { ioUring: args.uring });
  const domain = new BlockProcess(args);
  process.on('uncaughtException', (e) => domain.fatal(e));
  process.on('unhandledRejection', (e) => domain.fatal(e));
  if (pool !== 'set') domain.warn(`libuv thread pool left at its default size: ${pool.failed}`);
  const sandbox = process.env[SANDBOX_ENV];
  domain.info(`sandbox: ${sandbox === undefined ? 'not started by microhv\'s sandbox' : `namespaces ${sandbox}`}; seccomp ${seccomp ? 'on' : 'NOT available (no seccomp in this kernel)'}`);
  // After fd 3 is adopted: nothing else we inherited stays open.
  checkInheritedFds(sandbox !== undefined, domain);
}

main();
