import { describe, expect, it } from 'vitest';
import {
  SysError, close, consts, epollCreate, epollCtl, epollWait, epollWaitAsync, eventfd, eventfdRead, eventfdTryRead, eventfdWrite, poll,
} from './index.js';

const { EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE, EPOLLIN, EPOLL_CTL_ADD } = consts;

describe('eventfd', () => {
  it('sums_writes_and_resets_on_read', () => {
    // Arrange
    const fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    eventfdWrite(fd, 3n);
    eventfdWrite(fd, 4n);
    // Act
    const first = eventfdRead(fd);
    // Assert
    expect(first).toBe(7n);
    expect(() => eventfdRead(fd)).toThrow(expect.objectContaining({ errnoName: 'EAGAIN' }));
    close(fd);
  });

  it('reads_one_at_a_time_in_semaphore_mode', () => {
    // Arrange
    const fd = eventfd(2, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
    // Act
    const reads = [eventfdRead(fd), eventfdRead(fd)];
    // Assert
    expect(reads).toEqual([1n, 1n]);
    expect(() => eventfdRead(fd)).toThrow(SysError);
    close(fd);
  });

  it('throws_eagain_on_nonblocking_read_of_zero', () => {
    // Arrange
    const fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    // Act
    let err: unknown;
    try { eventfdRead(fd); } catch (e) { err = e; }
    // Assert
    expect(err).toBeInstanceOf(SysError);
    expect(err).toMatchObject({ syscall: 'read', errno: 11, errnoName: 'EAGAIN' });
    close(fd);
  });
});

describe('epoll', () => {
  it('reports_an_eventfd_becoming_readable_with_its_data', () => {
    // Arrange
    const ep = epollCreate();
    const fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    const data = 2 ** 40 + 7; // exercises both halves of the packed u64
    epollCtl(ep, EPOLL_CTL_ADD, fd, EPOLLIN, data);
    const before = epollWait(ep, 8, 0);
    // Act
    eventfdWrite(fd, 1n);
    const after = epollWait(ep, 8, 1000);
    // Assert
    expect(before).toEqual([]);
    expect(after).toEqual([{ events: EPOLLIN, data }]);
    close(fd);
    close(ep);
  });

  it('resolves_async_wait_when_the_eventfd_is_written_later', async () => {
    // Arrange
    const ep = epollCreate();
    const fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epollCtl(ep, EPOLL_CTL_ADD, fd, EPOLLIN, 42);
    const pending = epollWaitAsync(ep, 4, 5000);
    // Act: the write happens from the event loop while the wait is in flight, which
    // only works if the wait does not block this thread.
    setTimeout(() => eventfdWrite(fd, 5n), 50);
    const events = await pending;
    // Assert
    expect(events).toEqual([{ events: EPOLLIN, data: 42 }]);
    expect(eventfdRead(fd)).toBe(5n);
    close(fd);
    close(ep);
  });

  it('resolves_async_wait_empty_on_timeout', async () => {
    // Arrange
    const ep = epollCreate();
    // Act
    const events = await epollWaitAsync(ep, 1, 20);
    // Assert
    expect(events).toEqual([]);
    close(ep);
  });

  it('rejects_async_wait_on_a_bad_epoll_fd', async () => {
    // Act / Assert
    await expect(epollWaitAsync(-1, 1, 0)).rejects.toMatchObject({ syscall: 'epoll_wait', errnoName: 'EBADF' });
  });

  it('rejects_max_events_out_of_range', () => {
    // Act / Assert
    expect(() => epollWait(0, 0, 0)).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
  });
});

describe('poll', () => {
  it('reports_revents_per_fd_in_order', () => {
    // Arrange
    const idle = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    const ready = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
    // Act
    const r = poll([{ fd: idle, events: consts.POLLIN }, { fd: ready, events: consts.POLLIN }], 0);
    // Assert
    expect(r).toEqual([{ fd: idle, revents: 0 }, { fd: ready, revents: consts.POLLIN }]);
    close(idle);
    close(ready);
  });
});

describe('eventfdTryRead', () => {
  it('returns_zero_for_an_empty_nonblocking_eventfd_and_the_count_otherwise', () => {
    const fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    try {
      expect(eventfdTryRead(fd)).toBe(0n);
      eventfdWrite(fd, 2n);
      eventfdWrite(fd, 3n);
      expect(eventfdTryRead(fd)).toBe(5n);
      expect(eventfdTryRead(fd)).toBe(0n);
    } finally {
      close(fd);
    }
  });

  it('still_throws_for_a_bad_fd', () => {
    expect(() => eventfdTryRead(-1)).toThrow(/EBADF/);
  });
});
