// Errors at the two boundaries of this domain.
// - XsError: a request failed; it crosses the wire as an xs_wire.h errno name.
// - PersistError: the journal or snapshot could not be read or written; the
//   daemon stops rather than acknowledge writes it cannot make durable.
import type { WireErrno } from './wire.js';

export class XsError extends Error {
  readonly code: WireErrno;
  constructor(code: WireErrno, message?: string, options?: { cause?: unknown }) {
    super(message ?? code, options);
    this.name = 'XsError';
    this.code = code;
  }
}

export type PersistErrorCode = 'io' | 'corrupt-snapshot' | 'bad-state-dir';

export class PersistError extends Error {
  readonly code: PersistErrorCode;
  constructor(code: PersistErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PersistError';
    this.code = code;
  }
}

/** Errors the client library surfaces: a server error string, or a dead connection. */
export type ClientErrorCode = WireErrno | 'DomainDown' | 'Closed' | 'Protocol';

export class ClientError extends Error {
  readonly code: ClientErrorCode;
  constructor(code: ClientErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? code, options);
    this.name = 'ClientError';
    this.code = code;
  }
}
