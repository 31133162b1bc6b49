// The xenstore wire format: Xen's public/io/xs_wire.h and docs/misc/xenstore.txt.
// Every message in either direction is a 16-byte header (type, req_id, tx_id,
// len, all u32 little-endian on x86) followed by `len` bytes of payload.
// This file is the only place that knows those byte offsets.

/** Message types, xs_wire.h `enum xsd_sockmsg_type`. Numbers are ABI: append-only. */
export const Op = {
  CONTROL: 0,
  DIRECTORY: 1,
  READ: 2,
  GET_PERMS: 3,
  WATCH: 4,
  UNWATCH: 5,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  INTRODUCE: 8,
  RELEASE: 9,
  GET_DOMAIN_PATH: 10,
  WRITE: 11,
  MKDIR: 12,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15,
  ERROR: 16,
  IS_DOMAIN_INTRODUCED: 17,
  RESUME: 18,
  SET_TARGET: 19,
  // 20 was XS_RESTRICT; retired upstream and reserved here.
  RESET_WATCHES: 21,
  DIRECTORY_PART: 22,
} as const;
export type OpName = keyof typeof Op;
export type OpCode = (typeof Op)[OpName];

const OP_NAMES = new Map<number, OpName>(
  (Object.keys(Op) as OpName[]).map((name) => [Op[name], name]),
);

/** The name of a wire type, or undefined for a number no request may carry. */
export function opName(type: number): OpName | undefined {
  return OP_NAMES.get(type);
}

/**
 * The errno names a server may send, in the order of xs_wire.h `xsd_errors`.
 * The string is what travels; libxenstore maps it back to errno.
 */
export const WIRE_ERRORS = [
  'EINVAL', 'EACCES', 'EEXIST', 'EISDIR', 'ENOENT', 'ENOMEM', 'ENOSPC', 'EIO',
  'ENOTEMPTY', 'ENOSYS', 'EROFS', 'EBUSY', 'EAGAIN', 'EISCONN', 'E2BIG', 'EPERM',
] as const;
export type WireErrno = (typeof WIRE_ERRORS)[number];

export const HEADER_SIZE = 16;
/** XENSTORE_PAYLOAD_MAX: a larger len is a protocol violation; the connection is dropped. */
export const PAYLOAD_MAX = 4096;
/** XENSTORE_ABS_PATH_MAX and XENSTORE_REL_PATH_MAX. */
export const ABS_PATH_MAX = 3072;
export const REL_PATH_MAX = 2048;

export interface Header {
  type: number;
  reqId: number;
  txId: number;
  len: number;
}

export interface Frame {
  header: Header;
  payload: Buffer;
}

export function encodeHeader(h: Header, into: Buffer, at = 0): void {
  // Little-endian u32s: xs_wire.h's struct xsd_sockmsg as laid out on x86.
  into.writeUInt32LE(h.type >>> 0, at);
  into.writeUInt32LE(h.reqId >>> 0, at + 4);
  into.writeUInt32LE(h.txId >>> 0, at + 8);
  into.writeUInt32LE(h.len >>> 0, at + 12);
}

export function encodeFrame(type: number, reqId: number, txId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  encodeHeader({ type, reqId, txId, len: payload.length }, out);
  payload.copy(out, HEADER_SIZE);
  return out;
}

/** Payload of NUL-terminated strings, the usual request and reply shape. */
export function strings(...parts: string[]): Buffer {
  return Buffer.from(parts.map((p) => `${p}\0`).join(''), 'utf8');
}

export type DecodeResult =
  | { kind: 'frame'; frame: Frame }
  | { kind: 'need-more' }
  | { kind: 'violation'; reason: 'payload-too-long'; len: number };

/**
 * Incremental frame decoder over a byte stream. It never holds more than one
 * header plus PAYLOAD_MAX bytes of an incomplete frame, whatever the peer sends,
 * so the memory a connection can pin on the input side is bounded.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private poisoned = false;

  /** Bytes held for frames not yet complete. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** Takes ownership of `data`: the caller must not modify it afterwards. */
  push(data: Buffer): void {
    if (this.poisoned || data.length === 0) return;
    this.chunks.push(data);
    this.buffered += data.length;
  }

  /** The next complete frame, if any. After a violation the decoder yields nothing more. */
  next(): DecodeResult {
    if (this.poisoned) return { kind: 'need-more' };
    if (this.buffered < HEADER_SIZE) return { kind: 'need-more' };
    const head = this.peek(HEADER_SIZE);
    const len = head.readUInt32LE(12);
    // GUEST-INPUT: len is client-controlled; above PAYLOAD_MAX the stream is
    // unrecoverable (xenstored drops such a connection), and we must not wait
    // for, or allocate, gigabytes.
    if (len > PAYLOAD_MAX) {
      this.poisoned = true;
      this.chunks = [];
      this.buffered = 0;
      return { kind: 'violation', reason: 'payload-too-long', len };
    }
    if (this.buffered < HEADER_SIZE + len) return { kind: 'need-more' };
    const whole = this.take(HEADER_SIZE + len);
    return {
      kind: 'frame',
      frame: {
        header: {
          type: whole.readUInt32LE(0),
          reqId: whole.readUInt32LE(4),
          txId: whole.readUInt32LE(8),
          len,
        },
        payload: whole.subarray(HEADER_SIZE),
      },
    };
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    // Coalesce once, so a peer dribbling single bytes costs linear work.
    const all = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length === n) {
      // The usual case, one request per socket read: hand the chunk over as is.
      // Pushed buffers belong to the decoder; socket chunks are never reused.
      this.chunks.shift();
      this.buffered -= n;
      return first;
    }
    if (first !== undefined && first.length > n) {
      // Copy so the frame does not pin (or alias) the rest of the chunk.
      const out = Buffer.from(first.subarray(0, n));
      this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const all = Buffer.concat(this.chunks, this.buffered);
    const out = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}

/**
 * Splits a payload into its NUL-terminated strings. Returns undefined if the
 * payload does not end in NUL (a bytes tail that is not a string). The empty
 * payload yields no strings.
 */
export function splitStrings(payload: Buffer): string[] | undefined {
  if (payload.length === 0) return [];
  // GUEST-INPUT: a missing terminator means the request is malformed.
  if (payload[payload.length - 1] !== 0) return undefined;
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < payload.length; i++) {
    if (payload[i] === 0) {
      out.push(payload.toString('utf8', start, i));
      start = i + 1;
    }
  }
  return out;
}

/** Exactly one NUL, at the end: xenstored's `onearg`. */
export function oneArg(payload: Buffer): string | undefined {
  if (payload.length === 0) return undefined;
  const nul = payload.indexOf(0);
  if (nul !== payload.length - 1) return undefined;
  return payload.toString('utf8', 0, nul);
}

/** Decodes a buffer holding only whole frames (tests and tools). */
export function decodeFrames(buf: Buffer): Frame[] {
  const dec = new FrameDecoder();
  dec.push(buf);
  const out: Frame[] = [];
  for (;;) {
    const r = dec.next();
    if (r.kind !== 'frame') return out;
    out.push(r.frame);
  }
}
