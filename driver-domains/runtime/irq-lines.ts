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
  private readonly rises: Int32Array;
  private readonly seen: Int32Array;

  /** `page`: the mapped lines memfd (or, in unit tests, any buffer of LINES_PAGE_BYTES). */
  constructor(page: ArrayBufferLike) {
    if (page.byteLength < LINES_PAGE_BYTES) throw new RangeError(`lines page of ${page.byteLength} bytes, need ${LINES_PAGE_BYTES}`);
    this.masks = new Int32Array(page, 0, LINE_GSIS);
    this.rises = new Int32Array(page, IrqLinesLayout.IRQ_LINES_RISES_OFFSET, LINE_GSIS);
    this.seen = new Int32Array(page, IrqLinesLayout.IRQ_LINES_SEEN_OFFSET, LINE_GSIS);
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
    if (level === 0) Atomics.and(this.masks, gsi, ~m);
    // The OR that finds the mask empty is the merged level's rise: counted, so a reader that looks
    // only after the line fell and rose again still sees the edge. A source re-stating a level it
    // already holds (after a restart) finds its own bit set and counts nothing.
    else if (Atomics.or(this.masks, gsi, m) === 0) Atomics.add(this.rises, gsi, 1);
    return true;
  }

  /** Reader side: how many times `gsi`'s level has risen, and how many of those the reader has applied. */
  riseCounts(gsi: number): { rises: number; seen: number } {
    return { rises: Atomics.load(this.rises, gsi), seen: Atomics.load(this.seen, gsi) };
  }

  /** Reader side, after it committed what it applied: `rises` of `gsi` are applied. */
  markSeen(gsi: number, rises: number): void {
    Atomics.store(this.seen, gsi, rises);
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
 * be older than the page), and pulses a pin (0 then 1) whose line rose since the last look, even if
 * its level reads the same. The caller commits, then calls `acknowledge`.
 */
export class LineReader {
  private readonly applied: Array<0 | 1 | undefined> = new Array<0 | 1 | undefined>(LINE_GSIS).fill(undefined);
  private readonly unacknowledged = new Map<number, number>();

  constructor(private readonly lines: IrqLines, private readonly setIrq: (pin: number, level: 0 | 1) => void) {}

  /** Returns how many pins changed level or took an edge. */
  apply(): number {
    let n = 0;
    for (let pin = 0; pin < LINE_GSIS; pin++) {
      // Counts before the level: a rise that lands between the two reads shows as a level of 1 here
      // and as a rise next time, which repeats an edge at worst and never loses one.
      const { rises, seen } = this.lines.riseCounts(pin);
      const level = this.lines.level(pin);
      if (rises !== seen && this.unacknowledged.get(pin) !== rises) {
        if (this.applied[pin] !== 0) this.setIrq(pin, 0);
        this.setIrq(pin, 1);
        if (level === 0) this.setIrq(pin, 0);
        this.applied[pin] = level;
        this.unacknowledged.set(pin, rises);
        n++;
        continue;
      }
      if (this.applied[pin] === level) continue;
      this.applied[pin] = level;
      this.setIrq(pin, level);
      n++;
    }
    return n;
  }

  /** The edges applied so far are committed: record them in the page, for this reader and its successors. */
  acknowledge(): void {
    for (const [pin, rises] of this.unacknowledged) this.lines.markSeen(pin, rises);
    this.unacknowledged.clear();
  }
}
