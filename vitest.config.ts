import { defineConfig } from 'vitest/config';

// TEST_TIME_SCALE stretches every limit (see test/src/wait.ts); the limits only matter when something is already wrong.
const scale = Math.max(1, Number(process.env.TEST_TIME_SCALE ?? 1) || 1);
const limits = { testTimeout: 120_000 * scale, hookTimeout: 120_000 * scale, teardownTimeout: 30_000 * scale };

/**
 * Two projects: `unit` (pure, in process, no Redis: `npm run test:unit`) and
 * `integration` (real processes, sockets and one Redis for the run).
 */
export default defineConfig({
  test: {
    // Integration tests spawn processes; two cores do not gain from more parallel files.
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], ...limits } },
      { test: { name: 'integration', include: ['test/integration/**/*.test.ts', 'test/faults/**/*.test.ts'], globalSetup: ['test/src/global-setup.ts'], ...limits } },
    ],
  },
});
