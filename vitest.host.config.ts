import { defineConfig } from 'vitest/config';
import { FailureDigest } from './tests/support/failure-digest.js';

// Test-host tests: each boots the QEMU test host (TCG with an emulated SVM CPU,
// or KVM where the probe says it is usable) and runs real KVM inside it. They
// are slow, so they run one file at a time and never in parallel.
export default defineConfig({
  test: {
    include: ['tests/**/*.host.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    fileParallelism: false,
    // The digest repeats each failure in a few lines at the very end, where a log's tail shows it.
    reporters: ['default', new FailureDigest()],
  },
});
