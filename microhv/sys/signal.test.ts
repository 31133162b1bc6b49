import { describe, expect, test } from 'vitest';
import * as sys from './index.js';

describe('thread signals', () => {
  test('a_blocked_signal_sent_to_the_thread_is_taken_once_without_waiting', () => {
    // Arrange: the kick signal blocked on this thread, then sent to it (as the core kicks a vCPU thread).
    const sig = sys.consts.SIGUSR2;
    sys.threadSigmask(true, [sig]);
    try {
      expect(sys.takePendingSignal(sig)).toBe(false);
      sys.tgkill(process.pid, sys.gettid(), sig);
      // Act + Assert: taken once; nothing is left pending afterwards.
      expect(sys.takePendingSignal(sig)).toBe(true);
      expect(sys.takePendingSignal(sig)).toBe(false);
    } finally {
      sys.threadSigmask(false, [sig]);
    }
  });
});
