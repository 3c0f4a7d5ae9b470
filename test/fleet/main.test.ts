// The entry point's options: usage errors exit 64 without starting anything.
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../fleet/main.js';

describe('fleet main', () => {
  it('prints the usage and exits 0 for --help', async () => {
    const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      expect(await main(['--help'], {})).toBe(0);
      expect(error.mock.calls[0]?.[0]).toMatch(/^Usage: npm run fleet -- --broker URL/);
    } finally {
      error.mockRestore();
    }
  });

  it('exits 64 without a broker, and for an unknown option', async () => {
    const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      expect(await main([], {})).toBe(64);
      expect(await main(['--broker', 'mqtt://127.0.0.1:1', '--nope'], {})).toBe(64);
    } finally {
      error.mockRestore();
    }
  });
});
