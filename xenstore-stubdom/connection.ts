// One client connection: bytes in through the frame decoder, frames out in
// order once the journal says the change they report is durable.
//
// Memory per connection is bounded: the decoder holds at most one frame; the
// output queue is watched against two marks (Limits.outputPauseBytes: stop
// reading requests; Limits.outputDropBytes: close), and identical watch events
// still queued are coalesced, as xenstored does.
import type * as net from 'node:net';
import type { Session, Sink, Xenstored } from './daemon.js';
import type { Identity } from './perms.js';
import { FrameDecoder } from './wire.js';

interface Queued {
  frame: Buffer;
  kind: 'reply' | 'event';
  needSeq: number;
}

/** How much we hand to the socket before keeping the rest in our own queue. */
const SOCKET_HIGH_WATER = 64 * 1024;

export interface ConnectionStats {
  violations: number;
  overflowCloses: number;
  coalescedEvents: number;
  /** Times a connection was paused because it did not read its replies. */
  pauses: number;
}

export class Connection implements Sink {
  readonly session: Session;
  private readonly decoder = new FrameDecoder();
  private queue: Queued[] = [];
  private head = 0;
  private queuedBytes = 0;
  private paused = false;
  private closed = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly daemon: Xenstored,
    who: Identity,
    private readonly durableSeq: () => number,
    private readonly stats: ConnectionStats,
    private readonly onClosed: (c: Connection) => void,
  ) {
    this.session = daemon.openSession(who, this);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.pump());
    socket.on('error', () => this.close('socket error'));
    socket.on('close', () => this.close('peer closed'));
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.decoder.push(chunk);
    this.processFrames();
  }

  private processFrames(): void {
    while (!this.paused && !this.closed) {
      const r = this.decoder.next();
      if (r.kind === 'need-more') return;
      if (r.kind === 'violation') {
        // GUEST-INPUT: xenstored drops a client that announces an oversized payload.
        this.stats.violations++;
        this.close(`protocol violation: ${r.reason} (${r.len})`);
        return;
      }
      this.daemon.handle(this.session, r.frame);
    }
  }

  send(frame: Buffer, kind: 'reply' | 'event', needSeq: number): void {
    if (this.closed) return;
    if (kind === 'event' && this.isQueuedEvent(frame)) {
      this.stats.coalescedEvents++;
      return;
    }
    // Fast path: nothing queued, change already durable, socket keeping up.
    if (this.head === this.queue.length && needSeq <= this.durableSeq() && this.socket.writableLength < SOCKET_HIGH_WATER) {
      this.socket.write(frame);
      return;
    }
    this.queue.push({ frame, kind, needSeq });
    this.queuedBytes += frame.length;
    this.pump();
    if (this.closed) return;
    const total = this.queuedBytes + this.socket.writableLength;
    if (total > this.daemon.state.limits.outputDropBytes) {
      this.stats.overflowCloses++;
      this.close('client does not read its replies');
    } else if (total > this.daemon.state.limits.outputPauseBytes && !this.paused) {
      this.paused = true;
      this.stats.pauses++;
      this.socket.pause();
    }
  }

  /** Writes whatever is durable and fits; called on durability progress and socket drain. */
  pump(): void {
    if (this.closed) return;
    const durable = this.durableSeq();
    const out: Buffer[] = [];
    let bytes = this.socket.writableLength;
    while (this.head < this.queue.length && bytes < SOCKET_HIGH_WATER) {
      const q = this.queue[this.head] as Queued;
      if (q.needSeq > durable) break;
      out.push(q.frame);
      bytes += q.frame.length;
      this.queuedBytes -= q.frame.length;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (out.length === 1) this.socket.write(out[0] as Buffer);
    else if (out.length > 1) this.socket.write(Buffer.concat(out));
    if (this.paused && this.queuedBytes + this.socket.writableLength <= this.daemon.state.limits.outputPauseBytes / 2) {
      this.paused = false;
      this.socket.resume();
      this.processFrames();
    }
  }

  get hasBacklog(): boolean {
    return this.head < this.queue.length;
  }

  private isQueuedEvent(frame: Buffer): boolean {
    for (let i = this.head; i < this.queue.length; i++) {
      const q = this.queue[i] as Queued;
      if (q.kind === 'event' && q.frame.equals(frame)) return true;
    }
    return false;
  }

  close(_reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.queuedBytes = 0;
    this.daemon.closeSession(this.session);
    this.socket.destroy();
    this.onClosed(this);
  }
}
