// The virtio 1.x modern PCI transport, device side (virtio 1.2, 4.1.4): the register file of
// the common configuration, ISR status, the notify area and the device configuration window,
// served as BAR accesses (offset, size) that the process wiring receives as ioreqs.
//
// The register file lives in the state region (VirtioTransportState, VirtqState), written in
// place, so a successor resumes with exactly the registers the driver last wrote. Reads of the
// common configuration compose the VirtioPciCommonCfg record from it.
import { VirtioPciCommonCfg, VirtioTransportState, VirtqState } from '../../idl/generated/virtio.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import type { DeviceRun, InterruptSink, StateRef, VirtioDevice, VirtioHost } from './device.js';
import { ISR_CONFIG, ISR_QUEUE, NO_VECTOR, STATUS, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, bit } from './device.js';
import { type FaultCounters, type GuestFault } from './errors.js';
import type { GpaRange, GuestMemory } from './memory.js';
import { COMMON_CFG, DEVICE_CFG_OFFSET, ISR_CFG, NOTIFY_CFG_OFFSET, NOTIFY_OFF_MULTIPLIER, WINDOW } from './pci.js';
import { SplitQueue, checkLayout, type QueueConfig } from './queue.js';
import { writeCommonField } from './registers.js';

const DRIVER_BITS = STATUS.ACKNOWLEDGE | STATUS.DRIVER | STATUS.DRIVER_OK | STATUS.FEATURES_OK | STATUS.FAILED;

export interface TransportOptions {
  readonly device: VirtioDevice;
  readonly memory: GuestMemory;
  /** The VirtioTransportState record and one VirtqState per queue. */
  readonly transportState: StateRef;
  readonly queueState: readonly StateRef[];
  readonly interrupts: InterruptSink;
  readonly counters: FaultCounters;
  /** Entries of the device's MSI-X table (the pci domain's); vectors past it read NO_VECTOR. */
  readonly msixVectors: number;
}

/** Little-endian value of `size` bytes of `u8` at `at`. */
function readLE(u8: Uint8Array, at: number, size: number): bigint {
  let v = 0n;
  for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(u8[at + i] ?? 0);
  return v;
}

const VALID_SIZES: ReadonlySet<number> = new Set([1, 2, 4, 8]);

export class VirtioPciTransport implements VirtioHost {
  private readonly scratch = new SharedBytes(new ArrayBuffer(VirtioPciCommonCfg.SIZE));
  private readonly t: StateRef;

  constructor(private readonly o: TransportOptions) {
    if (o.queueState.length !== o.device.numQueues) throw new RangeError(`${o.queueState.length} queue records for ${o.device.numQueues} queues`);
    this.t = o.transportState;
  }

  get device(): VirtioDevice {
    return this.o.device;
  }

  // ------------------------------------------------------------ lifecycle

  /** A fresh state region: the registers as after a device reset. */
  initFresh(): void {
    this.clearRegisters();
  }

  /**
   * A successor takes over: finishes a reset its predecessor began, or restarts a running
   * device from the registers and cursors in the state region.
   */
  resume(): void {
    // The sink keeps no state across instances: tell it the line level the ISR implies.
    this.o.interrupts.intx(VirtioTransportState.loadIsr(this.t.m, this.t.base) !== 0);
    if (VirtioTransportState.loadResetPending(this.t.m, this.t.base) !== 0) {
      this.o.device.reset(() => this.finishReset());
      return;
    }
    const status = this.status();
    if ((status & STATUS.DRIVER_OK) !== 0 && (status & (STATUS.NEEDS_RESET | STATUS.FAILED)) === 0) this.startDevice(true);
  }

  status(): number {
    return VirtioTransportState.loadDeviceStatus(this.t.m, this.t.base);
  }

  /** True while a reset waits for the device's in-flight requests to drain. */
  get resetting(): boolean {
    return VirtioTransportState.loadResetPending(this.t.m, this.t.base) !== 0;
  }

  /**
   * A platform reset (the guest rebooted): the same reset as the driver's write of 0 to
   * device_status, begun unless one is already under way. Done once `resetting` is false.
   */
  platformReset(): void {
    if (!this.resetting) this.beginReset();
  }

  driverFeatures(): bigint {
    const lo = VirtioTransportState.getDriverFeaturesLo(this.t.m, this.t.base);
    const hi = VirtioTransportState.getDriverFeaturesHi(this.t.m, this.t.base);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  private clearRegisters(): void {
    const n = this.o.device.numQueues;
    for (let q = 0; q < n; q++) {
      const s = this.qs(q);
      VirtqState.setDesc(s.m, s.base, 0n);
      VirtqState.setDriver(s.m, s.base, 0n);
      VirtqState.setDevice(s.m, s.base, 0n);
      VirtqState.setSize(s.m, s.base, this.o.device.maxQueueSize);
      VirtqState.setMsixVector(s.m, s.base, NO_VECTOR);
      VirtqState.setEnabled(s.m, s.base, 0);
      VirtqState.storeFetched(s.m, s.base, 0);
      VirtqState.storeUsed(s.m, s.base, 0);
      VirtqState.storeBatchEnd(s.m, s.base, 0);
    }
    const { m, base } = this.t;
    VirtioTransportState.setDeviceFeatureSelect(m, base, 0);
    VirtioTransportState.setDriverFeatureSelect(m, base, 0);
    VirtioTransportState.setDriverFeaturesLo(m, base, 0);
    VirtioTransportState.setDriverFeaturesHi(m, base, 0);
    VirtioTransportState.setConfigMsixVector(m, base, NO_VECTOR);
    VirtioTransportState.setQueueSelect(m, base, 0);
    if (VirtioTransportState.loadIsr(m, base) !== 0) {
      VirtioTransportState.storeIsr(m, base, 0);
      this.o.interrupts.intx(false);
    }
    VirtioTransportState.storeDeviceStatus(m, base, 0);
  }

  private finishReset(): void {
    this.clearRegisters();
    // ORDER: reset_pending goes to 0 last: a kill before this leaves a successor to redo the
    // (idempotent) clearing above; the driver sees status 0 only now.
    VirtioTransportState.storeResetPending(this.t.m, this.t.base, 0);
  }

  private beginReset(): void {
    VirtioTransportState.storeResetPending(this.t.m, this.t.base, 1);
    this.o.device.reset(() => this.finishReset());
  }

  private qs(q: number): StateRef {
    const s = this.o.queueState[q];
    if (s === undefined) throw new RangeError(`queue ${q}`);
    return s;
  }

  queueConfig(q: number): QueueConfig {
    const s = this.qs(q);
    return {
      size: VirtqState.getSize(s.m, s.base),
      desc: Number(VirtqState.getDesc(s.m, s.base)),
      driver: Number(VirtqState.getDriver(s.m, s.base)),
      device: Number(VirtqState.getDevice(s.m, s.base)),
    };
  }

  private startDevice(resuming: boolean): void {
    const features = this.driverFeatures();
    const n = this.o.device.numQueues;
    const forbidden: GpaRange[] = [];
    const queues: (SplitQueue | undefined)[] = [];
    const qf = { eventIdx: (features & bit(VIRTIO_F_EVENT_IDX)) !== 0n, indirect: (features & bit(VIRTIO_F_INDIRECT_DESC)) !== 0n };
    for (let q = 0; q < n; q++) {
      const s = this.qs(q);
      if (VirtqState.getEnabled(s.m, s.base) === 0) {
        queues.push(undefined);
        continue;
      }
      const cfg = this.queueConfig(q);
      // GUEST-INPUT: rechecked here for a successor: the guest may have changed its memory map.
      const fault = checkLayout(this.o.memory, cfg, this.o.device.maxQueueSize);
      if (fault !== undefined) {
        this.needsReset(fault, `queue ${q}`);
        return;
      }
      const queue = new SplitQueue(this.o.memory, cfg, qf, this.o.device.maxQueueSize, forbidden);
      forbidden.push(...queue.ranges);
      queues.push(queue);
    }
    const run: DeviceRun = { features, queues, queueState: this.o.queueState, host: this, resuming };
    this.o.device.start(run);
  }

  // ------------------------------------------------------------ VirtioHost

  needsReset(cause: GuestFault | (string & {}), detail?: string): void {
    this.o.counters.bump(cause, detail);
    const status = this.status();
    if ((status & STATUS.NEEDS_RESET) !== 0) return;
    VirtioTransportState.storeDeviceStatus(this.t.m, this.t.base, status | STATUS.NEEDS_RESET);
    // virtio 1.2, 2.1.2: NEEDS_RESET comes with a configuration change notification.
    this.signal(VirtioTransportState.getConfigMsixVector(this.t.m, this.t.base), ISR_CONFIG);
  }

  interruptQueue(queue: number): void {
    const s = this.qs(queue);
    this.signal(VirtqState.getMsixVector(s.m, s.base), ISR_QUEUE);
  }

  private signal(vector: number, isrBit: number): void {
    if (vector !== NO_VECTOR) {
      this.o.interrupts.msix(vector);
      return;
    }
    const isr = VirtioTransportState.loadIsr(this.t.m, this.t.base);
    VirtioTransportState.storeIsr(this.t.m, this.t.base, isr | isrBit);
    this.o.interrupts.intx(true);
  }

  // ------------------------------------------------------------ BAR accesses

  /** A guest read of `size` bytes at BAR offset `offset`. Never throws on guest input. */
  read(offset: number, size: number): bigint {
    // GUEST-INPUT: widths 1, 2, 4, 8, naturally aligned, inside one structure's window.
    if (!VALID_SIZES.has(size) || offset % size !== 0 || offset < 0 || Math.floor(offset / WINDOW) !== Math.floor((offset + size - 1) / WINDOW)) {
      this.o.counters.bump('bad_access', `read ${size} at 0x${offset.toString(16)}`);
      return 0n;
    }
    if (offset < COMMON_CFG.offset + WINDOW) {
      if (offset + size > COMMON_CFG.length) return 0n;
      this.composeCommon();
      return readLE(this.scratch.u8, offset, size);
    }
    if (offset < ISR_CFG.offset + WINDOW) return offset === ISR_CFG.offset ? BigInt(this.readIsr()) : 0n;
    if (offset < DEVICE_CFG_OFFSET + WINDOW) {
      const at = offset - DEVICE_CFG_OFFSET;
      return at + size <= this.o.device.configLength ? this.o.device.readConfig(at, size) : 0n;
    }
    return 0n; // notify area and beyond: writes only
  }

  /** A guest write of `size` bytes at BAR offset `offset`. Never throws on guest input. */
  write(offset: number, size: number, value: bigint): void {
    // GUEST-INPUT: as for reads.
    if (!VALID_SIZES.has(size) || offset % size !== 0 || offset < 0 || Math.floor(offset / WINDOW) !== Math.floor((offset + size - 1) / WINDOW)) {
      this.o.counters.bump('bad_access', `write ${size} at 0x${offset.toString(16)}`);
      return;
    }
    const v = value & ((1n << BigInt(size * 8)) - 1n);
    if (offset >= NOTIFY_CFG_OFFSET && offset < NOTIFY_CFG_OFFSET + WINDOW) {
      this.notifyWrite(offset - NOTIFY_CFG_OFFSET);
      return;
    }
    if (VirtioTransportState.loadResetPending(this.t.m, this.t.base) !== 0) {
      this.o.counters.bump('write_during_reset');
      return;
    }
    if (offset < COMMON_CFG.offset + WINDOW) {
      if (offset + size > COMMON_CFG.length) this.o.counters.bump('bad_access', `write past common cfg at 0x${offset.toString(16)}`);
      else writeCommonField(this, offset, size, v);
    } else if (offset < ISR_CFG.offset + WINDOW) {
      this.o.counters.bump('read_only_write', 'ISR');
    } else if (offset < DEVICE_CFG_OFFSET + WINDOW) {
      const at = offset - DEVICE_CFG_OFFSET;
      if (at + size <= this.o.device.configLength) this.o.device.writeConfig(at, size, v, this.driverFeatures());
      else this.o.counters.bump('bad_access', `write past device cfg at 0x${at.toString(16)}`);
    } else {
      this.o.counters.bump('bad_access', `write at 0x${offset.toString(16)}`);
    }
  }

  /** An available-buffer notification: from an ioeventfd, or a write to the notify area. */
  notify(queue: number): void {
    const status = this.status();
    // Before DRIVER_OK, or while stopped, the device has no queues to serve; a successor and
    // DRIVER_OK itself look at every queue, so nothing is lost by dropping the kick.
    if ((status & STATUS.DRIVER_OK) === 0 || (status & (STATUS.NEEDS_RESET | STATUS.FAILED)) !== 0) return;
    if (VirtioTransportState.loadResetPending(this.t.m, this.t.base) !== 0) return;
    this.o.device.notify(queue);
  }

  private notifyWrite(at: number): void {
    const q = at / NOTIFY_OFF_MULTIPLIER;
    // GUEST-INPUT: the address must be some queue's notification address.
    if (!Number.isInteger(q) || q >= this.o.device.numQueues) {
      this.o.counters.bump('notify_bad_offset', `0x${at.toString(16)}`);
      return;
    }
    this.notify(q);
  }

  private readIsr(): number {
    // virtio 1.2, 4.1.4.5.1: reading ISR clears it and de-asserts the INTx line.
    const isr = VirtioTransportState.loadIsr(this.t.m, this.t.base);
    if (isr !== 0) {
      VirtioTransportState.storeIsr(this.t.m, this.t.base, 0);
      this.o.interrupts.intx(false);
    }
    return isr;
  }

  private composeCommon(): void {
    const c = this.scratch;
    const { m, base } = this.t;
    const features = this.o.device.features;
    const dsel = VirtioTransportState.getDeviceFeatureSelect(m, base);
    const drsel = VirtioTransportState.getDriverFeatureSelect(m, base);
    const q = VirtioTransportState.getQueueSelect(m, base);
    const window = (f: bigint, sel: number): number => (sel < 2 ? Number((f >> BigInt(32 * sel)) & 0xffff_ffffn) : 0);
    c.u8.fill(0);
    VirtioPciCommonCfg.setDeviceFeatureSelect(c, 0, dsel);
    VirtioPciCommonCfg.setDeviceFeature(c, 0, window(features, dsel));
    VirtioPciCommonCfg.setDriverFeatureSelect(c, 0, drsel);
    VirtioPciCommonCfg.setDriverFeature(c, 0, window(this.driverFeatures(), drsel));
    VirtioPciCommonCfg.setConfigMsixVector(c, 0, VirtioTransportState.getConfigMsixVector(m, base));
    VirtioPciCommonCfg.setNumQueues(c, 0, this.o.device.numQueues);
    VirtioPciCommonCfg.setDeviceStatus(c, 0, this.status());
    VirtioPciCommonCfg.setConfigGeneration(c, 0, VirtioTransportState.getConfigGeneration(m, base) & 0xff);
    VirtioPciCommonCfg.setQueueSelect(c, 0, q);
    if (q < this.o.device.numQueues) {
      const s = this.qs(q);
      VirtioPciCommonCfg.setQueueSize(c, 0, VirtqState.getSize(s.m, s.base));
      VirtioPciCommonCfg.setQueueMsixVector(c, 0, VirtqState.getMsixVector(s.m, s.base));
      VirtioPciCommonCfg.setQueueEnable(c, 0, VirtqState.getEnabled(s.m, s.base));
      VirtioPciCommonCfg.setQueueNotifyOff(c, 0, q);
      VirtioPciCommonCfg.setQueueDesc(c, 0, VirtqState.getDesc(s.m, s.base));
      VirtioPciCommonCfg.setQueueDriver(c, 0, VirtqState.getDriver(s.m, s.base));
      VirtioPciCommonCfg.setQueueDevice(c, 0, VirtqState.getDevice(s.m, s.base));
    }
    // A queue_select past num_queues reads queue_size 0: "no such queue" (4.1.4.3.2).
  }

  // ------------------------------------------------------------ register writes (registers.ts)

  /** @internal for registers.ts */
  get regs(): { t: StateRef; o: TransportOptions } {
    return { t: this.t, o: this.o };
  }

  /** @internal A vector the MSI-X table has, else NO_VECTOR (4.1.4.3.2). */
  vector(v: number, what: string): number {
    // GUEST-INPUT: a vector must name an entry of the MSI-X table.
    if (v === NO_VECTOR || v < this.o.msixVectors) return v;
    this.o.counters.bump('bad_msix_vector', `${what} ${v}`);
    return NO_VECTOR;
  }

  /** @internal device_status written (virtio 1.2, 2.1 and 3.1.1). */
  writeStatus(value: number): void {
    if (value === 0) {
      this.beginReset();
      return;
    }
    const old = this.status();
    // GUEST-INPUT: the driver may only add bits; clearing is done by writing 0 (2.1.1).
    if ((old & DRIVER_BITS & ~value) !== 0) {
      this.o.counters.bump('status_cleared', `0x${old.toString(16)} -> 0x${value.toString(16)}`);
      return;
    }
    let next = value & DRIVER_BITS;
    const adding = next & ~old;
    if ((adding & STATUS.FEATURES_OK) !== 0) {
      // GUEST-INPUT: FEATURES_OK after DRIVER; features a subset of the offer, VERSION_1 among them.
      const f = this.driverFeatures();
      if ((next & STATUS.DRIVER) === 0) {
        this.o.counters.bump('status_out_of_order', 'FEATURES_OK before DRIVER');
        next &= ~STATUS.FEATURES_OK;
      } else if ((f & ~this.o.device.features) !== 0n || (f & bit(VIRTIO_F_VERSION_1)) === 0n || !this.o.device.acceptFeatures(f)) {
        this.o.counters.bump('features_rejected', `0x${f.toString(16)}`);
        next &= ~STATUS.FEATURES_OK;
      }
    }
    // GUEST-INPUT: DRIVER_OK only once the features were accepted (3.1.1 steps 5 and 8).
    if ((adding & STATUS.DRIVER_OK) !== 0 && (next & STATUS.FEATURES_OK) === 0) {
      this.o.counters.bump('status_out_of_order', 'DRIVER_OK before FEATURES_OK');
      next &= ~STATUS.DRIVER_OK;
    }
    VirtioTransportState.storeDeviceStatus(this.t.m, this.t.base, next | (old & STATUS.NEEDS_RESET));
    if ((next & ~old & STATUS.DRIVER_OK) !== 0 && (old & STATUS.NEEDS_RESET) === 0) this.startDevice(false);
  }

  /** @internal queue_enable written 1: the layout is checked now, once. */
  enableQueue(q: number): void {
    const fault = checkLayout(this.o.memory, this.queueConfig(q), this.o.device.maxQueueSize);
    if (fault !== undefined) {
      this.needsReset(fault, `queue ${q} enabled with a bad layout`);
      return;
    }
    const s = this.qs(q);
    VirtqState.setEnabled(s.m, s.base, 1);
  }

  /** @internal */
  queueRef(q: number): StateRef {
    return this.qs(q);
  }
}
