// Guest RAM: one memfd per RAM region of the boot layout, mapped here and
// registered with KVM as a memslot. The memfds are what the core hands to the
// backends that serve this guest (and only to them): a backend maps guest
// memory by fd, never through the core's address space.
import { closeSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import * as sys from '../sys/index.js';
import type { Vm } from '../kvm/index.js';
import type { MemoryMap } from '../../boot/layout.js';

export class MemoryError extends Error {
  constructor(readonly code: 'OUT_OF_RANGE' | 'TOO_LARGE', message: string) {
    super(message);
    this.name = 'MemoryError';
  }
}

export interface RamRegion {
  readonly slot: number;
  readonly gpa: number;
  readonly size: number;
  readonly fd: number;
  readonly bytes: Uint8Array;
  readonly map: sys.Mapping;
}

const PAGE = 4096;
/** Guest RAM read per step of a dump (a multiple of PAGE). */
const DUMP_CHUNK = 16 * 2 ** 20;

export class GuestMemory {
  private constructor(readonly regions: readonly RamRegion[]) {}

  /** Allocates (sparse, zero-filled) memfds for every RAM region of the map. */
  static create(map: MemoryMap, name = 'guest-ram'): GuestMemory {
    const regions: RamRegion[] = [];
    try {
      map.ram.forEach((r, slot) => {
        // sys.mmap refuses views over 4 GiB (the FFI cannot describe them); split regions first if that changes.
        if (r.size > 4 * 2 ** 30) throw new MemoryError('TOO_LARGE', `RAM region of ${r.size} bytes at ${r.gpa.toString(16)} exceeds 4 GiB`);
        const fd = sys.memfdCreate(`${name}-${slot}`, sys.consts.MFD_CLOEXEC | sys.consts.MFD_ALLOW_SEALING);
        sys.ftruncate(fd, r.size);
        // The size is fixed for the guest's life: a backend holding the fd can neither shrink it under us nor grow it.
        sys.addSeals(fd, sys.consts.F_SEAL_SHRINK | sys.consts.F_SEAL_GROW | sys.consts.F_SEAL_SEAL);
        const m = sys.mmap(r.size, sys.consts.PROT_READ | sys.consts.PROT_WRITE, sys.consts.MAP_SHARED, fd, 0);
        // Transparent huge pages for guest RAM where the host allows them for shmem: fewer nested page
        // faults and TLB misses. Only advice: a host that refuses it still runs the guest.
        try { sys.madvise(m, sys.consts.MADV_HUGEPAGE); } catch { /* EINVAL where THP is compiled out */ }
        regions.push({ slot, gpa: r.gpa, size: r.size, fd, map: m, bytes: new Uint8Array(m.buffer) });
      });
    } catch (e) {
      new GuestMemory(regions).close();
      throw e;
    }
    return new GuestMemory(regions);
  }

  registerWith(vm: Vm): void {
    for (const r of this.regions) {
      vm.setUserMemoryRegion({ slot: r.slot, guestPhysAddr: BigInt(r.gpa), memorySize: BigInt(r.size), userspaceAddr: r.map.addr });
    }
  }

  /** The bytes at [gpa, gpa+len) if they lie inside one RAM region, else undefined. */
  slice(gpa: number, len: number): Uint8Array | undefined {
    // GUEST-INPUT: addresses and lengths come from guest-written structures; both ends are checked.
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0) return undefined;
    for (const r of this.regions) {
      if (gpa >= r.gpa && gpa + len <= r.gpa + r.size) return r.bytes.subarray(gpa - r.gpa, gpa - r.gpa + len);
    }
    return undefined;
  }

  write(gpa: number, bytes: Uint8Array): void {
    const dst = this.slice(gpa, bytes.byteLength);
    if (!dst) throw new MemoryError('OUT_OF_RANGE', `write of ${bytes.byteLength} bytes at 0x${gpa.toString(16)} is outside guest RAM`);
    dst.set(bytes);
  }

  /**
   * Writes guest RAM to `path` for a post-mortem: a sparse raw image whose file offset is the
   * guest-physical address, with holes for zero pages and for what is not RAM. RAM is read from its
   * memfds (a hole read through the mapping would be allocated), a chunk at a time with the event
   * loop let run in between. Returns the bytes written.
   */
  async dump(path: string): Promise<number> {
    const chunk = Buffer.alloc(DUMP_CHUNK);
    const zero = Buffer.alloc(PAGE);
    const fd = openSync(path, 'w', 0o600);
    let written = 0;
    try {
      for (const r of this.regions) {
        for (let base = 0; base < r.size; base += DUMP_CHUNK) {
          const n = Math.min(DUMP_CHUNK, r.size - base);
          for (let got = 0; got < n;) {
            const k = readSync(r.fd, chunk, got, n - got, base + got);
            if (k === 0) throw new MemoryError('OUT_OF_RANGE', `guest RAM memfd of slot ${r.slot} ended at ${base + got} of ${r.size} bytes`);
            got += k;
          }
          // Runs of nonzero pages, one write each.
          for (let at = 0; at < n;) {
            while (at < n && chunk.subarray(at, at + PAGE).equals(zero)) at += PAGE;
            let end = at;
            while (end < n && !chunk.subarray(end, end + PAGE).equals(zero)) end += PAGE;
            for (let put = at; put < end;) put += writeSync(fd, chunk, put, end - put, r.gpa + base + put);
            written += end - at;
            at = end;
          }
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
      const last = this.regions.at(-1);
      if (last) ftruncateSync(fd, last.gpa + last.size);
    } finally {
      closeSync(fd);
    }
    return written;
  }

  close(): void {
    for (const r of this.regions) {
      sys.munmap(r.map);
      sys.close(r.fd);
    }
  }
}
