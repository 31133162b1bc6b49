// The block backend: where a virtio-blk device's sectors live. The device talks to this
// interface only; `FileBackend` serves a raw image file, and testing.ts has an in-memory one.
//
// FileBackend keeps many requests in flight: each call is positioned vectored I/O on Node's
// file handle (preadv/pwritev on the libuv thread pool), so a queue of 64 requests becomes up to
// UV_THREADPOOL_SIZE concurrent system calls with the rest queued in libuv, never one request at
// a time. The process wiring should raise UV_THREADPOOL_SIZE (default 4) before any I/O starts.
import { constants, promises as fsp } from 'node:fs';
import { AlignedPool, type AlignedAllocator } from './aligned.js';
import { BlockError } from './errors.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, fallocate, unsupported } from './fallocate.js';

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
  /** fallocate(2); tests replace it to see the fallbacks a file system without it gets. */
  readonly fallocate?: typeof fallocate;
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

export class FileBackend implements BlockBackend {
  private readonly pool: AlignedPool | undefined;
  /** Bounced requests so far (the device reports the count). */
  bounced = 0;

  private readonly fallocate: typeof fallocate;

  private constructor(private readonly fh: fsp.FileHandle, readonly size: number, readonly readOnly: boolean, readonly ioAlign: number, o: FileBackendOptions) {
    this.pool = ioAlign > 1 ? new AlignedPool(o.allocator) : undefined;
    this.fallocate = o.fallocate ?? fallocate;
  }

  static async open(path: string, o: FileBackendOptions = {}): Promise<FileBackend> {
    const readOnly = o.readOnly ?? false;
    const align = o.direct === true ? (o.directAlign ?? 4096) : 1;
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
    return new FileBackend(fh, st.size, readOnly, align, o);
  }

  async read(offset: number, iov: readonly Uint8Array[], aligned: boolean): Promise<void> {
    if (this.pool === undefined || aligned) {
      await whole((v, p) => this.fh.readv(v, p).then((r) => r.bytesRead), iov, offset, 'read');
      return;
    }
    const len = total(iov);
    const lease = this.pool.take(len);
    this.bounced++;
    try {
      const buf = lease.bytes.subarray(0, len);
      await whole((v, p) => this.fh.readv(v, p).then((r) => r.bytesRead), [buf], offset, 'read');
      let at = 0;
      for (const v of iov) {
        v.set(buf.subarray(at, at + v.byteLength));
        at += v.byteLength;
      }
    } finally {
      lease.release();
    }
  }

  async write(offset: number, iov: readonly Uint8Array[], aligned: boolean): Promise<void> {
    if (this.pool === undefined || aligned) {
      await whole((v, p) => this.fh.writev(v, p).then((r) => r.bytesWritten), iov, offset, 'write');
      return;
    }
    const len = total(iov);
    const lease = this.pool.take(len);
    this.bounced++;
    try {
      const buf = lease.bytes.subarray(0, len);
      let at = 0;
      for (const v of iov) {
        buf.set(v, at);
        at += v.byteLength;
      }
      await whole((v, p) => this.fh.writev(v, p).then((r) => r.bytesWritten), [buf], offset, 'write');
    } finally {
      lease.release();
    }
  }

  flush(): Promise<void> {
    return this.fh.datasync();
  }

  async discard(offset: number, length: number): Promise<SpaceOutcome> {
    try {
      await this.fallocate(this.fh.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
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
        await this.fallocate(this.fh.fd, mode, offset, length);
        return outcome;
      } catch (err) {
        if (!unsupported(err)) throw err;
      }
    }
    // Neither mode: write the zeroes (reads of the range must return zeroes, 5.2.6.2).
    const zero = this.pool?.take(Math.min(length, ZERO_CHUNK));
    try {
      const chunk = zero !== undefined ? zero.bytes.subarray(0, Math.min(length, ZERO_CHUNK)).fill(0) : new Uint8Array(Math.min(length, ZERO_CHUNK));
      for (let at = 0; at < length; at += chunk.byteLength) {
        const n = Math.min(chunk.byteLength, length - at);
        await whole((v, p) => this.fh.writev(v, p).then((r) => r.bytesWritten), [chunk.subarray(0, n)], offset + at, 'write zeroes');
      }
    } finally {
      zero?.release();
    }
    return 'zeroes_written';
  }

  async close(): Promise<void> {
    await this.fh.close();
    this.pool?.drain();
  }
}
