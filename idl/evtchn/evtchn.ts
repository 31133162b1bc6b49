// Event channels: a port bound to a pair of eventfds (see idl/proto/evtchn.proto).
// Sending is one eventfd write; the kernel counter accumulates, so a
// notification sent while the receiver is busy or restarting is coalesced,
// never lost. Waiting is either synchronous (poll; for vCPU threads and
// dedicated workers) or asynchronous (epoll on koffi's worker pool; for an
// event-loop process).

import * as sys from '../../microhv/sys/index.js';
import { SysError } from '../../microhv/sys/index.js';

export type EvtchnErrorCode = 'SYS' | 'CLOSED';

/** The event-channel boundary's one error type; a failed syscall is the `cause`. */
export class EvtchnError extends Error {
  override readonly name = 'EvtchnError';
  constructor(
    readonly code: EvtchnErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

const EAGAIN = 11;

/** A fresh eventfd suitable for an event channel: non-blocking, close-on-exec. */
export function createEventfd(): number {
  try {
    return sys.eventfd(0, sys.consts.EFD_NONBLOCK | sys.consts.EFD_CLOEXEC);
  } catch (e) {
    throw new EvtchnError('SYS', 'eventfd', { cause: e });
  }
}

export interface EventChannelOptions {
  /**
   * Makes the receive fd blocking, so that waitSync(-1) is a single read()
   * instead of poll() plus read(). For a thread that only ever waits
   * synchronously (a vCPU thread, a ring worker); waitAsync still works,
   * drain() then costs a poll() more.
   */
  readonly blockingReceive?: boolean;
}

export class EventChannel {
  private closed = false;
  private epfd = -1;
  private readonly blocking: boolean;

  /**
   * @param port     local port number (0 for channels not allocated by microhv)
   * @param sendFd   eventfd the peer waits on; notify() writes it
   * @param recvFd   eventfd the peer writes
   */
  constructor(
    readonly port: number,
    readonly sendFd: number,
    readonly recvFd: number,
    options: EventChannelOptions = {},
  ) {
    this.blocking = options.blockingReceive === true;
    try {
      sys.fcntlSetNonBlocking(recvFd, !this.blocking);
    } catch (e) {
      throw new EvtchnError('SYS', `set receive mode of port ${port}`, { cause: e });
    }
  }

  private live(): void {
    if (this.closed) throw new EvtchnError('CLOSED', `port ${this.port} is closed`);
  }

  /** Notifies the peer once. */
  notify(): void {
    this.live();
    try {
      sys.eventfdWrite(this.sendFd, 1n);
    } catch (e) {
      // EAGAIN means the counter is at its maximum: the peer is already notified.
      if (e instanceof SysError && e.errno === EAGAIN) return;
      throw new EvtchnError('SYS', `notify port ${this.port}`, { cause: e });
    }
  }

  /** Clears pending notifications without blocking; returns how many had accumulated. */
  drain(): bigint {
    this.live();
    if (this.blocking && !this.readable(0)) return 0n;
    try {
      return sys.eventfdRead(this.recvFd);
    } catch (e) {
      if (e instanceof SysError && e.errno === EAGAIN) return 0n;
      throw new EvtchnError('SYS', `drain port ${this.port}`, { cause: e });
    }
  }

  /**
   * Blocks the calling thread until a notification arrives or timeoutMs
   * passes (-1: forever). Returns the notifications consumed (0n on timeout).
   */
  waitSync(timeoutMs: number): bigint {
    this.live();
    if (this.blocking && timeoutMs < 0) {
      try {
        return sys.eventfdRead(this.recvFd);
      } catch (e) {
        throw new EvtchnError('SYS', `read port ${this.port}`, { cause: e });
      }
    }
    if (!this.readable(timeoutMs)) return 0n;
    return this.drain();
  }

  private readable(timeoutMs: number): boolean {
    let ready: Array<{ fd: number; revents: number }>;
    try {
      ready = sys.poll([{ fd: this.recvFd, events: sys.consts.POLLIN }], timeoutMs);
    } catch (e) {
      throw new EvtchnError('SYS', `poll port ${this.port}`, { cause: e });
    }
    return ((ready[0]?.revents ?? 0) & sys.consts.POLLIN) !== 0;
  }

  /** Waits without blocking the event loop. Resolves with the notifications consumed. */
  async waitAsync(timeoutMs: number): Promise<bigint> {
    this.live();
    try {
      if (this.epfd < 0) {
        this.epfd = sys.epollCreate();
        sys.epollCtl(this.epfd, sys.consts.EPOLL_CTL_ADD, this.recvFd, sys.consts.EPOLLIN, 0);
      }
      const events = await sys.epollWaitAsync(this.epfd, 1, timeoutMs);
      if (events.length === 0 || this.closed) return 0n;
    } catch (e) {
      throw new EvtchnError('SYS', `wait port ${this.port}`, { cause: e });
    }
    return this.drain();
  }

  /** Closes the fds this channel owns. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const fd of [this.epfd, this.sendFd, this.recvFd]) {
      if (fd < 0) continue;
      try {
        sys.close(fd);
      } catch {
        // Closing is best effort: the fd is gone either way.
      }
    }
  }
}

/**
 * A connected pair of channels for two parties (tests, and microhv's
 * interdomain binding): a's notify() wakes b and the reverse.
 */
export function createChannelPair(portA = 0, portB = 0): { a: EventChannel; b: EventChannel; fds: { aToB: number; bToA: number } } {
  const aToB = createEventfd();
  const bToA = createEventfd();
  const bSideAToB = sys.dup(aToB);
  const bSideBToA = sys.dup(bToA);
  return {
    a: new EventChannel(portA, aToB, bToA),
    b: new EventChannel(portB, bSideBToA, bSideAToB),
    fds: { aToB, bToA },
  };
}
