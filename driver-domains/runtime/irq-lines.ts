// The guest's legacy interrupt lines page (control.proto, "Legacy interrupt
// lines"): one 32-bit source mask per GSI in a page microhv owns, shared by
// the line sources (the console domain) and the reader (the ioapic domain).
// A GSI's level is (mask != 0), so a line shared by several sources stays
// asserted until the last one lets go. The masks are accessed with Atomics
// only: the other side is another process writing the same memory. The host
// is x86, so the Int32Array's native order is the little-endian the IDL fixes.
import { IrqLinesLayout } from '../../idl/generated/control.js';

export const LINE_GSIS = IrqLinesLayout.IRQ_LINES_GSIS;
export const LINES_PAGE_BYTES = IrqLinesLayout.IRQ_LINES_PAGE_BYTES;

export class IrqLines {
  private readonly masks: Int32Array;

  /** `page`: the mapped lines memfd (or, in unit tests, any buffer of LINES_PAGE_BYTES). */
  constructor(page: ArrayBufferLike) {
    if (page.byteLength < LINES_PAGE_BYTES) throw new RangeError(`lines page of ${page.byteLength} bytes, need ${LINES_PAGE_BYTES}`);
    this.masks = new Int32Array(page, 0, LINE_GSIS);
  }

  /**
   * Source side: sets (level 1) or clears (level 0) `bit` in the mask of `gsi`. Returns false for a
   * GSI outside the page, which changes nothing. The caller then signals `changed`.
   */
  drive(gsi: number, bit: number, level: number): boolean {
    if (!Number.isInteger(gsi) || gsi < 0 || gsi >= LINE_GSIS) return false;
    const m = 1 << bit;
    // Atomic read-modify-write: another source may change its own bit of the same GSI at the same
    // moment; it is also ordered before the caller's eventfd write, so the reader that wakes sees it.
    if (level !== 0) Atomics.or(this.masks, gsi, m);
    else Atomics.and(this.masks, gsi, ~m);
    return true;
  }

  /** Reader side: the merged level of `gsi` (1 while any source asserts it). */
  level(gsi: number): 0 | 1 {
    // Ordered after the reader drained `changed`, so every mask change signalled so far is seen.
    return Atomics.load(this.masks, gsi) !== 0 ? 1 : 0;
  }
}

/**
 * The reader's bookkeeping: which levels it applied last. `apply` calls `setIrq` for every pin whose
 * merged level differs (all of them the first time, which a successor needs: the module's view may
 * be older than the page).
 */
export class LineReader {
  private readonly applied: Array<0 | 1 | undefined> = new Array<0 | 1 | undefined>(LINE_GSIS).fill(undefined);

  constructor(private readonly lines: IrqLines, private readonly setIrq: (pin: number, level: 0 | 1) => void) {}

  /** Returns how many pins changed level. */
  apply(): number {
    let n = 0;
    for (let pin = 0; pin < LINE_GSIS; pin++) {
      const level = this.lines.level(pin);
      if (this.applied[pin] === level) continue;
      this.applied[pin] = level;
      this.setIrq(pin, level);
      n++;
    }
    return n;
  }
}
