// The state region of a stub-domain process (DESIGN.md 2.1): the memfd
// microhv owns and hands to every instance of the domain. It holds all a
// successor needs to resume exactly: the module's state window, the applied
// log of every ioreq endpoint (last seq and its answer per vCPU slot, the
// buffered ring's consumer cursor), and the console's transmit outbox.
//
// Layout (little-endian; the region is private to the instances of one domain,
// which all run this file, so its offsets live here rather than in idl/):
//
//   0x0000  region header, 16 bytes
//             +0  magic 'MHSR' (0x5253484d)       +4  LAYOUT_REVISION
//             +8  COPY_BYTES                      +12 reserved (0)
//   0x1000  copy 0, COPY_BYTES
//   0x1000 + COPY_BYTES  copy 1, COPY_BYTES
//
//   copy:   +0  generation u64 (1, 2, 3, ...; 0: never written)
//           +8  checksum u32 of generation, length and body
//           +12 length u32: bytes of the body
//           +16 body
//   body:   +0  kind u32 (KIND_CODE)               +4  state window bytes u32
//           +8  endpoint count u32                 +12 flags u32 (FLAG_*)
//           +16 console log offset u64: where the next drained byte goes
//           +24 outbox offset u64                  +32 outbox length u32
//           +36 reserved u32 (0)                   +40 state window, padded to 8
//           then per endpoint: consumed u32, endpoint flags u32 (bit 0: consumed
//                valid), vcpus u32, reserved u32, vcpus x {seq u64, data u64}
//           then the outbox bytes, padded to 4
//
// Commit (atomic against kill -9 at any instruction): the new image goes to
// the copy that does not hold the newest valid generation, body first, then
// length and checksum, then the generation word; `load` takes the valid copy
// with the highest generation. A copy is valid when its checksum matches its
// generation, length and body, so a copy torn anywhere (body, length,
// checksum or either half of the generation) fails the check and the other
// copy, the previous commit, is used.
import { StubDomainError } from './errors.js';

export const REGION_MAGIC = 0x5253_484d;
export const LAYOUT_REVISION = 1;
/** The most endpoints and vCPU slots per endpoint one image records. */
export const MAX_ENDPOINTS = 8;
export const MAX_VCPUS = 64;
/** The largest outbox: tx_drain() returns at most 4096 bytes (ABI.md). */
export const MAX_OUTBOX = 4096;
/** The largest state window (ABI.md memory map: 0x0100..0x20ff). */
export const MAX_WINDOW = 0x2000;

const COPY_HEADER = 16;
const BODY_HEADER = 40;
const ENDPOINT_HEADER = 16;
const APPLIED_ENTRY = 16;
export const COPY_BYTES = roundUp(COPY_HEADER + BODY_HEADER + MAX_WINDOW + MAX_ENDPOINTS * (ENDPOINT_HEADER + MAX_VCPUS * APPLIED_ENTRY) + MAX_OUTBOX, 4096);
export const COPY_OFFSETS = [0x1000, 0x1000 + COPY_BYTES] as const;
/** Bytes a state region must have; microhv gives more, the rest is unused. */
export const REGION_BYTES = 0x1000 + 2 * COPY_BYTES;

export const KIND_CODE = { ioapic: 1, console: 2, pci: 3 } as const;
export type PersistKind = keyof typeof KIND_CODE;

const FLAG_LOG_OFFSET = 1;
const EP_FLAG_CONSUMED = 1;

export interface AppliedEntry { seq: bigint; data: bigint }
export interface EndpointImage {
  /** The buffered ring's consumer cursor, or undefined before the first posted write. */
  consumed: number | undefined;
  /** Per vCPU slot, the last ioreq applied. */
  readonly applied: AppliedEntry[];
}
export interface Outbox { offset: bigint; bytes: Uint8Array }
export interface Image {
  readonly kind: PersistKind;
  /** The module's state window (a view of its memory when committing). */
  window: Uint8Array;
  /** Console log: the offset the next drained byte belongs at; undefined until a log is opened. */
  logOffset: bigint | undefined;
  /** Drained console bytes not yet known to be in the log file. */
  outbox: Outbox | undefined;
  readonly endpoints: EndpointImage[];
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** FNV-1a over 32-bit words: cheap enough to run on every commit, and any torn word changes it. */
function checksum(view: DataView, start: number, end: number, seed: number): number {
  let h = (0x811c_9dc5 ^ seed) >>> 0;
  for (let o = start; o < end; o += 4) h = Math.imul(h ^ view.getUint32(o, true), 0x0100_0193) >>> 0;
  return h;
}

export class StateRegion {
  private readonly view: DataView;
  private readonly words: Int32Array;
  private readonly scratch = new Uint8Array(COPY_BYTES - COPY_HEADER);
  private readonly scratchView = new DataView(this.scratch.buffer);
  private generation = 0n;
  private active = -1;

  /** `bytes` is the mapped region (an ArrayBuffer of an mmap in the process, a plain one in tests). */
  constructor(private readonly bytes: Uint8Array) {
    if (bytes.byteLength < REGION_BYTES) {
      throw new StubDomainError('BAD_STATE', `state region of ${bytes.byteLength} bytes, need ${REGION_BYTES}`);
    }
    if (bytes.byteOffset % 8 !== 0) throw new StubDomainError('BAD_STATE', 'state region is not 8-byte aligned');
    // The region's own layout (see the top of this file), not an IDL record.
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.words = new Int32Array(bytes.buffer, bytes.byteOffset, REGION_BYTES >> 2);
  }

  /** Generation of the newest valid commit (0 before the first). */
  get committed(): bigint {
    return this.generation;
  }

  /**
   * The newest valid image, 'empty' when nothing was ever committed, or BAD_STATE when the region
   * holds data but no valid copy of this kind (never fall back to power-on on a running guest).
   */
  load(kind: PersistKind): Image | 'empty' {
    const v = this.view;
    const header = [v.getUint32(0, true), v.getUint32(4, true), v.getUint32(8, true)];
    const blank = header.every((w) => w === 0);
    if (!blank && (header[0] !== REGION_MAGIC || header[1] !== LAYOUT_REVISION || header[2] !== COPY_BYTES)) {
      throw new StubDomainError('BAD_STATE', `state region header ${header.map((w) => w.toString(16)).join(' ')}: another layout`);
    }
    let best = -1;
    let bestGen = 0n;
    let written = false;
    COPY_OFFSETS.forEach((base, i) => {
      const gen = v.getBigUint64(base, true);
      if (gen !== 0n) written = true;
      if (gen > bestGen && this.copyValid(base)) {
        best = i;
        bestGen = gen;
      }
    });
    if (best < 0) {
      if (!written) return 'empty';
      throw new StubDomainError('BAD_STATE', 'state region holds no valid copy (both torn or corrupt)');
    }
    this.active = best;
    this.generation = bestGen;
    return this.decode(COPY_OFFSETS[best]!, kind);
  }

  private copyValid(base: number): boolean {
    const v = this.view;
    const length = v.getUint32(base + 12, true);
    if (length > COPY_BYTES - COPY_HEADER || length % 4 !== 0) return false;
    return v.getUint32(base + 8, true) === this.sum(base, length, v.getBigUint64(base, true));
  }

  private sum(base: number, length: number, generation: bigint): number {
    const seed = Number(generation & 0xffff_ffffn) ^ Math.imul(Number(generation >> 32n), 31) ^ length;
    return checksum(this.view, base + COPY_HEADER, base + COPY_HEADER + length, seed);
  }

  private decode(base: number, kind: PersistKind): Image {
    const v = this.view;
    const b = base + COPY_HEADER;
    const code = v.getUint32(b, true);
    if (code !== KIND_CODE[kind]) throw new StubDomainError('BAD_STATE', `state region holds kind ${code}, this domain is ${kind}`);
    const windowBytes = v.getUint32(b + 4, true);
    const count = v.getUint32(b + 8, true);
    const flags = v.getUint32(b + 12, true);
    const outboxLength = v.getUint32(b + 32, true);
    if (windowBytes > MAX_WINDOW || count > MAX_ENDPOINTS || outboxLength > MAX_OUTBOX) {
      throw new StubDomainError('BAD_STATE', `state image out of bounds (window ${windowBytes}, endpoints ${count}, outbox ${outboxLength})`);
    }
    let o = b + BODY_HEADER;
    const window = this.bytes.slice(o, o + windowBytes);
    o += roundUp(windowBytes, 8);
    const endpoints: EndpointImage[] = [];
    for (let e = 0; e < count; e++) {
      const consumed = v.getUint32(o, true);
      const epFlags = v.getUint32(o + 4, true);
      const vcpus = v.getUint32(o + 8, true);
      if (vcpus > MAX_VCPUS) throw new StubDomainError('BAD_STATE', `endpoint ${e} records ${vcpus} vCPUs`);
      o += ENDPOINT_HEADER;
      const applied: AppliedEntry[] = [];
      for (let i = 0; i < vcpus; i++, o += APPLIED_ENTRY) applied.push({ seq: v.getBigUint64(o, true), data: v.getBigUint64(o + 8, true) });
      endpoints.push({ consumed: (epFlags & EP_FLAG_CONSUMED) !== 0 ? consumed : undefined, applied });
    }
    const outbox = outboxLength > 0 ? { offset: v.getBigUint64(b + 24, true), bytes: this.bytes.slice(o, o + outboxLength) } : undefined;
    return { kind, window, logOffset: (flags & FLAG_LOG_OFFSET) !== 0 ? v.getBigUint64(b + 16, true) : undefined, outbox, endpoints };
  }

  /** Writes `image` as the next generation. Durable against kill -9 when it returns. */
  commit(image: Image): bigint {
    this.writeCopy(image, (this.active + 1) % 2);
    return this.generation;
  }

  /**
   * Writes `image` into copy `target`, stopping after `stopAfter` body bytes when given: what a
   * commit interrupted by kill -9 leaves behind, for tests.
   */
  writeCopy(image: Image, target: number, stopAfter?: number): void {
    const base = COPY_OFFSETS[target];
    if (base === undefined) throw new RangeError(`copy ${target}`);
    const v = this.view;
    const count = image.endpoints.length;
    const outbox = image.outbox?.bytes ?? new Uint8Array(0);
    if (image.window.byteLength > MAX_WINDOW || count > MAX_ENDPOINTS || outbox.byteLength > MAX_OUTBOX) {
      throw new StubDomainError('BAD_STATE', 'image exceeds the region layout');
    }
    // The body is built in a scratch buffer and copied in one set(): the cut of a torn write
    // (stopAfter) is then exact, and nothing is allocated per commit.
    const b = base + COPY_HEADER;
    const body = this.scratch;
    const bv = this.scratchView;
    bv.setUint32(0, KIND_CODE[image.kind], true);
    bv.setUint32(4, image.window.byteLength, true);
    bv.setUint32(8, count, true);
    bv.setUint32(12, image.logOffset === undefined ? 0 : FLAG_LOG_OFFSET, true);
    bv.setBigUint64(16, image.logOffset ?? 0n, true);
    bv.setBigUint64(24, image.outbox?.offset ?? 0n, true);
    bv.setUint32(32, outbox.byteLength, true);
    let o = BODY_HEADER;
    body.set(image.window, o);
    o += roundUp(image.window.byteLength, 8);
    for (const ep of image.endpoints) {
      if (ep.applied.length > MAX_VCPUS) throw new StubDomainError('BAD_STATE', `${ep.applied.length} vCPUs, at most ${MAX_VCPUS}`);
      bv.setUint32(o, ep.consumed ?? 0, true);
      bv.setUint32(o + 4, ep.consumed === undefined ? 0 : EP_FLAG_CONSUMED, true);
      bv.setUint32(o + 8, ep.applied.length, true);
      o += ENDPOINT_HEADER;
      for (const a of ep.applied) {
        bv.setBigUint64(o, a.seq, true);
        bv.setBigUint64(o + 8, a.data, true);
        o += APPLIED_ENTRY;
      }
    }
    body.set(outbox, o);
    const length = roundUp(o + outbox.byteLength, 4);
    const generation = this.generation + 1n;
    if (stopAfter !== undefined) {
      this.bytes.set(body.subarray(0, Math.min(stopAfter, length)), b);
      return;
    }
    this.bytes.set(body.subarray(0, length), b);
    v.setUint32(base + 12, length, true);
    v.setUint32(base + 8, this.sum(base, length, generation), true);
    // ORDER: the generation is stored last, after the body, length and checksum above, with
    // seq_cst stores (low word, then high word). A kill stops the process between two stores,
    // and every store already executed is in the shared page, so a copy whose generation is
    // new is complete; one cut earlier fails its checksum, which covers the generation.
    Atomics.store(this.words, (base >> 2) + 0, Number(generation & 0xffff_ffffn) | 0);
    Atomics.store(this.words, (base >> 2) + 1, Number(generation >> 32n) | 0);
    if (this.generation === 0n) {
      // The region header goes last on the first commit: a blank header means "never committed".
      v.setUint32(0, REGION_MAGIC, true);
      v.setUint32(4, LAYOUT_REVISION, true);
      v.setUint32(8, COPY_BYTES, true);
    }
    this.generation = generation;
    this.active = target;
  }
}
