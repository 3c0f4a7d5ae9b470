// Default timer functions for the hardware components. They look the globals up at call time, so
// `vi.useFakeTimers()` installed after construction still takes effect.
import type { TimerHandle } from './types.js';

export const defaultSetTimer = (callback: () => void, delayMs: number): TimerHandle =>
  setTimeout(callback, delayMs);

export const defaultClearTimer = (handle: TimerHandle): void => clearTimeout(handle);
