// The error type of a domain process boundary (the stub-domain runtime and the
// block domain): its control channel to microhv, its state region, its console
// outputs and disk image. Faults inside the module
// stay StubDomainError (its cause); guest-caused faults never surface here.

export type DomainProcessErrorCode =
  /** The command line is wrong. */
  | 'USAGE'
  /** The control channel failed, or microhv answered a request with an Error. */
  | 'CONTROL'
  /** microhv sent something the protocol does not allow at this point (a wrong reply, a missing fd). */
  | 'PROTOCOL'
  /** The state region cannot be used (too small, corrupt, another kind). */
  | 'STATE'
  /** The module refused the configuration it was given (the pci device table). */
  | 'CONFIG'
  /** The console log file or socket failed. */
  | 'CONSOLE_IO'
  /** The block domain's disk image cannot be opened, or does not fit the options. */
  | 'IMAGE'
  /** The sandbox is not what microhv promised (an fd it did not give), or a seccomp filter could not be installed. Exit status 3. */
  | 'SANDBOX';

export class DomainProcessError extends Error {
  override readonly name = 'DomainProcessError';
  constructor(
    readonly code: DomainProcessErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}
