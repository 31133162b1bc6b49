// A small epoll reactor for fds Node cannot watch itself (Unix sockets that
// carry SCM_RIGHTS, eventfds). One epoll_wait runs at a time on koffi's
// worker pool; when it returns, the handlers run on the event loop and the
// next wait is issued. stop() wakes the pending wait through an eventfd.

import * as sys from '../../microhv/sys/index.js';
import { ControlError } from './errors.js';

export type ReadyHandler = (events: number) => void;

const WAKE_KEY = 0;

export class Reactor {
  private readonly epfd: number;
  private readonly wakeFd: number;
  private readonly handlers = new Map<number, ReadyHandler>();
  private nextKey = 1;
  private stopping = false;
  private loop: Promise<void> | null = null;
  /** Handler exceptions caught so the loop keeps serving (a handler bug, never peer input). */
  handlerErrors = 0;
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
        events = await sys.epollWaitAsync(this.epfd, 64, -1);
      } catch (e) {
        // epoll_wait on our own fd failing is not transient (EBADF, EINVAL):
        // stop rather than spin, and say why.
        this.stopping = true;
        this.onHandlerError(new ControlError('SYS', 'epoll_wait', { cause: e }));
        return;
      }
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
