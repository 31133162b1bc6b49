// What the virtio-blk device offers (virtio 1.2, 5.2.3 Feature bits, 5.2.4 Device configuration
// layout): options, the limits derived from them, the feature bits, and the configuration
// structure the driver reads through the BAR.
import { VirtioBlkConfig } from '../../idl/generated/virtio.js';
import { SharedBytes } from '../../idl/runtime/shared.js';
import { VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, bit } from '../virtio/device.js';
import { BlockError } from './errors.js';

export const VIRTIO_ID_BLOCK = 2;
/** PCI class: mass storage controller, "other" (the class code does not matter to drivers). */
export const BLOCK_PCI_CLASS = 0x018000;
export const SECTOR = 512;

// virtio 1.2, 5.2.3 Feature bits.
export const VIRTIO_BLK_F = {
  SIZE_MAX: 1n, SEG_MAX: 2n, GEOMETRY: 4n, RO: 5n, BLK_SIZE: 6n, FLUSH: 9n, TOPOLOGY: 10n,
  CONFIG_WCE: 11n, MQ: 12n, DISCARD: 13n, WRITE_ZEROES: 14n,
} as const;

/** The largest data buffer (size_max): Linux's default segment size, so no driver splits more. */
export const SIZE_MAX = 64 * 1024;
/** The most sectors and ranges in one DISCARD or WRITE_ZEROES request. */
export const MAX_RANGE_SECTORS = 1 << 22;
export const MAX_RANGES = 32;
/** The GET_ID string is 20 bytes (virtio 1.2, 5.2.6). */
export const ID_BYTES = 20;

export interface BlockOptions {
  /** Request queues, 1..16 (VIRTIO_BLK_F_MQ when more than one). */
  readonly numQueues?: number;
  /** Largest queue size offered, a power of 2 in 2..1024. Default 256. */
  readonly queueSize?: number;
  /** Requests in flight per queue before the device stops taking more. Default: queueSize. */
  readonly queueDepth?: number;
  /** Offer VIRTIO_BLK_F_RO and refuse every write. */
  readonly readOnly?: boolean;
  /** Logical block size (blk_size), a power of 2 in 512..65536. Default 512 (4096 with O_DIRECT). */
  readonly blockSize?: number;
  /** The GET_ID string, ASCII, at most 20 bytes. */
  readonly serial?: string;
}

/** Everything the request parser and the device need, fixed when the device is created. */
export interface BlockLimits {
  readonly numQueues: number;
  readonly queueSize: number;
  readonly queueDepth: number;
  readonly readOnly: boolean;
  readonly blockSize: number;
  readonly capacity: number; // 512-byte sectors
  readonly segMax: number;
  readonly sizeMax: number;
  readonly maxRequestBytes: number;
  /** Alignment every I/O offset and length needs (the backend's, for O_DIRECT), 1 for none. */
  readonly ioAlign: number;
  readonly serial: Uint8Array;
  readonly features: bigint;
}

const pow2 = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

/** Validates options against a backend of `bytes` bytes needing `ioAlign` alignment. */
export function blockLimits(o: BlockOptions, bytes: number, ioAlign: number): BlockLimits {
  const numQueues = o.numQueues ?? 1;
  const queueSize = o.queueSize ?? 256;
  const blockSize = o.blockSize ?? Math.max(SECTOR, ioAlign);
  const readOnly = o.readOnly ?? false;
  if (!Number.isInteger(numQueues) || numQueues < 1 || numQueues > 16) throw new BlockError('BAD_OPTIONS', `${numQueues} queues`);
  if (!pow2(queueSize) || queueSize < 2 || queueSize > 1024) throw new BlockError('BAD_OPTIONS', `queue size ${queueSize}`);
  if (!pow2(blockSize) || blockSize < SECTOR || blockSize > 65536 || blockSize < ioAlign) throw new BlockError('BAD_OPTIONS', `block size ${blockSize} (I/O alignment ${ioAlign})`);
  const queueDepth = o.queueDepth ?? queueSize;
  if (!Number.isInteger(queueDepth) || queueDepth < 1 || queueDepth > queueSize) throw new BlockError('BAD_OPTIONS', `queue depth ${queueDepth}`);
  const serial = new TextEncoder().encode(o.serial ?? 'microhv-block');
  if (serial.length > ID_BYTES || serial.some((b) => b < 0x20 || b > 0x7e)) throw new BlockError('BAD_OPTIONS', `serial ${JSON.stringify(o.serial)}`);
  const capacity = Math.floor(bytes / blockSize) * (blockSize / SECTOR);
  if (capacity === 0) throw new BlockError('BAD_IMAGE', `image of ${bytes} bytes holds no ${blockSize}-byte block`);
  // Two descriptors of a request carry its header and status; the rest may carry data.
  const segMax = queueSize - 2;
  let features = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_F_INDIRECT_DESC) | bit(VIRTIO_F_EVENT_IDX);
  for (const f of [VIRTIO_BLK_F.SIZE_MAX, VIRTIO_BLK_F.SEG_MAX, VIRTIO_BLK_F.BLK_SIZE, VIRTIO_BLK_F.FLUSH, VIRTIO_BLK_F.CONFIG_WCE]) features |= bit(f);
  if (readOnly) features |= bit(VIRTIO_BLK_F.RO);
  else features |= bit(VIRTIO_BLK_F.DISCARD) | bit(VIRTIO_BLK_F.WRITE_ZEROES);
  if (numQueues > 1) features |= bit(VIRTIO_BLK_F.MQ);
  return {
    numQueues, queueSize, queueDepth, readOnly, blockSize, capacity, segMax, sizeMax: SIZE_MAX,
    maxRequestBytes: segMax * SIZE_MAX, ioAlign, serial: padId(serial), features,
  };
}

function padId(s: Uint8Array): Uint8Array {
  const id = new Uint8Array(ID_BYTES);
  id.set(s);
  return id;
}

/** Composes virtio_blk_config as the driver reads it, `writeback` being the current value. */
export function composeConfig(l: BlockLimits, writeback: number, into: SharedBytes): void {
  into.u8.fill(0);
  VirtioBlkConfig.write(into, 0, {
    capacity: BigInt(l.capacity),
    sizeMax: l.sizeMax,
    segMax: l.segMax,
    cylinders: 0, heads: 0, sectors: 0,
    blkSize: l.blockSize,
    physicalBlockExp: 0, alignmentOffset: 0, minIoSize: 1, optIoSize: 0,
    writeback,
    numQueues: l.numQueues,
    maxDiscardSectors: l.readOnly ? 0 : MAX_RANGE_SECTORS,
    maxDiscardSeg: l.readOnly ? 0 : MAX_RANGES,
    discardSectorAlignment: l.blockSize / SECTOR,
    maxWriteZeroesSectors: l.readOnly ? 0 : MAX_RANGE_SECTORS,
    maxWriteZeroesSeg: l.readOnly ? 0 : MAX_RANGES,
    writeZeroesMayUnmap: l.readOnly ? 0 : 1,
    maxSecureEraseSectors: 0,
  });
}

export const CONFIG_LENGTH = VirtioBlkConfig.SIZE;
export const WRITEBACK_OFFSET = VirtioBlkConfig.OFFSET.writeback;
