// The store daemon's logic, with no sockets and no files: sessions come in
// through Sink objects and durability through a JournalSink, so all of it runs
// in unit tests. connection.ts and server.ts attach it to Unix sockets;
// persist.ts supplies the journal.
import { XsError } from './errors.js';
import type { Ctx, ChangeEvent } from './ops.js';
import { PERM_READ, isPrivileged, permFor } from './perms.js';
import type { Identity } from './perms.js';
import { domainPath } from './paths.js';
import { HANDLERS, isRequestOp } from './protocol.js';
import type { Handler } from './protocol.js';
import type { DurableState, JournalRecord } from './records.js';
import { applyRecord, isSpecialPath } from './records.js';
import { TxView } from './store.js';
import { WatchRegistry, eventPath } from './watches.js';
import type { Watch } from './watches.js';
import { Op, PAYLOAD_MAX, encodeFrame, strings } from './wire.js';
import type { Frame } from './wire.js';

/** Where a session's outgoing frames go. `needSeq`: journal record that must be durable first. */
export interface Sink {
  send(frame: Buffer, kind: 'reply' | 'event', needSeq: number): void;
  close(reason: string): void;
}

export interface JournalSink {
  /** Appends a record and returns its sequence number; durability is the sink's business. */
  append(r: JournalRecord): number;
  /** Sequence number of the last record appended. */
  readonly appendedSeq: number;
}

export interface Hooks {
  /** A domain was introduced or released: the server opens or closes its socket. */
  domainIntroduced?(domid: number): void;
  domainReleased?(domid: number): void;
  /** CONTROL snapshot. */
  snapshot?(): void;
  /** Extra counters for CONTROL stats (the connection layer's). */
  stats?(): string;
  log?(msg: string): void;
}

export interface Transaction {
  id: number;
  view: TxView;
  events: ChangeEvent[];
  startedAt: number;
}

export interface Session {
  readonly id: number;
  who: Identity;
  /** Base of relative paths: /local/domain/<domid>. */
  readonly home: string;
  readonly sink: Sink;
  readonly watches: Map<string, Watch<Session>>;
  readonly txs: Map<number, Transaction>;
  nextTxId: number;
  closed: boolean;
}

export interface Counters {
  requests: number;
  errors: Map<string, number>;
  sessionsOpened: number;
  transactionsTimedOut: number;
  eventsDropped: number;
}

export function watchKey(path: string, token: string): string {
  return `${path}\0${token}`;
}

export class Xenstored {
  readonly watches = new WatchRegistry<Session>();
  readonly sessions = new Set<Session>();
  readonly counters: Counters = { requests: 0, errors: new Map(), sessionsOpened: 0, transactionsTimedOut: 0, eventsDropped: 0 };
  private nextSessionId = 1;

  constructor(
    readonly state: DurableState,
    readonly journal: JournalSink,
    readonly hooks: Hooks = {},
    readonly now: () => number = Date.now,
  ) {}

  openSession(who: Identity, sink: Sink): Session {
    const s: Session = {
      id: this.nextSessionId++,
      who: { domid: who.domid, target: this.state.domains.get(who.domid)?.target },
      home: domainPath(who.domid),
      sink,
      watches: new Map(),
      txs: new Map(),
      nextTxId: 1,
      closed: false,
    };
    this.sessions.add(s);
    this.counters.sessionsOpened++;
    return s;
  }

  closeSession(s: Session): void {
    if (s.closed) return;
    s.closed = true;
    this.resetSession(s);
    this.sessions.delete(s);
  }

  /** Drops a session's watches and transactions (RESET_WATCHES, close, release). */
  resetSession(s: Session): void {
    for (const w of s.watches.values()) this.watches.remove(w);
    s.watches.clear();
    s.txs.clear();
  }

  /** Handles one request frame; the reply (and any events) go to sinks. Never throws. */
  handle(s: Session, frame: Frame): void {
    if (s.closed) return;
    this.counters.requests++;
    const { type, reqId, txId } = frame.header;
    const reply = (t: number, payload: Buffer): void => {
      s.sink.send(encodeFrame(t, reqId, txId, payload), 'reply', this.journal.appendedSeq);
    };
    const fail = (code: string): void => {
      this.counters.errors.set(code, (this.counters.errors.get(code) ?? 0) + 1);
      reply(Op.ERROR, strings(code));
    };
    // GUEST-INPUT: the type selects a handler only if it names a request.
    if (!isRequestOp(type)) {
      fail('ENOSYS');
      return;
    }
    const handler: Handler = HANDLERS[type];
    if (handler.priv === true && !isPrivileged(s.who)) {
      fail('EACCES');
      return;
    }
    let tx: Transaction | undefined;
    if (handler.notid !== true && txId !== 0) {
      this.expireTransactions(s);
      tx = s.txs.get(txId);
      // GUEST-INPUT: a tx_id must name one of this session's transactions.
      if (tx === undefined) {
        fail('ENOENT');
        return;
      }
    }
    let out: Buffer;
    try {
      out = handler.run(this, s, frame.payload, tx);
    } catch (e) {
      this.deferred = [];
      this.flushEffects();
      if (e instanceof XsError) {
        fail(e.code);
      } else {
        // A bug here must not take the store down for everyone else.
        this.hooks.log?.(`internal error on ${type}: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
        fail('EIO');
      }
      return;
    }
    this.flushEffects();
    if (out.length > PAYLOAD_MAX) {
      fail('E2BIG');
      return;
    }
    reply(type, out);
    const after = this.deferred;
    this.deferred = [];
    for (const f of after) f();
  }

  private deferred: Array<() => void> = [];

  /** Runs `f` once the current request's reply is queued. */
  afterReply(f: () => void): void {
    this.deferred.push(f);
  }

  /** A context for node operations on the tree or in a transaction. */
  ctx(s: Session, tx: Transaction | undefined): Ctx {
    return { who: s.who, view: tx?.view ?? this.state.tree, limits: this.state.limits, events: [] };
  }

  /** After an operation: journal what it changed, then fire or queue its events. */
  finish(ctx: Ctx, tx: Transaction | undefined): void {
    if (tx !== undefined) {
      tx.events.push(...ctx.events);
      return;
    }
    this.flushEffects();
    this.fire(ctx.events);
  }

  private flushEffects(): void {
    const fx = this.state.tree.takeEffects();
    if (fx.length > 0) this.journal.append({ t: 'fx', fx });
  }

  /** Records a non-node change durably and applies it. */
  record(r: JournalRecord): void {
    applyRecord(this.state, r);
    this.journal.append(r);
  }

  fire(events: readonly ChangeEvent[]): void {
    for (const ev of events) {
      for (const w of this.watches.matching(ev.path, ev.exact)) {
        if (!this.maySee(w.session, ev)) continue;
        const path = eventPath(w, ev.path);
        const payload = strings(path, w.token);
        // xenstored does not send events that would exceed the payload limit.
        if (payload.length > PAYLOAD_MAX) {
          this.counters.eventsDropped++;
          continue;
        }
        w.session.sink.send(encodeFrame(Op.WATCH_EVENT, 0, 0, payload), 'event', this.journal.appendedSeq);
      }
    }
  }

  /** Sends the event every new watch gets at once ("fire once up front"). */
  fireInitial(w: Watch<Session>): void {
    w.session.sink.send(encodeFrame(Op.WATCH_EVENT, 0, 0, strings(eventPath(w, w.path), w.token)), 'event', this.journal.appendedSeq);
  }

  /** Whether a session may learn of a change: special paths by their ACL, nodes by the node's or its parent's. */
  private maySee(s: Session, ev: ChangeEvent): boolean {
    if (ev.path.startsWith('@')) {
      if (!isSpecialPath(ev.path)) return false;
      const perms = this.state.special.get(ev.path);
      return perms !== undefined && (permFor(s.who, perms) & PERM_READ) !== 0;
    }
    for (const p of ev.perms) if ((permFor(s.who, p) & PERM_READ) !== 0) return true;
    return false;
  }

  /** Discards a session's transactions older than the limit; their ids then give ENOENT. */
  expireTransactions(s: Session): void {
    const limit = this.state.limits.transactionTimeoutMs;
    const now = this.now();
    for (const [id, tx] of s.txs) {
      if (now - tx.startedAt > limit) {
        s.txs.delete(id);
        this.counters.transactionsTimedOut++;
      }
    }
  }

  /** Periodic housekeeping, driven by the server's timer. */
  sweep(): void {
    for (const s of this.sessions) this.expireTransactions(s);
  }

  /** Session-wide identity change after SET_TARGET. */
  retarget(domid: number, target: number): void {
    for (const s of this.sessions) if (s.who.domid === domid) s.who = { domid, target };
  }
}
