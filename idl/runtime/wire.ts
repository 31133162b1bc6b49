// Protobuf wire format (proto3 subset used by microhv's control messages):
// a bounds-checked reader for untrusted bytes and a growable writer. The
// generated codecs in idl/generated/ are built on these two classes.
//
// Every read checks against `limit`, the end of the innermost message being
// decoded, so a nested length can never make the reader leave its parent.
// No read loops without consuming at least one byte, so a decode of n bytes
// ends after O(n) steps.

import { CodecError } from './errors.js';

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

export class Reader {
  pos: number;
  limit: number;
  private readonly dv: DataView;

  constructor(readonly buf: Uint8Array) {
    this.pos = 0;
    this.limit = buf.length;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get done(): boolean {
    return this.pos >= this.limit;
  }

  private need(n: number, what: string): void {
    if (n > this.limit - this.pos) {
      throw new CodecError('TRUNCATED', `${what}: needs ${n} bytes, ${this.limit - this.pos} left`);
    }
  }

  /** A varint, truncated to its low 32 bits (the proto3 rule for 32-bit fields). */
  varint32(what: string): number {
    let result = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.limit) throw new CodecError('TRUNCATED', `${what}: varint runs past the end`);
      const b = this.buf[this.pos++] as number;
      if (i < 5) result |= (b & 0x7f) << (7 * i);
      if ((b & 0x80) === 0) return result >>> 0;
    }
    throw new CodecError('VARINT_TOO_LONG', `${what}: varint longer than 10 bytes`);
  }

  /** A varint as an unsigned 64-bit bigint. */
  varint64(what: string): bigint {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.limit) throw new CodecError('TRUNCATED', `${what}: varint runs past the end`);
      const b = this.buf[this.pos++] as number;
      const bits = b & 0x7f;
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >>> 4;
      } else {
        if (i === 9 && bits > 1) throw new CodecError('VARINT_TOO_LONG', `${what}: varint overflows 64 bits`);
        hi |= bits << (7 * i - 32);
      }
      if ((b & 0x80) === 0) return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
    }
    throw new CodecError('VARINT_TOO_LONG', `${what}: varint longer than 10 bytes`);
  }

  uint32(what: string): number {
    return this.varint32(what);
  }
  int32(what: string): number {
    return this.varint32(what) | 0;
  }
  sint32(what: string): number {
    const v = this.varint32(what);
    return (v >>> 1) ^ -(v & 1);
  }
  uint64(what: string): bigint {
    return this.varint64(what);
  }
  int64(what: string): bigint {
    return BigInt.asIntN(64, this.varint64(what));
  }
  sint64(what: string): bigint {
    const v = this.varint64(what);
    return (v >> 1n) ^ -(v & 1n);
  }
  bool(what: string): boolean {
    return this.varint64(what) !== 0n;
  }
  fixed32(what: string): number {
    this.need(4, what);
    // Protobuf's own fixed32 encoding (always little-endian), not a record layout.
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  sfixed32(what: string): number {
    return this.fixed32(what) | 0;
  }
  fixed64(what: string): bigint {
    this.need(8, what);
    // Protobuf's own fixed64 encoding (always little-endian), not a record layout.
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }
  sfixed64(what: string): bigint {
    return BigInt.asIntN(64, this.fixed64(what));
  }
  float(what: string): number {
    this.need(4, what);
    const v = this.dv.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }
  double(what: string): number {
    this.need(8, what);
    const v = this.dv.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Reads a length prefix and checks that many bytes remain. */
  length(what: string): number {
    const n = this.varint32(what);
    this.need(n, what);
    return n;
  }

  bytes(what: string): Uint8Array {
    const n = this.length(what);
    // A copy: the frame buffer is reused by the transport.
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(what: string): string {
    const n = this.length(what);
    const view = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return utf8Decoder.decode(view);
    } catch (e) {
      throw new CodecError('BAD_UTF8', `${what}: not valid UTF-8`, { cause: e });
    }
  }

  /** Enters a length-delimited submessage; returns the limit to restore. */
  pushLimit(what: string): number {
    const n = this.length(what);
    const saved = this.limit;
    this.limit = this.pos + n;
    return saved;
  }

  popLimit(saved: number): void {
    // The submessage decoder loops until pos reaches the limit, never beyond.
    this.limit = saved;
  }

  /** Reads a tag; rejects field number 0 and the group wire types. */
  tag(what: string): number {
    const t = this.varint32(what);
    const wire = t & 7;
    if (t >>> 3 === 0) throw new CodecError('BAD_TAG', `${what}: field number 0`);
    if (wire === 3 || wire === 4 || wire > 5) throw new CodecError('BAD_TAG', `${what}: wire type ${wire}`);
    return t;
  }

  expectWire(tag: number, wire: number, what: string): void {
    if ((tag & 7) !== wire) {
      throw new CodecError('BAD_WIRE_TYPE', `${what}: wire type ${tag & 7}, expected ${wire}`);
    }
  }

  /** Skips an unknown field (proto3 forward compatibility). */
  skip(tag: number, what: string): void {
    switch (tag & 7) {
      case WIRE_VARINT:
        this.varint64(what);
        return;
      case WIRE_I64:
        this.need(8, what);
        this.pos += 8;
        return;
      case WIRE_LEN: {
        const n = this.length(what);
        this.pos += n;
        return;
      }
      case WIRE_I32:
        this.need(4, what);
        this.pos += 4;
        return;
      default:
        throw new CodecError('BAD_TAG', `${what}: wire type ${tag & 7}`);
    }
  }
}

export class Writer {
  private buf: Uint8Array;
  private dv: DataView;
  pos = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
    this.dv = new DataView(this.buf.buffer);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }

  varint32(v: number): void {
    this.ensure(5);
    let x = v >>> 0;
    while (x > 0x7f) {
      this.buf[this.pos++] = (x & 0x7f) | 0x80;
      x >>>= 7;
    }
    this.buf[this.pos++] = x;
  }

  varint64(v: bigint): void {
    this.ensure(10);
    let x = BigInt.asUintN(64, v);
    while (x > 0x7fn) {
      this.buf[this.pos++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.buf[this.pos++] = Number(x);
  }

  tag(field: number, wire: number): void {
    this.varint32(((field << 3) | wire) >>> 0);
  }
  uint32(v: number): void {
    this.varint32(v);
  }
  int32(v: number): void {
    // Negative int32 values are sign-extended to 64 bits on the wire.
    if (v < 0) this.varint64(BigInt(v));
    else this.varint32(v);
  }
  sint32(v: number): void {
    this.varint32(((v << 1) ^ (v >> 31)) >>> 0);
  }
  uint64(v: bigint): void {
    this.varint64(v);
  }
  int64(v: bigint): void {
    this.varint64(v);
  }
  sint64(v: bigint): void {
    const x = BigInt.asIntN(64, v);
    this.varint64((x << 1n) ^ (x >> 63n));
  }
  bool(v: boolean): void {
    this.varint32(v ? 1 : 0);
  }
  fixed32(v: number): void {
    this.ensure(4);
    // Protobuf's own fixed32 encoding (always little-endian), not a record layout.
    this.dv.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
  }
  sfixed32(v: number): void {
    this.fixed32(v | 0);
  }
  fixed64(v: bigint): void {
    this.ensure(8);
    // Protobuf's own fixed64 encoding (always little-endian), not a record layout.
    this.dv.setBigUint64(this.pos, BigInt.asUintN(64, v), true);
    this.pos += 8;
  }
  sfixed64(v: bigint): void {
    this.fixed64(v);
  }
  float(v: number): void {
    this.ensure(4);
    this.dv.setFloat32(this.pos, v, true);
    this.pos += 4;
  }
  double(v: number): void {
    this.ensure(8);
    this.dv.setFloat64(this.pos, v, true);
    this.pos += 8;
  }
  bytes(v: Uint8Array): void {
    this.varint32(v.length);
    this.ensure(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }
  string(v: string): void {
    this.bytes(utf8Encoder.encode(v));
  }

  /** Appends n zero bytes, to be overwritten later (e.g. a frame header). */
  reserve(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.pos, this.pos + n);
    this.pos += n;
  }

  /** Starts a length-delimited block; pass the result to endLength. */
  beginLength(): number {
    // Reserve one byte; most submessages are shorter than 128 bytes.
    this.ensure(1);
    this.pos += 1;
    return this.pos;
  }

  endLength(start: number): void {
    const len = this.pos - start;
    let lenBytes = 1;
    for (let x = len >>> 7; x > 0; x >>>= 7) lenBytes++;
    if (lenBytes > 1) {
      this.ensure(lenBytes - 1);
      this.buf.copyWithin(start + lenBytes - 1, start, this.pos);
      this.pos += lenBytes - 1;
    }
    let p = start - 1;
    let x = len;
    while (x > 0x7f) {
      this.buf[p++] = (x & 0x7f) | 0x80;
      x >>>= 7;
    }
    this.buf[p] = x;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  reset(): void {
    this.pos = 0;
  }
}

/** Encodes one message with a generated encoder. */
export function encodeMessage<T>(encode: (w: Writer, m: T) => void, m: T): Uint8Array {
  const w = new Writer();
  encode(w, m);
  return w.finish();
}

/** Decodes one message from untrusted bytes with a generated decoder. */
export function decodeMessage<T>(decode: (r: Reader) => T, bytes: Uint8Array): T {
  return decode(new Reader(bytes));
}
