// The one error type of the boot boundary. The kernel image, the initrd and every size the
// caller passes are untrusted input: anything wrong with them becomes a BootError, never a
// RangeError from a typed array or a plan that writes outside guest RAM.

export type BootErrorCode =
  | 'BAD_MEMORY_SIZE'      // RAM size out of range or not aligned
  | 'BAD_VCPU_COUNT'       // not 1..MAX_VCPUS
  | 'NOT_BZIMAGE'          // no boot flag / "HdrS" magic, or truncated
  | 'PROTOCOL_TOO_OLD'     // boot protocol below 2.12
  | 'NO_64BIT_ENTRY'       // XLF_KERNEL_64 clear
  | 'BAD_HEADER'           // inconsistent setup header fields
  | 'KERNEL_DOES_NOT_FIT'  // kernel (init_size) does not fit in low RAM
  | 'INITRD_DOES_NOT_FIT'  // no RAM below the initrd limit above the kernel
  | 'CMDLINE_TOO_LONG'     // longer than the kernel's cmdline_size or our buffer
  | 'BAD_CMDLINE';         // contains a NUL byte

export class BootError extends Error {
  constructor(readonly code: BootErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BootError';
  }
}
