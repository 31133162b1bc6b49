// Aligned bounce buffers for O_DIRECT. The kernel refuses O_DIRECT transfers whose buffer
// address is not aligned to the device's logical block size, and JavaScript cannot align an
// ArrayBuffer, so buffers come from anonymous mmaps (page-aligned) and are recycled: a request
// takes one of the next power-of-2 size and gives it back when its I/O is done.
//
// The cost of bouncing: one extra copy of the data (guest to buffer before a write, buffer to
// guest after a read) and one buffer per request in flight. Guest buffers that are already
// aligned (Linux's page-sized bio vectors, in guest RAM mapped page-aligned) skip it.
import * as sys from '../../microhv/sys/index.js';

export interface Lease {
  /** At least the size asked for; only that prefix is meaningful. */
  readonly bytes: Uint8Array;
  release(): void;
}

/** Allocates `size` bytes (a multiple of the page size) at a page boundary. */
export type AlignedAllocator = (size: number) => { bytes: Uint8Array; free(): void };

export function mmapAllocator(size: number): { bytes: Uint8Array; free(): void } {
  const m = sys.mmap(size, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_PRIVATE | sys.consts.MAP_ANONYMOUS, -1, 0);
  return { bytes: new Uint8Array(m.buffer), free: () => sys.munmap(m) };
}

const PAGE = 4096;

export class AlignedPool {
  private readonly free = new Map<number, { bytes: Uint8Array; free(): void }[]>();

  /** Keeps up to `keep` idle buffers per size class. */
  constructor(private readonly alloc: AlignedAllocator = mmapAllocator, private readonly keep = 8) {}

  take(size: number): Lease {
    const cls = Math.max(PAGE, 2 ** Math.ceil(Math.log2(Math.max(size, 1))));
    const buf = this.free.get(cls)?.pop() ?? this.alloc(cls);
    let released = false;
    return {
      bytes: buf.bytes,
      release: () => {
        if (released) return;
        released = true;
        const list = this.free.get(cls) ?? [];
        if (list.length < this.keep) {
          list.push(buf);
          this.free.set(cls, list);
        } else {
          buf.free();
        }
      },
    };
  }

  /** Unmaps every idle buffer. */
  drain(): void {
    for (const list of this.free.values()) for (const b of list) b.free();
    this.free.clear();
  }
}
