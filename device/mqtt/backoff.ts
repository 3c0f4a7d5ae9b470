// Reconnect delays: exponential backoff with "equal jitter" (half fixed, half random), so a fleet that
// lost its broker at the same instant does not come back in lock-step, yet no device waits longer than
// `maxMs`. Pure: the random source is passed in.
export interface BackoffOptions {
  /** Delay before the first retry, before jitter. */
  initialMs: number;
  /** Cap on the delay, before jitter. */
  maxMs: number;
  /** Returns a number in [0, 1). */
  random?: () => number;
}

/** The delay before retry number `attempt` (0 = first retry after a failure). */
export function backoffMs(attempt: number, options: BackoffOptions): number {
  const random = options.random ?? Math.random;
  const exponent = Math.min(Math.max(0, attempt), 30);
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** exponent);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
