// Control-channel connections, with a server helper (microhv's side) and a
// client helper (a domain's side). A connection reads frames with
// FrameDecoder; any ControlError on it closes that connection, closes every
// fd it held, rejects its pending requests and is reported through onClose.
// Other connections of the same process are not touched.

import * as sys from '../../microhv/sys/index.js';
import { SysError } from '../../microhv/sys/index.js';
import {
  ENVELOPE_BODY_REQUIRES,
  ErrorCode,
  createEnvelope,
} from '../generated/control.js';
import type { Capability, EnvelopeBody } from '../generated/control.js';
import { ControlError } from './errors.js';
import { FrameDecoder, HEADER_BYTES, MAX_FDS_PER_FRAME, MAX_FRAME_BYTES, encodeFrame } from './framing.js';
import type { Frame, Side } from './framing.js';
import type { Reactor } from './reactor.js';

const EAGAIN = 11;
const RECV_BYTES = HEADER_BYTES + MAX_FRAME_BYTES;
/** Reads per readiness event, so one busy peer cannot starve the others. */
const READS_PER_EVENT = 16;

export interface ConnectionHandlers {
  /** A request or notification from the peer (replies go to request()). */
  onFrame(conn: Connection, frame: Frame): void;
  /** The connection closed: err is null for an orderly end of stream. */
  onClose?(conn: Connection, err: ControlError | null): void;
}

interface Pending {
  resolve(f: Frame): void;
  reject(e: ControlError): void;
  timer: NodeJS.Timeout;
}

function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      sys.close(fd);
    } catch {
      // Best effort: a bad fd number from a peer frame is already gone.
    }
  }
}

export class Connection {
  private readonly decoder: FrameDecoder;
  private readonly pending = new Map<number, Pending>();
  private readonly out: Array<{ data: Uint8Array; fds: number[] }> = [];
  private readonly key: number;
  private nextId = 1;
  private closedWith: ControlError | null | undefined = undefined;
  /** Capabilities of the peer; a server checks requests against them. */
  capabilities: ReadonlySet<Capability> = new Set();
  /** Replies that matched no pending request (their fds were closed). */
  strayReplies = 0;

  constructor(
    private readonly reactor: Reactor,
    readonly fd: number,
    readonly side: Side,
    private readonly handlers: ConnectionHandlers,
  ) {
    this.decoder = new FrameDecoder(side);
    try {
      sys.fcntlSetNonBlocking(fd, true);
    } catch (e) {
      throw new ControlError('SYS', 'set non-blocking', { cause: e });
    }
    this.key = reactor.add(fd, sys.consts.EPOLLIN | sys.consts.EPOLLRDHUP, (ev) => this.onReady(ev));
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** Sends a body. fds stay owned by the caller (the kernel duplicates them). */
  send(body: EnvelopeBody, fds: number[] = [], replyTo = 0, id = 0): void {
    if (this.closed) throw new ControlError('CLOSED', 'connection is closed');
    const frame = encodeFrame(createEnvelope({ id, replyTo, body }), fds.length);
    if (this.out.length > 0) {
      // Queued fds are duplicates, so the caller may close its own at once.
      this.out.push({ data: frame, fds: fds.map((fd) => sys.dup(fd)) });
      return;
    }
    this.write(frame, fds);
  }

  /** Sends a request and resolves with its reply frame (whose fds the caller then owns). */
  request(body: EnvelopeBody, fds: number[] = [], timeoutMs = 5000): Promise<Frame> {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1;
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ControlError('TIMEOUT', `no reply to ${body.case} #${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.send(body, fds, 0, id);
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(e instanceof ControlError ? e : new ControlError('SYS', 'send', { cause: e }));
      }
    });
  }

  reply(to: Frame, body: EnvelopeBody, fds: number[] = []): void {
    this.send(body, fds, to.envelope.id);
  }

  replyError(to: Frame, code: ErrorCode, message: string): void {
    this.reply(to, { case: 'error', value: { code, message: message.slice(0, 1024) } });
  }

  private write(frame: Uint8Array, fds: number[]): void {
    let sent = 0;
    try {
      sent = sys.sendmsg(this.fd, frame, fds);
    } catch (e) {
      if (!(e instanceof SysError && e.errno === EAGAIN)) throw this.fail(new ControlError('SYS', 'sendmsg', { cause: e }));
    }
    if (sent < frame.length) {
      // The fds went with the first byte; only the rest of the bytes remain.
      // Queued fds are duplicates, so the caller may close its own at once.
      this.out.push({ data: frame.subarray(sent), fds: sent > 0 ? [] : fds.map((fd) => sys.dup(fd)) });
      this.reactor.modify(this.key, this.fd, sys.consts.EPOLLIN | sys.consts.EPOLLOUT | sys.consts.EPOLLRDHUP);
    }
  }

  private flush(): void {
    while (this.out.length > 0) {
      const head = this.out[0] as { data: Uint8Array; fds: number[] };
      let sent: number;
      try {
        sent = sys.sendmsg(this.fd, head.data, head.fds);
      } catch (e) {
        if (e instanceof SysError && e.errno === EAGAIN) return;
        throw new ControlError('SYS', 'sendmsg', { cause: e });
      }
      // Sent with the first byte: the queued duplicates are no longer needed.
      closeAll(head.fds);
      if (sent < head.data.length) {
        this.out[0] = { data: head.data.subarray(sent), fds: [] };
        return;
      }
      this.out.shift();
    }
    this.reactor.modify(this.key, this.fd, sys.consts.EPOLLIN | sys.consts.EPOLLRDHUP);
  }

  private onReady(events: number): void {
    if (this.closed) return;
    try {
      if ((events & sys.consts.EPOLLOUT) !== 0) this.flush();
      if ((events & (sys.consts.EPOLLIN | sys.consts.EPOLLHUP | sys.consts.EPOLLRDHUP | sys.consts.EPOLLERR)) !== 0) this.readSome();
    } catch (e) {
      this.fail(e instanceof ControlError ? e : new ControlError('SYS', 'connection', { cause: e }));
    }
  }

  private readSome(): void {
    for (let i = 0; i < READS_PER_EVENT && !this.closed; i++) {
      let got: { data: Uint8Array; fds: number[]; truncated: boolean };
      try {
        got = sys.recvmsg(this.fd, RECV_BYTES, MAX_FDS_PER_FRAME);
      } catch (e) {
        if (e instanceof SysError && e.errno === EAGAIN) return;
        throw new ControlError('SYS', 'recvmsg', { cause: e });
      }
      if (got.truncated) {
        closeAll(got.fds);
        throw new ControlError('FD_MISMATCH', `more than ${MAX_FDS_PER_FRAME} fds in one message`);
      }
      if (got.data.length === 0) {
        closeAll(got.fds);
        this.decoder.finish();
        this.shutdown(null);
        return;
      }
      this.decoder.push(got.data, got.fds);
      for (let f = this.decoder.next(); f !== null && !this.closed; f = this.closed ? null : this.decoder.next()) this.dispatch(f);
    }
  }

  private dispatch(f: Frame): void {
    const replyTo = f.envelope.replyTo;
    if (replyTo !== 0) {
      const p = this.pending.get(replyTo);
      if (p === undefined) {
        this.strayReplies++;
        closeAll(f.fds);
        return;
      }
      this.pending.delete(replyTo);
      clearTimeout(p.timer);
      p.resolve(f);
      return;
    }
    this.handlers.onFrame(this, f);
  }

  private fail(err: ControlError): ControlError {
    this.shutdown(err);
    return err;
  }

  /** Closes the connection and every fd it still holds. Idempotent. */
  close(): void {
    this.shutdown(null);
  }

  private shutdown(err: ControlError | null): void {
    if (this.closed) return;
    this.closedWith = err;
    this.reactor.remove(this.key, this.fd);
    closeAll([this.fd]);
    closeAll(this.decoder.takeStrayFds());
    for (const q of this.out.splice(0)) closeAll(q.fds);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ControlError('CLOSED', 'connection closed before the reply', err === null ? undefined : { cause: err }));
    }
    this.pending.clear();
    this.handlers.onClose?.(this, err);
  }
}

export interface ServerHandlers extends ConnectionHandlers {
  /** A new connection; set conn.capabilities here (from the role microhv gave it). */
  onConnect?(conn: Connection): void;
}

/**
 * microhv's side: accepts domain connections on a Unix socket path (or
 * adopts socketpair ends), checks each request's capability before handing
 * it on, and answers NOT_PERMITTED itself.
 */
export class ControlServer {
  readonly connections = new Set<Connection>();
  private listenFd = -1;
  private listenKey = -1;

  constructor(
    private readonly reactor: Reactor,
    private readonly handlers: ServerHandlers,
  ) {}

  listen(path: string): void {
    try {
      this.listenFd = sys.socket(sys.consts.AF_UNIX, sys.consts.SOCK_STREAM | sys.consts.SOCK_NONBLOCK, 0);
      sys.bindUnix(this.listenFd, path);
      sys.listen(this.listenFd, 64);
    } catch (e) {
      throw new ControlError('SYS', `listen on ${path}`, { cause: e });
    }
    this.listenKey = this.reactor.add(this.listenFd, sys.consts.EPOLLIN, () => this.acceptAll());
  }

  private acceptAll(): void {
    for (;;) {
      let fd: number;
      try {
        fd = sys.accept(this.listenFd, sys.consts.SOCK_NONBLOCK);
      } catch (e) {
        if (e instanceof SysError && e.errno === EAGAIN) return;
        throw new ControlError('SYS', 'accept', { cause: e });
      }
      this.adopt(fd);
    }
  }

  /** Serves an already connected socket (e.g. microhv's end of a socketpair). */
  adopt(fd: number): Connection {
    const conn = new Connection(this.reactor, fd, 'microhv', {
      onFrame: (c, f) => this.onFrame(c, f),
      onClose: (c, err) => {
        this.connections.delete(c);
        this.handlers.onClose?.(c, err);
      },
    });
    this.connections.add(conn);
    this.handlers.onConnect?.(conn);
    return conn;
  }

  private onFrame(conn: Connection, f: Frame): void {
    const need = ENVELOPE_BODY_REQUIRES[f.body.case];
    if (need !== null && !conn.capabilities.has(need)) {
      closeAll(f.fds);
      conn.replyError(f, ErrorCode.ERROR_CODE_NOT_PERMITTED, `${f.body.case} needs a capability this domain was not granted`);
      return;
    }
    this.handlers.onFrame(conn, f);
  }

  close(): void {
    for (const c of [...this.connections]) c.close();
    if (this.listenFd >= 0) {
      this.reactor.remove(this.listenKey, this.listenFd);
      closeAll([this.listenFd]);
      this.listenFd = -1;
    }
  }
}

/** A domain's side: connects to microhv's socket at `path`. */
export function connectControl(reactor: Reactor, path: string, handlers: ConnectionHandlers): Connection {
  let fd: number;
  try {
    fd = sys.socket(sys.consts.AF_UNIX, sys.consts.SOCK_STREAM, 0);
  } catch (e) {
    throw new ControlError('SYS', 'socket', { cause: e });
  }
  try {
    sys.connectUnix(fd, path);
  } catch (e) {
    closeAll([fd]);
    throw new ControlError('SYS', `connect to ${path}`, { cause: e });
  }
  return new Connection(reactor, fd, 'domain', handlers);
}

/** A domain's side over an inherited socket (its end of a socketpair). */
export function adoptControl(reactor: Reactor, fd: number, handlers: ConnectionHandlers): Connection {
  return new Connection(reactor, fd, 'domain', handlers);
}
