// A small epoll reactor for fds Node cannot watch itself (Unix sockets that
// carry SCM_RIGHTS, eventfds). After each round of handlers it lets the event
// loop run once (promise continuations, Node's own I/O), then looks again with
// a non-blocking epoll_wait on this thread; only when nothing is ready does it
// wait on koffi's worker pool, one wait at a time. A busy process (a backend
// taking doorbells and completions back to back) so never pays the pool
// thread's hand-off and wake-up per event. stop() wakes a pending wait through
// an eventfd.

import * as sys from '../../microhv/sys/index.js';
import { ControlError } from './errors.js';

export type ReadyHandler = (events: number) => void;

const WAKE_KEY = 0;
const MAX_EVENTS = 64;

export class Reactor {
  private readonly epfd: number;
  private readonly wakeFd: number;
  private readonly handlers = new Map<number, ReadyHandler>();
  private nextKey = 1;
  private stopping = false;
  private loop: Promise<void> | null = null;
  /** Handler exceptions caught so the loop keeps serving (a handler bug, never peer input). */
  handlerErrors = 0;
  /** Rounds of handlers run so far, and how many of them waited on the worker pool. */
  rounds = 0;
  pooledWaits = 0;
  onHandlerError: (err: unknown) => void = () => {};

  constructor() {
    try {
      this.epfd = sys.epollCreate();
      this.wakeFd = sys.eventfd(0, sys.consts.EFD_NONBLOCK | sys.consts.EFD_CLOEXEC);
      sys.epollCtl(this.epfd, sys.consts.EPOLL_CTL_ADD, this.wakeFd, sys.consts.EPOLLIN, WAKE_KEY);
    } catch (e) {
      throw new ControlError('SYS', 'reactor setup', { cause: e });
    }
  }

  /** Watches fd for `events`; returns the key to modify or remove it with. */
  add(fd: number, events: number, handler: ReadyHandler): number {
    const key = this.nextKey++;
    try {
      sys.epollCtl(this.epfd, sys.consts.EPOLL_CTL_ADD, fd, events, key);
    } catch (e) {
      throw new ControlError('SYS', `epoll add fd ${fd}`, { cause: e });
    }
    this.handlers.set(key, handler);
    this.start();
    return key;
  }

  modify(key: number, fd: number, events: number): void {
    try {
      sys.epollCtl(this.epfd, sys.consts.EPOLL_CTL_MOD, fd, events, key);
    } catch (e) {
      throw new ControlError('SYS', `epoll modify fd ${fd}`, { cause: e });
    }
  }

  /** Stops watching; call before closing the fd. */
  remove(key: number, fd: number): void {
    this.handlers.delete(key);
    try {
      sys.epollCtl(this.epfd, sys.consts.EPOLL_CTL_DEL, fd, 0, 0);
    } catch {
      // Already gone (closed elsewhere): nothing left to unwatch.
    }
  }

  private start(): void {
    if (this.loop !== null || this.stopping) return;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let events: sys.EpollEvent[];
      try {
        events = sys.epollWait(this.epfd, MAX_EVENTS, 0);
        if (events.length === 0) {
          this.pooledWaits++;
          events = await sys.epollWaitAsync(this.epfd, MAX_EVENTS, -1);
        }
      } catch (e) {
        // epoll_wait on our own fd failing is not transient (EBADF, EINVAL):
        // stop rather than spin, and say why.
        this.stopping = true;
        this.onHandlerError(new ControlError('SYS', 'epoll_wait', { cause: e }));
        return;
      }
      this.dispatch(events);
      this.rounds++;
      // Once around the event loop: what the handlers started (timers, promises, Node's own
      // sockets and files) runs before this loop looks again, so it starves nothing.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private dispatch(events: readonly sys.EpollEvent[]): void {
    for (const ev of events) {
      if (ev.data === WAKE_KEY) {
        this.drainWake();
        continue;
      }
      const h = this.handlers.get(ev.data);
      if (h === undefined) continue; // removed while the wait was in flight
      try {
        h(ev.events);
      } catch (e) {
        this.handlerErrors++;
        this.onHandlerError(e);
      }
    }
  }

  private drainWake(): void {
    try {
      sys.eventfdRead(this.wakeFd);
    } catch {
      // EAGAIN: already drained.
    }
  }

  /** Ends the loop and closes the reactor's own fds (not the watched ones). */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    sys.eventfdWrite(this.wakeFd, 1n);
    if (this.loop !== null) await this.loop;
    sys.close(this.wakeFd);
    sys.close(this.epfd);
  }
}
