// The error type of the stub-domain boundary: building a module, loading it, checking its
// ABI, and driving it. Guest-caused faults never surface here; the modules count them.

export type StubDomainErrorCode =
  /** The AssemblyScript compiler or binaryen rejected the source. */
  | 'BUILD_FAILED'
  /** A built module breaks a rule of ABI.md (imports, globals, memory, start function). */
  | 'ABI_VIOLATION'
  /** A module lacks an export the ABI requires, or has it with the wrong kind. */
  | 'MISSING_EXPORT'
  /** A state image is the wrong size or carries another layout's magic or revision. */
  | 'BAD_STATE'
  /** An ioreq returned without calling answer() for its seq. */
  | 'ANSWER_MISSING'
  /** answer() was called twice for a seq, or for a seq not in flight. */
  | 'ANSWER_UNEXPECTED';

export class StubDomainError extends Error {
  override readonly name = 'StubDomainError';
  constructor(
    readonly code: StubDomainErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
