// The block domain's entry point: wiring only. `createBlockDomain` assembles the virtio-blk
// device and its virtio-pci transport over the seams the process wiring provides, and resumes
// from the state region when a predecessor left one.
//
// The seams (what the process must build; see README.md):
//   memory      GuestMemory over the regions of MapGuestMemoryReply, each memfd mapped shared
//   region      the state region (GetStateRegion), mapped shared; stateBytes() says how big
//   backend     UringBackend.open(image, { readOnly, direct, watch }), or FileBackend.open(image, { readOnly, direct })
//   interrupts  InterruptSink: MSI-X vector -> irqfd write, INTx level -> the device's line
// and what it gets back:
//   transport.read/write(offset, size)   every ioreq on the BAR (offsets within BAR_SIZE)
//   transport.notify(q)                  every ioeventfd wake-up of queue q (at notifyOffset(q))
//   identity, bar, capabilities()        what the pci domain presents in config space
import type { SharedBytes } from '../../idl/runtime/shared.js';
import type { InterruptSink } from '../virtio/device.js';
import { FaultCounters } from '../virtio/errors.js';
import type { GuestMemory } from '../virtio/memory.js';
import { BAR_SIZE, notifyOffset, pciIdentity, virtioCapabilities, type BarDescription, type Capabilities, type PciIdentity } from '../virtio/pci.js';
import { VirtioPciTransport } from '../virtio/transport.js';
import type { BlockBackend } from './backend.js';
import { BLOCK_PCI_CLASS, CONFIG_LENGTH, VIRTIO_ID_BLOCK, blockLimits, type BlockLimits, type BlockOptions } from './config.js';
import { BlockDevice } from './device.js';
import { BlockError } from './errors.js';
import type { FaultHook } from './inflight.js';
import { BlockState, stateBytes } from './persist.js';

export { FileBackend, UringBackend } from './backend.js';
export type { BlockBackend } from './backend.js';
export { stateBytes } from './persist.js';

export interface BlockDomainOptions extends BlockOptions {
  readonly backend: BlockBackend;
  readonly memory: GuestMemory;
  /** The mapped state region and where the block layout starts in it. */
  readonly region: SharedBytes;
  readonly regionBase?: number;
  readonly interrupts: InterruptSink;
  /** Entries of the MSI-X table the pci domain gives the device (queues + 1 is plenty). */
  readonly msixVectors: number;
  /** BAR index the pci domain places the virtio BAR at (a 64-bit BAR: this index and the next). */
  readonly barIndex?: number;
  readonly log?: (line: string) => void;
  readonly faultHook?: FaultHook;
  readonly defer?: (fn: () => void) => void;
  /** BlockDeviceOptions.busMaster and .retry: the DMA gate on the driver's Bus Master Enable. */
  readonly busMaster?: () => boolean;
  readonly retry?: (fn: () => void) => void;
}

export interface BlockDomain {
  readonly transport: VirtioPciTransport;
  readonly device: BlockDevice;
  readonly limits: BlockLimits;
  /** Guest faults by cause (virtio and virtio-blk), and backend events. */
  readonly counters: FaultCounters;
  readonly events: FaultCounters;
  readonly identity: PciIdentity;
  readonly bar: BarDescription;
  /** BAR offset of each queue's notification address (bind an ioeventfd at BAR base + this). */
  readonly notifyOffsets: readonly number[];
  /** The capability bytes for config space, from offset `at`, chained to `next`. */
  capabilities(at: number, next: number): Capabilities;
  /** True when this instance started from a blank region (the first instance). */
  readonly fresh: boolean;
}

/** State region bytes a device with these options needs. */
export function blockStateBytes(o: BlockOptions): number {
  return stateBytes(o.numQueues ?? 1, o.queueSize ?? 256);
}

export function createBlockDomain(o: BlockDomainOptions): BlockDomain {
  const limits = blockLimits(o, o.backend.size, o.backend.ioAlign);
  if (o.readOnly !== true && o.backend.readOnly) throw new BlockError('BAD_OPTIONS', 'a read-only backend needs readOnly: true');
  const state = new BlockState(o.region, o.regionBase ?? 0, limits.numQueues, limits.queueSize);
  const counters = new FaultCounters(o.log);
  const events = new FaultCounters(o.log, 'block event');
  const device = new BlockDevice({ limits, state, backend: o.backend, memory: o.memory, counters, events, faultHook: o.faultHook, defer: o.defer, busMaster: o.busMaster, retry: o.retry });
  const transport = new VirtioPciTransport({
    device, memory: o.memory, transportState: state.transportRef(),
    queueState: Array.from({ length: limits.numQueues }, (_, q) => state.queueRef(q)),
    interrupts: o.interrupts, counters, msixVectors: o.msixVectors,
  });
  const fresh = state.blank();
  if (fresh) {
    state.initHeader(limits);
    transport.initFresh();
    state.seal();
  } else {
    state.check(limits);
    transport.resume();
  }
  const bar = o.barIndex ?? 4;
  return {
    transport, device, limits, counters, events, fresh,
    identity: pciIdentity(VIRTIO_ID_BLOCK, BLOCK_PCI_CLASS),
    bar: { index: bar, size: BAR_SIZE, is64: true, prefetchable: false },
    notifyOffsets: Array.from({ length: limits.numQueues }, (_, q) => notifyOffset(q)),
    capabilities: (at, next) => virtioCapabilities({ bar, at, next, deviceCfgLength: CONFIG_LENGTH, numQueues: limits.numQueues }),
  };
}
