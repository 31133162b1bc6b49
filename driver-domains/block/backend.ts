// The block backend: where a virtio-blk device's sectors live. The device talks to this
// interface only. Two backends serve a raw image file and share everything but the system
// calls (ImageBackend: O_DIRECT bounce buffers, discard and write-zeroes with their fallbacks):
//   - UringBackend, the domain's default: the domain's own io_uring (uring.ts) submits and reaps
//     every read, write, sync and fallocate from its thread, with no thread per request;
//   - FileBackend, where io_uring is not available (or with --no-uring): positioned vectored I/O
//     on Node's file handle (preadv/pwritev on the libuv thread pool), so a queue of 64 requests
//     becomes up to UV_THREADPOOL_SIZE concurrent system calls with the rest queued in libuv. The
//     process wiring raises UV_THREADPOOL_SIZE (default 4) before any I/O starts.
// testing.ts has an in-memory backend.
import { constants, promises as fsp } from 'node:fs';
import { AlignedPool, type AlignedAllocator } from './aligned.js';
import { BlockError } from './errors.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, fallocate, unsupported } from './fallocate.js';
import { IORING_OP, Uring, addressable, type RingOptions } from './uring.js';

/** How a DISCARD or WRITE_ZEROES range was carried out. */
export type SpaceOutcome = 'punched' | 'zero_range' | 'zeroes_written' | 'ignored';

export interface BlockBackend {
  /** Bytes of the image. */
  readonly size: number;
  readonly readOnly: boolean;
  /** Alignment every offset and length must have (O_DIRECT: the logical block size); 1 for none. */
  readonly ioAlign: number;
  /**
   * Fills `iov` from `offset`. `aligned`: every buffer is host-aligned to ioAlign and a multiple
   * of it, so O_DIRECT can use it in place.
   */
  read(offset: number, iov: readonly Uint8Array[], aligned: boolean): Promise<void>;
  write(offset: number, iov: readonly Uint8Array[], aligned: boolean): Promise<void>;
  /** Makes every write that completed before this call durable (fdatasync). */
  flush(): Promise<void>;
  /** A hint: deallocate the range when the file system can; reads of it are then undefined. */
  discard(offset: number, length: number): Promise<SpaceOutcome>;
  /** Reads of the range return zeroes afterwards; `unmap` allows deallocating it. */
  writeZeroes(offset: number, length: number, unmap: boolean): Promise<SpaceOutcome>;
  close(): Promise<void>;
}

export interface FileBackendOptions {
  readonly readOnly?: boolean;
  /** Open with O_DIRECT: no host page cache; buffers and ranges must be aligned to `directAlign`. */
  readonly direct?: boolean;
  /** O_DIRECT alignment, the device's logical block size (default 4096, safe on any disk). */
  readonly directAlign?: number;
  /** Source of aligned bounce buffers (tests may pass their own). */
  readonly allocator?: AlignedAllocator;
  /** fallocate(mode, offset, length) on the image; tests replace it to see the fallbacks a file system without it gets. */
  readonly fallocate?: (mode: number, offset: number, length: number) => Promise<void>;
}

export interface UringBackendOptions extends FileBackendOptions {
  /** Watches the ring's completion eventfd (the domain's Reactor) and calls `ready` when it is readable; returns the unwatch. */
  readonly watch: (fd: number, ready: () => void) => () => void;
  /** Ring sizes and setup flags (tests). */
  readonly ring?: Partial<Omit<RingOptions, 'file' | 'ops'>>;
}

/** Bytes per write of the WRITE_ZEROES fallback. */
const ZERO_CHUNK = 1 << 20;

type VectoredOp = (iov: Uint8Array[], position: number) => Promise<number>;

/** Repeats a vectored call until every byte moved: the kernel may return short counts. */
async function whole(op: VectoredOp, iov: readonly Uint8Array[], position: number, what: string): Promise<void> {
  let rest = iov.filter((v) => v.byteLength > 0);
  let pos = position;
  while (rest.length > 0) {
    const n = await op(rest, pos);
    if (n <= 0) throw new BlockError('IO', `${what} at ${pos}: end of image`);
    pos += n;
    let skip = n;
    const next: Uint8Array[] = [];
    for (const v of rest) {
      if (skip >= v.byteLength) skip -= v.byteLength;
      else {
        next.push(skip > 0 ? v.subarray(skip) : v);
        skip = 0;
      }
    }
    rest = next;
  }
}

function total(iov: readonly Uint8Array[]): number {
  return iov.reduce((a, v) => a + v.byteLength, 0);
}

/** The image opened and checked: what both backends start from. */
interface Image {
  readonly fh: fsp.FileHandle;
  readonly size: number;
  readonly readOnly: boolean;
  readonly ioAlign: number;
}

async function openImage(path: string, o: FileBackendOptions): Promise<Image> {
  const readOnly = o.readOnly ?? false;
  const ioAlign = o.direct === true ? (o.directAlign ?? 4096) : 1;
  const flags = (readOnly ? constants.O_RDONLY : constants.O_RDWR) | (o.direct === true ? constants.O_DIRECT : 0);
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, flags);
  } catch (err) {
    throw new BlockError('BAD_IMAGE', `cannot open ${path}${o.direct === true ? ' with O_DIRECT' : ''}`, { cause: err });
  }
  const st = await fh.stat();
  if (!st.isFile() && !st.isBlockDevice()) {
    await fh.close();
    throw new BlockError('BAD_IMAGE', `${path} is not a regular file`);
  }
  return { fh, size: st.size, readOnly, ioAlign };
}

type Direction = 'read' | 'write';

/**
 * A raw image file: the request logic both backends share. A subclass moves bytes (every one of
 * them, continuing short transfers), syncs, fallocates and closes.
 */
abstract class ImageBackend implements BlockBackend {
  /** Bounced requests so far (the device reports the count). */
  bounced = 0;
  private pool: AlignedPool | undefined;
  readonly size: number;
  readonly readOnly: boolean;
  readonly ioAlign: number;

  protected constructor(image: Image, private readonly o: FileBackendOptions) {
    ({ size: this.size, readOnly: this.readOnly, ioAlign: this.ioAlign } = image);
  }

  protected abstract transfer(dir: Direction, iov: readonly Uint8Array[], position: number): Promise<void>;
  protected abstract fallocateImage(mode: number, offset: number, length: number): Promise<void>;
  protected abstract closeImage(): Promise<void>;
  abstract flush(): Promise<void>;

  /** Whether the kernel can take these buffers as they are (O_DIRECT alignment apart). */
  protected inPlace(_iov: readonly Uint8Array[]): boolean {
    return true;
  }

  read(offset: number, iov: readonly Uint8Array[], aligned: boolean): Promise<void> {
    return this.usable(iov, aligned) ? this.transfer('read', iov, offset) : this.bounce('read', offset, iov);
  }

  write(offset: number, iov: readonly Uint8Array[], aligned: boolean): Promise<void> {
    return this.usable(iov, aligned) ? this.transfer('write', iov, offset) : this.bounce('write', offset, iov);
  }

  private usable(iov: readonly Uint8Array[], aligned: boolean): boolean {
    return (this.ioAlign === 1 || aligned) && this.inPlace(iov);
  }

  /** Aligned, mapped buffers from anonymous mmaps (aligned.ts), made on first use. */
  private buffers(): AlignedPool {
    this.pool ??= new AlignedPool(this.o.allocator);
    return this.pool;
  }

  /** Through one aligned buffer: a copy in before a write, a copy out after a read. */
  private async bounce(dir: Direction, offset: number, iov: readonly Uint8Array[]): Promise<void> {
    const len = total(iov);
    const lease = this.buffers().take(len);
    this.bounced++;
    try {
      const buf = lease.bytes.subarray(0, len);
      let at = 0;
      if (dir === 'write') {
        for (const v of iov) {
          buf.set(v, at);
          at += v.byteLength;
        }
      }
      await this.transfer(dir, [buf], offset);
      if (dir === 'read') {
        for (const v of iov) {
          v.set(buf.subarray(at, at + v.byteLength));
          at += v.byteLength;
        }
      }
    } finally {
      lease.release();
    }
  }

  private fallocate(mode: number, offset: number, length: number): Promise<void> {
    return this.o.fallocate !== undefined ? this.o.fallocate(mode, offset, length) : this.fallocateImage(mode, offset, length);
  }

  async discard(offset: number, length: number): Promise<SpaceOutcome> {
    try {
      await this.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
      return 'punched';
    } catch (err) {
      // DISCARD is a hint (virtio 1.2, 5.2.6.2: the device MAY deallocate). Writing zeroes
      // instead would turn mkfs's whole-disk discard into a whole-disk write.
      if (unsupported(err)) return 'ignored';
      throw err;
    }
  }

  async writeZeroes(offset: number, length: number, unmap: boolean): Promise<SpaceOutcome> {
    const modes: [number, SpaceOutcome][] = unmap
      ? [[FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 'punched'], [FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 'zero_range']]
      : [[FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 'zero_range']];
    for (const [mode, outcome] of modes) {
      try {
        await this.fallocate(mode, offset, length);
        return outcome;
      } catch (err) {
        if (!unsupported(err)) throw err;
      }
    }
    // Neither mode: write the zeroes (reads of the range must return zeroes, 5.2.6.2), from an
    // aligned, mapped buffer that either backend takes as it is.
    const zero = this.buffers().take(Math.min(length, ZERO_CHUNK));
    try {
      const chunk = zero.bytes.subarray(0, Math.min(length, ZERO_CHUNK)).fill(0);
      for (let at = 0; at < length; at += chunk.byteLength) {
        await this.transfer('write', [chunk.subarray(0, Math.min(chunk.byteLength, length - at))], offset + at);
      }
    } finally {
      zero.release();
    }
    return 'zeroes_written';
  }

  async close(): Promise<void> {
    await this.closeImage();
    this.pool?.drain();
  }
}

/** The image through Node's file handle: each transfer a preadv/pwritev on the libuv thread pool. */
export class FileBackend extends ImageBackend {
  private constructor(private readonly fh: fsp.FileHandle, image: Image, o: FileBackendOptions) {
    super(image, o);
  }

  static async open(path: string, o: FileBackendOptions = {}): Promise<FileBackend> {
    const image = await openImage(path, o);
    return new FileBackend(image.fh, image, o);
  }

  protected transfer(dir: Direction, iov: readonly Uint8Array[], position: number): Promise<void> {
    return dir === 'read'
      ? whole((v, p) => this.fh.readv(v, p).then((r) => r.bytesRead), iov, position, 'read')
      : whole((v, p) => this.fh.writev(v, p).then((r) => r.bytesWritten), iov, position, 'write');
  }

  flush(): Promise<void> {
    return this.fh.datasync();
  }

  protected fallocateImage(mode: number, offset: number, length: number): Promise<void> {
    return fallocate(this.fh.fd, mode, offset, length);
  }

  protected closeImage(): Promise<void> {
    return this.fh.close();
  }
}

/** The SQE opcodes UringBackend uses: its ring's restrictions allow these and nothing else. */
export const URING_BACKEND_OPS: readonly number[] = [IORING_OP.READV, IORING_OP.WRITEV, IORING_OP.FSYNC, IORING_OP.FALLOCATE];

/**
 * The image through the domain's own io_uring: transfers, fdatasync and fallocate are SQEs on a
 * ring whose only file is the image, completions come back through an eventfd the caller watches.
 * Guest buffers (guest RAM mappings) go to the kernel in place; a buffer with no native address
 * (a JavaScript ArrayBuffer, in tests) is bounced like an unaligned O_DIRECT one.
 */
export class UringBackend extends ImageBackend {
  private constructor(private readonly fh: fsp.FileHandle, readonly ring: Uring, private readonly unwatch: () => void, image: Image, o: FileBackendOptions) {
    super(image, o);
  }

  /** Throws BlockError BAD_IMAGE for the image; a SysError from io_uring_setup or _register when the kernel refuses a ring. */
  static async open(path: string, o: UringBackendOptions): Promise<UringBackend> {
    const image = await openImage(path, o);
    let ring: Uring;
    try {
      ring = Uring.create({ ...o.ring, file: image.fh.fd, ops: URING_BACKEND_OPS });
    } catch (e) {
      await image.fh.close();
      throw e;
    }
    const unwatch = o.watch(ring.eventfd, () => ring.onEventfd());
    return new UringBackend(image.fh, ring, unwatch, image, o);
  }

  protected override inPlace(iov: readonly Uint8Array[]): boolean {
    return addressable(iov);
  }

  protected transfer(dir: Direction, iov: readonly Uint8Array[], position: number): Promise<void> {
    return dir === 'read' ? this.ring.readv(iov, position) : this.ring.writev(iov, position);
  }

  /** An FSYNC SQE (datasync) issued now: it covers every write whose CQE came before this call. */
  flush(): Promise<void> {
    return this.ring.fsync(true);
  }

  protected fallocateImage(mode: number, offset: number, length: number): Promise<void> {
    return this.ring.fallocate(mode, offset, length);
  }

  protected async closeImage(): Promise<void> {
    this.unwatch();
    this.ring.close();
    await this.fh.close();
  }
}
