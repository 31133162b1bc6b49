// The reactor on real eventfds: readiness reaches handlers, a busy exchange is served by
// non-blocking looks on this thread (no worker-pool wait per event), timers still run while
// it is busy, and stop() ends a wait that nothing would otherwise end.
import { afterEach, describe, expect, it } from 'vitest';
import * as sys from '../../microhv/sys/index.js';
import { Reactor } from './reactor.js';

const fds: number[] = [];
let reactor: Reactor | undefined;
afterEach(async () => {
  await reactor?.stop();
  reactor = undefined;
  for (const fd of fds.splice(0)) sys.close(fd);
});

function efd(): number {
  const fd = sys.eventfd(0, sys.consts.EFD_NONBLOCK | sys.consts.EFD_CLOEXEC);
  fds.push(fd);
  return fd;
}

describe('Reactor', () => {
  it('a_busy_ping_pong_is_served_without_a_pooled_wait_per_event', async () => {
    const r = (reactor = new Reactor());
    const [a, b] = [efd(), efd()];
    const ROUNDS = 400;
    let hits = 0;
    let ended!: () => void;
    const done = new Promise<void>((resolve) => { ended = resolve; });
    // Each side answers the other at once: the next event is always ready when a round ends.
    r.add(a, sys.consts.EPOLLIN, () => { sys.eventfdTryRead(a); hits++; sys.eventfdWrite(b, 1n); });
    r.add(b, sys.consts.EPOLLIN, () => {
      sys.eventfdTryRead(b);
      hits++;
      if (hits >= ROUNDS) ended();
      else sys.eventfdWrite(a, 1n);
    });
    sys.eventfdWrite(a, 1n);
    await done;
    expect(hits).toBe(ROUNDS);
    // Only the first event (and none after) needed the worker pool.
    expect(r.pooledWaits).toBeLessThanOrEqual(2);
    expect(r.rounds).toBeGreaterThanOrEqual(ROUNDS);
  });

  it('timers_and_promises_still_run_while_events_arrive_back_to_back', async () => {
    const r = (reactor = new Reactor());
    const fd = efd();
    let events = 0;
    let stop = false;
    r.add(fd, sys.consts.EPOLLIN, () => {
      sys.eventfdTryRead(fd);
      events++;
      if (!stop) sys.eventfdWrite(fd, 1n);
    });
    sys.eventfdWrite(fd, 1n);
    // A timer that a starved event loop would never fire.
    await new Promise((resolve) => setTimeout(resolve, 50));
    stop = true;
    expect(events).toBeGreaterThan(5);
  });

  it('an_idle_reactor_waits_on_the_pool_and_wakes_for_a_later_event', async () => {
    const r = (reactor = new Reactor());
    const fd = efd();
    let seen = 0;
    r.add(fd, sys.consts.EPOLLIN, () => { sys.eventfdTryRead(fd); seen++; });
    await new Promise((resolve) => setTimeout(resolve, 30));
    const waitsBefore = r.pooledWaits;
    expect(waitsBefore).toBeGreaterThanOrEqual(1);
    sys.eventfdWrite(fd, 1n);
    const start = Date.now();
    while (seen === 0 && Date.now() - start < 3000) await new Promise((resolve) => setTimeout(resolve, 2));
    expect(seen).toBe(1);
  });

  it('stop_ends_a_pooled_wait_and_no_handler_runs_after_it', async () => {
    const r = new Reactor();
    const fd = efd();
    let seen = 0;
    r.add(fd, sys.consts.EPOLLIN, () => { seen++; });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await r.stop();
    sys.eventfdWrite(fd, 1n);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).toBe(0);
  });
});
