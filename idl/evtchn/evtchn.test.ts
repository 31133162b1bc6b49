import { describe, expect, it } from 'vitest';
import { EventChannel, EvtchnError, createChannelPair } from './evtchn.js';

// These touch real eventfds but no other process: still fast and private.
describe('EventChannel', () => {
  it('delivers_a_notification_to_the_other_end', () => {
    const { a, b } = createChannelPair();
    a.notify();

    expect(b.drain()).toBe(1n);
    a.close();
    b.close();
  });

  it('coalesces_notifications_sent_while_the_receiver_is_away', () => {
    const { a, b } = createChannelPair();
    a.notify();
    a.notify();
    a.notify();

    expect(b.waitSync(0)).toBe(3n);
    expect(b.drain()).toBe(0n);
    a.close();
    b.close();
  });

  it('times_out_with_zero_when_nothing_was_sent', () => {
    const { a, b } = createChannelPair();

    expect(b.waitSync(1)).toBe(0n);
    a.close();
    b.close();
  });

  it('wakes_an_async_waiter', async () => {
    const { a, b } = createChannelPair();
    const pending = b.waitAsync(5000);
    a.notify();

    expect(await pending).toBe(1n);
    a.close();
    b.close();
  });

  it('wakes_a_blocking_receiver_with_one_read', () => {
    const { a, b } = createChannelPair();
    const blocking = new EventChannel(0, -1, b.recvFd, { blockingReceive: true });
    a.notify();
    a.notify();

    expect(blocking.waitSync(-1)).toBe(2n);
    expect(blocking.drain()).toBe(0n);
    a.close();
    b.close();
  });

  it('refuses_to_notify_after_close', () => {
    const { a, b } = createChannelPair();
    a.close();

    expect(() => a.notify()).toThrow(EvtchnError);
    b.close();
  });
});
