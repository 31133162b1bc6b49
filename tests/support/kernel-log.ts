// Reads a Linux guest's kernel log straight out of its memory, for bring-up
// and for tests that must see what the guest printed without any console.
// Debian's System.map is a placeholder, so the printk text ring is found by
// content: the copy of the "Linux version" banner that is followed, within a
// few KiB, by the "Command line:" message is the one in the log ring (the
// banner also sits in the kernel's read-only data, alone).

/** Printable runs of at least `min` characters. */
export function printableRuns(buf: Uint8Array, min = 8): string[] {
  const lines: string[] = [];
  let start = -1;
  for (let i = 0; i <= buf.length; i++) {
    const b = i < buf.length ? buf[i]! : 0;
    const printable = b >= 0x20 && b < 0x7f;
    if (printable && start < 0) start = i;
    else if (!printable && start >= 0) {
      if (i - start >= min) lines.push(Buffer.from(buf.subarray(start, i)).toString('latin1'));
      start = -1;
    }
  }
  return lines;
}

/** The kernel log text found in guest RAM, or [] if none is there yet. `ringBytes` is 1 << CONFIG_LOG_BUF_SHIFT. */
export function kernelLogFromMemory(ram: Uint8Array, ringBytes = 1 << 17): string[] {
  const mem = Buffer.from(ram.buffer, ram.byteOffset, ram.byteLength);
  for (let at = mem.indexOf('Linux version '); at >= 0; at = mem.indexOf('Linux version ', at + 1)) {
    const near = mem.subarray(at, at + 8192);
    if (near.indexOf('Command line:') < 0) continue;
    // The ring starts a little before the first record (its header), and wraps within ringBytes.
    const from = Math.max(0, at - 64);
    return printableRuns(mem.subarray(from, from + ringBytes));
  }
  return [];
}
