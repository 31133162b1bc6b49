// The test host's console protocol: stage 2 prints READY before the command and
// `EXIT<status>@@` after it. Everything between is the command's output. The
// parser is fed chunks as they arrive (markers may be split across chunks).
export const READY = '@@microhv-testhost-ready@@';
export const EXIT = '@@microhv-testhost-exit=';

export class ConsoleParser {
  private pending = '';
  ready = false;
  /** The line break that ends the READY line is not output; it may arrive in a later chunk. */
  private atStart = false;
  exitCode: number | undefined;

  /** Feeds raw console text; returns the command output that is now certain. */
  feed(text: string): string {
    if (this.exitCode !== undefined) return '';
    this.pending += text;
    if (!this.ready) {
      const r = this.pending.indexOf(READY);
      if (r < 0) {
        // Keep only what could still be the start of READY.
        this.pending = this.pending.slice(-(READY.length - 1));
        return '';
      }
      this.ready = true;
      this.atStart = true;
      this.pending = this.pending.slice(r + READY.length);
    }
    if (this.atStart) {
      if (this.pending === '' || this.pending === '\r') return '';
      this.pending = this.pending.replace(/^\r?\n/, '');
      this.atStart = false;
    }
    const e = this.pending.indexOf(EXIT);
    if (e >= 0) {
      const m = /^(-?\d+)@@/.exec(this.pending.slice(e + EXIT.length));
      if (!m) {
        // Marker still arriving, or a garbled one: hold it back only while it can still complete.
        if (/^-?\d*@?$/.test(this.pending.slice(e + EXIT.length))) return this.take(e);
        const out = this.pending;
        this.pending = '';
        return out;
      }
      const out = this.pending.slice(0, e);
      this.exitCode = Number(m[1]);
      this.pending = '';
      return out;
    }
    // Hold back a tail that could be the start of the exit marker.
    for (let k = Math.min(EXIT.length - 1, this.pending.length); k > 0; k--) {
      if (EXIT.startsWith(this.pending.slice(-k))) return this.take(this.pending.length - k);
    }
    return this.take(this.pending.length);
  }

  private take(n: number): string {
    const out = this.pending.slice(0, n);
    this.pending = this.pending.slice(n);
    return out;
  }
}
