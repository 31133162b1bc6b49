// The pci domain's side of what its module decides (ABI.md, "pci also exports"):
// where each BAR is now, and where each MSI-X vector goes. The module says it
// with generations; this turns a change into microhv requests (MapBar,
// SetMsiRoute) and keeps the vectors' signals neither lost nor doubled:
//
//   effective vector   a KVM MSI route with the eventfd as its irqfd (microhv's)
//   not effective      no route; this domain watches the eventfd, and a signal
//                      becomes the vector's pending bit (msix_pending, committed
//                      before the eventfd is read)
//   fire               a pending vector that became effective: one write to its
//                      eventfd once the route is in place, then a commit
//
// What microhv was told lives only in this process: a successor states every
// BAR and every vector again at start (both requests are idempotent).
//
// A function with an interrupt pin has an INTx request page (control.proto,
// "INTx") its backend writes: its word is read at start and whenever the
// page's eventfd is readable, and given to the module (intx_set, idempotent),
// which drives the GSI or not as the function's configuration says. This
// domain writes the page's command word (the command register, stated at
// start and after each config access that changed it): the backend takes no
// request from the guest's rings until the driver has set Bus Master Enable.
import * as sys from '../../microhv/sys/index.js';
import { COMMAND_STATED } from './process-common.js';
import { PciBarFlag, PciBarKind, PciMsixFlag, PciMsixSignal, type PciExports } from './abi.js';
import type { PciFunctionSpec } from './pci-table.js';

export interface BarPlacement { readonly slot: number; readonly bar: number; readonly base: bigint; readonly size: bigint; readonly decoding: boolean; readonly servedByPci: boolean }
export interface VectorRoute { readonly slot: number; readonly vector: number; readonly address: bigint; readonly data: number; readonly effective: boolean }

/** What the bus needs from the process: microhv's requests, the event loop and the state region. */
export interface PciBusHost {
  mapBar(b: BarPlacement): Promise<void>;
  setMsiRoute(r: VectorRoute): Promise<void>;
  /** The function's MSI-X eventfds, one per vector (GetMsixEventfds). */
  msixEventfds(slot: number): Promise<number[]>;
  /** The function's INTx request page (GetIntxRequest); undefined if microhv has none. */
  intxRequest(slot: number): Promise<{ readonly word: Uint32Array; readonly command: Uint32Array; readonly changed: number } | undefined>;
  /** Calls `onReadable` while `fd` is readable; returns the function that stops it. */
  watch(fd: number, onReadable: () => void): () => void;
  /** Commits the module's state window (the pending and fire bits). */
  commit(): void;
}

export interface PciBusCounters { bar_moves: number; route_changes: number; held_signals: number; fired: number; ignored_signals: number; intx_changes: number; command_changes: number }

interface Vector { readonly fd: number; told: VectorRoute | undefined; unwatch: (() => void) | undefined }

export class PciBus {
  readonly counters: PciBusCounters = { bar_moves: 0, route_changes: 0, held_signals: 0, fired: 0, ignored_signals: 0, intx_changes: 0, command_changes: 0 };
  /** Each function's command word on its request page, by slot. */
  private readonly commandWords = new Map<number, Uint32Array>();
  private barGeneration: number | undefined;
  private msixGeneration: number | undefined;
  private readonly told = new Map<string, BarPlacement>();
  private readonly vectors = new Map<string, Vector>();
  /** The INTx request last given to the module, per slot (this instance's; a successor gives it again). */
  private readonly intxLevels = new Map<number, 0 | 1>();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly ex: PciExports, private readonly table: readonly PciFunctionSpec[], private readonly host: PciBusHost) {}

  /** True while the module holds a BAR or vector change microhv has not been told of. */
  dirty(): boolean {
    return this.ex.bar_generation() !== this.barGeneration || this.ex.msix_generation() !== this.msixGeneration;
  }

  /** Takes the vectors' eventfds, then states every BAR and vector (a successor's microhv view may be stale). */
  async start(): Promise<void> {
    for (const f of this.table) {
      if (f.msix === undefined) continue;
      const fds = await this.host.msixEventfds(f.slot);
      if (fds.length !== f.msix.vectors) {
        for (const fd of fds) sys.close(fd);
        throw new RangeError(`slot ${f.slot}: microhv gave ${fds.length} MSI-X eventfds for ${f.msix.vectors} vectors`);
      }
      fds.forEach((fd, v) => this.vectors.set(`${f.slot}:${v}`, { fd, told: undefined, unwatch: undefined }));
    }
    for (const f of this.table) {
      if (f.pin === 0) continue;
      const pin = await this.host.intxRequest(f.slot);
      if (pin === undefined) continue;
      this.commandWords.set(f.slot, pin.command);
      const apply = (): void => {
        // Drained first: a change after this read wakes us again.
        sys.eventfdTryRead(pin.changed);
        this.applyIntx(f.slot, Atomics.load(pin.word, 0));
      };
      this.host.watch(pin.changed, apply);
      // The backend's request as it stands, whoever of the two restarted.
      apply();
    }
    this.stateCommands();
    await this.sync();
  }

  /**
   * Writes each function's command register, marked stated, to its page where it differs: at
   * start (a successor's module may have restored another value) and after each config access.
   */
  stateCommands(): void {
    for (const [slot, word] of this.commandWords) {
      const now = ((this.ex.dev_command(slot) & 0xffff) | COMMAND_STATED) >>> 0;
      if (Atomics.load(word, 0) === now) continue;
      Atomics.store(word, 0, now);
      this.counters.command_changes++;
    }
  }

  /** The backend's request (any nonzero word asserts) to the module, then committed: a successor re-reads the word anyway. */
  private applyIntx(slot: number, word: number): void {
    const level = word !== 0 ? 1 : 0;
    if (this.intxLevels.get(slot) === level) return;
    this.ex.intx_set(slot, level);
    this.host.commit();
    this.intxLevels.set(slot, level);
    this.counters.intx_changes++;
  }

  /** Brings microhv in line with the module; calls run one after another. */
  sync(): Promise<void> {
    this.queue = this.queue.then(() => this.syncNow());
    return this.queue;
  }

  private async syncNow(): Promise<void> {
    while (this.dirty()) {
      const bars = this.ex.bar_generation();
      const msix = this.ex.msix_generation();
      await this.syncBars();
      this.barGeneration = bars;
      await this.syncVectors();
      this.msixGeneration = msix;
    }
    this.takeFires();
  }

  private async syncBars(): Promise<void> {
    for (const f of this.table) {
      for (const b of f.bars) {
        if (b.kind !== PciBarKind.Mem32 && b.kind !== PciBarKind.Mem64) continue;
        const flags = this.ex.bar_flags(f.slot, b.bar);
        const now: BarPlacement = {
          slot: f.slot, bar: b.bar, base: BigInt.asUintN(64, this.ex.bar_addr(f.slot, b.bar)), size: BigInt.asUintN(64, this.ex.bar_size(f.slot, b.bar)),
          decoding: (flags & PciBarFlag.Decoding) !== 0, servedByPci: (b.flags & PciBarFlag.ServedByPci) !== 0,
        };
        const key = `${f.slot}:${b.bar}`;
        const was = this.told.get(key);
        // A BAR that does not decode is told once; its address (the size mask while sized) does not matter.
        if (was !== undefined && was.decoding === now.decoding && (!now.decoding || was.base === now.base)) continue;
        await this.host.mapBar(now);
        this.told.set(key, now);
        this.counters.bar_moves++;
      }
    }
  }

  private async syncVectors(): Promise<void> {
    for (const f of this.table) {
      const m = f.msix;
      if (m === undefined) continue;
      for (let v = 0; v < m.vectors; v++) {
        const vec = this.vectors.get(`${f.slot}:${v}`);
        if (vec === undefined) continue;
        const effective = (this.ex.msix_flags(f.slot, v) & PciMsixFlag.Effective) !== 0;
        const now: VectorRoute = effective
          ? { slot: f.slot, vector: v, address: BigInt.asUintN(64, this.ex.msix_addr(f.slot, v)), data: this.ex.msix_data(f.slot, v) >>> 0, effective }
          : { slot: f.slot, vector: v, address: 0n, data: 0, effective };
        const was = vec.told;
        if (was !== undefined && was.effective === now.effective && was.address === now.address && was.data === now.data) continue;
        if (now.effective) {
          // Attached by microhv: KVM consumes the counter from here on, and injects what it already holds.
          vec.unwatch?.();
          vec.unwatch = undefined;
          await this.host.setMsiRoute(now);
        } else {
          await this.host.setMsiRoute(now);
          vec.unwatch ??= this.host.watch(vec.fd, () => this.onSignal(f.slot, v));
        }
        vec.told = now;
        this.counters.route_changes++;
      }
    }
  }

  /** A watched (not effective) vector was signalled by its backend. */
  private onSignal(slot: number, v: number): void {
    const vec = this.vectors.get(`${slot}:${v}`);
    if (vec === undefined) return;
    const answer = this.ex.msix_pending(slot, v) as PciMsixSignal;
    // The pending bit is in the state region before the signal leaves the eventfd: a death in between repeats it, harmlessly.
    this.host.commit();
    switch (answer) {
      case PciMsixSignal.Held:
        sys.eventfdTryRead(vec.fd);
        this.counters.held_signals++;
        return;
      case PciMsixSignal.Deliver:
        // Effective already, and its route is on its way: leave the count for KVM to take at attach.
        vec.unwatch?.();
        vec.unwatch = undefined;
        void this.sync();
        return;
      case PciMsixSignal.Ignored:
      default:
        sys.eventfdTryRead(vec.fd);
        this.counters.ignored_signals++;
    }
  }

  /** Pending vectors that became effective: one signal each through their (attached) irqfd. */
  private takeFires(): void {
    for (let f = this.ex.msix_fire_take() >>> 0; f !== 0; f = this.ex.msix_fire_take() >>> 0) {
      const vec = this.vectors.get(`${f >>> 16}:${f & 0xffff}`);
      if (vec === undefined) continue;
      sys.eventfdWrite(vec.fd, 1n);
      this.host.commit();
      this.counters.fired++;
    }
  }
}
