// Views over a buffer that holds fixed-layout records: a ring, a slot page,
// a state region. Created once per mapping; the generated accessors take
// one of these plus a byte offset.

import { RecordError } from './errors.js';

// Atomics.load/store act in the platform's byte order, while the wire is
// little-endian. Every target of microhv is x86-64 (little-endian); refuse to
// run anywhere else rather than silently disagree with a peer.
const probe = new Uint8Array(new Uint32Array([0x01020304]).buffer);
if (probe[0] !== 0x04) {
  throw new Error('microhv IDL: big-endian hosts are not supported');
}

export class SharedBytes {
  readonly dv: DataView;
  readonly u8: Uint8Array;
  readonly i32: Int32Array;
  readonly byteLength: number;

  constructor(readonly buffer: ArrayBuffer | SharedArrayBuffer) {
    this.byteLength = buffer.byteLength;
    this.dv = new DataView(buffer);
    this.u8 = new Uint8Array(buffer);
    // Int32Array needs a whole number of words; a trailing partial word can
    // hold no atomic field anyway.
    this.i32 = new Int32Array(buffer, 0, this.byteLength >>> 2);
  }

  /** Copies `bytes` into a fresh, private buffer (for decoding untrusted input). */
  static copyOf(bytes: Uint8Array): SharedBytes {
    const ab = new ArrayBuffer(bytes.byteLength);
    new Uint8Array(ab).set(bytes);
    return new SharedBytes(ab);
  }

  /** Throws unless [base, base + size) lies inside the buffer and base is aligned. */
  check(base: number, size: number, align: number, what: string): void {
    if (!Number.isInteger(base) || base < 0 || base + size > this.byteLength) {
      throw new RecordError('TRUNCATED', `${what} at ${base}: needs ${size} bytes, buffer has ${this.byteLength}`);
    }
    if (base % align !== 0) {
      throw new RecordError('MISALIGNED', `${what} at ${base}: not ${align}-byte aligned`);
    }
  }
}
