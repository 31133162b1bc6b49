// The control channel's one error type. Decoding failures wrap the
// CodecError/RecordError as `cause`; system-call failures wrap the SysError.

export type ControlErrorCode =
  | 'FRAME_TOO_LARGE' // header length above MAX_FRAME_BYTES
  | 'TRUNCATED' // the stream ended inside a frame
  | 'BAD_HEADER' // wrong version, reserved bits set, too many fds declared
  | 'FD_MISMATCH' // fds received differ from fd_count, or an FdRef points past them
  | 'DECODE' // the Envelope does not decode (bad enum, bad wire type, ...); cause says which
  | 'UNKNOWN_TYPE' // the Envelope carries no body this side knows
  | 'BAD_SENDER' // the peer sent a body its side of the channel may not send
  | 'SYS' // a system call failed; cause is the SysError
  | 'CLOSED' // the connection is closed
  | 'TIMEOUT' // no reply within the deadline
  | 'ENCODE'; // this side tried to send something invalid

export class ControlError extends Error {
  override readonly name = 'ControlError';
  constructor(
    readonly code: ControlErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}
