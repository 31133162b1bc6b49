// The seam between the virtio-pci transport (transport.ts) and a device type (virtio-blk
// today, virtio-net later): what the transport asks of a device, what it gives it, and the
// interrupt sink the process wiring provides.
import type { SharedBytes } from '../../idl/runtime/shared.js';
import type { GuestFault } from './errors.js';
import type { SplitQueue } from './queue.js';

// virtio 1.2, 6 Reserved Feature Bits: the transport-level ones this layer implements.
export const VIRTIO_F_INDIRECT_DESC = 28n;
export const VIRTIO_F_EVENT_IDX = 29n;
export const VIRTIO_F_VERSION_1 = 32n;

export function bit(n: bigint): bigint {
  return 1n << n;
}

// virtio 1.2, 2.1 Device Status Field.
export const STATUS = { ACKNOWLEDGE: 1, DRIVER: 2, DRIVER_OK: 4, FEATURES_OK: 8, NEEDS_RESET: 64, FAILED: 128 } as const;
// virtio 1.2, 4.1.4.5 ISR status: bit 0 queue interrupt, bit 1 configuration change.
export const ISR_QUEUE = 1;
export const ISR_CONFIG = 2;

/** virtio 1.2, 4.1.4.3: "no vector" for config_msix_vector and queue_msix_vector. */
export const NO_VECTOR = 0xffff;

/**
 * Where interrupts leave the device. The process wiring implements it: an MSI-X vector maps to
 * the irqfd of the GSI route the pci domain set up for it (the pci domain owns the MSI-X table
 * and its masking); the INTx level goes to the device's legacy line.
 */
export interface InterruptSink {
  /** Send MSI-X vector `vector` (never NO_VECTOR). */
  msix(vector: number): void;
  /** The INTx line level, which follows ISR != 0 (virtio 1.2, 4.1.4.5). */
  intx(level: boolean): void;
}

/** A record in the state region: generated accessors take exactly these two. */
export interface StateRef {
  readonly m: SharedBytes;
  readonly base: number;
}

/** What a running device may ask of its transport. */
export interface VirtioHost {
  /** A fault that stops the device until the driver resets it: sets DEVICE_NEEDS_RESET. */
  needsReset(cause: GuestFault | (string & {}), detail?: string): void;
  /** A used-buffer notification for queue q (the queue already decided the driver wants one). */
  interruptQueue(queue: number): void;
}

/** Handed to the device at DRIVER_OK, or to a successor resuming a running device. */
export interface DeviceRun {
  readonly features: bigint;
  /** Per queue, the queue when the driver enabled it. */
  readonly queues: readonly (SplitQueue | undefined)[];
  /** Per queue, its VirtqState record (the cursors live there). */
  readonly queueState: readonly StateRef[];
  readonly host: VirtioHost;
  /** True when a successor resumes a device its predecessor was running. */
  readonly resuming: boolean;
}

export interface VirtioDevice {
  /** virtio 1.2, 5: device ID (2 for block). */
  readonly virtioId: number;
  readonly numQueues: number;
  readonly maxQueueSize: number;
  /** Every feature bit offered, transport bits included. */
  readonly features: bigint;
  /** Length of the device configuration structure, bytes. */
  readonly configLength: number;
  /** Reads `size` bytes at `offset` of the device configuration (within configLength). */
  readConfig(offset: number, size: number): bigint;
  /** A driver write; `features` are the driver's (some fields are writable only with a feature). */
  writeConfig(offset: number, size: number, value: bigint, features: bigint): void;
  /** FEATURES_OK: false refuses the combination; true may adjust the configuration. */
  acceptFeatures(features: bigint): boolean;
  start(run: DeviceRun): void;
  /** An available-buffer notification for queue q (ioeventfd or a notify-area write). */
  notify(queue: number): void;
  /**
   * Begins a reset (virtio 1.2, 2.4): stop taking requests and forget completions; call `done`
   * once no request is in flight (synchronously when none is). The driver meanwhile polls
   * device_status, which reads 0 only after `done`.
   */
  reset(done: () => void): void;
}
