// Guest RAM as a device domain sees it: a few regions, each a guest-physical range backed by
// host bytes. In production each region is a mapping of one of the guest's memfds (the reply
// to MapGuestMemory, idl/proto/control.proto); in tests it is an ArrayBuffer. Every access a
// device makes on behalf of the guest goes through `views` or a region found by `locate`, so
// an address the guest chose can never reach host memory outside these regions.
import { SharedBytes } from '../../idl/runtime/shared.js';
import { VirtioError } from './errors.js';

/** The seam the process wiring fills: one entry per mapped guest RAM region. */
export interface GuestRegion {
  /** Guest-physical base address, bytes. */
  readonly gpa: number;
  /** The region's bytes, `size` of them (a view of the mapped memfd, or of an ArrayBuffer). */
  readonly bytes: Uint8Array;
  /**
   * Alignment of bytes[0] in host memory, a power of 2: the page size for an mmap, 1 when
   * unknown (an ArrayBuffer). O_DIRECT uses guest buffers in place only when they are aligned.
   */
  readonly hostAlign?: number;
}

/** A region with the views the accessors need. */
export interface Region {
  readonly gpa: number;
  readonly end: number;
  readonly bytes: Uint8Array;
  /** Generated IDL accessors take (mem, base): base of the region's first byte in `mem`. */
  readonly mem: SharedBytes;
  readonly base: number;
  /** 16-bit view of the whole buffer for Atomics on ring indices (index = byte offset >> 1). */
  readonly u16: Uint16Array;
  readonly hostAlign: number;
}

/** Guest addresses stay below 2^52, so gpa + a 32-bit length is exact in a double. */
export const MAX_GPA = 2 ** 52;

export class GuestMemory {
  readonly regions: readonly Region[];

  constructor(regions: readonly GuestRegion[]) {
    const shared = new Map<ArrayBufferLike, { mem: SharedBytes; u16: Uint16Array }>();
    const out: Region[] = [];
    for (const r of [...regions].sort((a, b) => a.gpa - b.gpa)) {
      const size = r.bytes.byteLength;
      if (!Number.isSafeInteger(r.gpa) || r.gpa < 0 || size === 0 || r.gpa + size > MAX_GPA) {
        throw new VirtioError('BAD_MEMORY_MAP', `region at 0x${r.gpa.toString(16)} of ${size} bytes`);
      }
      if (r.bytes.byteOffset % 8 !== 0) throw new VirtioError('BAD_MEMORY_MAP', `region at 0x${r.gpa.toString(16)} is not 8-byte aligned`);
      const prev = out[out.length - 1];
      if (prev !== undefined && r.gpa < prev.end) throw new VirtioError('BAD_MEMORY_MAP', `regions overlap at 0x${r.gpa.toString(16)}`);
      let views = shared.get(r.bytes.buffer);
      if (views === undefined) {
        const buffer = r.bytes.buffer as ArrayBuffer;
        // Not `>>> 1`: that is 0 for a region of exactly 4 GiB.
        views = { mem: new SharedBytes(buffer), u16: new Uint16Array(buffer, 0, Math.floor(buffer.byteLength / 2)) };
        shared.set(r.bytes.buffer, views);
      }
      const hostAlign = r.hostAlign ?? 1;
      out.push({ gpa: r.gpa, end: r.gpa + size, bytes: r.bytes, mem: views.mem, base: r.bytes.byteOffset, u16: views.u16, hostAlign });
    }
    this.regions = out;
  }

  /** The region holding all of [gpa, gpa + len), or undefined. */
  locate(gpa: number, len: number): Region | undefined {
    // GUEST-INPUT: gpa and len come from the guest; both ends must lie in one region.
    if (!(gpa >= 0 && len >= 0 && gpa + len <= MAX_GPA)) return undefined;
    for (const r of this.regions) {
      if (gpa >= r.gpa && gpa + len <= r.end) return r;
    }
    return undefined;
  }

  /**
   * Appends host views covering [gpa, gpa + len) to `out`, one per region the range crosses
   * (regions that touch in guest-physical space form one contiguous range). Returns false,
   * appending nothing, when any byte is outside guest RAM.
   */
  views(gpa: number, len: number, out: Uint8Array[]): boolean {
    // GUEST-INPUT: a range from a descriptor; every byte must be backed by a region.
    if (!(gpa >= 0 && len > 0 && gpa + len <= MAX_GPA)) return false;
    const start = out.length;
    let at = gpa;
    const end = gpa + len;
    for (const r of this.regions) {
      if (at >= r.end) continue;
      if (at < r.gpa) break; // a hole before this region
      const stop = Math.min(end, r.end);
      out.push(r.bytes.subarray(at - r.gpa, stop - r.gpa));
      at = stop;
      if (at === end) return true;
    }
    out.length = start;
    return false;
  }

  /**
   * Whether guest address `gpa` is `align`-aligned in host memory too (a power of 2): what
   * O_DIRECT needs of a buffer it hands to the kernel as is.
   */
  hostAligned(gpa: number, align: number): boolean {
    const r = this.locate(gpa, 0);
    return r !== undefined && r.hostAlign >= align && (gpa - r.gpa) % align === 0;
  }
}

/** A half-open guest-physical range. */
export interface GpaRange {
  readonly start: number;
  readonly end: number;
}

export function overlaps(a: GpaRange, b: GpaRange): boolean {
  return a.start < b.end && b.start < a.end;
}
