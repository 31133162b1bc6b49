// The TypeScript client library for the store, used by dom0 and the domains.
//
// It reconnects by itself after the daemon restarts (exponential backoff),
// re-sends requests that were in flight unless they belonged to a transaction
// (those fail with EAGAIN, the caller's normal retry signal), and re-registers
// every watch. Re-registration makes the daemon fire each watch once, so a
// change made while the store was down is always reported, possibly
// spuriously, which the xenstore protocol permits.
import * as net from 'node:net';
import { EventEmitter } from 'node:events';
import { ClientError } from './errors.js';
import { FrameDecoder, Op, PAYLOAD_MAX, WIRE_ERRORS, encodeFrame, splitStrings, strings } from './wire.js';
import type { WireErrno } from './wire.js';

export type WatchCallback = (path: string, token: string) => void;

interface Pending {
  type: number;
  txId: number;
  payload: Buffer;
  /** Connection epoch the request went out on. */
  sentEpoch?: number;
  resolve: (b: Buffer, epoch: number) => void;
  reject: (e: ClientError) => void;
}

interface WatchEntry {
  path: string;
  token: string;
  cb: WatchCallback;
}

export interface ClientOptions {
  /** Socket path; default $XENSTORED_PATH. */
  path?: string;
  /** Backoff bounds for reconnecting, in ms. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Give up (reject pending requests with DomainDown) after this long without a connection. */
  giveUpAfterMs?: number;
}

export class XenstoreClient extends EventEmitter {
  private socket: net.Socket | undefined;
  private readonly path: string;
  private decoder = new FrameDecoder();
  private nextReqId = 1;
  private readonly inflight = new Map<number, Pending>();
  private readonly backlog: Pending[] = [];
  private readonly watches = new Map<string, WatchEntry>();
  private connected = false;
  private closing = false;
  private backoff: number;
  private downSince = 0;
  /** Bumped on every (re)connection; transaction ids from an older epoch are void. */
  epoch = 0;
  private readonly txEpoch = new Map<number, number>();
  reconnects = 0;

  constructor(private readonly opts: ClientOptions = {}) {
    super();
    const p = opts.path ?? process.env['XENSTORED_PATH'];
    if (p === undefined) throw new ClientError('Closed', 'no socket path and XENSTORED_PATH unset');
    this.path = p;
    this.backoff = opts.minBackoffMs ?? 10;
    this.connect();
  }

  private connect(): void {
    if (this.closing) return;
    const sock = net.createConnection(this.path);
    this.socket = sock;
    this.decoder = new FrameDecoder();
    sock.on('connect', () => {
      this.connected = true;
      this.backoff = this.opts.minBackoffMs ?? 10;
      this.downSince = 0;
      this.epoch++;
      if (this.epoch > 1) this.reconnects++;
      // Watches first, so no change after this point can be missed.
      for (const w of this.watches.values()) this.transmit({ type: Op.WATCH, txId: 0, payload: strings(w.path, w.token), resolve: () => undefined, reject: () => undefined });
      for (const p of this.backlog.splice(0)) this.transmit(p);
      this.emit(this.epoch > 1 ? 'reconnect' : 'connect');
    });
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('error', () => undefined);
    sock.on('close', () => this.onClose(sock));
  }

  private onClose(sock: net.Socket): void {
    if (sock !== this.socket) return;
    this.connected = false;
    this.socket = undefined;
    if (this.downSince === 0) this.downSince = Date.now();
    // In-flight requests: re-send after reconnecting, unless tied to a transaction.
    const retry: Pending[] = [];
    for (const p of this.inflight.values()) {
      if (p.txId !== 0 || p.type === Op.TRANSACTION_END) p.reject(new ClientError('EAGAIN', 'connection lost during transaction'));
      // The watch stays registered here and is re-sent on reconnect.
      else if (p.type === Op.WATCH) p.resolve(Buffer.alloc(0), this.epoch);
      else retry.push(p);
    }
    this.inflight.clear();
    this.backlog.unshift(...retry);
    if (this.closing) {
      for (const p of this.backlog.splice(0)) p.reject(new ClientError('Closed'));
      return;
    }
    const giveUp = this.opts.giveUpAfterMs;
    if (giveUp !== undefined && Date.now() - this.downSince > giveUp) {
      for (const p of this.backlog.splice(0)) p.reject(new ClientError('DomainDown', 'store unreachable'));
    }
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.opts.maxBackoffMs ?? 1000);
    setTimeout(() => this.connect(), wait).unref();
  }

  private onData(d: Buffer): void {
    this.decoder.push(d);
    for (;;) {
      const r = this.decoder.next();
      if (r.kind === 'need-more') return;
      if (r.kind === 'violation') {
        this.socket?.destroy();
        return;
      }
      const { header, payload } = r.frame;
      if (header.type === Op.WATCH_EVENT) {
        const [path, token] = splitStrings(payload) ?? [];
        if (path === undefined || token === undefined) continue;
        for (const w of this.watches.values()) if (w.token === token) w.cb(path, token);
        continue;
      }
      const p = this.inflight.get(header.reqId);
      if (p === undefined) continue;
      this.inflight.delete(header.reqId);
      if (header.type === Op.ERROR) {
        const name = payload.toString('utf8').replace(/\0.*$/s, '');
        const code: WireErrno = (WIRE_ERRORS as readonly string[]).includes(name) ? (name as WireErrno) : 'EINVAL';
        p.reject(new ClientError(code));
      } else {
        p.resolve(payload, p.sentEpoch ?? this.epoch);
      }
    }
  }

  private transmit(p: Pending): void {
    const reqId = this.nextReqId;
    this.nextReqId = (this.nextReqId % 0xffffffff) + 1;
    p.sentEpoch = this.epoch;
    this.inflight.set(reqId, p);
    this.socket?.write(encodeFrame(p.type, reqId, p.txId, p.payload));
  }

  /** Sends one request; resolves with the reply payload or rejects with a ClientError. */
  async request(type: number, payload: Buffer, txId = 0): Promise<Buffer> {
    return (await this.requestTagged(type, payload, txId)).payload;
  }

  /** As request(), also saying which connection epoch answered. */
  private requestTagged(type: number, payload: Buffer, txId = 0): Promise<{ payload: Buffer; epoch: number }> {
    if (payload.length > PAYLOAD_MAX) return Promise.reject(new ClientError('E2BIG'));
    if (this.closing) return Promise.reject(new ClientError('Closed'));
    // A transaction does not survive its connection: the caller must restart it.
    if (txId !== 0 && (!this.connected || this.txEpoch.get(txId) !== this.epoch)) {
      return Promise.reject(new ClientError('EAGAIN', 'transaction lost with its connection'));
    }
    return new Promise((resolve, reject) => {
      const p: Pending = { type, txId, payload, resolve: (b, epoch) => resolve({ payload: b, epoch }), reject };
      if (this.connected) this.transmit(p);
      else this.backlog.push(p);
    });
  }

  async read(path: string, tx = 0): Promise<Buffer> {
    return this.request(Op.READ, strings(path), tx);
  }

  async write(path: string, value: string | Buffer, tx = 0): Promise<void> {
    await this.request(Op.WRITE, Buffer.concat([strings(path), Buffer.from(value)]), tx);
  }

  async mkdir(path: string, tx = 0): Promise<void> {
    await this.request(Op.MKDIR, strings(path), tx);
  }

  async rm(path: string, tx = 0): Promise<void> {
    await this.request(Op.RM, strings(path), tx);
  }

  async directory(path: string, tx = 0): Promise<string[]> {
    return splitStrings(await this.request(Op.DIRECTORY, strings(path), tx)) ?? [];
  }

  async getPerms(path: string, tx = 0): Promise<string[]> {
    return splitStrings(await this.request(Op.GET_PERMS, strings(path), tx)) ?? [];
  }

  async setPerms(path: string, perms: string[], tx = 0): Promise<void> {
    await this.request(Op.SET_PERMS, strings(path, ...perms), tx);
  }

  async transactionStart(): Promise<number> {
    const { payload, epoch } = await this.requestTagged(Op.TRANSACTION_START, strings(''));
    const id = Number(payload.toString('utf8').replace(/\0.*$/s, ''));
    // Started on a connection that has since gone: the daemon forgot it already.
    if (epoch !== this.epoch) throw new ClientError('EAGAIN', 'transaction lost with its connection');
    this.txEpoch.set(id, epoch);
    return id;
  }

  async transactionEnd(tx: number, commit: boolean): Promise<void> {
    try {
      await this.request(Op.TRANSACTION_END, strings(commit ? 'T' : 'F'), tx);
    } finally {
      this.txEpoch.delete(tx);
    }
  }

  /** Runs `body` in a transaction, retrying on EAGAIN (conflict or reconnect) up to `attempts` times. */
  async transaction<T>(body: (tx: number) => Promise<T>, attempts = 16): Promise<T> {
    for (let i = 0; ; i++) {
      let tx = 0;
      try {
        tx = await this.transactionStart();
        const out = await body(tx);
        await this.transactionEnd(tx, true);
        return out;
      } catch (e) {
        if (tx !== 0 && this.txEpoch.has(tx)) await this.transactionEnd(tx, false).catch(() => undefined);
        if (!(e instanceof ClientError && e.code === 'EAGAIN') || i + 1 >= attempts) throw e;
      }
    }
  }

  async introduce(domid: number, gfn = 0, evtchn = 1): Promise<void> {
    await this.request(Op.INTRODUCE, strings(String(domid), String(gfn), String(evtchn)));
  }

  async release(domid: number): Promise<void> {
    await this.request(Op.RELEASE, strings(String(domid)));
  }

  async control(...args: string[]): Promise<string> {
    return (await this.request(Op.CONTROL, strings(...args))).toString('utf8').replace(/\0$/, '');
  }

  /** Registers a watch that survives reconnects. Resolves once the daemon acknowledged it. */
  async watch(path: string, token: string, cb: WatchCallback): Promise<void> {
    const key = `${path}\0${token}`;
    this.watches.set(key, { path, token, cb });
    try {
      await this.request(Op.WATCH, strings(path, token));
    } catch (e) {
      // Sent twice if the connection came back meanwhile: already registered is success.
      if (e instanceof ClientError && e.code === 'EEXIST') return;
      this.watches.delete(key);
      throw e;
    }
  }

  async unwatch(path: string, token: string): Promise<void> {
    this.watches.delete(`${path}\0${token}`);
    await this.request(Op.UNWATCH, strings(path, token));
  }

  get isConnected(): boolean {
    return this.connected;
  }

  close(): void {
    this.closing = true;
    this.socket?.destroy();
    for (const p of this.backlog.splice(0)) p.reject(new ClientError('Closed'));
  }
}
