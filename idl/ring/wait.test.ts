import { describe, expect, it } from 'vitest';
import { createChannelPair } from '../evtchn/evtchn.js';
import { RingTestRecord } from '../generated/ring.js';
import { SharedBytes } from '../runtime/shared.js';
import { RingError } from './errors.js';
import { RING_PROTOCOLS, geometryFor } from './protocols.js';
import { BackRing, FrontRing, initRing, ringBytes } from './ring.js';
import { waitForRequests, waitForRequestsAsync } from './wait.js';

function ring(): { front: FrontRing; back: BackRing; mem: SharedBytes } {
  const g = geometryFor(RING_PROTOCOLS.RING_PROTOCOL_TEST, 2);
  const mem = new SharedBytes(new ArrayBuffer(ringBytes(g)));
  initRing(mem, 0, g);
  return { front: new FrontRing(mem, 0, g), back: new BackRing(mem, 0, g), mem };
}

function push(front: FrontRing, mem: SharedBytes): boolean {
  RingTestRecord.write(mem, front.requestOffset(), { seq: 0n, payload: 0n, length: 0 });
  front.commitRequest();
  return front.pushRequests();
}

describe('waiting for ring work', () => {
  it('returns_at_once_when_requests_are_already_there', () => {
    const { front, back, mem } = ring();
    const { a, b } = createChannelPair();
    push(front, mem);
    const stats = { immediate: 0, spun: 0, blocked: 0 };

    expect(waitForRequests(back, b, { spinUs: 0, timeoutMs: 0, stats })).toBe(1);
    expect(stats.immediate).toBe(1);
    a.close();
    b.close();
  });

  it('times_out_with_a_typed_error_when_no_work_comes', () => {
    const { back } = ring();
    const { a, b } = createChannelPair();

    expect(() => waitForRequests(back, b, { spinUs: 50, timeoutMs: 5 })).toThrow(RingError);
    a.close();
    b.close();
  });

  it('wakes_an_async_waiter_when_the_producer_notifies', async () => {
    const { front, back, mem } = ring();
    const { a, b } = createChannelPair();
    const waiting = waitForRequestsAsync(back, b, 5000);
    await new Promise((r) => setTimeout(r, 10));

    const asked = push(front, mem);
    a.notify();

    expect(asked).toBe(true);
    expect(await waiting).toBe(1);
    a.close();
    b.close();
  });
});
