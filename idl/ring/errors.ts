// The ring boundary's one error type. Index errors are the peer's fault and
// break the ring for good on this side (see idl/README.md, "Validation").

export type RingErrorCode =
  | 'BAD_HEADER' // magic, version, order or slot size wrong, or the ring does not fit its buffer
  | 'PROD_BACKWARDS' // the peer's producer index moved backwards
  | 'PROD_TOO_FAR' // the peer's producer index moved further than it has slots for
  | 'FULL' // no free slot to produce into (caller error: check first)
  | 'EMPTY' // nothing to consume (caller error: check first)
  | 'BROKEN' // a previous index error broke this ring; `cause` is that error
  | 'TIMEOUT'; // a wait for work ran out of time

export class RingError extends Error {
  override readonly name = 'RingError';
  constructor(
    readonly code: RingErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}
