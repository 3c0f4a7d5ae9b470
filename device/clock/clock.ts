// The one clock and timer interface, injected everywhere time matters: the wall clock for what the rules
// compare with token and window times, the monotonic clock for deadlines (a wall clock set back must
// not make a view last longer), and timers. Tests use a manual clock that moves only when told.

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export interface Clock extends Timers {
  /** Wall-clock milliseconds since the epoch. */
  now(): number;
  /** Monotonic milliseconds from an arbitrary origin; never steps. */
  monotonicMs(): number;
}

export const systemTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  setInterval: (callback, ms) => setInterval(callback, ms),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
};

export const systemClock: Clock = {
  ...systemTimers,
  now: () => Date.now(),
  monotonicMs: () => performance.now(),
};
