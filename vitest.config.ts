// Test runner settings: tests live in test/, mirror the source folders, and never use the wall clock for decisions.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    coverage: {
      provider: 'v8',
      include: ['device/**', 'fleet/**', 'provisioning/**'],
      // Only the thin adapters to real Pi hardware are excluded: nothing here can drive them.
      exclude: ['device/hardware/onoff-gpio.ts'],
      reporter: ['text-summary', 'html'],
    },
  },
});
