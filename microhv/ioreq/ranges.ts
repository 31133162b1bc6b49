// The ioreq range table: which endpoint serves which port or MMIO range.
// Written by the core's main thread when a domain registers a range, read by
// every vCPU thread on every trapped access, with no lock on the read side: a
// sequence word (seqlock) tells a reader to retry if it raced with a writer.
// It lives in a SharedArrayBuffer that the vCPU workers receive at start.

export type Space = 'pio' | 'mmio';
/**
 * A claimed range. `relative`: the endpoint gets addresses as offsets from `first` (a PCI BAR served
 * by its backend: the backend decodes its BAR, wherever the guest put it).
 */
export interface IoRange { readonly space: Space; readonly first: number; readonly last: number; readonly endpoint: number; readonly buffered: boolean; readonly relative?: boolean }

export class IoRangeError extends Error {
  constructor(readonly code: 'OVERLAP' | 'FULL' | 'BAD_RANGE', message: string) {
    super(message);
    this.name = 'RangeTableError';
  }
}

export const MAX_RANGES = 64;
const HDR = 2; // [0] sequence (odd while a write is in progress), [1] entry count
const W = 6; // words per entry: space, endpoint, buffered, relative, then first and last as float64 (exact below 2^53)
const SPACE = { pio: 1, mmio: 2 } as const;

export class RangeTable {
  readonly buffer: SharedArrayBuffer;
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(8 * (HDR + MAX_RANGES * W));
    this.i32 = new Int32Array(this.buffer);
    this.f64 = new Float64Array(this.buffer);
  }

  private entry(i: number): IoRange {
    const b = HDR + i * W;
    return {
      space: this.i32[2 * b] === SPACE.pio ? 'pio' : 'mmio',
      endpoint: this.i32[2 * b + 1]!,
      buffered: this.i32[2 * b + 2] !== 0,
      relative: this.i32[2 * b + 3] !== 0,
      first: this.f64[b + 2]!,
      last: this.f64[b + 3]!,
    };
  }

  list(): IoRange[] {
    return this.read(() => Array.from({ length: Atomics.load(this.i32, 1) }, (_, i) => this.entry(i)));
  }

  /** The range serving `addr`, if any. Safe against a concurrent writer. */
  lookup(space: Space, addr: number): IoRange | undefined {
    const want = SPACE[space];
    return this.read(() => {
      const n = Atomics.load(this.i32, 1);
      for (let i = 0; i < n; i++) {
        const b = HDR + i * W;
        if (this.i32[2 * b] === want && addr >= this.f64[b + 2]! && addr <= this.f64[b + 3]!) return this.entry(i);
      }
      return undefined;
    });
  }

  private read<T>(f: () => T): T {
    for (;;) {
      // Acquire: the entries read below are at least as new as this sequence number.
      const s1 = Atomics.load(this.i32, 0);
      if (s1 & 1) continue; // a writer is mid-update
      const v = f();
      // Re-check: if a writer started meanwhile, what we read may be torn.
      if (Atomics.load(this.i32, 0) === s1) return v;
    }
  }

  private write(f: () => void): void {
    Atomics.add(this.i32, 0, 1); // odd: readers retry from here on
    try { f(); } finally { Atomics.add(this.i32, 0, 1); } // even again: publishes the entries
  }

  /** Throws unless `r` could be added now: a valid range that overlaps none and fits in the table. */
  check(r: Omit<IoRange, 'endpoint'>): void {
    const maxAddr = r.space === 'pio' ? 0xffff : Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(r.first) || !Number.isSafeInteger(r.last) || r.first < 0 || r.last < r.first || r.last > maxAddr) {
      throw new IoRangeError('BAD_RANGE', `bad ${r.space} range ${r.first}..${r.last}`);
    }
    const clash = this.list().find((o) => o.space === r.space && r.first <= o.last && o.first <= r.last);
    if (clash) throw new IoRangeError('OVERLAP', `${r.space} 0x${r.first.toString(16)}..0x${r.last.toString(16)} overlaps endpoint ${clash.endpoint}'s 0x${clash.first.toString(16)}..0x${clash.last.toString(16)}`);
    if (Atomics.load(this.i32, 1) >= MAX_RANGES) throw new IoRangeError('FULL', `at most ${MAX_RANGES} ranges`);
  }

  add(r: IoRange): void {
    this.check(r);
    const n = Atomics.load(this.i32, 1);
    this.write(() => {
      this.put(n, r);
      Atomics.store(this.i32, 1, n + 1);
    });
  }

  /** Writes entry i; only inside write(). */
  private put(i: number, r: IoRange): void {
    const b = HDR + i * W;
    this.i32[2 * b] = SPACE[r.space];
    this.i32[2 * b + 1] = r.endpoint;
    this.i32[2 * b + 2] = r.buffered ? 1 : 0;
    this.i32[2 * b + 3] = r.relative === true ? 1 : 0;
    this.f64[b + 2] = r.first;
    this.f64[b + 3] = r.last;
  }

  /** Removes every range of an endpoint (its domain is gone for good). */
  removeEndpoint(endpoint: number): void {
    this.keepOnly((r) => r.endpoint !== endpoint);
  }

  /** Removes the range of `space` that starts at `first` (a BAR that moved or stopped decoding), if any. */
  remove(space: Space, first: number): void {
    this.keepOnly((r) => r.space !== space || r.first !== first);
  }

  private keepOnly(keepIf: (r: IoRange) => boolean): void {
    const keep = this.list().filter(keepIf);
    this.write(() => {
      keep.forEach((r, i) => this.put(i, r));
      Atomics.store(this.i32, 1, keep.length);
    });
  }
}
