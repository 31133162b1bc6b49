// One stub domain at run time: its module, its state region, the ioreq
// servers of its endpoints and (console) where its output goes. Everything a
// successor needs is committed to the state region before it becomes visible
// outside: before a slot goes RESP_READY (AppliedLog.record), after each
// posted write (recordPosted), before drained console bytes are written out
// (the outbox), and after input or a platform event changed the module.
// The control channel is main.ts's business; this file never talks to microhv.
import { fstatSync } from 'node:fs';
import { IoreqServer, type AppliedLog, type IoreqEndpointFds } from '../../idl/ioreq/server.js';
import { PlatformEvent, type StubExportsByKind, type StubKind } from './abi.js';
import type { ConsoleLog, ConsoleSocket } from './console-io.js';
import { DomainProcessError } from './process-errors.js';
import { MAX_ENDPOINTS, MAX_VCPUS, StateRegion, type EndpointImage, type Image } from './persist.js';
import { StubDevice, type StubHost } from './stub-device.js';

/** The applied log of one endpoint, kept in the state region image and committed on every record. */
class RegionAppliedLog implements AppliedLog {
  constructor(private readonly ep: EndpointImage, private readonly commit: () => void) {}
  last(vcpu: number): { seq: bigint; data: bigint } {
    return this.ep.applied[vcpu] ?? { seq: 0n, data: 0n };
  }
  record(vcpu: number, seq: bigint, data: bigint): void {
    this.ep.applied[vcpu] = { seq, data };
    this.commit();
  }
  ringConsumed(): number | undefined {
    return this.ep.consumed;
  }
  recordPosted(consumed: number): void {
    this.ep.consumed = consumed;
    this.commit();
  }
}

export interface RuntimeCounters { commits: number; served: number; tx_bytes: number; rx_bytes: number; platform_events: number; lines_not_delivered: number; msis_not_delivered: number; resets: number }

export class StubRuntime<K extends StubKind> {
  readonly counters: RuntimeCounters = { commits: 0, served: 0, tx_bytes: 0, rx_bytes: 0, platform_events: 0, lines_not_delivered: 0, msis_not_delivered: 0, resets: 0 };
  readonly servers: IoreqServer[] = [];
  private readonly endpointInodes: string[] = [];
  private log: ConsoleLog | undefined;
  private socket: ConsoleSocket | undefined;
  /**
   * Asked after each synchronous ioreq: true holds its answer until the next serve() (the pci
   * domain, until microhv has moved a BAR or a route the ioreq changed). IoreqServer's `hold`.
   */
  holdAnswer: () => boolean = () => false;
  /** Called with each platform event before it is cleared in the module (at-least-once). */
  onPlatformEvent: (e: PlatformEvent) => void = () => undefined;

  private constructor(readonly kind: K, readonly device: StubDevice<K>, private readonly region: StateRegion, private readonly image: Image, readonly restored: boolean) {}

  /**
   * Loads the module at `wasmPath` and restores it from `regionBytes`, or powers it on when the
   * region was never committed (a fresh region, or a predecessor that died before its first
   * commit, so no guest-visible effect of it exists). `beforeInit` runs only on power-on, just
   * before init(): the pci device table is staged there, and a restored window already holds it.
   */
  static open<K extends StubKind>(
    kind: K, wasmPath: string, regionBytes: Uint8Array, fresh: boolean, host: StubHost,
    beforeInit?: (exports: StubExportsByKind[K]) => void,
  ): StubRuntime<K> {
    let region: StateRegion;
    let loaded: Image | 'empty';
    try {
      region = new StateRegion(regionBytes);
      loaded = region.load(kind);
    } catch (e) {
      throw new DomainProcessError('STATE', 'state region unusable', { cause: e });
    }
    if (fresh && loaded !== 'empty') throw new DomainProcessError('STATE', 'microhv says the region is fresh but it holds a commit');
    const device = StubDevice.instantiate(kind, wasmPath, host);
    const window = device.stateWindow();
    if (loaded === 'empty') {
      beforeInit?.(device.exports);
      device.exports.init();
      const image: Image = { kind, window, logOffset: undefined, outbox: undefined, endpoints: [] };
      const rt = new StubRuntime(kind, device, region, image, false);
      rt.commit();
      return rt;
    }
    if (loaded.window.byteLength !== window.byteLength) {
      throw new DomainProcessError('STATE', `saved state window of ${loaded.window.byteLength} bytes, the module's is ${window.byteLength}`);
    }
    window.set(loaded.window);
    // ABI.md restart step 3: refuse a window the module does not recognise; never init() instead.
    if (device.exports.state_valid() !== 1) throw new DomainProcessError('STATE', `${kind}: restored state window is not valid`);
    return new StubRuntime(kind, device, region, { ...loaded, window }, true);
  }

  get generation(): bigint {
    return this.region.committed;
  }

  /** Commits the whole image (module window, applied logs, outbox) as one generation. */
  commit(): void {
    this.region.commit(this.image);
    this.counters.commits++;
  }

  /**
   * Serves an endpoint. The same endpoint registered twice (microhv may share one among ranges)
   * gets one server; endpoints are numbered in registration order, which every instance repeats.
   */
  addEndpoint(fds: IoreqEndpointFds): { server: IoreqServer; duplicate: boolean } {
    const inode = inodeOf(fds.slots);
    const seen = this.endpointInodes.indexOf(inode);
    if (seen >= 0) return { server: this.servers[seen]!, duplicate: true };
    const index = this.servers.length;
    if (index >= MAX_ENDPOINTS) throw new DomainProcessError('PROTOCOL', `more than ${MAX_ENDPOINTS} ioreq endpoints`);
    if (fds.vcpus > MAX_VCPUS) throw new DomainProcessError('PROTOCOL', `${fds.vcpus} vCPUs, the state region records at most ${MAX_VCPUS}`);
    const ep = this.image.endpoints[index] ?? { consumed: undefined, applied: [] };
    this.image.endpoints[index] = ep;
    while (ep.applied.length < fds.vcpus) ep.applied.push({ seq: 0n, data: 0n });
    const server = new IoreqServer(fds, this.device, new RegionAppliedLog(ep, () => this.commit()), () => this.holdAnswer());
    this.servers.push(server);
    this.endpointInodes.push(inode);
    return { server, duplicate: false };
  }

  /**
   * Console output to a log file. A successor first replays the outbox its predecessor committed
   * and may not have written; a fresh log position is the file's end.
   */
  attachLog(log: ConsoleLog): void {
    this.log = log;
    if (this.image.outbox !== undefined) log.writeAt(this.image.outbox.bytes, this.image.outbox.offset);
    this.image.outbox = undefined;
    if (this.image.logOffset === undefined) {
      this.image.logOffset = log.size();
      this.commit();
    }
  }

  attachSocket(socket: ConsoleSocket): void {
    this.socket = socket;
  }

  /** Does all pending work of every endpoint, then moves console output and input. */
  serve(): number {
    let n = 0;
    for (const s of this.servers) n += s.serve();
    this.counters.served += n;
    if (this.kind === 'console') this.afterConsoleWork();
    return n;
  }

  /**
   * Platform reset: posted writes still on the rings are applied first (they came before it), then
   * the module's reset() and the console's usual output step (reset may lower its pins), one commit.
   */
  reset(): void {
    this.serve();
    this.device.exports.reset();
    this.counters.resets++;
    if (this.kind === 'console') this.afterConsoleWork();
    this.commit();
  }

  /** Offers typed input to the UART and moves its output (also called when input arrives between ioreqs). */
  pumpInput(): void {
    if (this.kind === 'console') this.afterConsoleWork();
  }

  private afterConsoleWork(): void {
    const ex = (this.device as StubDevice<'console'>).exports;
    let taken = 0;
    if (this.socket !== undefined) {
      // A full receive FIFO (or loopback) refuses a byte; it is offered again after the next ioreq.
      for (let b = this.socket.peekInput(); b !== undefined && ex.rx(b) !== 0; b = this.socket.peekInput()) {
        this.socket.takeInput();
        taken++;
      }
      this.counters.rx_bytes += taken;
    }
    let committed = false;
    const n = ex.tx_drain();
    if (n > 0) {
      const bytes = new Uint8Array(ex.memory.buffer, ex.tx_buf(), n).slice();
      this.counters.tx_bytes += n;
      if (this.log !== undefined && this.image.logOffset !== undefined) {
        const offset = this.image.logOffset;
        this.image.outbox = { offset, bytes };
        this.image.logOffset = offset + BigInt(n);
        // The drained bytes left the module's window; this commit puts them in the outbox in the same step.
        this.commit();
        committed = true;
        this.log.writeAt(bytes, offset);
        // Cleared in memory only: the next commit records it. A successor that still finds the
        // outbox writes the same bytes at the same offset again, which changes nothing.
        this.image.outbox = undefined;
      } else {
        this.commit();
        committed = true;
      }
      this.socket?.broadcast(bytes);
    }
    const event = ex.platform_event() as PlatformEvent;
    if (event !== PlatformEvent.None) {
      this.counters.platform_events++;
      // Reported before it is cleared and committed: a domain killed in between reports it again.
      this.onPlatformEvent(event);
      ex.platform_event_clear();
      this.commit();
      committed = true;
    }
    // Accepted input changed the UART (its FIFO, maybe its interrupt line): keep it across a restart.
    if (taken > 0 && !committed) this.commit();
  }
}

/** Identity of the memory behind an fd: the same endpoint arrives under new fd numbers each time. */
function inodeOf(fd: number): string {
  const st = fstatSync(fd);
  return `${st.dev}:${st.ino}`;
}
