// Consumer-side waiting: busy-poll, then block.
//
// While a consumer busy-polls it leaves its *_event index behind, so the
// producer sees no request for a notification and skips the eventfd write
// (a system call). Only when the spin budget runs out does the consumer
// publish *_event = cons + 1 (the final check) and block on the event
// channel. A short spin therefore saves a wakeup on both sides whenever
// work arrives within the budget; past it, the cost is one spin budget of
// CPU per idle period. bench/ring measures the trade.

import type { EventChannel } from '../evtchn/evtchn.js';
import { RingError } from './errors.js';
import type { BackRing, FrontRing } from './ring.js';

export interface WaitPolicy {
  /** Microseconds to busy-poll before blocking; 0 blocks at once. */
  readonly spinUs: number;
  /** Give up after this many milliseconds without work (-1: never). */
  readonly timeoutMs: number;
  /** When given, counts how each wait ended: work found while polling, or after blocking. */
  readonly stats?: WaitStats;
}

export interface WaitStats {
  immediate: number;
  spun: number;
  blocked: number;
}

export const BLOCK_AT_ONCE: WaitPolicy = { spinUs: 0, timeoutMs: -1 };

function waitSync(
  count: () => number,
  finalCheck: () => boolean,
  ch: EventChannel,
  policy: WaitPolicy,
): number {
  const stats = policy.stats;
  let n = count();
  if (n > 0) {
    if (stats !== undefined) stats.immediate++;
    return n;
  }
  if (policy.spinUs > 0) {
    const until = performance.now() + policy.spinUs / 1000;
    for (let i = 1; ; i++) {
      n = count();
      if (n > 0) {
        if (stats !== undefined) stats.spun++;
        return n;
      }
      // Reading the clock costs more than a ring check; do it every 64 polls.
      if ((i & 63) === 0 && performance.now() >= until) break;
    }
  }
  if (stats !== undefined) stats.blocked++;
  const deadline = policy.timeoutMs < 0 ? Infinity : Date.now() + policy.timeoutMs;
  for (;;) {
    if (finalCheck()) return count();
    const left = deadline === Infinity ? -1 : Math.max(0, deadline - Date.now());
    ch.waitSync(left === -1 ? -1 : Math.ceil(left));
    n = count();
    if (n > 0) return n;
    if (Date.now() >= deadline) throw new RingError('TIMEOUT', `no work within ${policy.timeoutMs} ms`);
  }
}

/** Blocks the thread until the back has requests; returns how many. */
export function waitForRequests(back: BackRing, ch: EventChannel, policy: WaitPolicy): number {
  return waitSync(() => back.unconsumedRequests(), () => back.finalCheckForRequests(), ch, policy);
}

/** Blocks the thread until the front has responses; returns how many. */
export function waitForResponses(front: FrontRing, ch: EventChannel, policy: WaitPolicy): number {
  return waitSync(() => front.unconsumedResponses(), () => front.finalCheckForResponses(), ch, policy);
}

/** Event-loop variant: waits for requests without blocking the thread. */
export async function waitForRequestsAsync(back: BackRing, ch: EventChannel, timeoutMs: number): Promise<number> {
  const deadline = timeoutMs < 0 ? Infinity : Date.now() + timeoutMs;
  for (;;) {
    if (back.finalCheckForRequests()) return back.unconsumedRequests();
    const left = deadline === Infinity ? -1 : Math.max(0, Math.ceil(deadline - Date.now()));
    await ch.waitAsync(left);
    const n = back.unconsumedRequests();
    if (n > 0) return n;
    if (Date.now() >= deadline) throw new RingError('TIMEOUT', `no work within ${timeoutMs} ms`);
  }
}
