import { defineConfig } from 'vitest/config';

// Unit tests: colocated *.test.ts, pure and fast. Tests that need the test host
// are *.host.test.ts and run under vitest.host.config.ts.
export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['**/*.host.test.ts', 'node_modules/**', 'dist/**', '.cache/**'],
    testTimeout: 20_000,
  },
});
