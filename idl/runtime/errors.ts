// Errors of the two decoding boundaries the IDL runtime owns: protobuf
// messages (CodecError) and fixed-layout records (RecordError). Both are
// raised only for bad input bytes; callers above (control framing, rings)
// wrap them as `cause` in their own error types.

export type CodecErrorCode =
  | 'TRUNCATED' // a field or length runs past the end of its message
  | 'VARINT_TOO_LONG' // more than 10 bytes, or a 64-bit value that overflows
  | 'BAD_TAG' // field number 0, or a group wire type
  | 'BAD_WIRE_TYPE' // a known field arrived with the wrong wire type
  | 'BAD_ENUM' // an enum value this side does not know, or the reserved 0
  | 'BAD_UTF8' // a string field that is not valid UTF-8
  | 'ENCODE'; // a value the encoder refuses (e.g. an invalid enum)

export class CodecError extends Error {
  override readonly name = 'CodecError';
  constructor(
    readonly code: CodecErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

export type RecordErrorCode =
  | 'TRUNCATED' // fewer bytes than the record's SIZE
  | 'MISALIGNED' // a record base not aligned to the record's alignment
  | 'BAD_ENUM' // an enum field holding an unknown value or the reserved 0
  | 'BAD_BOOL' // a bool byte that is neither 0 nor 1
  | 'RESERVED_NONZERO'; // a reserved field that is not zero

export class RecordError extends Error {
  override readonly name = 'RecordError';
  constructor(
    readonly code: RecordErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}
