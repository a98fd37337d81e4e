import { defineConfig } from 'vitest/config';

// The test log must say which Node the suite ran on (supported: 22.22+ and 24 LTS).
console.log(`node ${process.version}`);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration suites start real servers on port 0; two forks keep a 2-core machine busy
    // without letting suites starve each other's event loops.
    pool: 'forks',
    maxWorkers: 2,
  },
});
