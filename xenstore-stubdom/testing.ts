// Fakes for unit tests: a sink that records frames, a journal that keeps
// records in memory, and a harness that drives the daemon as a client would.
import { DEFAULT_LIMITS } from './config.js';
import type { Limits } from './config.js';
import { Xenstored } from './daemon.js';
import type { JournalSink, Session, Sink } from './daemon.js';
import type { DurableState, JournalRecord } from './records.js';
import { applyRecord, freshState } from './records.js';
import { Op, decodeFrames, encodeFrame, splitStrings, strings } from './wire.js';
import type { Frame } from './wire.js';

export class FakeSink implements Sink {
  readonly frames: Array<{ frame: Frame; kind: 'reply' | 'event'; needSeq: number }> = [];
  closedReason: string | undefined;

  send(frame: Buffer, kind: 'reply' | 'event', needSeq: number): void {
    const [f] = decodeFrames(frame);
    if (f === undefined) throw new Error('sink got a malformed frame');
    this.frames.push({ frame: f, kind, needSeq });
  }

  close(reason: string): void {
    this.closedReason = reason;
  }

  events(): Array<[string, string]> {
    return this.frames.filter((f) => f.kind === 'event').map((f) => splitStrings(f.frame.payload) as [string, string]);
  }

  clear(): void {
    this.frames.length = 0;
  }
}

export class MemoryJournal implements JournalSink {
  readonly records: JournalRecord[] = [];
  get appendedSeq(): number {
    return this.records.length;
  }
  append(r: JournalRecord): number {
    this.records.push(r);
    return this.records.length;
  }
  /** The state a restart would rebuild from these records. */
  replay(limits: Limits = DEFAULT_LIMITS): DurableState {
    const s = freshState(limits);
    for (const r of this.records) applyRecord(s, r);
    return s;
  }
}

export interface Reply {
  type: number;
  payload: Buffer;
  /** The error name for an ERROR reply, else undefined. */
  error: string | undefined;
  text: string;
}

/** One client of a daemon under test. */
export class FakeClient {
  readonly sink = new FakeSink();
  readonly session: Session;
  private reqId = 1;

  constructor(readonly d: Xenstored, domid: number) {
    this.session = d.openSession({ domid }, this.sink);
  }

  /** Sends a raw request and returns its reply. */
  raw(type: number, payload: Buffer, txId = 0): Reply {
    const reqId = this.reqId++;
    const before = this.sink.frames.length;
    const [frame] = decodeFrames(encodeFrame(type, reqId, txId, payload));
    if (frame === undefined) throw new Error('bad request frame');
    this.d.handle(this.session, frame);
    const reply = this.sink.frames.slice(before).find((f) => f.kind === 'reply');
    if (reply === undefined) throw new Error('no reply');
    if (reply.frame.header.reqId !== reqId) throw new Error('reply for another request');
    const payloadOut = reply.frame.payload;
    const isErr = reply.frame.header.type === Op.ERROR;
    return {
      type: reply.frame.header.type,
      payload: payloadOut,
      error: isErr ? payloadOut.toString('utf8').replace(/\0$/, '') : undefined,
      text: payloadOut.toString('utf8').replace(/\0$/, ''),
    };
  }

  req(type: number, args: string[], txId = 0): Reply {
    return this.raw(type, strings(...args), txId);
  }

  write(path: string, value: string, txId = 0): Reply {
    return this.raw(Op.WRITE, Buffer.concat([strings(path), Buffer.from(value)]), txId);
  }

  read(path: string, txId = 0): Reply {
    return this.req(Op.READ, [path], txId);
  }

  txStart(): number {
    const r = this.req(Op.TRANSACTION_START, ['']);
    if (r.error !== undefined) throw new Error(`TRANSACTION_START: ${r.error}`);
    return Number(r.text);
  }
}

export function newDaemon(limits: Partial<Limits> = {}, now?: () => number): { d: Xenstored; journal: MemoryJournal } {
  const journal = new MemoryJournal();
  const state = freshState({ ...DEFAULT_LIMITS, ...limits });
  const d = new Xenstored(state, journal, {}, now);
  return { d, journal };
}
